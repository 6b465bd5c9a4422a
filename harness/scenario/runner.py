"""Run a scenario's trials natively: build the lab, start traffic, follow the timeline.

Each trial gets a fresh lab so that trials are independent; everything a trial creates is
journaled and removed when the trial ends, whichever way it ends.  The runner knows no
redundancy technology: the lab's technologies record their own events (watchers, state
changes) and add their own summary columns (harness.tech.base).  A trial's row is
computed from what the trial wrote to its folder (harness.results.summary), exactly as
``redlab summarize`` recomputes it later.
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import timeouts
from harness.errors import LabError
from harness.journal import Journal
from harness.lab.running import Lab
from harness.measure import counters
from harness.measure.gapprobe import TAIL_NS, GapProbeRun
from harness.measure.iperf import IperfRun, IperfSettings
from harness.measure.probe import ProbeRun, ProbeSettings
from harness.measure.stopwatch import TIMING_FILE, Stopwatch
from harness.results import summary
from harness.results.deferred_plots import BackgroundPlots
from harness.results.events import EventLog
from harness.results.store import DEFER_PLOTS_ENV, RunStore, lab_kind
from harness.scenario.hold import hold
from harness.scenario.model import Scenario
from harness.scenario.timeline import Timeline
from harness.topology.model import Topology

if TYPE_CHECKING:
    from harness.tech.base import Technology

log = logging.getLogger(__name__)

TAIL_SHARE = 0.1  # of the last step's tail, a phase offset may take without more traffic
PROBE_TAIL_S = TAIL_NS / 1e9  # redlab-probe sends at most this long after iperf3's traffic
IRTT_TAIL_S = 3.0  # irtt runs for the traffic plus this, from before iperf3 connects
PROBE_MEMBER_WINDOW_S = 0.3  # probe alone: which member its packets leave on
PROBE_STEP_MARGIN_S = 0.5  # the probe must run at least this long after each step starts
# A trial whose path was not steady before its failure (summary.steadiness: a starved
# guest) measured the lab, not the failure: it is run again this many times, its folder
# kept under discarded/ and named in metadata.json.
UNSTEADY_RETRIES = 1


@dataclass
class RunRequest:
    scenario: Scenario
    scenario_path: Path
    topology: Topology
    params: dict[str, Any]
    repeat: int
    out: Path
    run_id: str
    keep_failed: bool = False  # a failed trial's lab waits for the user (scenario.hold)


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


def phase(techs: Iterable[type[Technology]], topo: Topology, sc: Scenario,
          rng: random.Random | None = None) -> dict[str, float]:
    """How long after its at_s every step of this trial runs: a uniform random part of
    the longest period among the clocks the first failure races (the technologies say
    which: harness.tech.base.Technology.phase_period_ms).

    Without it a failure lands at the same point of, say, the VRRP advert clock in
    every trial (the lab comes up, traffic starts and the failure follows at fixed
    delays): 5 takeovers at advert_int 1 s fell within 28 ms of each other, inside a
    window 1000 ms wide. The offset is recorded (phase_offset_ms) beside the period."""
    first = next((s for s in sc.steps if s.action != "restore"), None)
    if first is None or not sc.sample_phase:
        return {"period_ms": 0.0, "offset_ms": 0.0}
    period = max((p for tech in techs if (p := tech.phase_period_ms(topo, first))),
                 default=0.0)
    return {"period_ms": float(period),
            "offset_ms": round((rng or random).uniform(0.0, period), 3)}


def traffic_extension_s(sc: Scenario, offset_ms: float) -> int:
    """Whole seconds (iperf3's -t is whole seconds) the traffic runs beyond the scenario's
    duration so that its last step, run ``offset_ms`` late, keeps its tail: none while the
    offset takes at most a tenth of that tail (a miimon's 100 ms of a 3 s tail: a second
    more per trial would buy nothing), else the offset rounded up."""
    last_at_s = max((step.at_s for step in sc.steps), default=0.0)
    tail_ms = (sc.traffic.duration_s - last_at_s) * 1000
    return 0 if offset_ms <= TAIL_SHARE * tail_ms else math.ceil(offset_ms / 1000)


def run_trial(req: RunRequest, store: RunStore, journal: Journal, trial: int) -> dict[str, Any]:
    sc, tdir = req.scenario, store.trial_dir(trial)
    traffic = sc.traffic
    events = EventLog(tdir / "events.csv")
    started, clock = time.monotonic(), Stopwatch()
    # the load of the kernel the lab runs on (a guest's own), for a trial that was not
    # steady: high here means the lab's kernel was busy, low means its host starved it
    facts: dict[str, Any] = {"lab": lab_kind(), "kernel": platform.release(),
                             "failures": [], "load_average_at_start": os.getloadavg()}
    with Lab(req.topology, req.run_id, journal, workdir=tdir, events=events,
             on_failure=hold if req.keep_failed else None, stopwatch=clock) as lab:
        facts["bring_up_s"] = time.monotonic() - started
        prepared = time.monotonic()
        lab.write_state(tdir / "lab.json")
        # Made now: a watcher's first reading is the state the lab came up in.
        watchers = [w for tech in lab.techs for w in tech.watchers(events)]
        facts["phase"] = phase([type(t) for t in lab.techs], lab.topo, sc)
        offset_ns = int(facts["phase"]["offset_ms"] * 1e6)
        duration_s = traffic.duration_s + traffic_extension_s(sc, facts["phase"]["offset_ms"])
        # The probe starts before iperf3 (which takes 1-2 s to connect inside UML, and
        # far longer in a starved guest) and must outlast it, or an outage at the very
        # end would never close: redlab-probe is ended after iperf3, irtt cannot be.
        kind: type[GapProbeRun] | type[ProbeRun] = (
            GapProbeRun if traffic.probe == "redlab-probe" else ProbeRun)
        tail_s = PROBE_TAIL_S + timeouts.PROBE_START if kind.ENDS_ON_REQUEST else IRTT_TAIL_S
        probe_settings = ProbeSettings(traffic.probe_interval_ms, duration_s + tail_s)
        probe: GapProbeRun | ProbeRun = kind(
            lab, traffic.server, traffic.client, probe_settings,
            tdir if kind is GapProbeRun else tdir / "irtt.json")
        iperf = IperfRun(lab, traffic.server, traffic.client,
                         IperfSettings(traffic.protocol, traffic.rate, traffic.parallel,
                                       duration_s), tdir / "iperf3.json")
        aggregates = counters.groups(lab)
        counted = counters.snapshots(lab, aggregates)
        for tech in lab.techs:
            tech.before_traffic(events)
        clock.add("before traffic", time.monotonic() - prepared)
        connecting, connecting_ns = time.monotonic(), time.time_ns()
        probe.start_server()  # both servers start side by side: one wait, not two
        iperf.start_server()
        probe.start_client()
        probe_ends = time.monotonic() + probe_settings.duration_s
        probe_members = {step.node: _probe_member(lab, step.node, traffic.probe_interval_ms)
                         for step in sc.steps if step.interface == "probe" and step.node}
        iperf.start_client()
        clock.add("traffic start (probe, iperf3 connect)", time.monotonic() - connecting)
        flowing = time.monotonic()
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
                timeouts.sleep_until(iperf.started_ns + int(step.at_s * 1e9) + offset_ns)
                _probe_still_running(probe_ends, step.at_s, iperf.started_ns - connecting_ns,
                                     tail_s)
                timeline.execute(step)
            iperf.finish()
            clock.add("traffic", time.monotonic() - flowing)
            draining = time.monotonic()
            if iperf.problem:  # the throughput is incomplete; the probe's figures stand
                events.add("iperf3_unfinished", traffic.client, iperf.problem)
                facts["iperf3"] = iperf.problem
            # redlab-probe sends on until the path has carried its packets since this
            # request (an outage still open now closes in its log), PROBE_TAIL_S at most
            probe.end_sending()
            probe.finish()
            for w in watchers:  # before the counters: no state changes are due now, and
                w.stop()        # the watchers' reads would slow the counters' own
            ended = counters.snapshots(lab, aggregates)
            counters.write(tdir / "members.csv", [
                r for g in aggregates
                for r in counters.difference(g, counted[g.label], ended[g.label])])
        finally:
            for w in watchers:
                w.stop()
            timeline.restore_all()
        facts["failures"] = timeline.facts
        for tech in lab.techs:
            facts[tech.name] = tech.after_traffic(events, tdir)
        _write_json(tdir / summary.TRIAL_FILE, facts)
        clock.add("probe tail, state read back", time.monotonic() - draining)
        if req.keep_failed:
            events.sort()
            judged = summary.trial_row(tdir, store.meta)
            if judged.get("verdict") == "fail":
                hold(lab, f"trial {trial} failed its expectations"
                          f" ({judged.get('verdict_failed')})")
    with clock.phase("analysis"):
        events.sort()
        row = summary.trial_row(tdir, store.meta)
    clock.write(tdir / TIMING_FILE)
    log.debug("trial %d took %.1f s: %s", trial, time.monotonic() - started, clock.describe())
    return row


class UnsteadyLab(LabError):
    """The lab was too slow or broken to measure this trial's failure at all."""


def _steady_trial(req: RunRequest, store: RunStore, journal: Journal, trial: int,
                  plots: BackgroundPlots | None) -> dict[str, Any]:
    """Run a trial; one whose lab was not steady (its row says so, or it could not be
    measured at all: UnsteadyLab) runs again, up to UNSTEADY_RETRIES times, its folder
    kept under discarded/.  The last attempt's row, or its error, stands.  Each measured
    folder is handed to ``plots`` (None: a suite draws them at its end)."""
    for attempt in range(UNSTEADY_RETRIES + 1):
        try:
            row = run_trial(req, store, journal, trial)
        except UnsteadyLab as exc:
            if attempt == UNSTEADY_RETRIES:
                raise
            why = exc.problem
        else:
            why = summary.unsteady_note(row)
            if not why or attempt == UNSTEADY_RETRIES:
                if plots is not None:
                    plots.submit(store.trial_dir(trial))
                return row
        kept = store.discard(trial, attempt + 1, why)
        if plots is not None and (kept / summary.TRIAL_FILE).is_file():
            plots.submit(kept)
        log.warning("trial %d: %s; kept in %s, running it again", trial, why, kept)
    raise AssertionError("unreachable")


def _probe_still_running(probe_ends: float, at_s: float, connect_ns: int,
                         tail_s: float) -> None:
    """The probe runs for the traffic plus a tail, counted from its own start, which comes
    before iperf3 connects: a connect slower than the tail (irtt's 3 s; a starved guest)
    would leave a failure with no probe to see it, and "nothing lost" would be a lie."""
    if time.monotonic() > probe_ends - PROBE_STEP_MARGIN_S:
        raise UnsteadyLab(
            f"the gap probe ends before the step at {at_s:g} s can be measured: it runs"
            f" for the traffic plus a {tail_s:g} s tail, and iperf3 took"
            f" {connect_ns / 1e9:.1f} s to connect, the steps before ran late, or both",
            "the machine is too slow for this trial now (read"
            " timing.json of the earlier trials); rerun when it is less loaded, or use"
            " traffic.probe: redlab-probe, which is ended after iperf3")


def _write_json(path: Path, value: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2, default=str))
    tmp.replace(path)


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
        deferred = bool(os.environ.get(DEFER_PLOTS_ENV))  # drawn by the suite, at its end
        with store.recording(), BackgroundPlots() as plots:
            for trial in range(1, req.repeat + 1):
                store.add_row(_steady_trial(req, store, journal, trial,
                                            None if deferred else plots))
                log.info("trial %d/%d done", trial, req.repeat)
    return store
