"""A suite's trials spread over a Dask cluster, and their folders gathered into the suite.

Every trial of every run to do is one Dask task (``trial.run_trial``), submitted in an
order shuffled by a recorded seed (``trial_seed`` in suite.json), so that neither a host
nor the time of day is confounded with a parameter.  As a trial comes back, its run
folder (as the worker wrote it) goes to ``<run>/worker-runs/trial-NNN/`` and its trial
folder to ``<run>/trial-NNN/``, with ``placement.json``: the host and worker it ran on,
and the workers lost while they ran it.  When a run's last trial is in, the run's
metadata.json is merged from its trials' and its summary.csv recomputed from the files
(``summary.trial_row``, as ``redlab summarize`` does), so a run gathered from a cluster
has the columns and figures of a run made on one machine, plus where each trial ran.
The suite's bookkeeping (suite.json, suite.csv, kept runs of --resume) is SuiteRunner's.
"""

from __future__ import annotations

import json
import logging
import os
import random
import secrets
import shutil
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.cluster import worker_guest
from harness.cluster.connect import RESOURCE, ClusterSpec, quiet_dask
from harness.cluster.trial import EVENT_TOPIC, TrialResult, TrialTask, run_trial, unpack
from harness.errors import LabError
from harness.results import verdicts
from harness.results.summary import PLACEMENT_FILE
from harness.scenario.suite_runner import (
    SET_ASIDE,
    Listener,
    PlannedRun,
    SuitePlan,
    SuiteRunner,
    set_aside,
)

if TYPE_CHECKING:
    from distributed import Client, Future

log = logging.getLogger(__name__)

PARTS = "worker-runs"  # in a run folder: each trial's own run folder, as its worker wrote it


def trial_tasks(plan: SuitePlan, runs: Sequence[PlannedRun], lab: str, deadline_s: float,
                seed: int, done: Mapping[str, set[int]] | None = None) -> list[TrialTask]:
    """One task per trial of ``runs`` but those ``done`` (run label -> trial numbers),
    shuffled by ``seed`` (the same seed, the same order)."""
    tag = secrets.token_hex(3)  # keys unique to this invocation: a resumed suite reuses labels
    tasks = [TrialTask(key=f"redlab-{tag}-{run.label}-t{trial}", label=run.label,
                       trial=trial, scenario_name=run.scenario.name,
                       scenario_text=run.scenario.read_text(), params=dict(run.params),
                       expect=verdicts.to_doc(run.expect), lab=lab, deadline_s=deadline_s)
             for run in runs for trial in range(1, run.repeat + 1)
             if trial not in (done or {}).get(run.label, set())]
    random.Random(seed).shuffle(tasks)
    return tasks


def lost_workers(starts: Sequence[Mapping[str, Any]], result: TrialResult) -> list[dict[str, str]]:
    """The starts of a trial on workers other than the one that finished it: each was lost
    (killed, crashed, cut off) while it ran the trial, and Dask ran it again."""
    return [{"host": s["host"], "worker": s["worker"]} for s in starts
            if s["worker"] != result.worker]


def place(result: TrialResult, run_dir: Path, trial: int, lost: list[dict[str, str]]) -> bool:
    """The trial's folders into ``run_dir``; whether it has a trial folder (it got as far as
    creating its lab: a failure before that leaves only the worker's run folder)."""
    part = run_dir / PARTS / f"trial-{trial:03d}"
    if part.exists():
        shutil.rmtree(part)
    unpack(result.archive, part)
    made = part / "trial-001"
    if not made.is_dir():
        return False
    target = run_dir / f"trial-{trial:03d}"
    made.rename(target)
    (target / PLACEMENT_FILE).write_text(json.dumps(
        {"host": result.host, "worker": result.worker, "seconds": round(result.seconds, 3),
         "returncode": result.returncode, "lost_workers": lost}, indent=2) + "\n")
    return True


