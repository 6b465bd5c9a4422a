"""Run a scenario's trials natively: build the lab, start traffic, follow the timeline.

Each trial gets a fresh lab so that trials are independent; everything a trial creates is
journaled and removed when the trial ends, whichever way it ends.
"""

from __future__ import annotations

import json
import logging
import math
import platform
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import timeouts
from harness.errors import RedLabError
from harness.inject.base import Failure
from harness.inject.daemon import DaemonCrash
from harness.inject.device import DeviceFailure
from harness.inject.filter import ControlPlaneDrop
from harness.inject.link import LinkCut
from harness.inject.netem import Degrade
from harness.journal import Journal
from harness.measure import counters, outages, stats, vrrp_timing
from harness.measure.gapprobe import GapProbeRun
from harness.measure.iperf import Interval, IperfRun, IperfSettings
from harness.measure.probe import ProbeRecord, ProbeRun, ProbeSettings
from harness.results.events import EventLog
from harness.results.plot import plot_trial
from harness.results.samples import write_samples
from harness.results.store import RunStore, lab_kind
from harness.scenario.model import FAILURES, Scenario, Step
from harness.tech import ovs_log
from harness.tech.vrrp import StateChange, vrrp_options
from harness.topology.build import Lab
from harness.topology.model import Topology

log = logging.getLogger(__name__)

# A failure's outage may begin after the event (a timer must expire first): look this far.
EVENT_OUTAGE_WITHIN_S = 5.0
PROBE_TAIL_S = 3.0  # the probe runs this much longer than iperf3's traffic
PROBE_MEMBER_WINDOW_S = 0.3  # probe alone: which member its packets leave on
BOND_POLL_S = 0.005  # bond watcher poll period: the resolution of failover_detected_ms


@dataclass
class RunRequest:
    scenario: Scenario
    scenario_path: Path
    topology: Topology
    params: dict[str, Any]
    repeat: int
    out: Path
    run_id: str


class BondWatcher(threading.Thread):
    """Records, as it happens, every change of a bond's active member and, in 802.3ad,
    of the set of members distributing traffic (a member leaving or joining the LAG)."""

    def __init__(self, lab: Lab, node: str, events: EventLog) -> None:
        super().__init__(daemon=True, name=f"bond-watch-{node}")
        self.lab, self.node, self.events = lab, node, events
        self._halt = threading.Event()
        self.view = lab.poll_bond(node)
        self.active = self.view.active

    def run(self) -> None:
        while not self._halt.wait(BOND_POLL_S):
            view = self.lab.poll_bond(self.node)
            if view.active != self.view.active:
                self.events.add("bond_active_changed", self.node,
                                f"{self.view.active} -> {view.active}")
            if view.distributing != self.view.distributing:
                self.events.add("lacp_members_changed", self.node,
                                f"{_names(self.view.distributing)} -> "
                                f"{_names(view.distributing)}")
            self.view = view

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=2)


def _probe_member(lab: Lab, node: str, interval_ms: float) -> str:
    """The member of ``node``'s bond that sends the probe's packets, while the probe is the
    only traffic: the one whose transmit counter moved by most of the probe's packets.
    The probe's first packets may take a while inside UML, so the window repeats until
    one member has carried half of what the probe sends in it."""
    group = next(g for g in counters.groups(lab) if g.node == node)
    expected = PROBE_MEMBER_WINDOW_S * 1000 / interval_ms

    def found() -> str | None:
        before = counters.snapshot(lab, group)
        time.sleep(PROBE_MEMBER_WINDOW_S)
        rows = counters.difference(group, before, counters.snapshot(lab, group))
        best = max(rows, key=lambda r: r.tx_packets)
        return best.member if best.tx_packets >= expected / 2 else None

    return timeouts.wait_for(f"the gap probe's packets leaving {node}", found,
                             timeouts.PING_READY, interval=0)


def _names(members: frozenset[str] | None) -> str:
    return ",".join(sorted(members)) if members else "none"


