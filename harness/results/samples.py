"""One trial's measurements as time series on one clock, drawn from its stored files only.

``samples.csv`` is long format, one row per sample: ``t_ns, t_s, series, value, unit``,
where ``t_ns`` is the lab's wall clock and ``t_s`` is seconds since ``traffic_start``
(as in ``events.csv``). Series:

- ``throughput`` (Mbit/s): one row per iperf3 receiver interval, at the interval's middle,
  the same point ``stats.mean_throughput_mbps`` uses to assign an interval to a window.
- ``probe_rtt`` (ms): one row per probe packet that came back, at its send time; client
  receive minus client send, so it includes the server's turnaround (tens of µs).
- ``probe_lost`` (packet, always 1): one row per lost probe packet, at its send time.
  Every probe packet is in exactly one of ``probe_rtt`` and ``probe_lost``.
- ``probe_loss_rate`` (fraction): lost / sent per 10 ms bin of send times, bins aligned
  on ``traffic_start``, at the bin's middle; one row for every bin that holds a send.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from harness.errors import LabError
from harness.measure import iperf, probe
from harness.measure.iperf import Interval
from harness.measure.probe import Packet

COLUMNS = ["t_ns", "t_s", "series", "value", "unit"]
LOSS_BIN_NS = 10_000_000


@dataclass
class Trial:
    """What one trial folder holds, parsed; ``notes`` says what was missing or unreadable."""

    path: Path
    t0_ns: int                                   # traffic_start: t_s = 0
    events: list[dict[str, str]] = field(default_factory=list)
    intervals: list[Interval] = field(default_factory=list)
    packets: list[Packet] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def load_trial(trial_dir: Path | str) -> Trial:
    path = Path(trial_dir)
    events = read_events(path / "events.csv")
    start = next((e for e in events if e["kind"] == "traffic_start"), None)
    if start is None:
        raise LabError(f"{path} has no traffic_start event in events.csv",
                       "the trial stopped before traffic started: nothing to plot")
    trial = Trial(path, int(start["t_ns"]), events)

    iperf_json = path / "iperf3.json"
    if not iperf_json.exists():
        trial.notes.append("no iperf3.json")
    else:
        try:
            trial.intervals = iperf.parse(iperf_json.read_text(), trial.t0_ns)
        except LabError as exc:
            trial.notes.append(f"iperf3.json unreadable ({exc.problem})")

    client_csv = path / "probe-client.csv"
    irtt_json = path / "irtt.json"
    if client_csv.exists():  # redlab-probe: a log at each end
        from harness.measure import gapprobe

        server_csv = path / "probe-server.csv"
        try:
            trial.packets = gapprobe.parse(client_csv,
                                           server_csv if server_csv.exists() else None)
        except (ValueError, KeyError, OSError) as exc:
            trial.notes.append(f"probe logs unreadable ({type(exc).__name__})")
    elif not irtt_json.exists():
        trial.notes.append("no probe record")
    else:
        try:
            trial.packets = sorted(probe.parse(irtt_json.read_text()), key=lambda p: p.seqno)
        except (ValueError, KeyError, TypeError) as exc:
            trial.notes.append(f"irtt.json unreadable ({type(exc).__name__})")
    return trial


def read_events(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        raise LabError(f"{path} is missing", "a trial folder needs events.csv: it holds "
                       "the traffic_start time that every series is placed from")
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def samples_frame(trial: Trial) -> pd.DataFrame:
    rows: list[tuple[int, str, float, str]] = []
    rows += [((i.start_ns + i.end_ns) // 2, "throughput", i.bits_per_second / 1e6, "Mbit/s")
             for i in trial.intervals]
    rows += [(p.sent_ns, "probe_rtt", (p.received_ns - p.sent_ns) / 1e6, "ms")
             for p in trial.packets if p.received_ns is not None]
    rows += [(p.sent_ns, "probe_lost", 1.0, "packet")
             for p in trial.packets if p.received_ns is None]
    rows += _loss_rate_rows(trial.packets, trial.t0_ns)
    frame = pd.DataFrame(rows, columns=["t_ns", "series", "value", "unit"])
    frame["t_ns"] = frame["t_ns"].astype("int64")
    # µs in t_s as in events.csv; 6 decimals keep ns in ms and bit/s in Mbit/s
    frame["t_s"] = ((frame["t_ns"] - trial.t0_ns) / 1e9).round(6)
    frame["value"] = frame["value"].astype(float).round(6)
    return frame[COLUMNS]


def _loss_rate_rows(packets: list[Packet], t0_ns: int) -> list[tuple[int, str, float, str]]:
    sent: dict[int, int] = {}
    lost: dict[int, int] = {}
    for p in packets:
        b = (p.sent_ns - t0_ns) // LOSS_BIN_NS   # floor: the probe starts before t0
        sent[b] = sent.get(b, 0) + 1
        if p.received_ns is None:
            lost[b] = lost.get(b, 0) + 1
    return [(t0_ns + b * LOSS_BIN_NS + LOSS_BIN_NS // 2, "probe_loss_rate",
             lost.get(b, 0) / n, "fraction") for b, n in sorted(sent.items())]


def build_samples(trial_dir: Path | str) -> pd.DataFrame:
    return samples_frame(load_trial(trial_dir))


def write_samples(trial_dir: Path | str, frame: pd.DataFrame | None = None) -> Path:
    """samples.csv: ``frame``, or the trial's samples read from its files."""
    out = Path(trial_dir) / "samples.csv"
    (build_samples(trial_dir) if frame is None else frame).to_csv(out, index=False)
    return out

