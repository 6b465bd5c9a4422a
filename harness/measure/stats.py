"""Figures from recorded samples: pure functions, no lab needed to test them."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from harness.measure.iperf import Interval
from harness.measure.probe import Packet


def send_interval_ns(packets: Sequence[Packet]) -> float:
    """The probe's real send interval: irtt's timer may run slower than asked under load."""
    sends = sorted(p.sent_ns for p in packets)
    if len(sends) < 2:
        raise ValueError("need at least two probe packets to know the send interval")
    return statistics.median(b - a for a, b in zip(sends, sends[1:], strict=False))


def lost_packets(packets: Sequence[Packet]) -> int:
    return sum(1 for p in packets if p.received_ns is None)


def loss_derived_gap_ms(packets: Sequence[Packet]) -> float:
    """Lost packets times the send interval: assumes one contiguous outage (RFC 6413)."""
    return lost_packets(packets) * send_interval_ns(packets) / 1e6


def mean_throughput_mbps(intervals: Sequence[Interval], start_ns: int, end_ns: int) -> float:
    """Mean received rate over the intervals whose middle falls in [start_ns, end_ns)."""
    chosen = [i.bits_per_second for i in intervals
              if start_ns <= (i.start_ns + i.end_ns) // 2 < end_ns]
    return statistics.fmean(chosen) / 1e6 if chosen else float("nan")
