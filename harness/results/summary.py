"""A trial's summary row, computed from its folder alone.

Everything a row needs is on disk once a trial ends: the probe's logs (or irtt.json),
iperf3.json, events.csv, members.csv, lab.json (each technology's state read back) and
trial.json (what only the runner knew: how long bring-up took, each failure's call
length, the bonds' active members before and after). The runner writes its row with
:func:`trial_row` as ``redlab summarize`` does later, so a stored run reproduces its
summary.csv exactly, and a figure can be recomputed after a fix without running the lab
again.  :func:`failover_outage` is the one definition of "the failure's outage", used by
the row and shaded by the plot.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import LabError
from harness.measure import counters, gapprobe, iperf, outages, probe, stats
from harness.measure.iperf import Interval
from harness.measure.probe import Packet, ProbeRecord
from harness.results import prediction, verdicts
from harness.results.samples import read_events

# A failure's outage may begin after the event (a timer must expire first): look this far.
EVENT_OUTAGE_WITHIN_S = 5.0
# A failure's outage goes on through a return of the probe shorter than this, up to the
# end of the last run of loss at least SAME_OUTAGE_MIN_RUN_MS long (outages.joined): a
# leaf and the VRRP master behind it die, 56 ms lost, 99 ms back, 1.9 s lost, cost 2 s,
# not 56 ms.  Shorter runs (a saturated link's stray drops) count in without stretching it.
SAME_OUTAGE_RETURN_MS = 1000
SAME_OUTAGE_MIN_RUN_MS = 20
# The path must carry the probe in the second before the failure, or the trial measures
# the lab's own trouble, not the failure (a starved guest: 20 s round trips, all lost).
# A quiet lab answers in well under 1 ms; a saturated 10 Mbit/s LAG in ~50 ms, losing 3 %.
STEADY_WINDOW_S = 1.0
STEADY_MAX_RTT_MS = 500.0
STEADY_MAX_LOSS_PCT = 50.0
FAILURES = ("cut", "device_down", "daemon_crash", "drop_control", "degrade")
TRIAL_FILE = "trial.json"
PLACEMENT_FILE = "placement.json"  # a cluster trial's: where it ran (harness/cluster)


@dataclass
class TrialRecord:
    """One trial folder, parsed: what every column is computed from."""

    path: Path
    run: dict[str, Any]          # the run's metadata.json
    facts: dict[str, Any]        # trial.json
    lab: dict[str, Any]          # lab.json
    events: list[dict[str, Any]]
    intervals: list[Interval]
    probe: ProbeRecord
    members: list[counters.MemberTraffic] = field(default_factory=list)
    iperf_problem: str = ""      # why iperf3's report is incomplete ("" when it is not)

    @property
    def t0_ns(self) -> int:
        return int(self.first("traffic_start")["t_ns"])  # type: ignore[index]

    def first(self, kind: str) -> dict[str, Any] | None:
        return next((e for e in self.events if e["kind"] == kind), None)

    @property
    def failure(self) -> dict[str, Any] | None:
        return next((e for e in self.events if e["kind"] in FAILURES), None)

    @property
    def end_ns(self) -> int:
        """The traffic's end: iperf3's last interval, or the probe's last send when
        iperf3 reported none (interrupted)."""
        return max((i.end_ns for i in self.intervals),
                   default=max((p.sent_ns for p in self.probe.packets), default=0))


def load(trial_dir: Path, run: Mapping[str, Any] | None = None) -> TrialRecord:
    """Parse ``trial_dir``; ``run`` is its run's metadata (read from the parent if None)."""
    trial_dir = Path(trial_dir)
    if run is None:
        run = _json(trial_dir.parent / "metadata.json")
    events = [{**e, "t_ns": int(e["t_ns"])} for e in read_events(trial_dir / "events.csv")]
    events.sort(key=lambda e: e["t_ns"])
    start = next((e for e in events if e["kind"] == "traffic_start"), None)
    if start is None:
        raise LabError(f"{trial_dir} has no traffic_start event",
                       "the trial stopped before traffic started: it has no figures")
    traffic = run["scenario"]["traffic"]
    # an interrupted iperf3's report is incomplete: its throughput columns say so (NaN
    # where no interval covers a window), the probe's figures stand
    intervals, iperf_problem = iperf.parse_partial(
        (trial_dir / "iperf3.json").read_text(), start["t_ns"])
    return TrialRecord(
        path=trial_dir, run=dict(run), facts=_json(trial_dir / TRIAL_FILE),
        lab=_json(trial_dir / "lab.json"), events=events, intervals=intervals,
        probe=_probe_record(trial_dir, traffic),
        members=counters.read(trial_dir / "members.csv"), iperf_problem=iperf_problem)


