"""A suite says how long it will take before it starts (harness/scenario/estimate.py):
from the phase profile of the trials this machine already ran, or a stated default."""

from __future__ import annotations

import json
from pathlib import Path

from harness.measure.stopwatch import TIMING_FILE
from harness.scenario import estimate

from ..conftest import redlab


def write_run(root: Path, scenario: str, totals: list[float], traffic_s: float = 10.0) -> None:
    root.mkdir(parents=True)
    (root / "metadata.json").write_text(json.dumps({"scenario": {"name": scenario}}))
    for number, total in enumerate(totals, start=1):
        trial = root / f"trial-{number:03d}"
        trial.mkdir()
        (trial / TIMING_FILE).write_text(json.dumps(
            {"phases_s": {"wiring": 5.0, "traffic": traffic_s}, "total_s": total}))


def test_the_overhead_is_what_earlier_trials_here_cost_beyond_their_traffic(tmp_path):
    write_run(tmp_path / "a", "bond-active-backup", [40.0, 30.0, 50.0])
    write_run(tmp_path / "suite" / "01-x", "vrrp-master-death", [22.0])
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "metadata.json").write_text("{not json")
    seen = estimate.overheads([tmp_path, tmp_path / "absent"])
    assert seen == {"bond-active-backup": [30.0, 20.0, 40.0], "vrrp-master-death": [12.0]}
    cost = estimate.trial_cost("bond-active-backup", 10, "uml", seen)
    assert cost.seconds == 10 + estimate.PHASE_OFFSET_S + 30.0  # the median
    assert "3 earlier trial(s) here" in cost.basis


def test_a_scenario_never_run_here_takes_its_labs_default_and_says_so():
    cost = estimate.trial_cost("mclag-leaf-death", 17, "native", {})
    assert cost.seconds == 17 + estimate.PHASE_OFFSET_S + estimate.DEFAULT_OVERHEAD_S["native"]
    assert "never run here" in cost.basis and "native" in cost.basis


def test_a_dry_run_lists_the_plan_and_creates_nothing(tmp_path):
    out = tmp_path / "suite"
    done = redlab("suite", "scenarios/suites/default.yaml", "--out", str(out), "--dry-run")
    assert done.returncode == 0, done.stderr
    assert "suite default: 3 run(s), 5 trial(s), about" in done.stderr
    assert "01-bond-active-backup-quick-miimon=100: 3 x" in done.stderr
    assert not out.exists()
