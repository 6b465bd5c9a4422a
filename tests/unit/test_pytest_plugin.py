"""The redlab pytest plugin's pure parts: what a run's summary says, how figures become
JUnit properties, where scenarios are found; and that the shipped example collects
(tests/lab/test_pytest_plugin.py runs a user's file on a real lab)."""

from __future__ import annotations

import math
import subprocess
import sys

import pandas as pd
import pytest

from harness.pytest_plugin import RedLab, RunSummary, _property, scenario_path

from ..conftest import REPO


def summary(rows: list[dict]) -> RunSummary:
    return RunSummary(REPO, pd.DataFrame(rows), 0)


def test_the_verdict_is_fail_when_any_trial_fails_and_names_what_it_missed():
    missed = "failover_gap_ms 210 above max 150"
    run = summary([{"trial": 1, "verdict": "pass", "verdict_failed": ""},
                   {"trial": 2, "verdict": "fail", "verdict_failed": missed}])
    assert run.verdict == "fail"
    assert run.failed == [f"trial 2: {missed}"]
    assert summary([{"trial": 1, "verdict": "pass"}]).verdict == "pass"
    assert summary([{"trial": 1, "failover_gap_ms": 3.0}]).verdict == ""


def test_a_missing_column_is_named_with_the_ones_there_are():
    with pytest.raises(KeyError, match="no column 'gap'.*failover_gap_ms"):
        summary([{"trial": 1, "failover_gap_ms": 3.0}])["gap"]


def test_properties_keep_a_zero_and_leave_a_missing_figure_empty():
    assert _property(0.0) == 0.0
    assert _property(math.nan) == ""
    assert _property(pd.Series([7]).iloc[0]) == 7 and type(_property(pd.Series([7]).iloc[0])) is int


def test_each_trials_figures_are_recorded_under_the_runs_label():
    recorded: dict[str, object] = {}
    lab = RedLab(REPO, record=recorded.__setitem__)
    lab._record("01-x", summary([{"trial": 1, "failover_gap_ms": 12.5, "verdict": "pass",
                                  "lost_packets": 0, "capacity_retained_pct": math.nan}]))
    assert recorded["01-x.trial1.failover_gap_ms"] == 12.5
    assert recorded["01-x.trial1.lost_packets"] == 0
    assert recorded["01-x.trial1.capacity_retained_pct"] == ""
    assert recorded["01-x.verdict"] == "pass"


def test_a_scenario_is_a_path_or_a_shipped_name():
    assert scenario_path("vrrp-master-death") == REPO / "scenarios" / "vrrp-master-death.yaml"
    assert scenario_path(REPO / "scenarios" / "lacp-timeout.yaml").name == "lacp-timeout.yaml"
    with pytest.raises(pytest.UsageError, match="no scenario nope"):
        scenario_path("nope")


def test_the_example_file_collects_and_its_tests_are_lab_tests():
    """The plugin comes from the install's pytest11 entry point, not from a conftest."""
    example = REPO / "examples" / "test_my_redundancy.py"
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                           "-p", "no:cacheprovider", str(example)],
                          cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 tests collected" in done.stdout
    labless = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q",
                              "-p", "no:cacheprovider", "-m", "not lab", str(example)],
                             cwd=REPO, capture_output=True, text=True, check=False)
    assert "2 deselected" in labless.stdout, labless.stdout