def _json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise LabError(f"cannot read {path}: {exc}",
                       "a trial folder needs it to recompute its figures") from None


def _probe_record(trial_dir: Path, traffic: Mapping[str, Any]) -> ProbeRecord:
    if traffic.get("probe", "redlab-probe") == "irtt":
        return probe.parse_doc((trial_dir / "irtt.json").read_text())
    return gapprobe.load_record(trial_dir / "probe-client.csv",
                                trial_dir / "probe-server.csv",
                                int(float(traffic["probe_interval_ms"]) * 1e6))


def failover_outage(packets: Sequence[Packet], failure_ns: int, call_ns: int = 0,
                    repair_ns: int | None = None) -> outages.Outage | None:
    """The round-trip outage a failure at ``failure_ns`` caused, if it caused one: the run
    of lost probes whose window covers the failure, or else the first that begins within
    EVENT_OUTAGE_WITHIN_S after it (a timer had to expire first).

    The failure is stamped at the middle of the call that made it (``call_ns`` long):
    it may have taken effect from the call's start, and an outage that fast can be over
    by the stamp (seen in UML: lost from 3.011 to 3.051 s, a cut called from 3.011 to
    3.092 s), so the search starts there. An outage that begins after the repair
    (``repair_ns``) is the repair's, not the failure's.  Later runs of loss that are the
    same disruption are joined on (SAME_OUTAGE_RETURN_MS); ``pieces`` counts them."""
    rt = outages.analyse(packets, "round_trip")
    start_ns = failure_ns - call_ns // 2
    within_ns = int(EVENT_OUTAGE_WITHIN_S * 1e9)
    if repair_ns is not None:
        within_ns = max(0, min(within_ns, repair_ns - start_ns))
    found = rt.outage_for_event(start_ns, within_ns)
    if found is None:
        return None
    return outages.joined(found, rt.outages, int(SAME_OUTAGE_RETURN_MS * 1e6),
                          int(SAME_OUTAGE_MIN_RUN_MS * 1e6), repair_ns)


def failure_call_ns(facts: Mapping[str, Any]) -> int:
    """How long the call that made the trial's first failure took (trial.json)."""
    failures = facts.get("failures") or [{}]
    return int(failures[0].get("call_ns") or 0)


