"""The quick loop builds no lab: a suite or audit run here through the command line
(its lab replaced by a fake) must not boot the User-mode Linux guest a real one shares
across its runs (harness/scenario/suite_guest.py; tests/lab/test_suite_guest.py)."""

from __future__ import annotations

import pytest

from harness.scenario.suite_guest import OFF_ENV


@pytest.fixture(autouse=True)
def _no_suite_guest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OFF_ENV, "0")
