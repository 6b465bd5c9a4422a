"""The figures computed from raw tool output, on recorded data with known answers."""

import json

import pytest

from harness.errors import LabError
from harness.measure import iperf, probe, stats
from harness.measure.iperf import Interval
from harness.measure.probe import Packet

MS = 1_000_000


def packets(n: int, interval_ms: float, lost: set[int]) -> list[Packet]:
    out = []
    for i in range(n):
        sent = int(i * interval_ms * MS)
        out.append(Packet(i, sent, None if i in lost else sent + MS,
                          "true" if i in lost else "false"))
    return out


def test_loss_derived_gap_is_lost_packets_times_the_measured_interval():
    trace = packets(1000, 1.0, lost=set(range(100, 150)))
    assert stats.lost_packets(trace) == 50
    assert stats.loss_derived_gap_ms(trace) == pytest.approx(50.0)


def test_a_trace_without_loss_has_no_gap():
    assert stats.loss_derived_gap_ms(packets(100, 0.5, lost=set())) == 0


def test_the_interval_is_measured_not_assumed():
    # irtt asked for 1 ms but sent every 1.5 ms: the gap must use 1.5 ms.
    trace = packets(200, 1.5, lost=set(range(10, 20)))
    assert stats.send_interval_ns(trace) == pytest.approx(1.5 * MS)
    assert stats.loss_derived_gap_ms(trace) == pytest.approx(15.0)


def test_throughput_window_takes_intervals_whose_middle_falls_inside():
    ivs = [Interval(i * 100 * MS, (i + 1) * 100 * MS, 1e6 * (i + 1)) for i in range(10)]
    # middles at 50, 150, ... ms; [200 ms, 500 ms) holds the 3rd, 4th and 5th intervals
    assert stats.mean_throughput_mbps(ivs, 200 * MS, 500 * MS) == pytest.approx(4.0)


def test_an_empty_throughput_window_is_nan_not_zero():
    ivs = [Interval(0, 100 * MS, 1e6)]
    assert stats.mean_throughput_mbps(ivs, 500 * MS, 600 * MS) != stats.mean_throughput_mbps(
        ivs, 500 * MS, 600 * MS)  # NaN is the one value unequal to itself


def test_iperf3_intervals_are_placed_on_the_wall_clock():
    doc = {"intervals": [{"sum": {"start": 0.0, "end": 0.1, "bits_per_second": 8e6}},
                         {"sum": {"start": 0.1, "end": 0.2, "bits_per_second": 9e6}}]}
    got = iperf.parse(json.dumps(doc), started_ns=5_000 * MS)
    assert got[1] == Interval(5_100 * MS, 5_200 * MS, 9e6)


def test_iperf3_error_field_becomes_a_lab_error():
    doc = {"start": {}, "intervals": [], "error": "unable to connect to server"}
    with pytest.raises(LabError, match="unable to connect to server"):
        iperf.parse(json.dumps(doc), started_ns=0)


def test_iperf3_garbage_is_a_lab_error():
    with pytest.raises(LabError, match="no valid JSON"):
        iperf.parse("iperf3: error - something", started_ns=0)


def test_irtt_round_trips_keep_send_times_of_lost_packets():
    doc = {"round_trips": [
        {"seqno": 0, "lost": "false", "timestamps": {"client": {
            "send": {"wall": 10}, "receive": {"wall": 20}}}},
        {"seqno": 1, "lost": "true_down", "timestamps": {"client": {
            "send": {"wall": 30}, "receive": {}}}},
    ]}
    got = probe.parse(json.dumps(doc))
    assert got == [Packet(0, 10, 20, "false"), Packet(1, 30, None, "true_down")]