def trial_row(trial_dir: Path, run: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The trial's summary row: what every trial has, then what each technology adds
    (each says nothing where its state is not in the folder), the window predicted for
    the figure its failure puts to the test, then the parameters, then
    the verdict on the scenario's expectations (stored with it in metadata.json)."""
    from harness.tech.registry import TECHNOLOGIES

    trial = load(trial_dir, run)
    row = base_columns(trial)
    row.update(spread_columns(trial.members))
    row.update(placement_columns(trial))
    for tech in TECHNOLOGIES:  # in registry order: each may read the columns before it
        row.update(tech.columns(trial, row))
    row.update(prediction.columns(trial, row, TECHNOLOGIES))  # beside the measured figure
    row.update(trial.run.get("params", {}))
    # last: the expectations may name any column above
    where = f"the run in {trial_dir.parent}"
    expect = verdicts.parse(trial.run["scenario"].get("expect"), f"expect: of {where}",
                            f"correct expect: in {trial_dir.parent / 'metadata.json'}")
    row.update(verdicts.judge(row, expect, f"{trial_dir.name}'s summary row", (
        "correct expect: (the scenario's, the suite run's or the --expect file's); this"
        f" trial's files are kept in {trial_dir}"), unsteady=unsteady_note(row)).columns())
    return row


def summarize_run(run_dir: Path) -> list[dict[str, Any]]:
    """Recompute every measured trial's row of a run folder and rewrite its summary.csv,
    samples and plots; trials that ended before they were measured are skipped."""
    from harness.results.plot import draw_trial
    from harness.results.store import write_summary

    run = _json(run_dir / "metadata.json")
    rows = []
    for trial_dir in sorted(run_dir.glob("trial-*")):
        if not (trial_dir / TRIAL_FILE).is_file():
            continue  # stopped before its traffic ended: it has no figures
        rows.append(trial_row(trial_dir, run))
        draw_trial(trial_dir)
    if rows:
        write_summary(run_dir, rows)
    return rows


def placement_columns(trial: TrialRecord) -> dict[str, Any]:
    """Where the trial ran: the machine (a cluster's worker, from placement.json, which
    harness/cluster/gather.py writes; else the run's), and how many workers were lost
    while they ran it, each time rerun elsewhere (0 on one machine)."""
    path = trial.path / PLACEMENT_FILE
    placed = _json(path) if path.is_file() else {}
    return {"host": placed.get("host") or trial.run.get("host", ""),
            "lost_workers": len(placed.get("lost_workers", []))}


def base_columns(trial: TrialRecord) -> dict[str, Any]:
    """What the probe and iperf3 measured around the first failure and its repair."""
    facts, cut, restore = trial.facts, trial.failure, trial.first("restore")
    end_ns = trial.end_ns
    cut_ns = cut["t_ns"] if cut else end_ns
    restore_ns = restore["t_ns"] if restore else end_ns
    within = int(EVENT_OUTAGE_WITHIN_S * 1e9)
    by_dir = {d: outages.analyse_record(trial.probe, d) for d in outages.DIRECTIONS}
    rt = by_dir["round_trip"]
    # the search for the failure's outage starts with its call (see failover_outage)
    called_ns = cut_ns - failure_call_ns(facts) // 2
    failover = (failover_outage(trial.probe.packets, cut_ns, failure_call_ns(facts),
                                restore["t_ns"] if restore else None) if cut else None)
    # the repair's cost: the worst outage from it to the next failure or the end (the
    # failure's own outage, still open when the cable came back, is not the repair's)
    next_failure_ns = min((f["t_ns"] for f in facts["failures"] if f["t_ns"] > restore_ns),
                          default=end_ns)
    failback = (rt.worst_outage_between(restore_ns, next_failure_ns, besides=failover)
                if restore else None)
    # No failure, no figure (a baseline); a failure that lost nothing cost 0 ms.
    none_lost = 0.0 if cut else math.nan
    before_mbps = stats.mean_throughput_mbps(trial.intervals, trial.t0_ns + 500_000_000,
                                             cut_ns)
    during_mbps = stats.mean_throughput_mbps(trial.intervals, cut_ns, restore_ns)
    traffic = trial.run["scenario"]["traffic"]
    return {
        "scenario": trial.run["scenario"]["name"],
        "trial": int(trial.path.name.removeprefix("trial-")),
        "lab": facts["lab"],
        "kernel": facts["kernel"],
        "failure": "; ".join(f["describe"] for f in facts["failures"]),
        "failover_gap_ms": _figure(failover, "duration_ms", none_lost),
        "failover_gap_estimate_ms": _figure(failover, "estimate_ms", none_lost),
        "failover_gap_floor_ms": _figure(failover, "lost_span_ms", none_lost),
        "failover_arrival_gap_ms": _figure(failover, "arrival_gap_ms", none_lost),
        "loss_gap_ms": round(rt.loss_gap_ms, 3),
        "gap_up_ms": _figure(by_dir["up"].outage_for_event(called_ns, within),
                             "duration_ms", none_lost),
        "gap_down_ms": _figure(by_dir["down"].outage_for_event(called_ns, within),
                               "duration_ms", none_lost),
        "outage_start_s": (round((failover.start_ns - trial.t0_ns) / 1e9, 6)
                           if failover and failover.start_ns else math.nan),
        "outages": len(rt.outages),
        "failover_outages": failover.pieces if failover else none_lost,
        "failback_gap_ms": _figure(failback, "duration_ms", 0.0),
        "lost_packets": rt.lost,
        "lost_up": by_dir["up"].lost,
        "lost_down": by_dir["down"].lost,
        "probe_packets": rt.sent,
        "probe_interval_ms": round(rt.interval_ns / 1e6, 4),
        "duplicates": trial.probe.duplicates,
        "reordered": rt.reordered,
        "throughput_before_mbps": round(before_mbps, 2),
        "throughput_during_mbps": round(during_mbps, 2),
        "throughput_after_mbps": round(stats.mean_throughput_mbps(
            trial.intervals, restore_ns, end_ns + 1), 2),
        # N-1: what is left of the capacity while the failure lasts
        "capacity_retained_pct": (round(100 * during_mbps / before_mbps, 1)
                                  if before_mbps > 0 else math.nan),
        "recovery_90_ms": round(stats.time_to_recover_ms(trial.intervals, cut_ns), 1),
        "recovered_before_restore": (_recovered_before(failover, restore_ns if restore
                                                       else None) if cut else ""),
        "bring_up_s": round(facts["bring_up_s"], 3),
        # the random wait before the steps (runner.phase); unknown in older folders
        "phase_period_ms": facts.get("phase", {}).get("period_ms", math.nan),
        "phase_offset_ms": facts.get("phase", {}).get("offset_ms", math.nan),
        "traffic": f"{traffic['protocol']} x{traffic['parallel']} at {traffic['rate']}",
        "iperf3_complete": not trial.iperf_problem,
        **steadiness(trial.probe.packets, called_ns if cut else None),
    }


def steadiness(packets: Sequence[Packet], failure_ns: int | None) -> dict[str, Any]:
    """How the probe fared in the STEADY_WINDOW_S before the failure's call: its median
    round trip, what it lost, and whether the path was steady enough for the trial to
    measure the failure (``steady_before_failure``; "" without a failure, or without a
    probe sent before it: a failure at the very start is not judged)."""
    window = [p for p in packets if failure_ns is not None
              and failure_ns - STEADY_WINDOW_S * 1e9 <= p.sent_ns < failure_ns]
    if not window:
        return {"baseline_rtt_ms": math.nan, "baseline_loss_pct": math.nan,
                "steady_before_failure": ""}
    rtts = [(p.received_ns - p.sent_ns) / 1e6 for p in window if p.received_ns]
    loss = 100 * (len(window) - len(rtts)) / len(window)
    rtt = statistics.median(rtts) if rtts else math.nan
    return {"baseline_rtt_ms": round(rtt, 3), "baseline_loss_pct": round(loss, 1),
            "steady_before_failure": bool(rtts) and rtt <= STEADY_MAX_RTT_MS
            and loss <= STEADY_MAX_LOSS_PCT}


def unsteady_note(row: Mapping[str, Any]) -> str:
    """Why the row's trial does not measure its failure, or "" if it does."""
    if row.get("steady_before_failure") is not False:
        return ""
    return (f"the path was not steady before the failure (probe: median round trip"
            f" {row['baseline_rtt_ms']:g} ms, {row['baseline_loss_pct']:g} % lost in the"
            f" {STEADY_WINDOW_S:g} s before it; steady: at most {STEADY_MAX_RTT_MS:g} ms"
            f" and {STEADY_MAX_LOSS_PCT:g} %): the lab was starved or broken, so its"
            f" figures do not measure the failure")


def _figure(o: outages.Outage | None, attr: str, if_none: float) -> float:
    """One of an outage's figures; ``if_none`` where there was no outage at all, NaN where
    the outage ran off the end of the trace (its length is not known)."""
    if o is None:
        return if_none
    value = getattr(o, attr)
    return round(value, 3) if value is not None else math.nan


def _recovered_before(failover: outages.Outage | None, restore_ns: int | None) -> bool:
    """Whether traffic came back while the failure was still in place: redundancy at
    work.  False is a single point of failure: the path was down until the repair.

    Judged on arrival: packets sent during the outage may wait in a neighbour queue for
    the repair (ARP resolution holds a few) and arrive after it, sent before it."""
    if failover is None:
        return True
    back_ns = failover.first_arrival_after_ns or failover.end_ns
    if back_ns is None:
        return False
    return restore_ns is None or back_ns < restore_ns


def spread_columns(rows: list[counters.MemberTraffic]) -> dict[str, Any]:
    """Per bond or LAG, how its busier direction's bytes spread over its members."""
    columns: dict[str, Any] = {}
    for label in dict.fromkeys(r.group for r in rows):
        group = [r for r in rows if r.group == label]
        busier = max(("tx", "rx"), key=lambda d: sum(getattr(r, f"{d}_bytes") for r in group))
        key = label.replace(":", "_")
        columns[f"spread_{key}"] = f"{busier}: {counters.spread(group, busier)}"
        columns[f"members_used_{key}"] = counters.members_used(group, busier)
    return columns


def call_start_ns(trial: TrialRecord) -> int | None:
    """When the first failure's call began: the kernel may have acted (and a watcher seen
    it) anywhere in the call, so reactions count from there, not from its stamp (the
    call's middle)."""
    cut = trial.failure
    if cut is None:
        return None
    return cut["t_ns"] - trial.facts["failures"][0]["call_ns"] // 2
