"""A suite as it runs: the order of its runs, the record of its folder (suite.json), the
runs a resumed suite keeps, and a failed run that stops the rest only when told to.

Runs are numbered by their place in the suite file, and a run's folder is named after
that number, whatever order the runs go in: a shuffled suite, or a resumed one, pairs
with another run of the same suite in ``redlab compare``.  What runs one run is a
parameter (``RunOne``): ``redlab suite`` passes one that runs the scenario in the lab;
the bookkeeping here needs no lab, so its tests pass one that only writes a run folder.
"""

from __future__ import annotations

import json
import logging
import os
import random
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from harness.errors import ConfigError, RedLabError
from harness.results import recheck, verdicts
from harness.results.verdicts import Bound
from harness.scenario.resolve import resolve, suite_overrides
from harness.scenario.suite import Suite, combine, load_suite

log = logging.getLogger(__name__)

RECORD = "suite.json"     # the suite folder's record: which suite, in which order
SET_ASIDE = "incomplete"  # where a resumed suite keeps the folders of the runs it re-runs
RECORD_VERSION = 1


class RunFailed(RedLabError):
    """A run that ended without its results for a reason other than an exception of
    RedLab's, e.g. ``redlab run`` in a guest that exited 3."""


@dataclass(frozen=True)
class PlannedRun:
    number: int  # its place in the suite file, which names its folder whatever the order
    scenario: Path
    params: dict[str, str]
    repeat: int
    expect: dict[str, Bound]

    @property
    def label(self) -> str:
        return "-".join([f"{self.number:02d}", self.scenario.stem,
                         *(f"{k}={v}" for k, v in self.params.items())])


def plan_runs(spec: Suite) -> list[PlannedRun]:
    """The suite's runs (sweeps expanded) in the suite file's order."""
    return [PlannedRun(number, item.scenario, suite_overrides(item.params), item.repeat,
                       dict(item.expect))
            for number, item in enumerate(spec.runs, start=1)]


def run_order(runs: Sequence[PlannedRun], seed: int | None) -> list[PlannedRun]:
    """The suite file's order, or shuffled by ``seed``: the same seed, the same order."""
    order = list(runs)
    if seed is not None:
        random.Random(seed).shuffle(order)
    return order


@dataclass(frozen=True)
class Options:
    out: Path | None = None
    shuffle: bool = False
    seed: int | None = None
    resume: bool = False


@dataclass
class SuitePlan:
    name: str
    root: Path
    runs: list[PlannedRun]   # the suite file's order
    order: list[PlannedRun]  # the order they run in
    record: dict[str, Any]   # suite.json, written when the suite starts
    resume: bool = False


def prepare(suite_file: Path, options: Options) -> SuitePlan:
    """The suite planned, with everything checked before anything is written: the
    options, every run (a typo in run 3 fails now), and the folder."""
    if options.seed is not None and not options.shuffle:
        raise ConfigError("--seed orders a shuffled suite, and --shuffle is not given",
                          "add --shuffle, or drop --seed")
    if options.resume and options.out is None:
        raise ConfigError("--resume needs the folder of the suite to continue",
                          "add --out FOLDER: the --out of the interrupted suite")
    if options.resume and options.shuffle:
        raise ConfigError("--resume keeps the order recorded in suite.json",
                          "drop --shuffle and --seed")
    spec = load_suite(suite_file)
    runs = plan_runs(spec)
    for run in runs:
        resolve(run.scenario, run.params, run.expect)
    now = datetime.now(UTC).isoformat()
    if options.resume:
        assert options.out is not None
        record = _resumable(options.out, spec.name, runs, suite_file)
        by_label = {run.label: run for run in runs}
        return SuitePlan(spec.name, options.out, runs, [by_label[x] for x in record["order"]],
                         {**record, "resumed_at": [*record.get("resumed_at", []), now]}, True)
    root = options.out or Path("results") / f"{spec.name}-{datetime.now():%Y%m%d-%H%M%S}"
    if root.exists() and not root.is_dir():
        raise ConfigError(f"--out {root} is a file", "give a folder for the suite's runs")
    if (root / RECORD).exists() or any(root.glob("*/metadata.json")):
        raise ConfigError(f"--out {root} already holds a suite's runs",
                          "add --resume to continue it, or give a new --out (a suite never"
                          " writes over measured results)")
    seed = options.seed
    if options.shuffle and seed is None:
        seed = secrets.randbelow(2**32)  # recorded, so the order can be had again
    order = run_order(runs, seed)
    return SuitePlan(spec.name, root, runs, order, {
        "record_version": RECORD_VERSION, "suite": spec.name,
        "suite_file": str(suite_file.resolve()), "started_at": now,
        "shuffle": options.shuffle, "seed": seed, "runs": _identity(runs),
        "order": [run.label for run in order], "resumed_at": []})


def _identity(runs: Sequence[PlannedRun]) -> list[dict[str, Any]]:
    """What makes two suite files the same suite to resume: the same runs, trials each."""
    return [{"label": run.label, "repeat": run.repeat} for run in runs]


def _resumable(root: Path, name: str, runs: Sequence[PlannedRun],
               suite_file: Path) -> dict[str, Any]:
    """suite.json of ``root``, if it records the suite ``suite_file`` is now."""
    fix = ("give the --out of a suite started from this suite file, or drop --resume to"
           " start a new suite")
    if not root.is_dir():
        raise ConfigError(f"--out {root} is not a folder, so there is no suite to resume", fix)
    try:
        record = json.loads((root / RECORD).read_text())
    except FileNotFoundError:
        raise ConfigError(f"--out {root} is not a suite folder: it has no {RECORD}",
                          fix) from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {root / RECORD}: {exc}", fix) from None
    labels = sorted(run.label for run in runs)
    if (not isinstance(record, dict) or record.get("suite") != name
            or record.get("runs") != _identity(runs)
            or sorted(record.get("order") or []) != labels):
        found = record.get("suite") if isinstance(record, dict) else None
        raise ConfigError(f"--out {root} holds suite {found!r}, not the {len(runs)} run(s)"
                          f" of {suite_file} (suite {name!r}) as they are now",
                          fix + " (a suite file changed since is a new suite)")
    return record


