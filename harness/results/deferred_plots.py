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
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, wait
from pathlib import Path

from harness.results.summary import TRIAL_FILE


class DeferredPlots:
    """A local suite's plots, drawn after its trials rather than by each run between them
    (0.6-1.4 s a trial here), all at once, a process per CPU::

        with DeferredPlots(run_dirs) as plots:   # leaving it waits for the drawing
            with shared_guest:                   # closed while the plots are drawn
                with plots.deferring():          # runs draw nothing; leaving it starts
                    run the suite                # the drawing processes

    The drawing processes are forked here, in the thread that runs the suite, before the
    guest is closed: a fork taken while another thread of this process holds a lock
    (logging's, the import lock) could hang in the child.
    """

    def __init__(self, run_dirs: Sequence[Path]) -> None:
        self.run_dirs = list(run_dirs)
        self._pool: ProcessPoolExecutor | None = None
        self._drawing: list[Future[None]] = []

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
            self._start()

    def _start(self) -> None:
        from harness.results.plot import draw_trial

        trials = pending(self.run_dirs)
        if not trials:
            return
        self._pool = ProcessPoolExecutor(min(len(trials), os.cpu_count() or 1))
        self._drawing = [self._pool.submit(draw_trial, t) for t in trials]

    def __enter__(self) -> DeferredPlots:
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._pool is not None:
            wait(self._drawing)
            self._pool.shutdown()


def pending(run_dirs: Sequence[Path]) -> list[Path]:
    """The measured trials of ``run_dirs`` that have no plot yet."""
    return [t for run_dir in run_dirs for t in sorted(run_dir.glob("trial-*"))
            if (t / TRIAL_FILE).is_file() and not (t / "trial.png").exists()]
