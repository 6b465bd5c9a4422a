"""A run's plots drawn by an idle-priority process while its next trial runs
(harness.results.deferred_plots.BackgroundPlots), on test_plot's hand-written trial."""

from __future__ import annotations

import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from harness.results.deferred_plots import BackgroundPlots, _at_idle_priority
from harness.results.store import write_summary
from tests.unit.test_plot import PNG_MAGIC, write_trial


def run_folder(root: Path, trials: int) -> Path:
    for n in range(1, trials + 1):
        write_trial(root / f"trial-{n:03d}")
    (root / "metadata.json").write_text(json.dumps({"scenario": {"name": "s"}, "params": {}}))
    return root


def test_a_submitted_trial_is_drawn_and_leaving_waits_for_it(tmp_path):
    run = run_folder(tmp_path / "run", 2)
    with BackgroundPlots() as plots:
        plots.submit(run / "trial-001")
        plots.submit(run / "trial-002")
    for n in (1, 2):
        assert (run / f"trial-00{n}" / "trial.png").read_bytes()[:8] == PNG_MAGIC
        assert (run / f"trial-00{n}" / "samples.csv").is_file()
        assert not (run / f"trial-00{n}" / "trial.png.tmp").exists()


def test_a_run_measured_elsewhere_is_drawn_as_its_summary_lists_its_trials(tmp_path):
    run = run_folder(tmp_path / "run", 3)
    with BackgroundPlots() as plots, plots.following(run):
        # trial 3 is on disk but not in the summary: still running, or to be discarded
        write_summary(run, [{"trial": 1}, {"trial": 2}])
    assert (run / "trial-001" / "trial.png").read_bytes()[:8] == PNG_MAGIC
    assert (run / "trial-002" / "trial.png").read_bytes()[:8] == PNG_MAGIC
    assert not (run / "trial-003" / "trial.png").exists()


def test_no_plot_is_started_for_a_run_that_measured_nothing(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with BackgroundPlots() as plots, plots.following(run):
        pass
    assert plots._pool is None, "no drawing process without a trial"
    assert list(run.iterdir()) == []


def test_the_drawing_process_takes_only_idle_cpu_time():
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, spawn, initializer=_at_idle_priority) as pool:
        policy = pool.submit(os.sched_getscheduler, 0).result(timeout=60)
    assert policy == os.SCHED_IDLE
