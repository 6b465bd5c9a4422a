"""Plots drawn off a trial's path: a suite's after its trials, a process per CPU
(:class:`DeferredPlots`); a run's by an idle-priority process while its next trial runs
(:class:`BackgroundPlots`).

Each run of a local suite would draw its trials' plots between its trials and the next
run (0.6-1.4 s a trial on 2 cores, matplotlib included); here they wait for the end of
the suite, where they are drawn side by side while the suite's guest shuts down.  The
data they are drawn from is on disk from the trial's end, so an interrupted suite loses
nothing (``redlab plot`` draws any that are missing).
"""

from __future__ import annotations

import contextlib
import csv
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, wait
from pathlib import Path

from harness.results.summary import TRIAL_FILE

log = logging.getLogger(__name__)

FOLLOW_PERIOD_S = 0.5  # how often a run measured elsewhere is looked at for new trials


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


class BackgroundPlots:
    """A run's plots, each drawn as its trial ends by one process of its own at idle
    priority, while the next trial runs; leaving waits for the last::

        with BackgroundPlots() as plots:
            for each trial: run it; plots.submit(trial_dir)

    Drawing a trial costs 1-1.5 s of CPU (matplotlib's import, layout and PNG), which each
    trial of a native run used to wait for.  The drawing process runs under SCHED_IDLE:
    it gets only CPU time no other process wants, and the kernel preempts it for any
    normal task that wakes (the harness's, iperf3's; the probe is real-time), so a trial
    it overlaps measures what it measured before.  It is spawned, not forked: the harness
    has threads whose locks a fork could copy held.  An interrupted run leaves its
    undrawn plots to ``redlab plot``; every file they are drawn from is on disk already.
    """

    def __init__(self) -> None:
        self._pool: ProcessPoolExecutor | None = None
        self._drawing: dict[Path, Future[None]] = {}

    def submit(self, trial_dir: Path) -> None:
        from harness.results.plot import draw_trial

        if self._pool is None:
            self._pool = ProcessPoolExecutor(1, multiprocessing.get_context("spawn"),
                                             initializer=_at_idle_priority)
        self._drawing[trial_dir] = self._pool.submit(draw_trial, trial_dir)

    @contextlib.contextmanager
    def following(self, run_dir: Path) -> Iterator[None]:
        """Submit each trial of a run another process measures (a guest's) as its
        summary.csv lists it: a listed trial's folder is final (not discarded)."""
        stop, done = threading.Event(), set()

        def submit_new() -> None:
            for trial in sorted(_listed_trials(run_dir) - done):
                done.add(trial)
                self.submit(run_dir / f"trial-{trial:03d}")

        def follow() -> None:
            while not stop.wait(FOLLOW_PERIOD_S):
                submit_new()
            submit_new()  # the rows the run wrote last

        thread = threading.Thread(target=follow, name="plots-follow", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join()

    def __enter__(self) -> BackgroundPlots:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_exc: object) -> None:
        if self._pool is None:
            return
        interrupted = kind is not None and not issubclass(kind, Exception)
        started = time.monotonic()
        self._pool.shutdown(wait=not interrupted, cancel_futures=interrupted)
        if interrupted:
            return
        log.debug("waited %.1f s for the last plots", time.monotonic() - started)
        for trial_dir, drawing in self._drawing.items():
            if drawing.exception() is not None:  # the drawing process itself was lost
                log.warning("no plot for %s (%s): `redlab plot %s` draws it", trial_dir,
                            drawing.exception(), trial_dir.parent)


def _listed_trials(run_dir: Path) -> set[int]:
    """The trial numbers run_dir/summary.csv lists (none before it exists)."""
    try:
        with (run_dir / "summary.csv").open(newline="") as f:
            return {int(row["trial"]) for row in csv.DictReader(f) if row.get("trial")}
    except (OSError, ValueError, KeyError):
        return set()


def _at_idle_priority() -> None:
    """The drawing process's initializer: the CPU's leftovers only (sched(7), SCHED_IDLE)."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    except OSError:  # not permitted here: the lowest nice value does much the same
        os.nice(19)


def pending(run_dirs: Sequence[Path]) -> list[Path]:
    """The measured trials of ``run_dirs`` that have no plot yet."""
    return [t for run_dir in run_dirs for t in sorted(run_dir.glob("trial-*"))
            if (t / TRIAL_FILE).is_file() and not (t / "trial.png").exists()]
