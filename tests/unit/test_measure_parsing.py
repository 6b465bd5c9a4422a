"""The figures computed from raw tool output, on recorded data with known answers."""

import json

import pytest

from harness.errors import LabError
from harness.measure import iperf, outages, probe, stats
from harness.measure.iperf import Interval
from harness.measure.probe import Packet

MS = 1_000_000


def test_throughput_window_takes_intervals_whose_middle_falls_inside():
    ivs = [Interval(i * 100 * MS, (i + 1) * 100 * MS, 1e6 * (i + 1)) for i in range(10)]
    # middles at 50, 150, ... ms; [200 ms, 500 ms) holds the 3rd, 4th and 5th intervals
    assert stats.mean_throughput_mbps(ivs, 200 * MS, 500 * MS) == pytest.approx(4.0)


def test_uneven_intervals_are_weighted_by_their_length():
    # a starved iperf3: a 20 ms interval at 100 Mbit/s, then 980 ms at 10 Mbit/s; what
    # arrived over the second is 11.8 Mbit, not the 55 Mbit/s a plain mean would say
    ivs = [Interval(0, 20 * MS, 100e6), Interval(20 * MS, 1000 * MS, 10e6)]
    assert stats.mean_throughput_mbps(ivs, 0, 1000 * MS) == pytest.approx(11.8)


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


def test_an_interrupted_iperf3_keeps_the_intervals_it_reported_beside_its_error():
    doc = {"intervals": [{"sum": {"start": 0.0, "end": 0.1, "bits_per_second": 8e6}}],
           "error": "interrupt - the client has terminated"}
    intervals, problem = iperf.parse_partial(json.dumps(doc), started_ns=0)
    assert [i.bits_per_second for i in intervals] == [8e6]
    assert problem == "iperf3 reported an error: interrupt - the client has terminated"
    assert iperf.parse_partial("", started_ns=0) == ([], "iperf3 wrote no valid JSON")


def test_irtt_round_trips_keep_send_times_of_lost_packets():
    doc = {"round_trips": [
        {"seqno": 0, "lost": "false", "timestamps": {"client": {
            "send": {"wall": 10}, "receive": {"wall": 20}}}},
        {"seqno": 1, "lost": "true_down", "timestamps": {"client": {
            "send": {"wall": 30}, "receive": {}}}},
    ]}
    got = probe.parse(json.dumps(doc))
    assert got == [Packet(0, 10, 20, "false"), Packet(1, 30, None, "true_down")]


def test_the_loss_derived_gap_uses_the_measured_send_interval_not_the_asked_one():
    # asked for 1 ms, the sender managed one packet every 1.5 ms: 10 lost = 15 ms
    ms = 1_000_000
    trace = [Packet(i, int(i * 1.5 * ms), None if 10 <= i < 20 else int(i * 1.5 * ms) + ms,
                    "true" if 10 <= i < 20 else "false") for i in range(200)]
    analysis = outages.analyse(trace, "round_trip")
    assert analysis.interval_ns == pytest.approx(1.5 * ms)
    assert analysis.loss_gap_ms == pytest.approx(15.0)


def recovery_trace(rates_mbps: list[float]) -> list[Interval]:
    ms = 1_000_000
    return [Interval(k * 100 * ms, (k + 1) * 100 * ms, r * 1e6)
            for k, r in enumerate(rates_mbps)]


def test_recovery_time_runs_to_the_end_of_the_dip_after_the_event():
    # 1 s at 20 Mbit/s, an event at 1.095 s (late in the 11th interval, still full),
    # nothing for 0.3 s, then back: recovered at the end of the last empty interval.
    ivs = recovery_trace([20.0] * 11 + [0.0, 0.0, 0.0] + [20.0] * 5)
    assert stats.time_to_recover_ms(ivs, 1_095_000_000) == pytest.approx(305.0)


def test_recovery_time_is_zero_without_a_dip_and_nan_without_recovery():
    assert stats.time_to_recover_ms(recovery_trace([20.0] * 20), 1_000_000_000) == 0.0
    never = recovery_trace([20.0] * 10 + [0.0] * 5)
    assert stats.time_to_recover_ms(never, 1_000_000_000) != stats.time_to_recover_ms(
        never, 1_000_000_000)  # NaN
