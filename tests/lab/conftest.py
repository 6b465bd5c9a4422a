"""Everything under tests/lab builds a real lab: marked `lab` here, so that a new file
cannot slip into the quick loop (`pytest tests/unit`, or `-m "not lab"`) by forgetting it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.lab.shared_guest import ENV_VAR, SharedGuest

from ..conftest import REPO

HERE = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.lab)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "private_guest: the test's redlab runs boot User-mode"
                            " Linux guests of their own, not the session's shared guest")


@pytest.fixture(scope="session", autouse=True)
def shared_guest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedGuest | None]:
    """One User-mode Linux guest for the whole session, where the host lacks bonding
    (REDLAB_SHARED_GUEST=0 turns it off): every `redlab run` under pytest's temporary
    folder that needs a guest submits its command there (REDLAB_GUEST) instead of booting
    one, saving the boot, Python's imports in the guest and the Open vSwitch wait per run
    (about 4.5 s a bond run, 6 s an OVS run: 438 s -> 400 s on test_lag, test_failback and
    test_two_switches).  Each run is still its own process on a real kernel.  Tests
    marked ``private_guest``, and the calibration (the probe's error on a fresh guest, as
    a user's own calibration boots one), boot their own guests."""
    from harness.lab import capabilities, uml

    if (os.environ.get("REDLAB_SHARED_GUEST", "1") == "0" or not uml.uml_available()
            or capabilities.probe("bonding")):
        yield None
        return
    guest = SharedGuest.boot_for_any_lab([tmp_path_factory.getbasetemp()])
    os.environ[ENV_VAR] = str(guest.spool)
    try:
        yield guest
    finally:
        os.environ.pop(ENV_VAR, None)
        guest.close()


@pytest.fixture(autouse=True)
def _private_guest(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("private_guest"):
        monkeypatch.delenv(ENV_VAR, raising=False)


# Runs that mostly wait (a 90 s LACP timeout) start with the session, in a guest of their
# own, and their tests collect the result: test id -> (scenario, --param values).
EARLY_RUNS = {
    "test_a_member_whose_lacpdus_stop_leaves_after_three_missed_pdus[slow]": (
        "lacp-timeout", ("lacp_rate=slow", "traffic.duration_s=100", "traffic.parallel=1",
                         "traffic.probe_interval_ms=10")),
}
_started: dict[str, tuple[subprocess.Popen[str], Path]] = {}


@pytest.fixture(scope="session", autouse=True)
def _early_runs(request: pytest.FixtureRequest,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Start the EARLY_RUNS whose tests were selected, each in the background: light
    traffic (one flow, 100 probes/s) on one host core while the other serves the rest."""
    wanted = {item.name for item in request.session.items} & set(EARLY_RUNS)
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    for name in sorted(wanted):
        scenario, params = EARLY_RUNS[name]
        out = tmp_path_factory.mktemp(f"early-{scenario}") / "run"
        argv = [sys.executable, "-m", "harness", "run", f"scenarios/{scenario}.yaml",
                *(a for p in params for a in ("--param", p)), "--out", str(out)]
        _started[name] = (subprocess.Popen(argv, cwd=REPO, env=env, text=True,
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE),
                          out)
    yield
    for proc, _ in _started.values():
        if proc.poll() is None:
            proc.terminate()
            proc.communicate(timeout=60)


def early_run(name: str, timeout: float = 600) -> Path | None:
    """The folder of the early run for test ``name`` once it has ended (it must have
    succeeded); None if none was started (the test then runs its own)."""
    if name not in _started:
        return None
    proc, out = _started[name]
    stdout, stderr = proc.communicate(timeout=timeout)
    print(stdout[-3000:], stderr[-3000:])
    assert proc.returncode == 0, stderr[-3000:]
    return out
