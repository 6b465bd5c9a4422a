"""What ``redlab suite`` shows: while it runs, runs and trials done and the time left;
at the end, one table of every run's key figures and verdict, drawn with rich.

Trials are counted from the run folder's metadata.json, which a run rewrites after each
trial (inside User-mode Linux too: the guest writes the folder on the host), read once a
second while the display is live; a run's own count is taken when it ends.  The time
left is the seconds per trial measured so far in this invocation (boot and bring-up
included, kept runs of a resumed suite not) times the trials left: an estimate that
holds when the runs left are like the runs done.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from harness.results import console as lines
from harness.scenario.suite import KEY_FIGURES
from harness.scenario.suite_runner import PlannedRun, RunOutcome, SuiteRunner

POLL_S = 1.0  # how often the live display reads the running run's trial count


def trials_in(folder: Path) -> int:
    """Trials a run has finished so far, by its metadata.json (0 before it has one)."""
    try:
        return int(json.loads((folder / "metadata.json").read_text()).get("trials_done", 0))
    except (OSError, ValueError, AttributeError):
        return 0


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class Pace:
    """Seconds per trial from the trials measured so far, and so the time left."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.measured = 0
        self.last = started  # when the last trial measured ended

    def add(self, trials: int, now: float) -> None:
        if trials > 0:
            self.measured += trials
            self.last = now

    def left_s(self, trials_left: int, now: float) -> float | None:
        """None until a trial has been measured: before that there is nothing to go on."""
        if not self.measured:
            return None
        per_trial = (self.last - self.started) / self.measured
        return max(0.0, per_trial * trials_left - (now - self.last))


