"""Outages per direction from the gap probe, on traces whose answers are known exactly.

Synthetic traces are built in code (1 ms apart unless a test says otherwise, 40 us each
way); the last test captures a real irtt trace on loopback.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from harness import timeouts
from harness.errors import LabError
from harness.measure import outages, probe
from harness.measure.outages import analyse, find_outages, resolve_unknown
from harness.measure.probe import Packet
from harness.measure.sockets import listening

MS = 1_000_000
LEG_NS = 40_000          # one-way delay on either leg
SERVER_NS = 5_000        # server turnaround


def trace(n: int, verdicts: dict[int, str] | None = None, *, interval_ms: float = 1.0,
          stall_ms: dict[int, float] | None = None,
          late_ns: dict[int, tuple[int, int]] | None = None) -> list[Packet]:
    """``n`` probes; ``stall_ms[i]`` delays packet i's send (and all later ones);
    ``late_ns[i] = (up, down)`` adds that much delay on each leg for packet i."""
    verdicts, stall_ms, late_ns = verdicts or {}, stall_ms or {}, late_ns or {}
    out, t = [], 0
    for i in range(n):
        t += int(stall_ms.get(i, 0) * MS)
        lost = verdicts.get(i, "false")
        if lost == "false":
            up, down = late_ns.get(i, (0, 0))
            srv_rx = t + LEG_NS + up
            srv_tx = srv_rx + SERVER_NS
            out.append(Packet(i, t, srv_tx + LEG_NS + down, lost, srv_rx, srv_tx))
        else:  # irtt only learns server stamps from an echo
            out.append(Packet(i, t, None, lost))
        t += int(interval_ms * MS)
    return out


def lose(seqnos: range, verdict: str = "true") -> dict[int, str]:
    return dict.fromkeys(seqnos, verdict)


def test_a_clean_trace_has_no_outage_in_any_direction():
    for direction in outages.DIRECTIONS:
        got = analyse(trace(500), direction)
        assert (got.sent, got.lost, got.loss_gap_ms, got.reordered) == (500, 0, 0.0, 0)
        assert got.outages == (), (direction, got.outages, got.sent)
        assert got.interval_ns == pytest.approx(1 * MS)


def test_one_outage_window_runs_from_last_good_send_to_first_good_send():
    got = analyse(trace(400, lose(range(100, 150))))
    assert got.lost == 50
    assert got.loss_gap_ms == pytest.approx(50.0)
    (o,) = got.outages
    assert (o.first_lost_seq, o.last_lost_seq, o.lost) == (100, 149, 50)
    assert (o.start_ns, o.end_ns) == (99 * MS, 150 * MS)
    assert o.duration_ms == pytest.approx(51.0)     # the window: an upper bound
    assert o.lost_span_ms == pytest.approx(49.0)    # first to last lost send: a lower bound
    # echoes of 99 and 150 came back with the same delay, so arrivals are 51 ms apart too
    assert o.arrival_gap_ms == pytest.approx(51.0)


def test_fail_over_and_fail_back_are_two_outages_with_their_own_windows():
    got = analyse(trace(4000, lose(range(1000, 1040)) | lose(range(3000, 3020))))
    assert len(got.outages) == 2
    over, back = got.outages
    assert (over.start_ns, over.end_ns, over.lost) == (999 * MS, 1040 * MS, 40)
    assert (back.start_ns, back.end_ns, back.lost) == (2999 * MS, 3020 * MS, 20)
    # the loss-derived figure would charge all 60 ms to one event
    assert got.loss_gap_ms == pytest.approx(60.0)
    # the runner's view: the cut at 1000.5 ms owns the first, the restore the second
    assert got.outage_for_event(int(1000.5 * MS), within_ns=50 * MS) is over
    assert got.outage_for_event(int(3000.2 * MS), within_ns=50 * MS) is back
    assert got.outage_for_event(2000 * MS, within_ns=50 * MS) is None


def test_an_outage_starting_just_after_the_event_is_found_within_the_tolerance():
    got = analyse(trace(2000, lose(range(1000, 1040))))
    event = int(997.5 * MS)  # the outage window opens at 999 ms, after the event
    assert got.outage_covering(event) is None
    assert got.first_outage_after(event, within_ns=1 * MS) is None
    assert got.first_outage_after(event, within_ns=2 * MS) is got.outages[0]
    assert got.outage_for_event(event, within_ns=5 * MS) is got.outages[0]


def test_runs_split_by_a_few_delivered_probes_merge_only_when_asked():
    verdicts = lose(range(100, 120)) | lose(range(122, 140))  # 120 and 121 got through
    packets = trace(300, verdicts)
    assert len(find_outages(packets)) == 2
    assert len(find_outages(packets, merge_gap_packets=2)) == 2   # fewer than 2: no
    (merged,) = find_outages(packets, merge_gap_packets=3)
    assert (merged.first_lost_seq, merged.last_lost_seq) == (100, 139)
    assert (merged.lost, merged.delivered_inside) == (38, 2)
    assert (merged.start_ns, merged.end_ns) == (99 * MS, 140 * MS)


def test_a_loss_that_comes_back_briefly_and_resumes_is_one_disruption_joined():
    """A leaf and the VRRP master behind it die in turn: 51 ms lost, 100 ms back, 1 s
    lost.  The failure cost the whole of it, two runs."""
    got = analyse(trace(3000, lose(range(100, 151)) | lose(range(251, 1251))))
    first, second = got.outages
    grown = outages.joined(first, got.outages, return_ns=1000 * MS, min_run_ns=20 * MS)
    assert (grown.first_lost_seq, grown.last_lost_seq, grown.pieces) == (100, 1250, 2)
    assert (grown.start_ns, grown.end_ns) == (first.start_ns, second.end_ns)
    assert (grown.lost, grown.delivered_inside) == (1051, 100)
    assert grown.holds(first) and grown.holds(second) and not first.holds(second)


def test_stray_drops_after_an_outage_count_in_only_when_a_real_run_follows():
    strays = lose(range(300, 301)) | lose(range(500, 501)) | lose(range(700, 705))
    alone = analyse(trace(3000, lose(range(100, 151)) | strays))
    grown = outages.joined(alone.outages[0], alone.outages, 1000 * MS, 20 * MS)
    assert grown == alone.outages[0]  # a saturated link's drops do not stretch it
    then = analyse(trace(3000, lose(range(100, 151)) | strays | lose(range(900, 930))))
    grown = outages.joined(then.outages[0], then.outages, 1000 * MS, 20 * MS)
    assert (grown.last_lost_seq, grown.lost, grown.pieces) == (929, 51 + 7 + 30, 5)


@pytest.mark.parametrize("why", ["back for a second", "after the repair"])
def test_a_later_outage_stays_its_own(why):
    later = range(1152, 1300) if why == "back for a second" else range(200, 300)
    got = analyse(trace(3000, lose(range(100, 151)) | lose(later)))
    until = 180 * MS if why == "after the repair" else None
    assert outages.joined(got.outages[0], got.outages, 1000 * MS, 20 * MS,
                          until_ns=until) == got.outages[0]


def test_reordering_counts_every_packet_arriving_below_the_highest_seqno_seen():
    # Packet 5 is fast on the down leg and overtakes 1-4: RFC 4737 counts 1, 2, 3 and 4
    # (irtt's late_packets, comparing with the previous arrival only, would say 1).
    packets = trace(10, late_ns={i: (0, 5 * MS) for i in (1, 2, 3, 4)})
    assert outages.count_reordered(packets, "down") == 4
    assert outages.count_reordered(packets, "round_trip") == 4
    assert outages.count_reordered(packets, "up") == 0   # the server saw them in order


def test_reordering_on_the_up_leg_is_seen_at_the_server():
    packets = trace(10, late_ns={3: (int(2.5 * MS), 0)})  # 3 reaches the server after 5
    assert outages.count_reordered(packets, "up") == 1
    assert analyse(packets, "up").reordered == 1


def test_a_send_timer_stall_inside_the_outage_hides_from_the_loss_count_not_the_window():
    # 10 probes lost, but the sender stalled 40 ms between 104 and 105
    got = analyse(trace(300, lose(range(100, 110)), stall_ms={105: 40}))
    assert got.interval_ns == pytest.approx(1 * MS)   # the median ignores one stall
    assert got.loss_gap_ms == pytest.approx(10.0)     # understates
    (o,) = got.outages
    assert o.duration_ms == pytest.approx(51.0)       # 99 -> 110: 11 slots + 40 ms stall


def test_a_scheduled_sender_keeps_its_interval_through_a_catch_up_burst():
    """redlab-probe sends late slots at once: 600 ms descheduled, then 600 sends in a
    burst. Most spacings are then near zero and their median says nothing (seen in CI:
    a 1000 pps probe read as 2393 pps); the schedule's interval is the sender's."""
    packets = trace(1000, lose(range(900, 910)))
    burst = [Packet(p.seqno, 800 * MS + (p.seqno - 200) * 1000 if 200 <= p.seqno < 800
                    else p.sent_ns, p.received_ns, p.lost) for p in packets]
    assert analyse(burst).interval_ns < 0.1 * MS   # the median spacing: a burst's
    record = probe.ProbeRecord(packets=burst, asked_interval_ns=MS, scheduled=True)
    got = outages.analyse_record(record)
    assert got.interval_ns == MS and got.loss_gap_ms == pytest.approx(10.0)


def test_loss_at_the_start_or_end_of_the_trace_leaves_that_side_open():
    got = analyse(trace(100, lose(range(0, 5)) | lose(range(95, 100))))
    first, last = got.outages
    assert first.open_start and not first.open_end
    assert (first.start_ns, first.end_ns, first.duration_ms) == (None, 5 * MS, None)
    assert first.lost_span_ms == pytest.approx(4.0)
    assert last.open_end and not last.open_start
    assert (last.start_ns, last.end_ns) == (94 * MS, None)
    # an open side stretches to the edge of time for the event lookup
    assert got.outage_covering(-1) is first
    assert got.outage_covering(10**18) is last


def test_a_trace_lost_from_end_to_end_is_one_outage_open_on_both_sides():
    (o,) = find_outages(trace(50, lose(range(50))))
    assert o.open_start and o.open_end and o.lost == 50 and o.arrival_gap_ms is None


def test_each_verdict_counts_on_its_own_leg_and_unknown_counts_as_up():
    verdicts = lose(range(10, 13), "true_up") | lose(range(20, 22), "true_down") | {30: "true"}
    packets = trace(50, verdicts)
    up = analyse(packets, "up")
    down = analyse(packets, "down")
    rt = analyse(packets, "round_trip")
    # up: 3 true_up + the unplaced "true" (alone in its run, so nothing to infer from)
    assert (up.sent, up.lost, up.unknown_lost) == (50, 4, 1)
    assert [(o.first_lost_seq, o.last_lost_seq) for o in up.outages] == [(10, 12), (30, 30)]
    # down: only what the server answered was sent down
    assert (down.sent, down.lost) == (46, 2)
    assert [(o.first_lost_seq, o.last_lost_seq) for o in down.outages] == [(20, 21)]
    # the down window runs between packets that crossed the down leg
    assert (down.outages[0].start_ns, down.outages[0].end_ns) == (19 * MS, 22 * MS)
    assert (rt.sent, rt.lost, len(rt.outages)) == (50, 6, 3)


def test_a_long_downstream_outage_is_not_split_into_a_phantom_upstream_one():
    # irtt places only the last 63 losses of a long run (its 64-seqno window); the rest
    # say "true".  This is what a 120-packet downstream outage looks like.
    verdicts = lose(range(100, 157), "true") | lose(range(157, 220), "true_down")
    packets = trace(400, verdicts)
    raw_up = analyse(packets, "up", infer_unknown=False)
    raw_down = analyse(packets, "down", infer_unknown=False)
    assert (raw_up.lost, raw_down.lost) == (57, 63)      # taken literally: wrong
    up, down = analyse(packets, "up"), analyse(packets, "down")
    assert (up.lost, up.outages) == (0, ())
    assert (down.sent, down.lost, down.unknown_lost) == (400, 120, 0)
    (o,) = down.outages
    assert (o.first_lost_seq, o.last_lost_seq, o.start_ns, o.end_ns) == (
        100, 219, 99 * MS, 220 * MS)


def test_a_run_lost_on_both_legs_keeps_its_unknown_verdicts():
    verdicts = lose(range(10, 20), "true") | {20: "true_up", 21: "true_down"}
    resolved = resolve_unknown(trace(40, verdicts))
    assert [p.lost for p in resolved[10:22]] == ["true"] * 10 + ["true_up", "true_down"]


def test_loss_derived_gap_per_direction():
    packets = trace(100, lose(range(10, 15), "true_up") | lose(range(50, 52), "true_down"))
    assert outages.loss_derived_gap_ms(packets, "up") == pytest.approx(5.0)
    assert outages.loss_derived_gap_ms(packets, "down") == pytest.approx(2.0)
    assert outages.loss_derived_gap_ms(packets) == pytest.approx(7.0)


def test_an_unknown_direction_name_is_refused():
    with pytest.raises(ValueError, match="direction"):
        analyse(trace(10), "sideways")  # type: ignore[arg-type]


def _rt(seqno: int, lost: str | bool, send: int, server: tuple[int, int] | None,
        receive: int | None) -> dict:
    srv = ({"receive": {"wall": server[0], "monotonic": 1},
            "send": {"wall": server[1], "monotonic": 2}} if server else
           {"receive": {}, "send": {}})
    return {"seqno": seqno, "lost": lost, "timestamps": {
        "client": {"send": {"wall": send, "monotonic": 3},
                   "receive": {"wall": receive, "monotonic": 4} if receive else {}},
        "server": srv}, "delay": {}, "ipdv": {}}


def test_parse_doc_keeps_every_stamp_and_irtt_summary_counts():
    doc = {"config": {"params": {"interval": 1_000_000}},
           "stats": {"duplicates": 2, "late_packets": 1, "packets_sent": 3,
                     "packets_received": 4, "server_packets_received": 3, "timer_misses": 7},
           "round_trips": [_rt(0, "false", 100, (140, 145), 185),
                           _rt(1, "true_up", 200, None, None),
                           _rt(2, False, 300, (340, 345), 385)]}
    rec = probe.parse_doc(json.dumps(doc))
    assert rec.packets == [Packet(0, 100, 185, "false", 140, 145),
                           Packet(1, 200, None, "true_up"),
                           Packet(2, 300, 385, "false", 340, 345)]
    assert (rec.duplicates, rec.late_packets, rec.packets_sent, rec.packets_received,
            rec.server_packets_received, rec.timer_misses, rec.asked_interval_ns) == (
        2, 1, 3, 4, 3, 7, 1_000_000)
    assert probe.parse(json.dumps(doc)) == rec.packets
    assert outages.analyse_record(rec, "round_trip").duplicates == 2
    assert outages.analyse_record(rec, "up").duplicates is None  # irtt cannot tell the leg


def test_an_unknown_lost_verdict_is_a_lab_error_not_a_silent_guess():
    doc = {"round_trips": [_rt(0, "maybe", 100, None, None)]}
    with pytest.raises(LabError, match="maybe"):
        probe.parse_doc(json.dumps(doc))


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(shutil.which("irtt") is None, reason="irtt is not installed")
def test_a_real_irtt_trace_on_loopback_has_no_outage(tmp_path: Path):
    port = _free_udp_port()
    out = tmp_path / "irtt.json"
    server = subprocess.Popen(["irtt", "server", "-b", f"127.0.0.1:{port}", "-i", "0",
                               "-d", "0"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        timeouts.wait_for("irtt server listening", lambda: listening(server.pid, port, "udp"),
                          timeouts.IPERF_SERVER_READY)
        subprocess.run(["irtt", "client", "-i", "1ms", "-d", "500ms", "-Q", "-o", str(out),
                        f"127.0.0.1:{port}"], check=True, capture_output=True, timeout=30)
    finally:
        server.terminate()
        try:
            server.wait(timeout=timeouts.PROCESS_EXIT)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    rec = probe.parse_doc(out.read_text())
    assert rec.packets_sent == len(rec.packets)
    # irtt skips late timer slots but never seqnos: the windows rely on that
    assert [p.seqno for p in rec.packets] == list(range(len(rec.packets)))
    assert all(p.server_received_ns is not None for p in rec.packets if p.lost == "false")
    for direction in outages.DIRECTIONS:
        got = outages.analyse_record(rec, direction)
        assert got.sent > 20  # irtt skips late timer slots under load: few is fine
        assert got.outages == (), (direction, got.outages, got.sent)
