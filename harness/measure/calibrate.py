"""Calibration: inject outages of known length into an unprotected path, measure them.

A user trusts a failover gap only if the probe, on this very machine, reports known
outages correctly. The path (topologies/path.py) has no redundancy, so cutting srv's
cable for L ms stops traffic for L ms; the injected length is what the kernel
acknowledged (link down to link up), not what was asked. Lengths are interleaved so
that drift over the run does not bias one length.
"""

from __future__ import annotations

import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from harness import timeouts
from harness.inject.link import LinkCut
from harness.journal import Journal
from harness.lab.running import Lab
from harness.measure import gapprobe, outages, stats
from harness.measure.gapprobe import GapProbeRun
from harness.measure.iperf import IperfRun, IperfSettings
from harness.measure.probe import ProbeRun, ProbeSettings
from harness.results.events import EventLog
from harness.results.store import RunStore, lab_kind
from harness.topology.loader import build_topology

LEAD_S = 1.5  # traffic settles (TCP slow start, ARP) before the first outage


@dataclass(frozen=True)
class CalibrationPlan:
    lengths_ms: tuple[float, ...] = (20, 100, 500, 2000)
    repeat: int = 3
    interval_ms: float = 1.0
    spacing_s: float = 1.0  # quiet time after each outage, so outages stay separate
    iperf_rate: str = "10M"
    probe: str = "redlab-probe"  # or "irtt", to see what the well-kept tool gives here

    def order(self) -> list[float]:
        return [length for _ in range(self.repeat) for length in self.lengths_ms]

    def duration_s(self) -> float:
        return LEAD_S + sum(length / 1000 + self.spacing_s for length in self.order()) + 1


@dataclass(frozen=True)
class Injection:
    number: int
    requested_ms: float
    down_ns: int
    up_ns: int
    # Each time is the middle of a netlink call; half of each call's length is how far
    # the kernel's own moment may lie from it (milliseconds inside a loaded UML).
    down_call_ns: int = 0
    up_call_ns: int = 0

    @property
    def uncertainty_ms(self) -> float:
        return (self.down_call_ns + self.up_call_ns) / 2e6


def inject_outages(lab: Lab, plan: CalibrationPlan, start_ns: int,
                   events: EventLog) -> list[Injection]:
    injections = []
    next_ns = start_ns + int(LEAD_S * 1e9)
    for number, length in enumerate(plan.order(), start=1):
        timeouts.sleep_until(next_ns)
        cut = LinkCut(lab, "srv", "eth0", end="far")
        down = cut.apply()
        down_call = cut.call_ns
        events.add("cut", "srv", f"outage {number}: {length:g} ms; {cut.describe()}", t_ns=down)
        timeouts.sleep_until(down + int(length * 1e6))
        up = cut.restore()
        events.add("restore", "srv", f"outage {number}", t_ns=up)
        injections.append(Injection(number, length, down, up, down_call, cut.call_ns))
        next_ns = up + int(plan.spacing_s * 1e9)
    return injections


def _matching_outage(found: list[outages.Outage], inj: Injection) -> outages.Outage | None:
    """The probe outage that overlaps the injection most (None if the probe saw none)."""
    def overlap(o: outages.Outage) -> int:
        start = o.start_ns if o.start_ns is not None else inj.down_ns
        end = o.end_ns if o.end_ns is not None else inj.up_ns
        return min(end, inj.up_ns) - max(start, inj.down_ns)

    best = max(found, key=overlap, default=None)
    return best if best is not None and overlap(best) > 0 else None


def _lateness_by_seq(probe: GapProbeRun | ProbeRun) -> dict[int, int]:
    """redlab-probe logs how late each send was on its schedule; irtt does not."""
    if not isinstance(probe, GapProbeRun):
        return {}
    return dict(enumerate(gapprobe.lateness_ns(probe.client_csv)))


def _sender_late_ms(late: dict[int, int], match: outages.Outage | None) -> float:
    """How late the probe sent around an outage: a late send widens the window, and the
    host's scheduler, not the probe, is then the cause (NaN when not logged)."""
    if match is None or not late:
        return float("nan")
    around = range(match.first_lost_seq - 1, match.last_lost_seq + 2)
    return round(max(late.get(seq, 0) for seq in around) / 1e6, 3)