def assemble(run_dir: Path, run: PlannedRun, spec: ClusterSpec,
             errors: Mapping[int, str]) -> list[dict[str, Any]]:
    """The run's metadata.json merged from its trials' run folders, its summary.csv
    recomputed from the trial folders; its rows (those measured)."""
    from harness.results.store import write_summary
    from harness.results.summary import TRIAL_FILE, trial_row

    metas = {}
    for part in sorted((run_dir / PARTS).glob("trial-*")):
        try:
            metas[int(part.name.removeprefix("trial-"))] = json.loads(
                (part / "metadata.json").read_text())
        except (OSError, ValueError):
            continue
    trials = sorted(t for t in run_dir.glob("trial-*") if (t / TRIAL_FILE).is_file())
    complete = not errors and len(trials) == run.repeat
    meta: dict[str, Any] = dict(metas[min(metas)]) if metas else {}
    meta.update({
        "status": "complete" if complete else "failed",
        "trials_done": len(trials),
        "started_at": min((m.get("started_at", "") for m in metas.values()), default=""),
        "ended_at": datetime.now(UTC).isoformat(),
        "cluster": spec.describe(),
        "hosts": {str(k): m.get("host", "") for k, m in sorted(metas.items())},
        "run_ids": {str(k): m.get("run_id", "") for k, m in sorted(metas.items())},
    })
    meta.pop("error", None)
    if errors:
        meta["error"] = "; ".join(f"trial {k}: {why}" for k, why in sorted(errors.items()))
    if not metas:  # nothing came back that says what ran: the suite's own record
        meta.update({"scenario": {"name": run.scenario.stem}, "params": run.params})
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / "metadata.json.tmp"
    tmp.write_text(json.dumps(meta, indent=2, default=str))
    os.replace(tmp, run_dir / "metadata.json")
    rows = [trial_row(t, meta) for t in trials] if metas else []
    if rows:
        write_summary(run_dir, rows)
    return rows


class SchedulerLost(LabError):
    """The client lost the Dask scheduler in the middle of the suite."""


