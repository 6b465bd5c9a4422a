"""Outages seen by the gap probe, per direction, in RFC 6413 terms: pure functions, no lab.

A loss-derived gap (lost packets x send interval) assumes one contiguous outage and a steady
send timer.  A fail-over and a later fail-back are two outages, and a timer that stalls while
the path is down hides time from the count, so every lost run is kept with its own window:
from the send of the last packet delivered before it to the send of the first packet
delivered after it.  Windows are measured on send times, so path delay does not enter them;
the arrival-side times are kept beside them for plots.

Directions: "up" is client -> server, "down" is server -> client, "round_trip" is both legs.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from harness.measure.probe import Packet, ProbeRecord
from harness.measure.stats import send_interval_ns

Direction = Literal["up", "down", "round_trip"]
DIRECTIONS: tuple[Direction, ...] = ("up", "down", "round_trip")

_LOST_UP = frozenset({"true", "true_up"})      # "true": direction unknown, counted as up
_ANSWERED = frozenset({"false", "true_down"})  # the server got it and replied


def sent_in(p: Packet, direction: Direction) -> bool:
    """Did this packet travel the direction's leg at all?

    Down only carries what the server answered; a packet lost upstream, or lost in a way
    irtt could not place ("true"), never entered the down leg.
    """
    return p.lost in _ANSWERED if direction == "down" else True


def delivered_in(p: Packet, direction: Direction) -> bool:
    """Did this packet cross the direction's leg?

    Up counts a packet as delivered if the server received it, so an irtt "true" (lost,
    direction unknown) counts as lost up: irtt could not show the server got it.
    """
    if direction == "up":
        return p.lost not in _LOST_UP
    return p.lost == "false"


def arrival_ns(p: Packet, direction: Direction) -> int | None:
    """When the packet reached the far end of the leg, if anyone recorded it.

    The server's stamps travel in the echo, so an up arrival is unknown when the echo was
    lost even though the server got the packet.
    """
    if direction == "up":
        return p.server_received_ns
    return p.received_ns


def resolve_unknown(packets: Iterable[Packet]) -> list[Packet]:
    """Give irtt's direction-unknown losses ("true") the direction of the run they sit in.

    irtt places a loss only through the server's received window, 64 seqnos carried in a
    later echo; in an outage longer than that only the last 63 losses get "true_up" or
    "true_down" and the earlier ones stay "true".  Taken literally, a 200 ms downstream
    outage probed every 1 ms shows as a 137-packet upstream outage followed by a 63-packet
    downstream one.  When every placed loss of a maximal lost run (seqno order) agrees on
    a direction, its "true" losses take that direction; mixed runs, and runs with no placed
    loss (an outage at the very end of the trace), are left as "true".  The assumption is
    that one unbroken run of losses was lost on one leg.
    """
    ordered = sorted(packets, key=lambda p: p.seqno)
    out: list[Packet] = []
    for is_lost, group in itertools.groupby(ordered, key=lambda p: p.lost != "false"):
        run = list(group)
        placed = {p.lost for p in run} - {"true"}
        if is_lost and len(placed) == 1:
            verdict = placed.pop()
            run = [replace(p, lost=verdict) if p.lost == "true" else p for p in run]
        out.extend(run)
    return out


@dataclass(frozen=True)
class Outage:
    """A maximal run of lost packets on one leg (RFC 6413 time-of-packet-loss view).

    ``start_ns`` is the send of the last packet delivered before the run and ``end_ns`` the
    send of the first delivered after it; None where the run touches the start or end of the
    trace (an open side).  The true outage lies between ``lost_span_ms`` (first to last lost
    send, a lower bound) and ``duration_ms`` (the window, an upper bound).
    """

    first_lost_seq: int
    last_lost_seq: int
    lost: int
    start_ns: int | None
    end_ns: int | None
    first_lost_sent_ns: int
    last_lost_sent_ns: int
    last_arrival_before_ns: int | None = None  # arrival-side view, when it was recorded
    first_arrival_after_ns: int | None = None
    delivered_inside: int = 0                  # packets let through inside a merged outage
    pieces: int = 1                            # runs of loss merged or joined into it

    @property
    def open_start(self) -> bool:
        return self.start_ns is None

    @property
    def open_end(self) -> bool:
        return self.end_ns is None

    @property
    def duration_ms(self) -> float | None:
        """The outage window; None if a side is open (use ``lost_span_ms`` as a floor)."""
        if self.start_ns is None or self.end_ns is None:
            return None
        return (self.end_ns - self.start_ns) / 1e6

    @property
    def lost_span_ms(self) -> float:
        """First to last lost send: a floor for the outage."""
        return (self.last_lost_sent_ns - self.first_lost_sent_ns) / 1e6

    @property
    def estimate_ms(self) -> float | None:
        """Best single figure: each edge at the middle of its uncertainty interval.

        The outage began somewhere between the last good send and the first lost one, and
        ended between the last lost send and the first good one. The window (upper bound)
        overshoots by about one send interval on average, the lost span (floor)
        undershoots by as much; the midpoints are unbiased, within half an interval per
        edge when the sender keeps its schedule. None if a side is open.
        """
        if self.start_ns is None or self.end_ns is None:
            return None
        begin = (self.start_ns + self.first_lost_sent_ns) / 2
        end = (self.last_lost_sent_ns + self.end_ns) / 2
        return (end - begin) / 1e6

    @property
    def arrival_gap_ms(self) -> float | None:
        """Arrival of the last good packet before to the first good after, at the far end."""
        if self.last_arrival_before_ns is None or self.first_arrival_after_ns is None:
            return None
        return (self.first_arrival_after_ns - self.last_arrival_before_ns) / 1e6

    @property
    def begin_ns(self) -> int:
        """Where the outage starts on the time line, its first lost send if that side is open."""
        return self.first_lost_sent_ns if self.start_ns is None else self.start_ns

    def holds(self, other: Outage) -> bool:
        """Whether ``other`` is this outage or a run merged or joined into it."""
        return (self.first_lost_seq <= other.first_lost_seq
                and other.last_lost_seq <= self.last_lost_seq)

    def covers(self, t_ns: int) -> bool:
        after_start = self.start_ns is None or self.start_ns <= t_ns
        before_end = self.end_ns is None or t_ns <= self.end_ns
        return after_start and before_end


def find_outages(packets: Sequence[Packet], direction: Direction = "round_trip",
                 merge_gap_packets: int = 0) -> list[Outage]:
    """Maximal runs of lost packets on the leg, in seqno order.

    Runs separated by fewer than ``merge_gap_packets`` delivered packets become one outage.
    A flapping member, or packets already queued on the failed path that drain while it is
    going down, can let one or two probes through in the middle of one event; a report that
    wants one outage per event merges them.  The default (0) merges nothing, because a
    fail-back soon after a fail-over is a second outage that merging would hide.
    """
    seq = sorted((p for p in packets if sent_in(p, direction)), key=lambda p: p.seqno)
    runs: list[tuple[int, int, int]] = []  # (first, last) index into seq, runs merged
    i = 0
    while i < len(seq):
        if delivered_in(seq[i], direction):
            i += 1
            continue
        j = i
        while j + 1 < len(seq) and not delivered_in(seq[j + 1], direction):
            j += 1
        if runs and i - runs[-1][1] - 1 < merge_gap_packets:
            runs[-1] = (runs[-1][0], j, runs[-1][2] + 1)
        else:
            runs.append((i, j, 1))
        i = j + 1
    return [replace(_outage(seq, a, b, direction), pieces=n) for a, b, n in runs]


def joined(first: Outage, outages: Iterable[Outage], return_ns: int, min_run_ns: int,
           until_ns: int | None = None) -> Outage:
    """``first`` grown by the outages after it that are the same disruption: each that
    lasts ``min_run_ns`` or more and begins less than ``return_ns`` after the grown outage
    ends (the probe was back for less than that), and before ``until_ns`` (a repair: what
    follows it is the repair's).  Shorter runs inside are counted in, not joined on their
    own, so a saturated link's stray drops do not stretch an outage.

    A failure that takes effect in steps loses, briefly gets traffic through, and loses
    again: a dying leaf's queued frames drain before the path goes dark, a leaf and the
    VRRP master behind it die in turn, an MC-LAG secondary reverts its system id after the
    peer timeout.  Its cost runs from the first loss to the end of the last such run
    (RFC 6412's full convergence: until forwarding is back and stays back).
    """
    grown, skipped = first, []
    for o in sorted((o for o in outages if o.first_lost_seq > first.last_lost_seq),
                    key=lambda o: o.first_lost_seq):
        if (grown.end_ns is None or o.start_ns is None or o.start_ns - grown.end_ns >= return_ns
                or (until_ns is not None and o.first_lost_sent_ns >= until_ns)):
            break
        if o.end_ns is not None and o.end_ns - o.start_ns < min_run_ns:
            skipped.append(o)
            continue
        for piece in (*skipped, o):
            between = piece.first_lost_seq - grown.last_lost_seq - 1
            grown = replace(grown, last_lost_seq=piece.last_lost_seq, lost=grown.lost + piece.lost,
                            end_ns=piece.end_ns, last_lost_sent_ns=piece.last_lost_sent_ns,
                            first_arrival_after_ns=piece.first_arrival_after_ns,
                            delivered_inside=(grown.delivered_inside + between
                                              + piece.delivered_inside),
                            pieces=grown.pieces + piece.pieces)
        skipped = []
    return grown


def _outage(seq: Sequence[Packet], a: int, b: int, direction: Direction) -> Outage:
    before = seq[a - 1] if a > 0 else None  # runs are maximal: both neighbours delivered
    after = seq[b + 1] if b + 1 < len(seq) else None
    lost = [p for p in seq[a:b + 1] if not delivered_in(p, direction)]
    return Outage(
        first_lost_seq=lost[0].seqno,
        last_lost_seq=lost[-1].seqno,
        lost=len(lost),
        start_ns=before.sent_ns if before else None,
        end_ns=after.sent_ns if after else None,
        first_lost_sent_ns=lost[0].sent_ns,
        last_lost_sent_ns=lost[-1].sent_ns,
        last_arrival_before_ns=arrival_ns(before, direction) if before else None,
        first_arrival_after_ns=arrival_ns(after, direction) if after else None,
        delivered_inside=(b - a + 1) - len(lost),
    )


def count_reordered(packets: Iterable[Packet], direction: Direction = "round_trip") -> int:
    """Packets that arrived after a higher seqno had (RFC 4737 reordered count).

    Only packets whose arrival was recorded take part (for up: those whose echo came back,
    since the server's stamps ride in it).  irtt's own ``late_packets`` compares with the
    previous arrival instead of the highest so far, so it can be lower.
    """
    arrived = sorted((t, p.seqno) for p in packets
                     if delivered_in(p, direction)
                     and (t := arrival_ns(p, direction)) is not None)
    reordered, highest = 0, -1
    for _, seqno in arrived:
        if seqno < highest:
            reordered += 1
        else:
            highest = seqno
    return reordered


def loss_derived_gap_ms(packets: Sequence[Packet], direction: Direction = "round_trip",
                        interval_ns: float | None = None) -> float:
    """Lost packets x the measured send interval (RFC 6413 loss-derived method).

    Assumes one outage and a steady timer; see find_outages for what it misses.
    """
    if interval_ns is None:
        interval_ns = send_interval_ns(packets)
    lost = sum(1 for p in packets if sent_in(p, direction) and not delivered_in(p, direction))
    return lost * interval_ns / 1e6


@dataclass(frozen=True)
class ProbeAnalysis:
    direction: Direction
    sent: int
    lost: int
    interval_ns: float           # the schedule's, or irtt's median send spacing
    loss_gap_ms: float
    outages: tuple[Outage, ...]
    reordered: int
    unknown_lost: int = 0        # "true" verdicts left after resolving, counted per the rules
    duplicates: int | None = None  # irtt's, round trip only: it cannot tell the leg

    def outage_covering(self, t_ns: int) -> Outage | None:
        """The outage whose window contains ``t_ns``."""
        return next((o for o in self.outages if o.covers(t_ns)), None)

    def first_outage_after(self, t_ns: int, within_ns: int) -> Outage | None:
        """The first outage beginning in [t_ns, t_ns + within_ns]."""
        return next((o for o in self.outages if t_ns <= o.begin_ns <= t_ns + within_ns), None)

    def worst_outage_between(self, t_ns: int, until_ns: int,
                             besides: Outage | None = None) -> Outage | None:
        """The outage that lost most among those covering ``t_ns`` or beginning before
        ``until_ns`` (``besides`` and the runs joined into it left out): what a repair
        cost, however late its consequences came (a rebooted switch rejoins seconds after
        its power)."""
        found = [o for o in self.outages if not (besides and besides.holds(o))
                 and (o.covers(t_ns) or t_ns <= o.begin_ns <= until_ns)]
        return max(found, key=lambda o: o.lost, default=None)

    def outage_for_event(self, t_ns: int, within_ns: int) -> Outage | None:
        """The outage a failure (or repair) injected at ``t_ns`` caused, if any.

        Usually the window covers the event, as the last good packet left before it; a
        failure that takes effect late (a timer, a daemon) starts its outage just after.
        """
        return self.outage_covering(t_ns) or self.first_outage_after(t_ns, within_ns)


def analyse(packets: Sequence[Packet], direction: Direction = "round_trip", *,
            merge_gap_packets: int = 0, infer_unknown: bool = True,
            duplicates: int | None = None, interval_ns: float | None = None
            ) -> ProbeAnalysis:
    """Everything the probe says about one leg.

    With ``infer_unknown`` irtt's "true" losses first take their run's direction
    (resolve_unknown); without it, or where a run is mixed, "true" counts as lost up and
    is not sent down.  The interval is the sender's schedule when it keeps one
    (``interval_ns``), else measured on the whole trace.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, not {direction!r}")
    interval = interval_ns if interval_ns is not None else send_interval_ns(packets)
    trace = resolve_unknown(packets) if infer_unknown else sorted(packets, key=lambda p: p.seqno)
    sent = [p for p in trace if sent_in(p, direction)]
    lost = sum(1 for p in sent if not delivered_in(p, direction))
    return ProbeAnalysis(
        direction=direction,
        sent=len(sent),
        lost=lost,
        interval_ns=interval,
        loss_gap_ms=lost * interval / 1e6,
        outages=tuple(find_outages(trace, direction, merge_gap_packets)),
        reordered=count_reordered(trace, direction),
        unknown_lost=sum(1 for p in sent if p.lost == "true"),
        duplicates=duplicates if direction == "round_trip" else None,
    )


def analyse_record(record: ProbeRecord, direction: Direction = "round_trip", *,
                   merge_gap_packets: int = 0, infer_unknown: bool = True) -> ProbeAnalysis:
    """analyse() on a parsed probe run, carrying its duplicate count on the round trip,
    and the interval it was asked for when it keeps a schedule (redlab-probe)."""
    scheduled = record.asked_interval_ns if record.scheduled else None
    return analyse(record.packets, direction, merge_gap_packets=merge_gap_packets,
                   interval_ns=scheduled,
                   infer_unknown=infer_unknown, duplicates=record.duplicates)
