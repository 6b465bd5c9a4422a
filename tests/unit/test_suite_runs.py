"""A suite's bookkeeping (harness/scenario/suite_runner.py, harness/results/suite_output.py):
the order of its runs, resuming, failed runs, the final table and the progress counts.

No lab runs here.  A suite's function that runs one run is a parameter, and these tests
pass a fake one that writes a run folder as ``redlab run`` does (metadata.json with its
status, summary.csv) or fails as a run can: what is tested is the suite's bookkeeping,
not the network.  Bad input goes through the real command line."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import typer
import yaml
from rich.console import Console
from typer.testing import CliRunner

from harness import cli
from harness.errors import LabError
from harness.results import suite_output
from harness.results.suite_output import Pace, SuiteProgress
from harness.scenario import suite_runner
from harness.scenario.suite_runner import (
    Options,
    PlannedRun,
    RunFailed,
    RunOutcome,
    SuiteRunner,
    prepare,
    run_order,
)

from ..conftest import REPO, SCENARIOS, redlab, wait_until

BOND = str(SCENARIOS / "bond-active-backup.yaml")
VRRP = str(SCENARIOS / "vrrp-master-death.yaml")


def write_suite(tmp_path: Path, runs: list[dict[str, Any]], name: str = "unit-suite") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "intent": "bookkeeping", "runs": runs}))
    return path


def four_runs(tmp_path: Path, repeat: int = 2) -> Path:
    return write_suite(tmp_path, [{"scenario": BOND, "repeat": repeat,
                                   "sweep": {"miimon": [10, 100, 500]}},
                                  {"scenario": VRRP, "repeat": repeat}])


def write_run(folder: Path, rows: Sequence[dict[str, Any]], status: str) -> None:
    """A run folder, reduced to what a suite reads: metadata.json and summary.csv."""
    folder.mkdir(parents=True)
    (folder / "metadata.json").write_text(json.dumps(
        {"schema_version": 4, "status": status, "trials_done": len(rows)}))
    pd.DataFrame(rows).to_csv(folder / "summary.csv", index=False)


class FakeRuns:
    """Stands in for the lab: writes the run's folder, or fails (after one trial) for the
    runs numbered in ``fail`` with ``error``."""

    def __init__(self, fail: Sequence[int] = (), error: BaseException | None = None,
                 verdict: str = "pass") -> None:
        self.fail, self.error, self.verdict = fail, error, verdict
        self.calls: list[str] = []

    def __call__(self, run: PlannedRun, folder: Path) -> list[dict[str, Any]]:
        self.calls.append(run.label)
        rows = [{"scenario": run.scenario.stem, "trial": t, "failover_gap_ms": 100.0 + t,
                 "verdict": self.verdict} for t in range(1, run.repeat + 1)]
        if run.number in self.fail:
            interrupted = isinstance(self.error, KeyboardInterrupt)
            write_run(folder, rows[:1], "running" if interrupted else "failed")
            raise self.error or LabError("the lab fell over", "read the run folder")
        write_run(folder, rows, "complete")
        return rows


class Quiet:
    def started(self, run: PlannedRun, folder: Path) -> None: ...

    def finished(self, outcome: RunOutcome) -> None: ...


def run_suite(path: Path, out: Path, fake: FakeRuns, fail_fast: bool = False,
              **options: Any) -> SuiteRunner:
    runner = SuiteRunner(prepare(path, Options(out, **options)), fake, fail_fast)
    runner.run(Quiet())
    return runner


def snapshot(root: Path) -> list[tuple[str, int]]:
    return sorted((str(p), p.stat().st_mtime_ns) for p in root.rglob("*"))


# -- order ---------------------------------------------------------------------------

def test_runs_are_numbered_by_the_suite_file_whatever_order_they_run_in(tmp_path):
    path = write_suite(tmp_path, [{"scenario": BOND, "sweep": {"miimon": [10, 20, 50, 100,
                                                                           200, 500]}}])
    plan = prepare(path, Options(tmp_path / "a", shuffle=True, seed=7))
    again = prepare(path, Options(tmp_path / "b", shuffle=True, seed=7))
    assert [r.label for r in plan.runs] == [f"{n:02d}-bond-active-backup-miimon={m}" for n, m
                                            in enumerate([10, 20, 50, 100, 200, 500], 1)]
    assert [r.label for r in plan.order] == [r.label for r in again.order]  # reproducible
    assert sorted(plan.order, key=lambda r: r.number) == plan.runs  # each run once
    assert plan.order != plan.runs  # shuffled (seed 7 moves them)
    assert prepare(path, Options(tmp_path / "c")).order == plan.runs  # no shuffle: file order
    unseeded = prepare(path, Options(tmp_path / "d", shuffle=True))
    assert run_order(unseeded.runs, unseeded.record["seed"]) == unseeded.order


def test_a_shuffled_suite_runs_in_its_order_into_folders_named_by_the_file(tmp_path):
    fake = FakeRuns()
    runner = run_suite(four_runs(tmp_path), tmp_path / "out", fake, shuffle=True, seed=3)
    order = [r.label for r in runner.plan.order]
    assert fake.calls == order and order != sorted(order)
    assert sorted(p.name for p in (tmp_path / "out").iterdir() if p.is_dir()) == sorted(order)
    record = json.loads((tmp_path / "out" / "suite.json").read_text())
    assert record["seed"] == 3 and record["shuffle"] is True and record["order"] == order
    assert record["status"] == "complete"
    table = pd.read_csv(tmp_path / "out" / "suite.csv")
    assert sorted(set(table["run"])) == sorted(order) and len(table) == 8
    assert runner.exit_code() == 0


# -- resume --------------------------------------------------------------------------

def test_resume_keeps_complete_runs_and_reruns_the_others_keeping_their_folders(tmp_path):
    path, out = four_runs(tmp_path), tmp_path / "out"
    run_suite(path, out, FakeRuns(fail=[2]), fail_fast=True)  # run 2 failed: stop
    assert sorted(p.name for p in out.iterdir()) == [
        "01-bond-active-backup-miimon=10", "02-bond-active-backup-miimon=100", "suite.csv",
        "suite.json"]
    kept_before = (out / "01-bond-active-backup-miimon=10" / "metadata.json").read_bytes()
    with pytest.raises(KeyboardInterrupt):  # resumed: run 2 again, then Ctrl-C in run 3
        run_suite(path, out, FakeRuns(fail=[3], error=KeyboardInterrupt()), resume=True)
    assert json.loads((out / "suite.json").read_text())["outcomes"][
        "03-bond-active-backup-miimon=500"]["status"] == "interrupted"

    again = FakeRuns()
    runner = run_suite(path, out, again, resume=True)
    assert again.calls == ["03-bond-active-backup-miimon=500", "04-vrrp-master-death"]
    assert (out / "01-bond-active-backup-miimon=10" / "metadata.json").read_bytes() == \
        kept_before
    aside = out / suite_runner.SET_ASIDE
    assert json.loads((aside / "02-bond-active-backup-miimon=100" / "metadata.json")
                      .read_text())["status"] == "failed"
    assert json.loads((aside / "03-bond-active-backup-miimon=500" / "metadata.json")
                      .read_text())["status"] == "running"  # the interrupted attempt
    assert {label: o.status for label, o in runner.outcomes.items()} == {
        "01-bond-active-backup-miimon=10": "kept", "02-bond-active-backup-miimon=100": "kept",
        "03-bond-active-backup-miimon=500": "measured", "04-vrrp-master-death": "measured"}
    table = pd.read_csv(out / "suite.csv")
    assert table.groupby("run").size().to_dict() == {label: 2 for label in runner.outcomes}
    record = json.loads((out / "suite.json").read_text())
    assert record["status"] == "complete" and len(record["resumed_at"]) == 2


def test_resume_reruns_every_run_not_complete_with_all_its_trials(tmp_path):
    path, out = four_runs(tmp_path), tmp_path / "out"
    run_suite(path, out, FakeRuns())
    short, killed, unborn = (out / name for name in (
        "02-bond-active-backup-miimon=100", "03-bond-active-backup-miimon=500",
        "04-vrrp-master-death"))
    meta = json.loads((short / "metadata.json").read_text())
    (short / "metadata.json").write_text(json.dumps({**meta, "trials_done": 1}))
    # marked by redlab clean after a kill; a guest that died before the run began
    (killed / "metadata.json").write_text(json.dumps({**meta, "status": "interrupted"}))
    (unborn / "metadata.json").unlink()
    again = FakeRuns()
    run_suite(path, out, again, resume=True)
    assert again.calls == [short.name, killed.name, unborn.name]
    for folder in (short, killed, unborn):
        assert (out / suite_runner.SET_ASIDE / folder.name / "summary.csv").is_file()
    nothing = FakeRuns()
    run_suite(path, out, nothing, resume=True)
    assert nothing.calls == []


def test_an_attempt_set_aside_twice_keeps_both(tmp_path):
    into = tmp_path / "incomplete"
    for attempt in (1, 2):
        (tmp_path / "01-x").mkdir()
        (tmp_path / "01-x" / "n").write_text(str(attempt))
        suite_runner.set_aside(tmp_path / "01-x", into)
    assert (into / "01-x" / "n").read_text() == "1" and (into / "01-x-2" / "n").read_text() == "2"


# -- failed runs ---------------------------------------------------------------------

@pytest.mark.parametrize("error", [LabError("the lab fell over"), RunFailed("exited 3"),
                                   ValueError("a bug")], ids=["lab", "exit", "bug"])
def test_a_failed_run_does_not_stop_the_suite(tmp_path, error):
    fake = FakeRuns(fail=[2], error=error)
    runner = run_suite(four_runs(tmp_path), tmp_path / "out", fake)
    assert len(fake.calls) == 4
    assert runner.with_status("failed") == ["02-bond-active-backup-miimon=100"]
    assert runner.exit_code() == 1
    record = json.loads((tmp_path / "out" / "suite.json").read_text())
    assert record["status"] == "incomplete"
    assert str(error) in record["outcomes"]["02-bond-active-backup-miimon=100"]["error"]


def test_fail_fast_stops_at_the_first_failed_run(tmp_path):
    fake = FakeRuns(fail=[2])
    runner = run_suite(four_runs(tmp_path), tmp_path / "out", fake, fail_fast=True)
    assert fake.calls == ["01-bond-active-backup-miimon=10", "02-bond-active-backup-miimon=100"]
    assert runner.with_status("not run") == ["03-bond-active-backup-miimon=500",
                                            "04-vrrp-master-death"]
    assert runner.exit_code() == 1


def test_a_failed_expectation_alone_exits_1(tmp_path):
    passed = run_suite(four_runs(tmp_path), tmp_path / "pass", FakeRuns())
    failed = run_suite(four_runs(tmp_path), tmp_path / "fail", FakeRuns(verdict="fail"))
    assert (passed.exit_code(), failed.exit_code()) == (0, 1)
    assert len(failed.failed_verdicts()) == 4


# -- what the user sees --------------------------------------------------------------

def test_the_final_table_shows_every_run_and_names_the_failed_one(tmp_path, monkeypatch):
    """Through the command, with the lab's _run replaced: redlab run's exit code 3 in run
    2 is a failed run, and the suite goes on."""
    def fake_run(scenario, params, repeat, out, lab, deadline, run_id, expect):
        if params.get("miimon") == "100":
            out.mkdir(parents=True)
            raise typer.Exit(3)
        return FakeRuns()(PlannedRun(1, scenario, params, repeat, expect), out)

    monkeypatch.setattr(cli, "_run", fake_run)
    out = tmp_path / "out"
    done = CliRunner().invoke(cli.app, ["suite", str(four_runs(tmp_path)), "--out", str(out)])
    print(done.stdout, done.stderr)
    assert done.exit_code == 1
    for label in ("01-bond-active-backup-miimon=10", "02-bond-active-backup-miimon=100",
                  "03-bond-active-backup-miimon=500", "04-vrrp-master-death"):
        assert label in done.stdout
    assert "RUN FAILED" in done.stdout
    assert "run 02-bond-active-backup-miimon=100 failed: redlab run exited 3" in done.stdout
    assert "1 run(s) failed: 02-bond-active-backup-miimon=100" in done.stdout
    assert "101.5 [101, 102]" in done.stdout  # median [range] of the fake's 101 and 102
    assert f"--out {out} --resume" in done.stdout
    assert "[4/4] 04-vrrp-master-death: 2 of 2 trial(s)" in done.stderr


def test_the_table_says_why_a_run_has_no_figures():
    run = PlannedRun(1, Path("a.yaml"), {}, 3, {})
    frame = pd.DataFrame({"run": ["01-a", "01-a"], "failover_gap_ms": [5.0, 7.0],
                          "verdict": ["pass", "fail"]})
    outcomes = [RunOutcome(run, "measured", frame.to_dict("records")),
                RunOutcome(PlannedRun(2, Path("b.yaml"), {}, 3, {}), "not run")]
    console = Console(file=io.StringIO(), width=200)
    console.print(suite_output.table(outcomes, frame, "t"))
    text = console.file.getvalue()
    assert "6 [5, 7]" in text and "2/3" in text and "FAIL" in text
    assert "02-b" in text and "not run" in text and "0/3" in text


def test_time_left_is_seconds_per_trial_so_far_times_trials_left():
    pace = Pace(started=0.0)
    assert pace.left_s(4, now=50.0) is None  # nothing measured yet: no guess
    pace.add(2, now=100.0)                   # 50 s per trial
    assert pace.left_s(4, now=100.0) == 200.0
    assert pace.left_s(4, now=130.0) == 170.0  # 30 s into the next trial


def progress_for(tmp_path: Path, terminal: bool) -> tuple[SuiteProgress, SuiteRunner]:
    runner = SuiteRunner(prepare(four_runs(tmp_path, repeat=3), Options(tmp_path / "out")),
                         FakeRuns())
    console = Console(file=io.StringIO(), force_terminal=terminal, width=200)
    return SuiteProgress(runner, console, poll_s=0.01), runner


def test_progress_counts_trials_as_the_run_folder_reports_them(tmp_path):
    progress, runner = progress_for(tmp_path, terminal=True)
    run = runner.plan.runs[0]
    folder = tmp_path / "out" / run.label
    progress.started(run, folder)
    write_run(folder, [{"trial": 1}, {"trial": 2}], "running")  # two trials in
    wait_until("the display saw 2 trials", lambda: progress.current == 2, timeout=10)
    progress.finished(RunOutcome(run, "measured", [{"trial": t} for t in (1, 2, 3)]))
    assert (progress.trials_done, progress.current, progress.pace.measured) == (3, 0, 3)
    assert progress.watch is None  # the poller stopped with the run


def test_a_failed_runs_missing_trials_leave_the_total(tmp_path):
    progress, runner = progress_for(tmp_path, terminal=False)
    first, second = runner.plan.runs[:2]
    progress.seen(1, now=progress.pace.started + 10)
    progress.finished(RunOutcome(first, "measured", [{"trial": t, "verdict": "pass"}
                                                     for t in (1, 2, 3)], seconds=60),
                      now=progress.pace.started + 60)
    progress.finished(RunOutcome(second, "failed", [{"trial": 1}], error="boom"),
                      now=progress.pace.started + 70)
    assert (progress.trials_done, progress.trials_total) == (4, 12 - 2)
    said = progress.console.file.getvalue()
    assert "[1/4] 01-bond-active-backup-miimon=10: 3 of 3 trial(s) in 60 s, PASS" in said
    assert "about 3 min left" in said  # 20 s a trial, 9 trials left
    assert "[2/4] 02-bond-active-backup-miimon=100: FAILED after 1 of 3 trial(s): boom" in said


# -- bad input -----------------------------------------------------------------------

def other_suite(tmp_path: Path) -> Path:
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / "suite.json").write_text(json.dumps({"suite": "lag", "runs": [], "order": []}))
    return folder


def finished_suite(tmp_path: Path) -> Path:
    run_suite(four_runs(tmp_path), tmp_path / "done", FakeRuns())
    return tmp_path / "done"


BAD = {
    "resume without --out": (lambda tmp: ["--resume"], "--resume needs the folder"),
    "resume into no suite": (lambda tmp: ["--resume", "--out", str(tmp)], "not a suite folder"),
    "resume another suite": (lambda tmp: ["--resume", "--out", str(other_suite(tmp))],
                             "holds suite 'lag'"),
    "a suite written over": (lambda tmp: ["--out", str(finished_suite(tmp))],
                             "already holds a suite's runs"),
    "seed unshuffled": (lambda tmp: ["--seed", "3"], "--seed orders a shuffled suite"),
    "resume shuffled": (lambda tmp: ["--resume", "--shuffle", "--out", str(tmp)],
                        "--resume keeps the order"),
    "unknown lab": (lambda tmp: ["--lab", "moon"], "--lab 'moon' is not one of"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_exits_2_with_one_error_and_writes_nothing(tmp_path, case):
    args, problem = BAD[case]
    path = four_runs(tmp_path)
    argv = args(tmp_path)
    before = snapshot(tmp_path)
    done = redlab("suite", str(path), *argv, timeout=120)
    print(done.stdout, done.stderr)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and problem in errors[0]
    assert snapshot(tmp_path) == before
    assert not list((REPO / "results").glob("unit-suite-*"))