class ClusterSuiteRunner(SuiteRunner):
    """SuiteRunner whose trials run on a Dask cluster, a trial per task."""

    def __init__(self, plan: SuitePlan, client: Client, spec: ClusterSpec, lab: str,
                 deadline_s: float, fail_fast: bool = False) -> None:
        super().__init__(plan, run_one=_never, fail_fast=fail_fast)
        self.client, self.spec, self.lab, self.deadline_s = client, spec, lab, deadline_s
        seed = plan.record.get("seed")
        self.seed = int(seed) if seed is not None else secrets.randbelow(2**32)
        self.errors: dict[str, dict[int, str]] = defaultdict(dict)  # label -> trial -> why

    def run(self, listener: Listener) -> None:
        from distributed import as_completed

        self.plan.root.mkdir(parents=True, exist_ok=True)
        todo = [run for run in self.plan.order if self.outcomes[run.label].status != "kept"]
        done = {run.label: self._resumed_trials(run) for run in todo}
        tasks = trial_tasks(self.plan, todo, self.lab, self.deadline_s, self.seed, done)
        self._write_record(status="running", cluster=self.spec.describe(),
                           trial_seed=self.seed, trial_order=[t.key for t in tasks])
        left: dict[str, set[int]] = {run.label: set() for run in todo}
        for task in tasks:
            left[task.label].add(task.trial)
        futures: dict[Future, TrialTask] = {}
        try:
            for label in [label for label, trials in left.items() if not trials]:
                self._finish_run(label, listener)  # its trials all measured before
            for rank, task in enumerate(tasks):  # the higher the priority, the sooner
                futures[self.client.submit(run_trial, task, key=task.key, pure=False,
                                           resources={RESOURCE: 1},
                                           priority=len(tasks) - rank)] = task
            for future in as_completed(futures):
                task = futures[future]
                self._arrived(future, task)
                left[task.label].discard(task.trial)
                if not left[task.label]:
                    self._finish_run(task.label, listener)
                    if self.fail_fast and self.outcomes[task.label].status == "failed":
                        break
        finally:  # Ctrl-C, a lost scheduler: what was measured is gathered and kept
            if self.client.status == "running":
                self.client.cancel([f for f in futures if not f.done()])
                self.client.run(worker_guest.close, on_error="return")
            for label, trials in left.items():
                if trials and self.outcomes[label].status == "not run":
                    self._finish_run(label, None, "interrupted")
            self._close()

    def _resumed_trials(self, run: PlannedRun) -> set[int]:
        """The trials of ``run`` a cluster measured before this --resume, kept; whatever
        else is in its folder (another attempt's) set aside, as a local suite does."""
        from harness.results.summary import TRIAL_FILE

        root, folder = self.plan.root, self.plan.root / run.label
        if not folder.exists():
            return set()
        if not (folder / PARTS).is_dir():  # a run made whole on one machine: run again
            self.outcomes[run.label].set_aside = set_aside(folder, root / SET_ASIDE)
            return set()
        kept = set()
        for trial in sorted(folder.glob("trial-*")):
            if (trial / TRIAL_FILE).is_file() and (trial / PLACEMENT_FILE).is_file():
                kept.add(int(trial.name.removeprefix("trial-")))
            else:
                (root / SET_ASIDE).mkdir(exist_ok=True)
                set_aside(trial, root / SET_ASIDE / run.label)
        return {k for k in kept if k <= run.repeat}

    def _arrived(self, future: Future, task: TrialTask) -> None:
        run_dir = self.plan.root / task.label
        try:
            result: TrialResult = future.result()
        except Exception as exc:  # KilledWorker: lost on too many workers; a bug of ours
            if self.client.status != "running":  # no scheduler: every future is cancelled
                quiet_dask(logging.CRITICAL + 1)  # its closing client's tracebacks
                raise SchedulerLost(
                    f"lost the Dask scheduler of {self.spec.describe()} in the middle of"
                    " the suite; every trial measured before is kept",
                    f"continue it: redlab suite {self.plan.record['suite_file']} --out"
                    f" {self.plan.root} --resume --cluster {self.spec.describe()}") from None
            self.errors[task.label][task.trial] = f"{type(exc).__name__}: {exc}"
            log.warning("trial %d of %s: %s", task.trial, task.label, exc)
            return
        starts = [msg for _, msg in self.client.get_events(EVENT_TOPIC)
                  if msg.get("key") == task.key]
        lost = lost_workers(starts, result)
        self.outcomes[task.label].seconds += result.seconds  # machine time, not wall
        placed = place(result, run_dir, task.trial, lost)
        if result.returncode not in (0, 1) or not placed:
            self.errors[task.label][task.trial] = (
                f"redlab run exited {result.returncode} on {result.host}:"
                f" {result.stderr_tail.strip().splitlines()[-1:] or ''}")
        log.info("trial %d of %s: %s on %s in %.0f s%s", task.trial, task.label,
                 "done" if placed else "failed", result.host, result.seconds,
                 f", rerun after {len(lost)} lost worker(s)" if lost else "")

    def _finish_run(self, label: str, listener: Listener | None, status: str = "") -> None:
        outcome = self.outcomes[label]
        run_dir = self.plan.root / label
        errors = self.errors.get(label, {})
        outcome.rows = assemble(run_dir, outcome.run, self.spec, errors) if (
            run_dir.exists()) else []
        outcome.status = status or ("failed" if errors or len(outcome.rows) < outcome.run.repeat
                                    else "measured")
        outcome.error = "; ".join(f"trial {k}: {why}" for k, why in sorted(errors.items()))
        if listener is not None:
            listener.started(outcome.run, run_dir)
            listener.finished(outcome)


def _never(run: PlannedRun, folder: Path) -> list[dict[str, Any]]:
    raise AssertionError("a cluster suite runs trials as Dask tasks, not runs")
