"""A suite's plots drawn after its trials, in the background, a process per CPU.

Each run of a local suite would draw its trials' plots between its trials and the next
run (0.6-1.4 s a trial on 2 cores, matplotlib included); here they wait for the end of
the suite, where they are drawn side by side while the suite's guest shuts down.  The
data they are drawn from is on disk from the trial's end, so an interrupted suite loses
nothing (``redlab plot`` draws any that are missing).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from harness.results.summary import TRIAL_FILE


class DeferredPlots:
    """A local suite's plots, drawn after its trials rather than by each run between them
    (0.6-1.4 s a trial here), all at once, a process per CPU::

        with DeferredPlots(run_dirs) as plots:   # leaving it waits for the drawing
            with shared_guest:                   # closed while the plots are drawn
                with plots.deferring():          # runs draw nothing; leaving it starts
                    run the suite                # the drawing in the background
    """

    def __init__(self, run_dirs: Sequence[Path]) -> None:
        self.run_dirs = list(run_dirs)
        self._drawing: threading.Thread | None = None

    @contextlib.contextmanager
    def deferring(self) -> Iterator[None]:
        from harness.results.store import DEFER_PLOTS_ENV

        before = os.environ.get(DEFER_PLOTS_ENV)
        os.environ[DEFER_PLOTS_ENV] = "1"
        try:
            yield
        finally:
            if before is None:
                del os.environ[DEFER_PLOTS_ENV]
            else:
                os.environ[DEFER_PLOTS_ENV] = before
            self._drawing = threading.Thread(target=draw_pending_runs, args=(self.run_dirs,),
                                             name="deferred plots")
            self._drawing.start()

    def __enter__(self) -> DeferredPlots:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._drawing is not None:
            self._drawing.join()


def draw_pending_runs(run_dirs: Sequence[Path]) -> None:
    """draw_pending for many runs, a process per CPU: each trial's plot is its own."""
    from concurrent.futures import ProcessPoolExecutor

    from harness.results.plot import draw_trial

    trials = [t for run_dir in run_dirs for t in sorted(run_dir.glob("trial-*"))
              if (t / TRIAL_FILE).is_file() and not (t / "trial.png").exists()]
    workers = min(len(trials), os.cpu_count() or 1)
    if workers <= 1:
        for trial_dir in trials:
            draw_trial(trial_dir)
        return
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(draw_trial, trials))
