"""`redlab compare` (harness/results/compare.py) on hand-made run and suite folders whose
answer is known: an injected regression, two samples of one distribution, too few trials,
environments that differ, and every kind of bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from harness import cli
from harness.errors import ConfigError
from harness.results import compare
from harness.results.compare import Thresholds, compare_folders

from ..conftest import redlab

FAST = [98.0, 102.0, 100.0, 105.0, 95.0]      # miimon 100: about 100 ms
SLOW = [480.0, 510.0, 500.0, 495.0, 520.0]    # miimon 500: about 500 ms
VERSIONS = {"redlab": "0.1.0", "keepalived": "Keepalived v2.2.7", "iperf3": "iperf 3.12"}


def make_run(path: Path, figures: dict[str, list[float]], scenario: str = "bond-active-backup",
             **meta: Any) -> Path:
    """A run folder as redlab run writes it, reduced to what compare reads."""
    path.mkdir(parents=True)
    (path / "metadata.json").write_text(json.dumps({
        "schema_version": 4, "status": "complete", "kernel": "6.1.176", "lab": "uml",
        "host": "lab1", "versions": VERSIONS, "scenario": {"name": scenario},
        "params": {"miimon": 100}, **meta}))
    trials = len(next(iter(figures.values())))
    pd.DataFrame({"scenario": [scenario] * trials, "trial": range(1, trials + 1),
                  "probe_interval_ms": [1.0] * trials, **figures}
                 ).to_csv(path / "summary.csv", index=False)
    return path


def invoke(*args: str):
    """The command in this process: the many cases that need no fresh interpreter."""
    return CliRunner().invoke(cli.app, ["compare", *args])


def verdicts(result: compare.Comparison) -> dict[tuple[str, str], str]:
    return {(f.run, f.figure): f.verdict for f in result.figures}


# -- through the real command line --------------------------------------------------------

def test_an_injected_regression_is_flagged_and_exits_1(tmp_path):
    base = make_run(tmp_path / "before", {"failover_gap_ms": FAST, "lost_packets": FAST})
    cand = make_run(tmp_path / "after", {"failover_gap_ms": SLOW, "lost_packets": FAST},
                    params={"miimon": 500})
    done = redlab("compare", str(base), str(cand), "--json", str(tmp_path / "c.json"),
                  "--csv", str(tmp_path / "c.csv"), timeout=120)
    print(done.stdout, done.stderr)
    assert done.returncode == 1, done.stderr
    line = next(x for x in done.stdout.splitlines() if "failover_gap_ms" in x)
    assert "regression" in line and "+400 ms" in line
    assert "parameters differ: miimon 100 -> 500" in done.stdout
    assert "probe interval (1 ms) stands for it" in done.stdout
    saved = json.loads((tmp_path / "c.json").read_text())
    assert saved["regression"] is True
    by_figure = {f["figure"]: f for f in saved["figures"]}
    assert by_figure["failover_gap_ms"]["verdict"] == "regression"
    assert by_figure["failover_gap_ms"]["ci_low"] > 300
    assert by_figure["lost_packets"]["verdict"] == "no change"
    rows = pd.read_csv(tmp_path / "c.csv")
    assert list(rows["verdict"]) == ["regression", "no change"]


def test_an_improvement_exits_0(tmp_path):
    base = make_run(tmp_path / "before", {"failover_gap_ms": SLOW})
    cand = make_run(tmp_path / "after", {"failover_gap_ms": FAST})
    done = invoke(str(base), str(cand))
    assert done.exit_code == 0, done.stdout + done.stderr
    assert "improvement" in done.stdout and "regression" not in done.stdout


def test_suites_are_paired_by_run_even_when_renumbered(tmp_path):
    for side, gaps in (("before", FAST), ("after", SLOW)):
        make_run(tmp_path / side / "01-bond-active-backup-miimon=100",
                 {"failover_gap_ms": gaps})
    make_run(tmp_path / "before" / "02-bond-single-switch-death",
             {"failover_gap_ms": SLOW}, scenario="bond-single-switch-death")
    # the candidate suite ran its runs in another order: same configuration, new number
    make_run(tmp_path / "after" / "03-bond-single-switch-death",
             {"failover_gap_ms": [x + 1 for x in SLOW]}, scenario="bond-single-switch-death")
    make_run(tmp_path / "after" / "02-vrrp-master-death", {"failover_gap_ms": FAST},
             scenario="vrrp-master-death")
    done = redlab("compare", str(tmp_path / "before"), str(tmp_path / "after"), "--json",
                  str(tmp_path / "c.json"), timeout=120)
    print(done.stdout)
    assert done.returncode == 1, done.stderr
    found = {(f["run"], f["figure"]): f["verdict"]
             for f in json.loads((tmp_path / "c.json").read_text())["figures"]}
    assert found == {("01-bond-active-backup-miimon=100", "failover_gap_ms"): "regression",
                     ("bond-single-switch-death", "failover_gap_ms"): "no change"}
    assert "run 02-vrrp-master-death is only in the candidate" in done.stdout


def test_a_different_environment_is_warned_about_not_refused(tmp_path):
    base = make_run(tmp_path / "before", {"failover_gap_ms": FAST}, cpu_count=2)
    cand = make_run(tmp_path / "after", {"failover_gap_ms": FAST}, kernel="6.12.9",
                    lab="native", cpu_count=8,
                    versions={**VERSIONS, "keepalived": "Keepalived v2.3.1"})
    done = invoke(str(base), str(cand))
    assert done.exit_code == 0, done.stderr
    for text in ("warning: kernel differs: 6.1.176 -> 6.12.9",
                 "warning: lab kind differs: uml -> native",
                 "warning: CPU count differs: 2 -> 8",
                 "warning: keepalived differs: Keepalived v2.2.7 -> Keepalived v2.3.1"):
        assert text in done.stdout
    same = invoke(str(base), str(base))
    assert "warning" not in same.stdout


def _bad_input(tmp: Path) -> dict[str, tuple[list[str], str, str]]:
    """case -> (arguments, the problem named, the fix named)."""
    good = make_run(tmp / "good", {"failover_gap_ms": FAST})
    (tmp / "empty").mkdir()
    make_run(tmp / "nosummary", {"failover_gap_ms": FAST})
    (tmp / "nosummary" / "summary.csv").unlink()
    make_run(tmp / "notrial", {"failover_gap_ms": FAST})
    (tmp / "notrial" / "summary.csv").write_text("scenario,trial,failover_gap_ms\n")
    make_run(tmp / "vrrp", {"failover_gap_ms": FAST}, scenario="vrrp-master-death")
    make_run(tmp / "suite-a" / "01-x", {"failover_gap_ms": FAST})
    make_run(tmp / "suite-a" / "02-y", {"failover_gap_ms": FAST})
    make_run(tmp / "suite-b" / "01-z", {"failover_gap_ms": FAST})
    make_run(tmp / "suite-b" / "02-w", {"failover_gap_ms": FAST})
    make_run(tmp / "other", {"capacity_retained_pct": FAST})
    return {
        "no run": ([str(tmp / "empty"), str(good)], "holds no metadata.json",
                   "folder written by redlab run or redlab suite"),
        "no folder": ([str(good), str(tmp / "missing")], "is not a folder", "run folder"),
        "no summary": ([str(good), str(tmp / "nosummary")], "has no summary.csv",
                       "redlab summarize"),
        "no trial": ([str(tmp / "notrial"), str(good)], "has no trial", "rerun it"),
        "other scenario": ([str(good), str(tmp / "vrrp")],
                           "different scenarios: good / vrrp (bond-active-backup vs"
                           " vrrp-master-death)", "--allow-different"),
        "no shared run": ([str(tmp / "suite-a"), str(tmp / "suite-b")],
                          "has a counterpart", "share run names"),
        "no shared figure": ([str(good), str(tmp / "other")], "share no key figure",
                             "one scenario"),
        "csv folder missing": ([str(good), str(good), "--csv", str(tmp / "no" / "c.csv")],
                               "does not exist", "create it first"),
    }


@pytest.mark.parametrize("case", ["no run", "no folder", "no summary", "no trial",
                                  "other scenario", "no shared run", "no shared figure",
                                  "csv folder missing"])
def test_bad_input_is_one_clear_error_and_nothing_is_written(tmp_path, case):
    args, problem, fix = _bad_input(tmp_path)[case]
    out = tmp_path / "out"
    out.mkdir()
    done = invoke(*args, "--json", str(out / "c.json"))
    assert done.exit_code == 2, done.stdout + done.stderr
    assert done.stderr.startswith("error: ") and problem in done.stderr, done.stderr
    assert "\n  fix: " in done.stderr and fix in done.stderr, done.stderr
    assert done.exception is None or isinstance(done.exception, SystemExit)
    assert list(out.iterdir()) == [] and done.stdout == ""


def test_different_scenarios_compare_when_told(tmp_path):
    base = make_run(tmp_path / "a", {"failover_gap_ms": FAST})
    cand = make_run(tmp_path / "b", {"failover_gap_ms": FAST}, scenario="vrrp-master-death")
    done = invoke(str(base), str(cand), "--allow-different")
    assert done.exit_code == 0, done.stderr
    assert "warning: different scenarios, compared as asked" in done.stdout


# -- the statistics ---------------------------------------------------------------------

def test_two_runs_of_one_configuration_are_no_change_or_inconclusive(tmp_path):
    """Two stored suites of the same configuration (gaps that sample a miimon period's
    phase, 5 trials a side), through the command line."""
    rng = np.random.default_rng(11)
    for side in ("before", "after"):
        make_run(tmp_path / side / "01-bond-active-backup-miimon=100", {
            "failover_gap_ms": list(5 + rng.uniform(0, 100, 5)),
            "failback_gap_ms": list(rng.uniform(0, 100, 5)),
            "capacity_retained_pct": list(rng.normal(98, 3, 5))})
    done = redlab("compare", str(tmp_path / "before"), str(tmp_path / "after"), timeout=120)
    print(done.stdout)
    assert done.returncode == 0, done.stderr
    assert "regression" not in done.stdout
    assert "no change" in done.stdout


def test_chance_alone_is_never_a_regression_within_the_threshold_and_rarely_beyond(tmp_path):
    """100 pairs of runs drawn from one distribution, 3 figures each: a regression is
    never called within the threshold, and beyond it less often than alpha (the test is
    against the threshold, Holm-corrected). With the threshold at zero, the same samples
    give more false regressions: the threshold is what protects."""
    rng = np.random.default_rng(7)
    flagged, flagged_without = 0, 0
    for i in range(100):
        sides = [make_run(tmp_path / f"{i}-{side}", {
            "failover_gap_ms": list(20 + rng.uniform(0, 100, 5)),
            "failback_gap_ms": list(rng.uniform(0, 100, 5)),
            "capacity_retained_pct": list(rng.normal(98, 3, 5))}) for side in "ab"]
        figures = compare_folders(*sides).figures
        assert all(f.verdict == "no change" for f in figures
                   if abs(f.difference) <= f.threshold)
        flagged += any(f.verdict == "regression" for f in figures)
        zero = compare_folders(*sides, Thresholds(relative=0, absolute_ms=0)).figures
        flagged_without += any(f.verdict == "regression" for f in zero)
    print(f"false regressions: {flagged} with the threshold, {flagged_without} without")
    assert flagged < 100 * compare.ALPHA / 2
    assert flagged_without > flagged


def test_two_trials_a_side_are_inconclusive_and_say_how_many_are_needed(tmp_path):
    base = make_run(tmp_path / "a", {"failover_gap_ms": FAST[:2]})
    cand = make_run(tmp_path / "b", {"failover_gap_ms": SLOW[:2]})
    done = invoke(str(base), str(cand))
    assert done.exit_code == 0, done.stderr
    assert "inconclusive" in done.stdout and "regression" not in done.stdout
    assert ("2 vs 2 trials: the exact one-sided Mann-Whitney test cannot reach p < 0.05;"
            " run at least 4 trials per side") in done.stdout


def test_the_trials_needed_are_where_scipy_first_reaches_significance():
    assert compare.trials_needed(0.05) == 4
    assert compare.trials_needed(0.05, tests=7) == 5  # 7/70 > 0.05 > 7/252
    for n in (3, 4):
        p = compare.p_worse(np.arange(n, dtype=float), np.arange(n, dtype=float) + 10, True)
        assert p == pytest.approx(compare.min_p_value(n, n))
        assert (p < 0.05) == (n >= compare.trials_needed(0.05))


def test_tied_trials_get_the_exact_p_not_an_optimistic_approximation():
    # scipy's normal approximation gives 0.038 here; 3 vs 3 cannot go below 1/20
    p = compare.p_worse(np.array([1.0, 2, 3]), np.array([4.0, 4, 6]), True)
    assert p == pytest.approx(0.05)


def test_a_significant_difference_within_the_threshold_is_no_change(tmp_path):
    before, after = [100, 100.5, 101, 101.5, 102], [105, 105.5, 106, 106.5, 107]
    base = make_run(tmp_path / "a", {"failover_gap_ms": before})
    cand = make_run(tmp_path / "b", {"failover_gap_ms": after})
    (fig,) = compare_folders(base, cand).figures
    assert compare.p_worse(np.array(before), np.array(after), True) < 0.01
    assert fig.difference == 5 and fig.verdict == "no change"
    loose = compare_folders(base, cand, Thresholds(relative=0.01, absolute_ms=1)).figures
    assert loose[0].verdict == "regression"


def test_less_capacity_is_worse_and_more_is_better(tmp_path):
    full = make_run(tmp_path / "a", {"capacity_retained_pct": [99, 100, 98, 101, 100]})
    half = make_run(tmp_path / "b", {"capacity_retained_pct": [50, 49, 51, 52, 48]})
    assert verdicts(compare_folders(full, half)) == {("a / b", "capacity_retained_pct"):
                                                     "regression"}
    assert verdicts(compare_folders(half, full)) == {("b / a", "capacity_retained_pct"):
                                                     "improvement"}


def test_the_calibrated_error_raises_the_absolute_threshold(tmp_path):
    base = make_run(tmp_path / "a", {"failover_gap_ms": FAST})
    cand = make_run(tmp_path / "b", {"failover_gap_ms": [x + 25 for x in FAST]})
    calibration = tmp_path / "cal"
    calibration.mkdir()
    pd.DataFrame({"error_ms": [3.0, -30.0, 12.0]}).to_csv(calibration / "calibration.csv")
    assert compare.calibrated_error_ms(calibration) == 30.0
    assert compare_folders(base, cand).figures[0].verdict == "regression"
    limits = Thresholds(probe_error_ms=30.0, probe_error_source="calibrated in cal")
    result = compare_folders(base, cand, limits)
    assert result.figures[0].verdict == "no change" and result.figures[0].threshold == 30
    assert any("probe error 30 ms (calibrated in cal)" in n for n in result.notes)
    with pytest.raises(ConfigError, match="holds no calibration.csv"):
        compare.calibrated_error_ms(tmp_path / "a")


def test_the_same_folders_give_the_same_interval(tmp_path):
    base = make_run(tmp_path / "a", {"failover_gap_ms": FAST})
    cand = make_run(tmp_path / "b", {"failover_gap_ms": SLOW})
    first, again = (compare_folders(base, cand).figures[0] for _ in range(2))
    assert (first.ci_low, first.ci_high) == (again.ci_low, again.ci_high)
    assert first.ci_low < 400 < first.ci_high


def test_holm_keeps_the_order_and_never_lowers_a_p_value():
    adjusted = compare.holm([0.01, 0.04, 0.03, 0.5])
    assert adjusted == pytest.approx([0.04, 0.09, 0.09, 0.5])