def run_calibration(plan: CalibrationPlan, out: Path, run_id: str) -> pd.DataFrame:
    """Inject the plan's outages, write calibration.csv and, like every run, a
    metadata.json (versions, kernel, the plan, the run's status)."""
    topo, _ = build_topology("path", {})
    store = RunStore(out, {"run_id": run_id, "kind": "calibration", "plan": asdict(plan),
                           "topology_diagram": topo.diagram})
    with store.recording():
        frame = _calibrate(plan, out, run_id, topo)
        store.meta["injections"] = len(frame)
    return frame


def _calibrate(plan: CalibrationPlan, out: Path, run_id: str, topo: Any) -> pd.DataFrame:
    with Journal(run_id) as journal, Lab(topo, run_id, journal) as lab:
        journal.record("run_folder", path=str(out))
        kind: type[GapProbeRun] | type[ProbeRun] = (
            GapProbeRun if plan.probe == "redlab-probe" else ProbeRun)
        # ended after iperf3 when it can be (scenario.runner does the same)
        settings = ProbeSettings(plan.interval_ms, plan.duration_s() + 0.5 + (
            timeouts.PROBE_START if kind.ENDS_ON_REQUEST else 0.0))
        probe: GapProbeRun | ProbeRun = kind(lab, "srv", "cli", settings,
                                             out if kind is GapProbeRun else out / "irtt.json")
        iperf = IperfRun(lab, "srv", "cli", IperfSettings("tcp", plan.iperf_rate, 1,
                                                          plan.duration_s()),
                         out / "iperf3.json")
        probe.start()
        iperf.start()
        events = EventLog(out / "events.csv", t0_ns=iperf.started_ns)
        events.add("traffic_start", "cli", f"{plan.probe} + iperf3 tcp from srv",
                   t_ns=iperf.started_ns)
        injections = inject_outages(lab, plan, iperf.started_ns, events)
        intervals = iperf.finish()
        probe.end_sending()  # redlab-probe: its tail ends once the path carried it
        record = probe.finish_record()
        late = _lateness_by_seq(probe)
    analysis = outages.analyse_record(record, "round_trip")
    interval_ms = analysis.interval_ns / 1e6
    sends = sorted(p.sent_ns for p in record.packets)
    # what the sender achieved, first to last send (for redlab-probe the analysis takes
    # its schedule's interval; a sender starved for longer than a few slots shows here)
    achieved_pps = (len(sends) - 1) / ((sends[-1] - sends[0]) / 1e9)
    bound_ms = max(2.0, 2 * interval_ms)
    rows: list[dict[str, Any]] = []
    for inj in injections:
        injected = (inj.up_ns - inj.down_ns) / 1e6
        match = _matching_outage(analysis.outages, inj)
        # No outage seen, or one still open at the end of the trace: not a measurement.
        nan = float("nan")
        measured = match.estimate_ms if match and match.estimate_ms is not None else nan
        window = match.duration_ms if match and match.duration_ms is not None else nan
        rows.append({
            "injection": inj.number,
            "requested_ms": inj.requested_ms,
            "injected_ms": round(injected, 3),
            "measured_ms": round(measured, 3),
            "error_ms": round(measured - injected, 3),
            "bound_ms": round(bound_ms, 3),
            "within_bound": bool(abs(measured - injected) <= bound_ms),
            "window_ms": round(window, 3),
            "lost_span_ms": round(match.lost_span_ms, 3) if match else nan,
            # the probe's own resolution on this outage: half the window-to-floor distance
            "resolution_ms": round((window - match.lost_span_ms) / 2, 3) if match else nan,
            "reference_uncertainty_ms": round(inj.uncertainty_ms, 3),
            "sender_late_ms": _sender_late_ms(late, match),
            "lost_packets": match.lost if match is not None else 0,
            "probe_rate_pps": round(achieved_pps, 1),
            "probe_interval_ms": round(interval_ms, 4),
            "iperf3_estimate_ms": round(stats.throughput_dip_ms(
                intervals, inj.down_ns, inj.up_ns + int(plan.spacing_s * 1e9)), 1),
            "probe": plan.probe,
            "lab": lab_kind(),
            "kernel": platform.release(),
        })
    frame = pd.DataFrame(rows)
    frame.to_csv(out / "calibration.csv", index=False)
    return frame
