"""redlab-probe, the C gap probe, on a lab: known outages on the `path` topology (root).

The constant-rate schedule on loopback is tests/unit/test_gapprobe.py.
"""

from __future__ import annotations

import os
import shutil
import time

import pytest

import harness.journal
from harness import timeouts
from harness.inject.link import LinkCut
from harness.journal import Journal
from harness.lab.running import Lab
from harness.measure import gapprobe, outages
from harness.measure.sockets import listening
from harness.naming import new_run_id
from harness.topology.loader import build_topology

from ..conftest import needs_root, stop

needs_cc = pytest.mark.skipif(shutil.which("cc") is None,
                              reason="no C compiler: apt-get install gcc libc6-dev")


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