class SuiteProgress:
    """The live display (a terminal only; elsewhere a line per run), told by the runner."""

    def __init__(self, runner: SuiteRunner, console: Console | None = None,
                 poll_s: float = POLL_S) -> None:
        self.console = console or Console(stderr=True)
        self.runs_total = len(runner.plan.runs)
        self.trials_total = sum(run.repeat for run in runner.plan.runs)
        kept = [o for o in runner.outcomes.values() if o.status == "kept"]
        self.runs_done = len(kept)
        self.trials_done = sum(len(o.rows) for o in kept)  # finished runs' trials
        self.current = 0  # trials of the running run, counted so far
        self.pace = Pace(time.monotonic())
        self.poll_s = poll_s
        self.lock = threading.Lock()
        self.watch: tuple[threading.Thread, threading.Event] | None = None
        self.moved: list[tuple[logging.StreamHandler[Any], Any]] = []  # (handler, stream)
        self.progress = Progress(TextColumn("{task.description:>6}"), BarColumn(),
                                 MofNCompleteColumn(), TextColumn("{task.fields[note]}"),
                                 console=self.console, transient=True,
                                 refresh_per_second=2, disable=not self.console.is_terminal)
        self.runs_bar = self.progress.add_task("runs", total=self.runs_total, note="")
        self.trials_bar = self.progress.add_task("trials", total=self.trials_total, note="")
        if kept:
            self.say(f"resumed: {len(kept)} run(s) complete before, kept: "
                     + ", ".join(o.run.label for o in kept))
        self._update()

    def __enter__(self) -> SuiteProgress:
        stderr = sys.stderr
        self.progress.start()
        if sys.stderr is not stderr:  # the display took stderr: log lines go above it
            for handler in logging.getLogger().handlers:
                if isinstance(handler, logging.StreamHandler) and handler.stream is stderr:
                    self.moved.append((handler, handler.setStream(sys.stderr)))
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._unwatch()
        for handler, stream in self.moved:
            handler.setStream(stream)
        self.progress.stop()

    def say(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def started(self, run: PlannedRun, folder: Path) -> None:
        self.progress.update(self.runs_bar, note=run.label)
        if self.console.is_terminal:
            stop = threading.Event()
            thread = threading.Thread(target=self._poll, args=(folder, stop), daemon=True)
            self.watch = (thread, stop)
            thread.start()

    def _poll(self, folder: Path, stop: threading.Event) -> None:
        while not stop.wait(self.poll_s):
            self.seen(trials_in(folder))

    def _unwatch(self) -> None:
        if self.watch:
            thread, stop = self.watch
            stop.set()
            thread.join()
            self.watch = None

    def seen(self, trials: int, now: float | None = None) -> None:
        """The running run has finished ``trials`` trials."""
        with self.lock:
            if trials > self.current:
                self.pace.add(trials - self.current, time.monotonic() if now is None else now)
                self.current = trials
            self._update(now)

    def finished(self, outcome: RunOutcome, now: float | None = None) -> None:
        self._unwatch()
        self.seen(len(outcome.rows), now)
        with self.lock:
            self.trials_done += len(outcome.rows)
            self.current = 0
            self.runs_done += 1
            if outcome.status != "measured":  # its trials not measured will never be
                self.trials_total -= outcome.run.repeat - len(outcome.rows)
            self._update(now)
        self.say(self.run_line(outcome, now))

    def left(self, now: float | None = None) -> str:
        left = self.pace.left_s(self.trials_total - self.trials_done - self.current,
                                time.monotonic() if now is None else now)
        return "time left: after the first trial" if left is None else (
            f"about {duration(left)} left")

    def run_line(self, outcome: RunOutcome, now: float | None = None) -> str:
        head = f"[{self.runs_done}/{self.runs_total}] {outcome.run.label}:"
        trials = f"{len(outcome.rows)} of {outcome.run.repeat} trial(s)"
        if outcome.status == "measured":
            verdict = outcome.verdict.upper() or "no expectations"
            return f"{head} {trials} in {duration(outcome.seconds)}, {verdict}; {self.left(now)}"
        return f"{head} {outcome.status.upper()} after {trials}: {outcome.error or 'stopped'}"

    def _update(self, now: float | None = None) -> None:
        self.progress.update(self.runs_bar, completed=self.runs_done)
        self.progress.update(self.trials_bar, completed=self.trials_done + self.current,
                             total=self.trials_total, note=self.left(now))


def _figure(values: pd.Series) -> str:
    """Median [lowest, highest] over the run's trials."""
    found = pd.to_numeric(values, errors="coerce").dropna()
    if found.empty:
        return "-"
    median = f"{found.median():.4g}"
    return median if len(found) == 1 else f"{median} [{found.min():.4g}, {found.max():.4g}]"


VERDICT_CELLS = {"pass": "[green]PASS[/]", "fail": "[bold red]FAIL[/]", "": "no expectations"}
STATUS_CELLS = {"failed": "[bold red]RUN FAILED[/]", "interrupted": "[yellow]interrupted[/]",
                "not run": "[yellow]not run[/]"}


def table(outcomes: Sequence[RunOutcome], frame: pd.DataFrame, title: str) -> Table:
    """A row per run in the suite file's order: trials, each key figure's median and
    range, and the verdict, or why there is none."""
    figures = [f for f in KEY_FIGURES if f in frame.columns
               and pd.to_numeric(frame[f], errors="coerce").notna().any()]
    grid = Table(title=title, caption="figures: median \\[lowest, highest] of the run's trials"
                 if figures else None)
    grid.add_column("run", no_wrap=True)
    grid.add_column("trials", justify="right")
    for figure in figures:
        grid.add_column(figure, justify="right")
    grid.add_column("verdict")
    for outcome in outcomes:
        rows = frame[frame["run"] == outcome.run.label] if "run" in frame else frame.iloc[:0]
        kept = " kept" if outcome.status == "kept" else ""
        grid.add_row(escape(outcome.run.label), f"{len(outcome.rows)}/{outcome.run.repeat}{kept}",
                     *(_figure(rows[f]) for f in figures),
                     STATUS_CELLS.get(outcome.status, VERDICT_CELLS[outcome.verdict]))
    return grid


def show(runner: SuiteRunner, console: Console | None = None) -> None:
    """The final table, then what failed, by name, and where everything is."""
    console = console or Console()
    if not console.is_terminal:
        console.width = max(console.width, 200)  # a log gets wide lines, not folded columns
    plan, outcomes = runner.plan, runner.outcomes
    console.print(table([outcomes[run.label] for run in plan.runs], runner.table,
                        f"suite {plan.name}"))

    def say(text: str, style: str | None = None) -> None:
        console.print(text, style=style, markup=False, highlight=False, soft_wrap=True)

    for label in runner.with_status("failed"):
        say(f"run {label} failed: {outcomes[label].error}", "bold red")
    for label in runner.failed_verdicts():
        say(f"{label}: {lines.run_line(outcomes[label].rows)[0]}")
    for label, outcome in outcomes.items():
        if outcome.set_aside:
            say(f"{label}: the earlier, incomplete attempt is kept in {outcome.set_aside}")
    if plan.record.get("shuffle"):
        say(f"runs in a random order: seed {plan.record['seed']} (in {plan.root / 'suite.json'})")
    say(f"suite {plan.name}: {len(plan.runs)} run(s) under {plan.root}; every row in"
        f" {plan.root / 'suite.csv'}")
    failed, left = runner.with_status("failed"), runner.with_status("interrupted", "not run")
    if failed:
        say(f"{len(failed)} run(s) failed: {', '.join(failed)}", "bold red")
    if runner.failed_verdicts():
        say(f"failed an expectation: {', '.join(runner.failed_verdicts())}", "bold red")
    if failed or left:
        cluster = plan.record.get("cluster")
        say(f"to run again what failed or did not run: redlab suite"
            f" {plan.record['suite_file']} --out {plan.root} --resume"
            + (f" --cluster {cluster} (complete runs and trials are kept)" if cluster
               else " (complete runs are kept)"))