def is_complete(folder: Path, repeat: int) -> bool:
    """A run that finished all its trials (harness/results/store.py writes the status)."""
    try:
        meta = json.loads((folder / "metadata.json").read_text())
    except (OSError, ValueError):
        return False
    return meta.get("status") == "complete" and meta.get("trials_done") == repeat


def set_aside(folder: Path, into: Path) -> Path:
    """``folder`` moved under ``into``, out of the suite's runs (which are its direct
    sub-folders): what it measured is kept, and no command takes it for a run."""
    into.mkdir(exist_ok=True)
    target, number = into / folder.name, 1
    while target.exists():
        number += 1
        target = into / f"{folder.name}-{number}"
    folder.rename(target)
    return target


# measured: run now; kept: complete before --resume; failed; interrupted; not run (yet)
STATUSES = ("measured", "kept", "failed", "interrupted", "not run")


@dataclass
class RunOutcome:
    run: PlannedRun
    status: str = "not run"
    rows: list[Mapping[str, Any]] = field(default_factory=list)  # its summary's trials
    error: str = ""
    seconds: float = 0.0
    set_aside: Path | None = None  # the folder of an earlier, incomplete attempt

    @property
    def verdict(self) -> str:
        return verdicts.run_verdict([str(row.get("verdict") or "") for row in self.rows])


RunOne = Callable[[PlannedRun, Path], Sequence[Mapping[str, Any]]]


class Listener(Protocol):
    """Told as each run starts and ends (harness/results/suite_output.py shows it)."""

    def started(self, run: PlannedRun, folder: Path) -> None: ...

    def finished(self, outcome: RunOutcome) -> None: ...


class SuiteRunner:
    def __init__(self, plan: SuitePlan, run_one: RunOne, fail_fast: bool = False) -> None:
        self.plan = plan
        self.run_one = run_one
        self.fail_fast = fail_fast
        self.outcomes = {run.label: RunOutcome(run) for run in plan.runs}
        self.table = pd.DataFrame()  # every row of the suite, once it has ended
        if plan.resume:
            for run in plan.runs:
                if is_complete(plan.root / run.label, run.repeat):
                    self.outcomes[run.label] = RunOutcome(
                        run, "kept", recheck.stored_rows(plan.root / run.label))

    def run(self, listener: Listener) -> None:
        """Every run not kept, in the plan's order; suite.csv and suite.json written
        however the suite ends (Ctrl-C included), from what was measured."""
        self.plan.root.mkdir(parents=True, exist_ok=True)
        self._write_record(status="running")
        try:
            for run in self.plan.order:
                outcome = self.outcomes[run.label]
                if outcome.status == "kept":
                    continue
                self._one(outcome, listener)
                if outcome.status == "failed" and self.fail_fast:
                    break
        finally:
            self._close()

    def _one(self, outcome: RunOutcome, listener: Listener) -> None:
        run, folder = outcome.run, self.plan.root / outcome.run.label
        if folder.exists():  # an earlier attempt: not complete, or it would be kept
            outcome.set_aside = set_aside(folder, self.plan.root / SET_ASIDE)
        listener.started(run, folder)
        started = time.monotonic()
        try:
            outcome.rows = list(self.run_one(run, folder))
            outcome.status = "measured"
        except KeyboardInterrupt:
            outcome.status = "interrupted"
            raise
        except RedLabError as exc:
            outcome.status, outcome.error = "failed", exc.problem
        except Exception as exc:  # a bug hit by one run is no reason to lose the others
            log.exception("run %s failed", run.label)
            outcome.status, outcome.error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            outcome.seconds = time.monotonic() - started
            if outcome.status != "measured":  # what it measured before it stopped
                outcome.rows = list(recheck.stored_rows(folder))
            listener.finished(outcome)

    def _close(self) -> None:
        root = self.plan.root
        self.table = combine([(run.label, root / run.label) for run in self.plan.runs
                              if (root / run.label).is_dir()], root / "suite.csv")
        done = all(o.status in ("measured", "kept") for o in self.outcomes.values())
        self._write_record(
            status="complete" if done else "incomplete",
            ended_at=datetime.now(UTC).isoformat(),
            outcomes={label: {"status": o.status, "error": o.error}
                      for label, o in self.outcomes.items()})

    def _write_record(self, **changes: Any) -> None:
        self.plan.record.update(changes)
        tmp = self.plan.root / f"{RECORD}.tmp"
        tmp.write_text(json.dumps(self.plan.record, indent=2) + "\n")
        os.replace(tmp, self.plan.root / RECORD)

    def with_status(self, *statuses: str) -> list[str]:
        """The labels of the runs that ended so, in the suite file's order."""
        return [label for label, o in self.outcomes.items() if o.status in statuses]

    def failed_verdicts(self) -> list[str]:
        return [label for label, o in self.outcomes.items() if o.verdict == "fail"]

    def exit_code(self) -> int:
        """1 when a run failed or failed an expectation (2, bad input, is raised before)."""
        return 1 if self.with_status("failed", "interrupted") or self.failed_verdicts() else 0