class Timeline:
    """Executes the scenario's steps at their times, recording each as an event."""

    def __init__(self, lab: Lab, events: EventLog,
                 probe_members: dict[str, str] | None = None) -> None:
        self.lab, self.events = lab, events
        self.probe_members = probe_members or {}  # node -> member carrying the probe
        self.pending: list[Failure] = []   # applied, not yet restored; newest last
        self.injected: list[Failure] = []  # every failure applied, in order
        self.apply_calls_ns: list[int] = []  # each apply()'s call length, in order

    def _failure(self, step: Step) -> Failure:
        assert step.node
        intf = step.interface or ""
        if intf == "active":
            intf = self.lab.active_member(step.node) or ""
        elif intf == "probe":
            intf = self.probe_members[step.node]
        if step.action == "cut":
            return LinkCut(self.lab, step.node, intf, step.end or "far")
        if step.action == "device_down":
            return DeviceFailure(self.lab, step.node, self.lab.daemon_processes(step.node))
        if step.action == "daemon_crash":
            daemon = self.lab.vrrp.daemons[step.node]
            assert daemon.proc is not None
            return DaemonCrash(self.lab, step.node, daemon.proc, restart=daemon.start)
        if step.action == "drop_control":
            assert step.protocol
            return ControlPlaneDrop(self.lab, step.node, intf, step.protocol,
                                    direction=step.direction)
        return Degrade(self.lab, step.node, intf, loss_pct=step.loss_pct,
                       delay_ms=step.delay_ms, jitter_ms=step.jitter_ms, rate=step.rate,
                       ends=step.end or "both")

    def execute(self, step: Step) -> None:
        if step.action == "restore":
            if not self.pending:
                raise RedLabError("a restore step comes before any failure",
                                  "put a failure step before each restore in the scenario")
            failure, kind = self.pending.pop(), "restore"
            t = failure.restore()
            if isinstance(failure, DeviceFailure):
                self.lab.daemons_rebooted(failure.node)
        else:
            failure, kind = self._failure(step), step.action
            t = failure.apply()
            self.pending.append(failure)
            self.injected.append(failure)
            self.apply_calls_ns.append(failure.call_ns)  # restore() overwrites call_ns
            if failure.silenced:
                before, stopped = failure.silenced
                self.events.add("daemons_silenced", step.node or "",
                                f"frozen; call {(stopped - before) / 1e6:.1f} ms",
                                t_ns=(before + stopped) // 2)
        self.events.add(kind, step.node or getattr(failure, "node", ""),
                        f"{failure.describe()}; call {failure.call_ns / 1e6:.1f} ms", t_ns=t)

    def restore_all(self) -> None:
        """Failures a scenario left in place are undone before the lab goes (newest first)."""
        while self.pending:
            self.pending.pop().restore()

    def failures(self) -> str:
        return "; ".join(f.describe() for f in self.injected)


def run_trial(req: RunRequest, store: RunStore, journal: Journal, trial: int) -> dict[str, Any]:
    sc, tdir = req.scenario, store.trial_dir(trial)
    traffic = sc.traffic
    events = EventLog(tdir / "events.csv")
    started = time.monotonic()
    last_notice: dict[str, str] = {}

    def vrrp_changed(change: StateChange) -> None:
        # keepalived repeats some notices (MASTER_RX_LOWER_PRI at every advert heard in
        # split brain): events keep the first of a run, notify.log keeps every one.
        detail = f"{change.state} {change.priority or ''}".strip()
        if last_notice.get(change.router) != detail:
            last_notice[change.router] = detail
            events.add("vrrp_state", change.router, detail, t_ns=change.t_ns)

    with Lab(req.topology, req.run_id, journal, workdir=tdir,
             on_vrrp_change=vrrp_changed) as lab:
        bring_up_s = time.monotonic() - started
        lab.write_state(tdir / "lab.json")
        bonded = sorted({b.node for b in req.topology.bonds})
        watchers = [BondWatcher(lab, node, events) for node in bonded]
        active_before = {w.node: w.active for w in watchers}
        # The probe starts before iperf3 (which takes 1-2 s to connect inside UML) and
        # must outlast it, or an outage at the very end would never close.
        probe_settings = ProbeSettings(traffic.probe_interval_ms,
                                       traffic.duration_s + PROBE_TAIL_S)
        probe: GapProbeRun | ProbeRun = (
            GapProbeRun(lab, traffic.server, traffic.client, probe_settings, tdir)
            if traffic.probe == "redlab-probe" else
            ProbeRun(lab, traffic.server, traffic.client, probe_settings, tdir / "irtt.json"))
        iperf = IperfRun(lab, traffic.server, traffic.client,
                         IperfSettings(traffic.protocol, traffic.rate, traffic.parallel,
                                       traffic.duration_s), tdir / "iperf3.json")
        aggregates = counters.groups(lab)
        counted = {g.label: counters.snapshot(lab, g) for g in aggregates}
        ovs_mark = _ovs_log_mark(req.topology)
        probe.start()
        probe_members = {step.node: _probe_member(lab, step.node, traffic.probe_interval_ms)
                         for step in sc.steps if step.interface == "probe" and step.node}
        iperf.start()
        events.t0_ns = iperf.started_ns
        events.add("traffic_start", traffic.client, f"iperf3 {traffic.protocol} from "
                   f"{traffic.server}", t_ns=iperf.started_ns)
        for node, member in probe_members.items():
            events.add("probe_member", node, f"the probe's packets leave {node} on {member}")
        for w in watchers:
            w.start()
        timeline = Timeline(lab, events, probe_members)
        try:
            for step in sc.steps:
                timeouts.sleep_until(iperf.started_ns + int(step.at_s * 1e9))
                timeline.execute(step)
            intervals = iperf.finish()
            record = probe.finish_record()
            spread = [r for g in aggregates for r in counters.difference(
                g, counted[g.label], counters.snapshot(lab, g))]
            counters.write(tdir / "members.csv", spread)
        finally:
            for w in watchers:
                w.stop()
            timeline.restore_all()
            if ovs_mark is not None:
                _add_ovs_member_changes(lab, events, ovs_mark)
        final = {n: lab.read_bond(n) for n in bonded}  # the kernel's word, not the watcher's
        active_after = {n: state.active_member for n, state in final.items()}
        (tdir / "bonds.json").write_text(json.dumps(
            {n: state.as_dict() for n, state in final.items()}, indent=2))
    events.sort()
    row, failover = _summary_row(req, trial, events, timeline, intervals, record,
                                 active_before, active_after, bring_up_s)
    row.update(_spread_columns(spread))
    _draw(tdir, failover)
    return row


def _ovs_log_mark(topology: Topology) -> ovs_log.LogMark | None:
    """Where ovs-vswitchd's log stands, when the topology has LAGs and OVS logs to a file."""
    path = ovs_log.log_file() if topology.lags else None
    return ovs_log.LogMark.now(path) if path else None


def _add_ovs_member_changes(lab: Lab, events: EventLog, mark: ovs_log.LogMark) -> None:
    """Each LAG member that ovs-vswitchd enabled or disabled since ``mark``, as an event
    stamped by its log line (to the ms)."""
    ports = {lab.ifname(lag.switch, port): (lag.switch, port)
             for lag in lab.topo.lags for port in lag.ports}
    try:
        lines = mark.lines_since()
    except OSError as exc:  # the trial's own figures stand without these events
        log.warning("cannot read ovs-vswitchd's log %s: %s", mark.path, exc)
        return
    for change in ovs_log.member_changes(lines, ports):
        events.add("lag_member_changed", change.switch, f"{change.member} {change.state}",
                   t_ns=change.t_ns)


def _shrank(detail: str) -> bool:
    """Whether a ``lacp_members_changed`` detail ("eth0,eth1 -> eth1") lost a member."""
    before, _, after = detail.partition(" -> ")
    count = lambda names: 0 if names == "none" else len(names.split(","))  # noqa: E731
    return count(after) < count(before)


def _ratio_pct(part: float, whole: float) -> float:
    return round(100 * part / whole, 1) if whole > 0 else math.nan


def _window(o: outages.Outage | None) -> float:
    return round(o.duration_ms, 3) if o is not None and o.duration_ms is not None else math.nan


def _summary_row(req: RunRequest, trial: int, events: EventLog, timeline: Timeline,
                 intervals: list[Interval], record: ProbeRecord,
                 active_before: dict[str, Any], active_after: dict[str, Any],
                 bring_up_s: float) -> tuple[dict[str, Any], outages.Outage | None]:
    """The trial's row, and the failure's round-trip outage (for the plot)."""
    cut = next((e for e in events.events if e["kind"] in FAILURES), None)
    restore = events.first("restore")
    end_ns = max((i.end_ns for i in intervals), default=0)
    cut_ns = int(cut["t_ns"]) if cut else end_ns
    restore_ns = int(restore["t_ns"]) if restore else end_ns
    within = int(EVENT_OUTAGE_WITHIN_S * 1e9)
    by_dir = {d: outages.analyse_record(record, d) for d in outages.DIRECTIONS}
    rt = by_dir["round_trip"]
    failover = rt.outage_for_event(cut_ns, within) if cut else None
    failback = rt.outage_for_event(restore_ns, within) if restore else None
    if failback is failover:
        failback = None  # the path was still down when the cable came back
    # The failure is stamped at the middle of its call; the kernel may have acted (and a
    # watcher seen the result) anywhere in the call, so reactions count from its start.
    call_start_ns = cut_ns - timeline.apply_calls_ns[0] // 2 if cut else end_ns
    left = next((e for e in events.events if e["kind"] == "lacp_members_changed"
                 and cut and int(e["t_ns"]) >= call_start_ns and _shrank(e["detail"])), None)
    changed = events.first("bond_active_changed")
    switched = cut and changed and int(changed["t_ns"]) >= call_start_ns
    detected_ms = (int(changed["t_ns"]) - cut_ns) / 1e6 if switched else math.nan
    # A probe that sent nothing between the cut and the switch-over could not see the
    # outage (its sender stalled: it shares the CPU with everything inside UML).
    sends_in_failover = (sum(1 for p in record.packets
                             if cut_ns <= p.sent_ns <= int(changed["t_ns"]))
                         if switched else math.nan)
    before_mbps = stats.mean_throughput_mbps(intervals, events.t0_ns + 500_000_000, cut_ns)
    during_mbps = stats.mean_throughput_mbps(intervals, cut_ns, restore_ns)
    row: dict[str, Any] = {
        "scenario": req.scenario.name,
        "trial": trial,
        "lab": lab_kind(),
        "kernel": platform.release(),
        "failure": timeline.failures(),
        "failover_gap_ms": _window(failover),
        "failover_gap_estimate_ms": (round(failover.estimate_ms, 3)
                                     if failover and failover.estimate_ms else math.nan),
        "failover_gap_floor_ms": round(failover.lost_span_ms, 3) if failover else math.nan,
        "failover_arrival_gap_ms": (round(failover.arrival_gap_ms, 3)
                                    if failover and failover.arrival_gap_ms else math.nan),
        "loss_gap_ms": round(rt.loss_gap_ms, 3),
        "gap_up_ms": _window(by_dir["up"].outage_for_event(cut_ns, within)),
        "gap_down_ms": _window(by_dir["down"].outage_for_event(cut_ns, within)),
        "outage_start_s": (round((failover.start_ns - events.t0_ns) / 1e9, 6)
                           if failover and failover.start_ns else math.nan),
        "outages": len(rt.outages),
        "failback_gap_ms": _window(failback) if failback else 0.0,
        "lost_packets": rt.lost,
        "lost_up": by_dir["up"].lost,
        "lost_down": by_dir["down"].lost,
        "probe_packets": rt.sent,
        "probe_interval_ms": round(rt.interval_ns / 1e6, 4),
        "duplicates": record.duplicates,
        "reordered": rt.reordered,
        "throughput_before_mbps": round(before_mbps, 2),
        "throughput_during_mbps": round(during_mbps, 2),
        "throughput_after_mbps": round(stats.mean_throughput_mbps(
            intervals, restore_ns, end_ns + 1), 2),
        # N-1: what is left of the capacity while the failure lasts
        "capacity_retained_pct": _ratio_pct(during_mbps, before_mbps),
        "recovery_90_ms": round(stats.time_to_recover_ms(intervals, cut_ns), 1),
        "active_before": ";".join(f"{k}:{v}" for k, v in active_before.items()),
        "active_after": ";".join(f"{k}:{v}" for k, v in active_after.items()),
        "failover_detected_ms": round(detected_ms, 3),
        # 802.3ad: failure -> the bond stopped distributing on a member (LACP timeout)
        "lacp_member_left_ms": (round((int(left["t_ns"]) - cut_ns) / 1e6, 3) if left
                                else math.nan),
        "probe_sends_in_failover": sends_in_failover,
        "recovered_before_restore": _recovered_before(failover, restore_ns if restore
                                                      else None) if cut else "",
        "bring_up_s": round(bring_up_s, 3),
        "traffic": f"{req.scenario.traffic.protocol} x{req.scenario.traffic.parallel}"
                   f" at {req.scenario.traffic.rate}",
    }
    if req.topology.vrrp:
        # A dead box's keepalived fell silent when it froze, a few ms before its links
        # went down: the backup's master-down timer runs from its last advert, so the
        # takeover counts from that freeze.
        silenced = timeline.injected[0].silenced if cut and timeline.injected else None
        failure_ns, since_ns = ((sum(silenced) // 2, silenced[0]) if silenced
                                else (cut_ns, call_start_ns))
        row.update(vrrp_timing.vrrp_columns(
            events.events, {v.node: vrrp_options(v.options) for v in req.topology.vrrp},
            events.t0_ns, failure_ns if cut else None, since_ns if cut else None,
            restore_ns if restore else None, end_ns))
    row.update(req.params)
    return row, failover


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


def _spread_columns(rows: list[counters.MemberTraffic]) -> dict[str, Any]:
    """Per bond or LAG, how its busier direction's bytes spread over its members."""
    columns: dict[str, Any] = {}
    for label in dict.fromkeys(r.group for r in rows):
        group = [r for r in rows if r.group == label]
        busier = max(("tx", "rx"), key=lambda d: sum(getattr(r, f"{d}_bytes") for r in group))
        key = label.replace(":", "_")
        columns[f"spread_{key}"] = f"{busier}: {counters.spread(group, busier)}"
        columns[f"members_used_{key}"] = counters.members_used(group, busier)
    return columns


def _draw(tdir: Path, failover: outages.Outage | None) -> None:
    """samples.csv and the plot, from the stored files; a drawing problem is not a failed
    trial (everything it needs is on disk and `redlab plot` can redo it)."""
    gap = ((failover.start_ns, failover.end_ns)
           if failover and failover.start_ns and failover.end_ns else None)
    try:
        write_samples(tdir)
        plot_trial(tdir, gap=gap)
    except Exception as exc:
        log.warning("could not draw %s: %s", tdir, exc)


def run_scenario(req: RunRequest) -> RunStore:
    store = RunStore(req.out, {
        "run_id": req.run_id,
        "scenario": req.scenario.model_dump(mode="json"),
        "scenario_file": str(req.scenario_path),
        "params": req.params,
        "repeat": req.repeat,
        "topology_diagram": req.topology.diagram,
    })
    with Journal(req.run_id) as journal:
        # Recorded first, undone last: if this process is killed, redlab clean marks the
        # folder interrupted. On every other path the status is final before rollback.
        journal.record("run_folder", path=str(req.out))
        try:
            for trial in range(1, req.repeat + 1):
                store.add_row(run_trial(req, store, journal, trial))
                log.info("trial %d/%d done", trial, req.repeat)
        except KeyboardInterrupt:
            store.finish("interrupted", "interrupted by the user")
            raise
        except BaseException as exc:
            store.finish("failed", str(exc))
            raise
        store.finish("complete")
    return store
