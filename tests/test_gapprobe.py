"""redlab-probe, the C gap probe: a constant-rate schedule on loopback, known outages on a lab.

Loopback runs need only a C compiler; the outage runs build the `path` topology (root).
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import socket
import statistics
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import harness.journal
from harness import timeouts
from harness.inject.link import LinkCut
from harness.journal import Journal
from harness.measure import gapprobe, outages
from harness.measure.probe import Packet
from harness.measure.sockets import listening
from harness.naming import new_run_id
from harness.topology.build import Lab
from harness.topology.loader import build_topology

needs_cc = pytest.mark.skipif(shutil.which("cc") is None,
                              reason="no C compiler: apt-get install gcc libc6-dev")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")


@pytest.fixture(scope="module")
def binary(tmp_path_factory) -> Path:
    if shutil.which("cc") is None:
        pytest.skip("no C compiler: apt-get install gcc libc6-dev")
    return gapprobe.build(tmp_path_factory.mktemp("probe"))


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the server writes its log then), SIGKILL if it does not go."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeouts.PROCESS_EXIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def pct(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@pytest.fixture
def loopback_server(binary, tmp_path) -> Iterator[tuple[int, Path, subprocess.Popen[bytes]]]:
    port, log = free_udp_port(), tmp_path / "server.csv"
    proc = subprocess.Popen(gapprobe.server_argv(binary, "127.0.0.1", port, log),
                            stderr=subprocess.PIPE)
    try:
        timeouts.wait_for("redlab-probe server listening",
                          lambda: listening(proc.pid, port, "udp"), timeouts.PROCESS_EXIT)
        yield port, log, proc
    finally:
        stop(proc)


@pytest.fixture
def cpu_hogs(request) -> Iterator[None]:
    """With ``load`` set, one busy loop per CPU for the length of the test."""
    hogs = [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL)
            for _ in range(os.cpu_count() or 1)] if request.param else []
    try:
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


@pytest.mark.parametrize(("rate_pps", "rt", "cpu_hogs"), [
    (10_000, False, False),
    (1_000, False, False),
    # What --rt is for: every CPU busy.  Without it CFS makes the sender ~4 ms late at p99.
    pytest.param(10_000, True, True, marks=needs_root, id="10000-rt-every-cpu-busy"),
], indirect=["cpu_hogs"])
def test_constant_rate_on_loopback(binary, loopback_server, tmp_path, rate_pps, rt, cpu_hogs):
    port, server_log, server = loopback_server
    interval, duration = 1_000_000_000 // rate_pps, 1_000_000_000
    client_log = tmp_path / "client.csv"
    done = subprocess.run(gapprobe.client_argv(binary, "127.0.0.1", port, interval, duration,
                                               client_log, rt=rt),
                          capture_output=True, text=True, timeout=10, check=False)
    assert "warning" not in done.stderr
    assert done.returncode == 0, done.stderr
    stop(server)
    assert server.returncode == 0, server.stderr.read() if server.stderr else ""

    packets = gapprobe.parse(client_log, server_log)
    n = duration // interval
    assert sorted(p.seqno for p in packets) == list(range(n))
    assert gapprobe.send_errors(client_log) == {}
    assert gapprobe.duplicates(client_log) == 0

    sends = [p.sent_ns for p in sorted(packets, key=lambda p: p.seqno)]
    spacing = [b - a for a, b in zip(sends, sends[1:], strict=False)]
    late = gapprobe.lateness_ns(client_log)
    rtts = [p.received_ns - p.sent_ns for p in packets if p.received_ns is not None]
    label = f"{rate_pps} pps{' --rt, every CPU busy' if rt else ''}"
    print(f"\n{label}: spacing p50 {pct(spacing, 0.5)} ns p99 {pct(spacing, 0.99)} ns"
          f" max {max(spacing)} ns; lateness p50 {pct(late, 0.5)} ns p99 {pct(late, 0.99)} ns"
          f" max {max(late)} ns; rtt p50 {pct(rtts, 0.5)} ns p99 {pct(rtts, 0.99)} ns;"
          f" span {(sends[-1] - sends[0]) / 1e6:.3f} ms")
    assert abs(statistics.median(spacing) - interval) <= 0.05 * interval
    # The schedule is absolute: each send is its due time plus its logged lateness, and
    # the due times span exactly (n - 1) intervals (a late send is never a skipped slot).
    by_seq = sorted(packets, key=lambda p: p.seqno)
    due_span = (by_seq[-1].sent_ns - late[-1]) - (by_seq[0].sent_ns - late[0])
    assert abs(due_span - (n - 1) * interval) < 1_000_000
    # Wake-up lateness is printed above, not asserted: without --rt CFS may run another
    # task first (1-16 ms seen on this shared machine); with it the sender preempts every
    # ordinary task (tens of microseconds when this VM has its CPUs), but nothing inside
    # the VM helps when the hypervisor takes the CPU away (p99 10.8 ms seen once, with
    # --rt applied). The figures belong to `redlab calibrate`, as medians.

    assert all(p.lost == "false" for p in packets)
    for p in packets:
        assert p.received_ns is not None and p.server_received_ns is not None
        assert p.server_sent_ns is not None
        assert p.sent_ns < p.server_received_ns <= p.server_sent_ns < p.received_ns


@needs_root
def test_send_errors_do_not_stop_the_client(binary, tmp_path):
    """In a fresh namespace lo is down: every send fails (ENETUNREACH), irtt would exit."""
    client_log = tmp_path / "client.csv"
    done = subprocess.run(["unshare", "-n", *gapprobe.client_argv(
        binary, "127.0.0.1", free_udp_port(), 1_000_000, 100_000_000, client_log)],
        capture_output=True, text=True, timeout=10, check=False)
    assert done.returncode == 0, done.stderr
    assert "send errors 100" in done.stderr
    packets = gapprobe.parse(client_log, None)
    assert [p.seqno for p in packets] == list(range(100))
    assert all(p.lost == "true" for p in packets)
    assert gapprobe.send_errors(client_log) == dict.fromkeys(range(100), errno.ENETUNREACH)
    sends = [p.sent_ns for p in packets]
    assert abs(statistics.median(b - a for a, b in zip(sends, sends[1:], strict=False))
               - 1_000_000) < 50_000


def test_client_ignores_a_missing_server(binary, tmp_path):
    client_log = tmp_path / "client.csv"
    done = subprocess.run(gapprobe.client_argv(binary, "127.0.0.1", free_udp_port(),
                                               1_000_000, 100_000_000, client_log),
                          capture_output=True, text=True, timeout=10, check=False)
    assert done.returncode == 0, done.stderr
    packets = gapprobe.parse(client_log, None)
    assert [p.seqno for p in packets] == list(range(100))
    assert all(p.lost == "true" for p in packets)


def test_parse_places_losses_from_the_server_log(tmp_path):
    client, server = tmp_path / "c.csv", tmp_path / "s.csv"
    client.write_text("seq,sent_ns,send_errno,late_ns,server_recv_ns,server_send_ns,"
                      "client_recv_ns,dup_count\n"
                      "0,100,0,5,150,160,200,1\n"
                      "1,300,0,5,,,,0\n"
                      "2,500,0,5,,,,0\n"
                      "3,700,101,5,,,,0\n")
    server.write_text("seq,client_send_ns,server_recv_ns,server_send_ns\n"
                      "0,100,150,160\n0,100,151,161\n1,300,350,360\n")
    assert gapprobe.parse(client, server) == [
        Packet(0, 100, 200, "false", 150, 160),
        Packet(1, 300, None, "true_down", 350, 360),
        Packet(2, 500, None, "true_up"),
        Packet(3, 700, None, "true_up"),
    ]
    assert gapprobe.send_errors(client) == {3: 101}
    assert gapprobe.duplicates(client) == 1


def test_build_names_the_package_when_cc_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(gapprobe.shutil, "which", lambda _: None)
    with pytest.raises(gapprobe.RedLabError, match="cc") as err:
        gapprobe.build(tmp_path)
    assert "apt-get install gcc libc6-dev" in str(err.value)


@pytest.mark.lab
@needs_root
@needs_cc
def test_known_outages_on_a_path(binary, tmp_path, monkeypatch):
    """Cut srv's cable (switch end) for 100 ms and for 20 ms while probing at 2,000 pps."""
    monkeypatch.setattr(harness.journal, "JOURNAL_DIR", tmp_path / "journal")
    topo, _ = build_topology("path", {})
    run_id = new_run_id()
    interval, duration = 500_000, 2_000_000_000
    port = 40_000 + os.getpid() % 20_000
    server_log, client_log = tmp_path / "server.csv", tmp_path / "client.csv"
    cuts: list[tuple[int, int]] = []
    calls: list[tuple[int, int]] = []  # length of each cut's down and up netlink call
    with Journal(run_id) as journal, Lab(topo, run_id, journal) as lab:
        server = lab.popen("srv", gapprobe.server_argv(binary, "198.51.100.2", port,
                                                       server_log))
        try:
            timeouts.wait_for("redlab-probe server listening",
                              lambda: listening(server.pid, port, "udp"),
                              timeouts.PROCESS_EXIT)
            client = lab.popen("cli", gapprobe.client_argv(binary, "198.51.100.2", port,
                                                           interval, duration, client_log))
            try:
                start = time.time_ns()
                for at_ms, length_ms in ((400, 100), (1200, 20)):
                    timeouts.sleep_until(start + at_ms * 1_000_000)
                    cut = LinkCut(lab, "srv", "eth0", "far")
                    down = cut.apply()
                    down_call = cut.call_ns
                    timeouts.sleep_until(down + length_ms * 1_000_000)
                    cuts.append((down, cut.restore()))
                    calls.append((down_call, cut.call_ns))
                client.wait(duration / 1e9 + 5)
                assert client.returncode == 0, client.stderr.read() if client.stderr else ""
            finally:
                stop(client)
        finally:
            stop(server)
        assert server.returncode == 0

    packets = gapprobe.parse(client_log, server_log)
    assert sorted(p.seqno for p in packets) == list(range(duration // interval))
    found = outages.analyse(packets, "round_trip").outages
    injected = [(up - down) / 1e6 for down, up in cuts]
    measured = [o.estimate_ms for o in found]
    verdicts = [sorted({p.lost for p in packets
                        if o.first_lost_seq <= p.seqno <= o.last_lost_seq}) for o in found]
    print(f"\ninjected {injected} ms, measured {measured} ms, verdicts {verdicts}")
    assert len(found) == len(cuts)
    # Causality, not speed (accuracy figures are `redlab calibrate`'s, as medians): the
    # last echo before each outage was sent before the cut took effect, the first after
    # it was sent after the link came back. A cut's time is the middle of its netlink
    # call, so the kernel's moment lies within half the call of it.
    for (down, up), (down_call, up_call), outage in zip(cuts, calls, found, strict=True):
        assert outage.start_ns is not None and outage.end_ns is not None
        assert outage.start_ns <= down + down_call // 2 + 500_000
        assert outage.end_ns >= up - up_call // 2 - 500_000
        assert outage.estimate_ms is not None
        assert outage.lost_span_ms <= outage.estimate_ms <= outage.duration_ms
    # The switch end of srv's cable is down: requests die at the bridge, so losses are on
    # the way up (the server never logged them). A reply dies instead only if its request
    # reached the server while the cable was whole: before the cut (the server answered
    # after it: one echo in flight, or several when a loaded machine runs the server
    # late; CI once lost 6) or after the repair, before srv's kernel restarted its NIC's
    # queue. No request reaches the server while the cable is out.
    edges = []
    for (down, up), (down_call, up_call), outage in zip(cuts, calls, found, strict=True):
        in_outage = [p for p in packets
                     if outage.first_lost_seq <= p.seqno <= outage.last_lost_seq]
        assert any(p.lost == "true_up" for p in in_outage)
        got = [p.server_received_ns for p in in_outage if p.lost == "true_down"]
        assert all(t is not None for t in got)
        cut_from, cut_to = down + down_call // 2 + 500_000, up - up_call // 2 - 500_000
        assert not [t for t in got if cut_from < t < cut_to], (down, up, got)
        edges.append((sum(t <= cut_from for t in got), sum(t >= cut_to for t in got)))
    print(f"replies lost (request in before the cut, after the repair): {edges}")
    assert len(outages.analyse(packets, "up").outages) == len(cuts)
