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


def mean_throughput_mbps(intervals: Sequence[Interval], start_ns: int, end_ns: int) -> float:
    """Mean received rate over the intervals whose middle falls in [start_ns, end_ns),
    each weighted by its length: bits received / time.  (A starved iperf3 reports uneven
    intervals, 0.02 to 1 s, and a plain mean of their rates overstates the throughput.)"""
    chosen = [i for i in intervals if start_ns <= (i.start_ns + i.end_ns) // 2 < end_ns]
    span = sum(i.end_ns - i.start_ns for i in chosen)
    if not chosen or span <= 0:
        return float("nan")
    return sum(i.bits_per_second * (i.end_ns - i.start_ns) for i in chosen) / span / 1e6


def throughput_dip_ms(intervals: Sequence[Interval], down_ns: int, until_ns: int,
                      baseline_s: float = 1.0) -> float:
    """What an iperf3-only user would call the outage: the missing share of the receive rate.

    Baseline = median rate over ``baseline_s`` before ``down_ns``; every interval from
    ``down_ns`` to ``until_ns`` contributes (1 - rate/baseline) x its width. TCP's
    retransmission timer and slow start make this larger than the real outage, and the
    0.1 s intervals make it coarse: it is reported beside the probe to show why.
    """
    before = [i.bits_per_second for i in intervals
              if down_ns - baseline_s * 1e9 <= i.start_ns and i.end_ns <= down_ns]
    if not before:
        return float("nan")
    baseline = statistics.median(before)
    if baseline <= 0:
        return float("nan")
    missing_ns = 0.0
    for i in intervals:
        if i.end_ns <= down_ns or i.start_ns >= until_ns:
            continue
        missing_ns += max(0.0, 1 - i.bits_per_second / baseline) * (i.end_ns - i.start_ns)
    return missing_ns / 1e6


def time_to_recover_ms(intervals: Sequence[Interval], event_ns: int, fraction: float = 0.9,
                       baseline_s: float = 1.0) -> float:
    """From ``event_ns`` until the receive rate is back to ``fraction`` of its baseline.

    Baseline = median rate over ``baseline_s`` before the event. The event's dip is the
    first run of intervals below the threshold that begins within two intervals of the
    event (an event late in an interval leaves that interval nearly full); the rate has
    recovered at the end of that run. 0 if there is no such dip; NaN if the rate never
    recovers or there is no baseline.
    """
    before = [i.bits_per_second for i in intervals
              if event_ns - baseline_s * 1e9 <= i.start_ns and i.end_ns <= event_ns]
    after = [i for i in intervals if i.end_ns > event_ns]
    if not before or not after:
        return float("nan")
    threshold = fraction * statistics.median(before)
    width = after[0].end_ns - after[0].start_ns
    dip = next((k for k, i in enumerate(after) if i.bits_per_second < threshold), None)
    if dip is None or after[dip].start_ns > event_ns + 2 * width:
        return 0.0
    recovered_ns = None
    for interval in after[dip:]:
        if interval.bits_per_second >= threshold:
            return (recovered_ns - event_ns) / 1e6 if recovered_ns else 0.0
        recovered_ns = interval.end_ns
    return float("nan")
