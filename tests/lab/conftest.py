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
from . import streams
from .streams import EARLY_RUNS

HERE = Path(__file__).parent


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.lab)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "private_guest: the test's redlab runs boot User-mode"
                            " Linux guests of their own, not the session's shared guest")
    config.addinivalue_line("markers", "whole_host: the test needs every host CPU (guests"
                            " held on CPUs of their own): its worker's pin is lifted meanwhile")


@pytest.fixture(autouse=True)
def _whole_host(request: pytest.FixtureRequest) -> Iterator[None]:
    if request.node.get_closest_marker("whole_host"):
        with streams.unpinned():
            yield
    else:
        yield


_begun: set[str] = set()


@pytest.hookimpl(tryfirst=True)  # before any fixture of the item is set up
def pytest_runtest_setup(item: pytest.Item) -> None:
    """At the first test of each stream this process runs (tests/lab/streams.py): under
    xdist, hold the worker on the stream's CPU; then, for the guest stream, boot the
    shared guest, for the host stream, start the early runs.  A process that runs no
    test of a stream starts nothing for it."""
    name = streams.stream(item.nodeid)
    if name is None or name in _begun:
        return
    if not _begun:
        streams.pin(name)
    _begun.add(name)
    factory: pytest.TempPathFactory = item.config._tmp_path_factory  # tmp_path_factory's
    if name == streams.GUEST:
        _boot_shared_guest(item.config, factory)
    else:
        _start_early_runs(item.config, item.session, factory)


def _boot_shared_guest(config: pytest.Config, factory: pytest.TempPathFactory) -> None:
    """One User-mode Linux guest for the guest stream's tests, where the host lacks bonding
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
        return
    guest = SharedGuest.boot_for_any_lab([factory.getbasetemp()])
    os.environ[ENV_VAR] = str(guest.spool)

    def close() -> None:
        os.environ.pop(ENV_VAR, None)
        guest.close()
    config.add_cleanup(close)


@pytest.fixture(autouse=True)
def _private_guest(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("private_guest"):
        monkeypatch.delenv(ENV_VAR, raising=False)


_started: dict[str, tuple[subprocess.Popen[str], Path]] = {}


def _start_early_runs(config: pytest.Config, session: pytest.Session,
                      factory: pytest.TempPathFactory) -> None:
    """Start the EARLY_RUNS whose tests were selected, each in the background: light
    traffic (one flow, 100 probes/s) beside the host stream's labs, while the other CPU
    serves the guest stream.  Under xdist every worker collects every test; the one that
    runs the host stream (where streams.stream puts these tests) starts them."""
    wanted = {item.name for item in session.items} & set(EARLY_RUNS)
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    for name in sorted(wanted):
        scenario, params = EARLY_RUNS[name]
        out = factory.mktemp(f"early-{scenario}") / "run"
        argv = [sys.executable, "-m", "harness", "run", f"scenarios/{scenario}.yaml",
                *(a for p in params for a in ("--param", p)), "--out", str(out)]
        _started[name] = (subprocess.Popen(argv, cwd=REPO, env=env, text=True,
                                           stdout=subprocess.PIPE, stderr=subprocess.PIPE),
                          out)

    def stop() -> None:
        for proc, _ in _started.values():
            if proc.poll() is None:
                proc.terminate()
                proc.communicate(timeout=60)
    config.add_cleanup(stop)


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
