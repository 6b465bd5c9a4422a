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

from harness.errors import RedLabError
from harness.inject.link import LinkCut
from harness.journal import Journal
from harness.measure import stats
from harness.measure.iperf import IperfRun, IperfSettings
from harness.measure.probe import ProbeRun, ProbeSettings
from harness.results.events import EventLog
from harness.results.store import RunStore, lab_kind
from harness.scenario.model import Scenario, Step
from harness.topology.build import Lab
from harness.topology.model import Topology

log = logging.getLogger(__name__)

BOND_POLL_S = 0.01  # bond watcher poll period; UML kernels tick at 100 Hz, so no finer


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
    """Records every change of a bond's active member as an event, as it happens."""

    def __init__(self, lab: Lab, node: str, events: EventLog) -> None:
        super().__init__(daemon=True, name=f"bond-watch-{node}")
        self.lab, self.node, self.events = lab, node, events
        self._halt = threading.Event()
        self.active = lab.active_member(node)

    def run(self) -> None:
        while not self._halt.wait(BOND_POLL_S):
            active = self.lab.active_member(self.node)
            if active != self.active:
                self.events.add("bond_active_changed", self.node, f"{self.active} -> {active}")
                self.active = active

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=2)


def _sleep_until(t_ns: int) -> None:
    delay = (t_ns - time.time_ns()) / 1e9
    if delay > 0:
        time.sleep(delay)


class Timeline:
    """Executes the scenario's steps at their times, recording each as an event."""

    def __init__(self, lab: Lab, events: EventLog) -> None:
        self.lab, self.events = lab, events
        self.cuts: list[LinkCut] = []

    def execute(self, step: Step) -> None:
        if step.action == "cut":
            assert step.node and step.interface
            intf = step.interface
            if intf == "active":
                intf = self.lab.active_member(step.node) or ""
            cut = LinkCut(self.lab, step.node, intf, step.end)
            self.events.add("cut", step.node, cut.describe(), t_ns=cut.apply())
            self.cuts.append(cut)
        elif step.action == "restore":
            if not self.cuts:
                raise RedLabError("a restore step comes before any cut",
                                  "put a cut step before each restore in the scenario")
            cut = self.cuts.pop()
            self.events.add("restore", cut.node, cut.describe(), t_ns=cut.restore())

    def failures(self) -> str:
        return "; ".join(e["detail"] for e in self.events.events if e["kind"] == "cut")


def run_trial(req: RunRequest, store: RunStore, journal: Journal, trial: int) -> dict[str, Any]:
    sc, tdir = req.scenario, store.trial_dir(trial)
    traffic = sc.traffic
    events = EventLog(tdir / "events.csv")
    started = time.monotonic()
    with Lab(req.topology, req.run_id, journal) as lab:
        bring_up_s = time.monotonic() - started
        lab.write_state(tdir / "lab.json")
        bonded = sorted({b.node for b in req.topology.bonds})
        watchers = [BondWatcher(lab, node, events) for node in bonded]
        active_before = {w.node: w.active for w in watchers}
        probe = ProbeRun(lab, traffic.server, traffic.client,
                         ProbeSettings(traffic.probe_interval_ms, traffic.duration_s + 1),
                         tdir / "irtt.json")
        iperf = IperfRun(lab, traffic.server, traffic.client,
                         IperfSettings(traffic.protocol, traffic.rate, traffic.parallel,
                                       traffic.duration_s), tdir / "iperf3.json")
        probe.start()
        iperf.start()
        events.t0_ns = iperf.started_ns
        events.add("traffic_start", traffic.client, f"iperf3 {traffic.protocol} from "
                   f"{traffic.server}", t_ns=iperf.started_ns)
        for w in watchers:
            w.start()
        timeline = Timeline(lab, events)
        try:
            for step in sc.steps:
                _sleep_until(iperf.started_ns + int(step.at_s * 1e9))
                timeline.execute(step)
            intervals = iperf.finish()
            packets = probe.finish()
        finally:
            for w in watchers:
                w.stop()
        final = {n: lab.read_bond(n) for n in bonded}  # the kernel's word, not the watcher's
        active_after = {n: state.active_member for n, state in final.items()}
        (tdir / "bonds.json").write_text(json.dumps(
            {n: state.as_dict() for n, state in final.items()}, indent=2))
    return _summary_row(req, trial, events, timeline, intervals, packets,
                        active_before, active_after, bring_up_s)


def _summary_row(req: RunRequest, trial: int, events: EventLog, timeline: Timeline,
                 intervals: list, packets: list, active_before: dict[str, Any],
                 active_after: dict[str, Any], bring_up_s: float) -> dict[str, Any]:
    cut = events.first("cut")
    restore = events.first("restore")
    end_ns = max((i.end_ns for i in intervals), default=0)
    cut_ns = int(cut["t_ns"]) if cut else end_ns
    restore_ns = int(restore["t_ns"]) if restore else end_ns
    changed = events.first("bond_active_changed")
    detected_ms = ((int(changed["t_ns"]) - cut_ns) / 1e6
                   if cut and changed and int(changed["t_ns"]) >= cut_ns else math.nan)
    row: dict[str, Any] = {
        "scenario": req.scenario.name,
        "trial": trial,
        "lab": lab_kind(),
        "kernel": platform.release(),
        "failure": timeline.failures(),
        "failover_gap_ms": round(stats.loss_derived_gap_ms(packets), 3),
        "lost_packets": stats.lost_packets(packets),
        "probe_packets": len(packets),
        "probe_interval_ms": round(stats.send_interval_ns(packets) / 1e6, 4),
        "throughput_before_mbps": round(stats.mean_throughput_mbps(
            intervals, events.t0_ns + 500_000_000, cut_ns), 2),
        "throughput_during_mbps": round(stats.mean_throughput_mbps(
            intervals, cut_ns, restore_ns), 2),
        "throughput_after_mbps": round(stats.mean_throughput_mbps(
            intervals, restore_ns, end_ns + 1), 2),
        "active_before": ";".join(f"{k}:{v}" for k, v in active_before.items()),
        "active_after": ";".join(f"{k}:{v}" for k, v in active_after.items()),
        "failover_detected_ms": round(detected_ms, 3),
        "bring_up_s": round(bring_up_s, 3),
    }
    row.update(req.params)
    return row


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
