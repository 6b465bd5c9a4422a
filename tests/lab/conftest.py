"""Everything under tests/lab builds a real lab: marked `lab` here, so that a new file
cannot slip into the quick loop (`pytest tests/unit`, or `-m "not lab"`) by forgetting it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.lab.shared_guest import ENV_VAR, SharedGuest

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
    from harness.inject.filter import TC_MODULES
    from harness.lab import capabilities, guest_modules, uml

    if (os.environ.get("REDLAB_SHARED_GUEST", "1") == "0" or not uml.uml_available()
            or capabilities.probe("bonding")):
        yield None
        return
    wanted = (*guest_modules(capabilities.FEATURES), *TC_MODULES)
    absent = set(uml.missing_modules(wanted))  # a run needing one boots its own guest
    guest = SharedGuest.boot([m for m in wanted if m not in absent],
                             [tmp_path_factory.getbasetemp()],
                             start_ovs="openvswitch" not in absent)
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
