"""How long a suite will take on this machine, said before it starts.

A trial costs its traffic (the scenario's duration, plus up to a second of phase offset)
and its overhead: bring-up, readiness waits, the probe's tail, teardown, analysis. The
overhead is read from the phase profile of the trials this machine already ran
(``timing.json``: total minus traffic) for the same scenario, in the folders given
(the suite's own, and ``results/``); a scenario never run here takes a default for the
lab it will run in, and the plan says which.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.measure.stopwatch import TIMING_FILE

if TYPE_CHECKING:
    from harness.scenario.suite_runner import PlannedRun

TRAFFIC_PHASE = "traffic"
# Overheads seen on 2 cores (scripts/bench_trials.py, 2026-12-03): a trial beyond its
# traffic, in User-mode Linux, 3 s for a bond, 8 s for an Open vSwitch LAG, about 20 s
# for dc_edge with 8 servers; natively 4.6 s for VRRP. The default leans to the slow end.
DEFAULT_OVERHEAD_S = {"uml": 15.0, "native": 5.0}
# Per run, outside its trials: the run's process (in the guest, its first trial's slower
# start; on a cluster, where each trial is a run, a guest's boot too). A local suite
# draws its plots after its trials, while its guest shuts down.
RUN_OVERHEAD_S = {"uml": 4.0, "native": 3.0}
# Once per local suite whose runs need User-mode Linux: the guest they share
# (harness/scenario/suite_guest.py; 6.3-6.8 s to ready here).
SUITE_GUEST_BOOT_S = 7.0
PHASE_OFFSET_S = 1.0  # at most: the traffic runs longer by the phase offset, rounded up
MAX_FOLDERS = 2000    # trial folders read at most, newest runs first


@dataclass(frozen=True)
class TrialCost:
    seconds: float
    basis: str  # where the overhead came from


def overheads(roots: Iterable[Path]) -> dict[str, list[float]]:
    """Scenario name -> what each of its trials found under ``roots`` cost beyond its
    traffic (seconds), from the runs' metadata.json and the trials' timing.json."""
    found: dict[str, list[float]] = {}
    metas = sorted((m for root in roots if root.is_dir()
                    for m in root.glob("**/metadata.json")),
                   key=lambda p: p.stat().st_mtime, reverse=True)
    read = 0
    for meta in metas:
        try:
            name = json.loads(meta.read_text())["scenario"]["name"]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        for timing in sorted(meta.parent.glob(f"trial-*/{TIMING_FILE}")):
            read += 1
            if read > MAX_FOLDERS:
                return found
            try:
                profile = json.loads(timing.read_text())
                extra = float(profile["total_s"]) - float(
                    profile["phases_s"].get(TRAFFIC_PHASE, 0.0))
            except (OSError, ValueError, KeyError, TypeError):
                continue
            if math.isfinite(extra) and extra >= 0:
                found.setdefault(name, []).append(extra)
    return found


def trial_cost(scenario: str, duration_s: float, lab: str,
               seen: dict[str, list[float]]) -> TrialCost:
    """One trial of ``scenario`` with ``duration_s`` of traffic, run in ``lab``."""
    traffic = duration_s + PHASE_OFFSET_S
    history = seen.get(scenario, [])
    if history:
        extra = statistics.median(history)
        return TrialCost(traffic + extra, f"{len(history)} earlier trial(s) here: median"
                                          f" {extra:.0f} s beyond the traffic")
    extra = DEFAULT_OVERHEAD_S[lab]
    return TrialCost(traffic + extra, f"never run here: {extra:.0f} s beyond the traffic,"
                                      f" the default for {lab}")


def duration(seconds: float) -> str:
    """3 min, 1 h 5 min, 40 s."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def for_runs(runs: list[PlannedRun], lab: str,
             roots: Iterable[Path]) -> list[tuple[PlannedRun, str, TrialCost]]:
    """Each run, the lab it will run in (``lab``: auto, native or uml) and one trial's
    cost; a run that cannot run here is planned native (it will fail with its reason)."""
    from harness.errors import ConfigError
    from harness.lab import choose_lab
    from harness.scenario.resolve import lab_needs, resolve

    seen = overheads(roots)
    planned = []
    for run in runs:
        scenario, topology, _ = resolve(run.scenario, run.params, run.expect)
        try:
            where = choose_lab(lab, lab_needs(scenario, topology))
        except ConfigError:
            where = "native"
        planned.append((run, where, trial_cost(scenario.name, scenario.traffic.duration_s,
                                               where, seen)))
    return planned


def describe(name: str, planned: list[tuple[PlannedRun, str, TrialCost]],
             cluster: str = "") -> str:
    """The plan as the user reads it before the suite starts.  On a ``cluster`` each
    trial is a run of its own (its own guest, its own bring-up), spread over the workers,
    and the time is machine time, in all, as measured here."""
    trials = sum(run.repeat for run, _, _ in planned)

    def per_run(where: str) -> float:  # on a cluster, each trial's own guest boots too
        boot = SUITE_GUEST_BOOT_S if cluster and where == "uml" else 0.0
        return RUN_OVERHEAD_S[where] + boot

    if cluster:
        total = sum(run.repeat * (cost.seconds + per_run(where))
                    for run, where, cost in planned)
        where_said = (f"{duration(total)} of trials in all (machines like this one),"
                      f" shared among the workers of {cluster}")
    else:
        total = sum(run.repeat * cost.seconds + RUN_OVERHEAD_S[where]
                    for run, where, cost in planned)
        if any(where == "uml" for _, where, _ in planned):
            total += SUITE_GUEST_BOOT_S
        where_said = f"{duration(total)} on this machine"
    lines = [f"suite {name}: {len(planned)} run(s), {trials} trial(s), about {where_said}"
             " (a trial run again because its lab was not steady adds its own)"]
    lines += [f"  {run.label}: {run.repeat} x {duration(cost.seconds)} + "
              f"{per_run(where):.0f} s{' each' if cluster else ''}"
              f" ({where}; {cost.basis})"
              for run, where, cost in planned]
    return "\n".join(lines)
