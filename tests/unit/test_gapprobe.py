"""redlab-probe, the C gap probe: a constant-rate schedule on loopback.

Loopback runs need only a C compiler; the known outages on a lab (the `path` topology,
root) are tests/lab/test_gapprobe.py.
"""

from __future__ import annotations

import errno
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import timeouts
from harness.measure import gapprobe
from harness.measure.probe import Packet
from harness.measure.sockets import listening

from ..conftest import needs_root, stop


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
    # The spacing is printed, not asserted: a sender woken late sends its late slots at
    # once, so on a loaded host the median spacing is a catch-up burst's (36 us at 100 us
    # asked, seen in CI). The schedule is absolute: each send is its due time plus its
    # logged lateness, and the due times span exactly (n - 1) intervals (a late send is
    # never a skipped slot).
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
    # the schedule kept through every failed send (due times, not wake-ups: see above)
    late = gapprobe.lateness_ns(client_log)
    due_span = (packets[-1].sent_ns - late[-1]) - (packets[0].sent_ns - late[0])
    assert abs(due_span - 99 * 1_000_000) < 1_000_000


def test_sigusr1_ends_the_sending_early_and_still_drains_and_logs(binary, loopback_server,
                                                                  tmp_path):
    """The runner gives the probe a ceiling and ends it after iperf3 with SIGUSR1: the
    client stops sending, waits for the echoes in flight and writes its log, so its last
    packets are not counted lost (SIGTERM would not wait for them)."""
    port, server_log, server = loopback_server
    client_log = tmp_path / "client.csv"
    client = subprocess.Popen(gapprobe.client_argv(binary, "127.0.0.1", port, 1_000_000,
                                                   60_000_000_000, client_log),
                              stderr=subprocess.PIPE)
    time.sleep(0.3)   # some sends first; how many does not matter
    client.send_signal(signal.SIGUSR1)
    _, err = client.communicate(timeout=10)
    assert client.returncode == 0, err
    stop(server)
    packets = gapprobe.parse(client_log, server_log)
    assert 0 < len(packets) < 60_000, len(packets)   # ended long before its 60 s ceiling
    assert [p.seqno for p in packets] == list(range(len(packets)))
    assert all(p.lost == "false" for p in packets), "the drain was skipped"


def run_to_sigusr1(binary, port: int, client_log: Path, tail_ns: int,
                   then=None) -> tuple[int, list[Packet]]:
    """A client at 1 ms to ``port``, SIGUSR1 after 0.2 s, ``then()`` right after it;
    the signal's wall time and what the client logged."""
    client = subprocess.Popen(gapprobe.client_argv(binary, "127.0.0.1", port, 1_000_000,
                                                   60_000_000_000, client_log,
                                                   tail_ns=tail_ns),
                              stderr=subprocess.PIPE)
    try:
        time.sleep(0.2)
        signalled = time.time_ns()
        client.send_signal(signal.SIGUSR1)
        if then is not None:
            then()
        _, err = client.communicate(timeout=10)
    finally:
        stop(client)
    assert client.returncode == 0, err
    return signalled, gapprobe.parse(client_log, None)


def test_sigusr1_ends_the_sending_once_ten_packets_after_it_came_back(binary,
                                                                      loopback_server,
                                                                      tmp_path):
    port, _, _ = loopback_server
    signalled, packets = run_to_sigusr1(binary, port, tmp_path / "c.csv", 3_000_000_000)
    after = [p for p in packets if p.sent_ns > signalled]
    # the proof (10) and what the sender sent while main looked (1 ms ticks): far from
    # the 3 s tail, which a path that works must not cost
    assert 10 <= len(after) <= 250, len(after)
    assert all(p.lost == "false" for p in packets)


def test_an_outage_open_at_sigusr1_closes_in_the_log_before_the_sending_ends(
        binary, tmp_path):
    """The runner ends the probe when iperf3 ends; an outage still open then must close
    in the log, or its length would be unknown: the sending goes on until the path (here
    a server that starts only after the signal) carries the probe again."""
    port, server_log = free_udp_port(), tmp_path / "server.csv"
    servers: list[subprocess.Popen[bytes]] = []

    def path_returns() -> None:
        time.sleep(0.1)
        servers.append(subprocess.Popen(gapprobe.server_argv(binary, "127.0.0.1", port,
                                                             server_log)))
    try:
        signalled, packets = run_to_sigusr1(binary, port, tmp_path / "c.csv",
                                            5_000_000_000, then=path_returns)
    finally:
        for server in servers:
            stop(server)
    lost = [p.seqno for p in packets if p.lost != "false"]
    echoed_after = [p for p in packets if p.lost == "false" and p.seqno > max(lost)]
    assert lost and min(lost) == 0                     # down from the start ...
    assert any(p.sent_ns > signalled for p in packets if p.lost != "false")  # ... past it
    assert len(echoed_after) >= 10                     # and closed, in the log
    assert echoed_after[-1].sent_ns - signalled < 4_000_000_000  # long before the tail


def test_a_path_that_stays_down_ends_the_sending_after_the_tail(binary, tmp_path):
    tail_ns = 300_000_000
    signalled, packets = run_to_sigusr1(binary, free_udp_port(), tmp_path / "c.csv",
                                        tail_ns)
    assert all(p.lost != "false" for p in packets)
    last_sent = max(p.sent_ns for p in packets)
    assert tail_ns - 5_000_000 <= last_sent - signalled <= tail_ns + 500_000_000


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
