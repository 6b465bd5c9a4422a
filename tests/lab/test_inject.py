"""Failure injection on real labs: each failure happens, its restore undoes it, nothing stays.

Native labs on this host for device failure, daemon crash and control-plane drop; netem
(absent from the CI kernel) and the tc drop backend run inside User-mode Linux.

         198.51.100.1/24                    198.51.100.2/24
      h1 eth0 ---- p1 [ sw ] p2 ---- eth0 h2       sw: Linux bridge
      h1 eth1 ------------------------ eth1 h2     direct cable, 192.0.2.1 / 192.0.2.2

The direct cable shows a switch failure takes only the switch's cables, and carries the
LACP frames (Linux bridges never forward the slow-protocols address).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import harness.journal
from harness import timeouts
from harness.errors import ConfigError, LabError
from harness.inject.daemon import DaemonCrash
from harness.inject.device import DeviceFailure
from harness.inject.filter import ControlPlaneDrop
from harness.inject.link import carrier
from harness.inject.netem import Degrade
from harness.journal import Journal
from harness.lab import capabilities, uml
from harness.lab.running import Lab
from harness.lab.uml import GuestSpec, run_in_uml
from harness.naming import new_run_id
from harness.topology.model import Topology

from ..conftest import LAB_REPORT, REPO

H1, H2 = "198.51.100.1", "198.51.100.2"
D1, D2 = "192.0.2.1", "192.0.2.2"

pytestmark = [pytest.mark.lab,
              pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")]
needs_uml = pytest.mark.skipif(not uml.uml_available(),
                               reason="user-mode-linux (linux.uml + modules) not installed")


def topology() -> Topology:
    t = Topology("inject", __doc__ or "")
    h1, h2, sw = t.add_host("h1"), t.add_host("h2"), t.add_switch("sw")
    t.add_link(h1, "eth0", sw, "p1")
    t.add_link(h2, "eth0", sw, "p2")
    t.add_link(h1, "eth1", h2, "eth1")
    t.add_address(h1, "eth0", f"{H1}/24")
    t.add_address(h2, "eth0", f"{H2}/24")
    t.add_address(h1, "eth1", f"{D1}/24")
    t.add_address(h2, "eth1", f"{D2}/24")
    return t


def nft_tables(netns: str | None = None) -> list[str]:
    argv = ["nft", "-j", "list", "tables"]
    done = subprocess.run(["nsenter", f"--net={netns}", *argv] if netns else argv,
                          capture_output=True, text=True, check=True)
    return [i["table"]["name"] for i in json.loads(done.stdout)["nftables"] if "table" in i]


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def build_lab(run_id: str, journal: Journal) -> Lab:
    lab = Lab(topology(), run_id, journal)
    lab.__enter__()
    try:
        for src, dst in (("h1", H2), ("h1", D2)):
            timeouts.wait_for(f"{src} to reach {dst}", lambda s=src, d=dst: ping(lab, s, d),
                              timeouts.PING_READY)
    except BaseException:
        lab.__exit__(None, None, None)
        raise
    return lab


def leftovers(run_id: str, processes: list[dict]) -> dict[str, list]:
    """What of run ``run_id`` still exists. Only this run's objects: other engineers' labs
    (and UML guests) may come and go on the same machine meanwhile."""
    found = {
        "links": [p.name for p in Path("/sys/class/net").iterdir()
                  if p.name.startswith(f"r{run_id}")],
        "processes": [e["pid"] for e in processes
                      if harness.journal.is_running(e["pid"], e["start"])],
        "nft tables": [t for t in nft_tables() if t.startswith(f"redlab_{run_id}")],
    }
    return {k: v for k, v in found.items() if v}


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    """A running lab; afterwards, proof that closing it left nothing on this machine.

    Every process the lab started (node holders, whose death takes their namespaces, and
    everything from lab.popen) is journaled, so the journal says what to look for.
    """
    monkeypatch.setattr(harness.journal, "JOURNAL_DIR", tmp_path / "journal")
    run_id = new_run_id()
    with Journal(run_id) as journal:
        built = build_lab(run_id, journal)
        try:
            yield built
        finally:
            processes = [e for e in journal.entries if e["kind"] == "process"]
            built.__exit__(None, None, None)
    assert leftovers(run_id, processes) == {}, "the lab left objects behind"
    assert not list((tmp_path / "journal").glob("*.jsonl"))


# -- probes run inside the nodes ---------------------------------------------------------

def ping(lab: Lab, node: str, address: str) -> bool:
    proc = lab.popen(node, ["ping", "-c1", "-W1", address])
    proc.communicate(timeout=5)
    return proc.returncode == 0


# Counts frames carrying a marker until a fence frame (not filtered) arrives behind them:
# frames on one cable are received in order, so no sleep decides when to stop counting.
# "l2" binds to the slow-protocols ethertype (delivered after ingress hooks), "tap" to
# ETH_P_ALL (delivered before them), "vrrp" is a raw IP socket, as keepalived uses.
RECEIVER = r"""
import select, socket, sys
mode, where, marker = sys.argv[1], sys.argv[2], sys.argv[3].encode()
if mode in ("l2", "tap"):
    proto = 0x0003 if mode == "tap" else 0x8809
    data = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(proto))
    data.bind((where, proto))
    fence = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x88B5))
    fence.bind((where, 0x88B5))
else:
    data = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
    data.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                    socket.inet_aton("224.0.0.18") + socket.inet_aton(where))
    fence = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    fence.bind((where, 9999))
print("ready", flush=True)
count = 0
def take(pkt):
    global count
    if marker in pkt and (mode != "tap" or pkt[12:14] == b"\x88\x09"):
        count += 1
fenced = False
while not fenced:
    ready, _, _ = select.select([data, fence], [], [], 5)
    if not ready:
        break
    if data in ready:
        take(data.recv(4096))
    if fence in ready:
        fenced = marker in fence.recv(4096)
data.setblocking(False)
try:
    while True:
        take(data.recv(4096))
except BlockingIOError:
    pass
print(count if fenced else f"no fence, {count}", flush=True)
"""

# Prints how many sends the kernel refused: a frame dropped at our own egress hook fails
# send() with ENOBUFS (the kernel's bond ignores that; keepalived logs it).
SENDER = r"""
import errno, socket, sys
refused = 0
def send(sock, *args):
    global refused
    try:
        sock.sendto(*args) if len(args) == 2 else sock.send(*args)
    except OSError as exc:
        if exc.errno != errno.ENOBUFS:
            raise
        refused += 1
mode, where, marker, n = sys.argv[1], sys.argv[2], sys.argv[3].encode(), int(sys.argv[4])
if mode == "l2":
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((where, 0))
    src = s.getsockname()[4]
    def frame(ethertype):
        # to the slow-protocols group, LACP subtype 1 version 1, padded to a minimum frame
        return (b"\x01\x80\xc2\x00\x00\x02" + src + ethertype.to_bytes(2, "big")
                + b"\x01\x01" + marker).ljust(60, b"\0")
    for _ in range(n):
        send(s, frame(0x8809))
    s.send(frame(0x88B5))
else:
    local, peer = where.split(",")
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 112)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(local))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 255)
    for _ in range(n):
        # VRRPv3 advertisement header (version 3, type 1, VRID 1, priority 100)
        send(s, b"\x31\x01\x64\x01" + marker + b"\0" * 8, ("224.0.0.18", 0))
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(marker, (peer, 9999))
print(refused, flush=True)
"""

FRAMES = 5


def exchange(lab: Lab, mode: str, sender: tuple[str, str],
             receiver: tuple[str, str]) -> tuple[int, int]:
    """Send FRAMES marked frames (l2/tap: between interfaces; vrrp: between addresses).

    Returns (frames received, sends refused by the sender's kernel)."""
    marker = f"redlab-{new_run_id()}"
    rx = lab.popen(receiver[0], [sys.executable, "-c", RECEIVER, mode, receiver[1], marker])
    assert rx.stdout is not None
    assert rx.stdout.readline() == b"ready\n", rx.communicate(timeout=10)
    send_mode = "l2" if mode == "tap" else mode
    tx = lab.popen(sender[0], [sys.executable, "-c", SENDER, send_mode, sender[1], marker,
                               str(FRAMES)])
    refused, err = tx.communicate(timeout=10)
    assert tx.returncode == 0, err
    out, err = rx.communicate(timeout=10)
    assert rx.returncode == 0 and out.strip().isdigit(), (out, err)
    return int(out), int(refused)


def lacp(lab: Lab, mode: str = "l2") -> int:
    """LACP-like frames h1:eth1 -> h2:eth1 that reached h2's receiver."""
    return exchange(lab, mode, ("h1", "eth1"), ("h2", "eth1"))[0]


def vrrp(lab: Lab) -> int:
    """VRRP adverts h1 -> 224.0.0.18 (through the switch) that reached h2's raw socket."""
    return exchange(lab, "vrrp", ("h1", f"{H1},{H2}"), ("h2", H2))[0]


def start(lab: Lab, node: str) -> subprocess.Popen[bytes]:
    """A stand-in daemon, returned once it runs in the node (mnexec has exec'd it)."""
    proc = lab.popen(node, ["sleep", "1000"], stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
    timeouts.wait_for(f"sleep to start in {node}",
                      lambda: _read(Path(f"/proc/{proc.pid}/comm")) == b"sleep\n",
                      timeouts.PROCESS_EXIT)
    return proc


# -- device failure ----------------------------------------------------------------------

def test_switch_failure_takes_every_port_and_its_daemon_and_restore_brings_ports_back(lab):
    daemon = start(lab, "sw")
    failure = DeviceFailure(lab, "sw", processes=[daemon])
    t_ns = failure.apply()

    assert 0 < failure.call_ns < 100_000_000, "the netlink call brackets the event time"
    assert t_ns > 0 and daemon.wait(timeout=5) == -signal.SIGKILL
    assert not carrier(lab, "h1", "eth0") and not carrier(lab, "h2", "eth0")
    assert not ping(lab, "h1", H2), "the path through the dead switch still works"
    assert carrier(lab, "h1", "eth1") and ping(lab, "h1", D2), "the direct cable went too"
    assert "sw" in failure.describe() and f"sleep[{daemon.pid}]" in failure.describe()

    failure.restore()
    assert carrier(lab, "h1", "eth0") and carrier(lab, "h2", "eth0")
    timeouts.wait_for("h1 to reach h2 through the switch again", lambda: ping(lab, "h1", H2),
                      timeouts.PING_READY)
    failure.restore()  # idempotent: a cleanup path may restore again


def test_host_failure_takes_all_its_cables_at_once_and_kills_only_given_processes(lab):
    victim, bystander = start(lab, "h2"), start(lab, "h2")
    failure = DeviceFailure(lab, "h2", processes=[victim.pid])  # a pid works as well
    failure.apply()

    assert victim.wait(timeout=5) == -signal.SIGKILL
    assert bystander.poll() is None
    # The neighbours see carrier loss, not an administrative change of their own.
    assert not carrier(lab, "h1", "eth1") and not carrier(lab, "sw", "p2")
    assert lab.ipr("h1").get_links(ifname="eth1")[0]["flags"] & 1, "h1's NIC stayed up"
    assert not ping(lab, "h1", H2) and not ping(lab, "h1", D2)

    failure.restore()
    for address in (H2, D2):
        timeouts.wait_for(f"h1 to reach {address} again", lambda a=address: ping(lab, "h1", a),
                          timeouts.PING_READY)


def test_two_adjacent_devices_dead_together_come_back_one_after_the_other(lab):
    """A rack losing power takes a switch and a host cabled to it; the switch's restore
    must not wait for carrier at the host's port, which stays down until the host's own
    restore (seen: "carrier back at r1's neighbours" timed out in dc_edge)."""
    switch, host = DeviceFailure(lab, "sw"), DeviceFailure(lab, "h2")
    switch.apply()
    host.apply()
    switch.restore()  # h2's end of the sw-h2 cable is still down
    assert carrier(lab, "h1", "eth0") and not carrier(lab, "sw", "p2")
    host.restore()
    assert carrier(lab, "sw", "p2") and carrier(lab, "h1", "eth1")
    timeouts.wait_for("h1 to reach h2 through the switch again", lambda: ping(lab, "h1", H2),
                      timeouts.PING_READY)


def test_device_failure_refuses_a_process_of_another_node(lab):
    other = start(lab, "h1")
    with pytest.raises(ConfigError, match="not in h2's network namespace"):
        DeviceFailure(lab, "h2", processes=[other]).apply()
    assert other.poll() is None and carrier(lab, "h1", "eth0"), "nothing was injected"


# -- daemon crash ------------------------------------------------------------------------

# A daemon that forks a worker which says goodbye when its parent dies (as keepalived's
# VRRP child may on SIGTERM via PR_SET_PDEATHSIG): a crash must leave no goodbye.
DAEMON = r"""
import ctypes, os, pathlib, signal, sys, time
folder = pathlib.Path(sys.argv[1])
def goodbye(who):
    def handler(*_):
        (folder / f"goodbye-{who}").write_text("bye")
        os._exit(0)
    return handler
child = os.fork()
if child == 0:
    signal.signal(signal.SIGTERM, goodbye("child"))
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    (folder / "child-ready").write_text("")
    while True:
        time.sleep(1)
signal.signal(signal.SIGTERM, goodbye("parent"))
while not (folder / "child-ready").exists():
    time.sleep(0.01)
print(child, flush=True)
while True:
    time.sleep(1)
"""


def test_daemon_crash_kills_it_and_its_workers_without_a_goodbye(lab, tmp_path):
    daemon = lab.popen("h2", [sys.executable, "-c", DAEMON, str(tmp_path)])
    assert daemon.stdout is not None
    worker = int(daemon.stdout.readline())
    crash = DaemonCrash(lab, "h2", daemon)
    crash.apply()

    assert daemon.wait(timeout=5) == -signal.SIGKILL
    assert not alive(worker), "the forked worker survived the crash"
    assert not list(tmp_path.glob("goodbye-*")), "a crashed process ran its exit handler"
    assert ping(lab, "h1", H2), "the box itself must stay up"
    assert "python" in crash.describe() and str(daemon.pid) in crash.describe()


def test_daemon_crash_restore_restarts_through_the_callable_once(lab):
    first = start(lab, "h2")
    started: list[subprocess.Popen[bytes]] = []

    def restart() -> subprocess.Popen[bytes]:
        started.append(start(lab, "h2"))
        return started[-1]

    crash = DaemonCrash(lab, "h2", first, restart=restart)
    crash.apply()
    assert first.wait(timeout=5) == -signal.SIGKILL
    crash.restore()
    crash.restore()
    assert len(started) == 1 and started[0].poll() is None
    crash.apply()  # the crash can be repeated on the restarted daemon
    assert started[0].wait(timeout=5) == -signal.SIGKILL


def test_daemon_crash_of_a_dead_process_is_an_error(lab):
    gone = start(lab, "h2")
    gone.kill()
    gone.wait()
    with pytest.raises(LabError, match="not running"):
        DaemonCrash(lab, "h2", gone).apply()


# -- control-plane drop ------------------------------------------------------------------

def test_lacp_drop_loses_slow_protocol_frames_but_keeps_carrier_and_traffic(lab):
    assert lacp(lab) == FRAMES, "without the filter every frame arrives"
    drop = ControlPlaneDrop(lab, "h1", "eth1", "lacp")
    assert drop.apply() > 0
    assert drop.table in nft_tables(lab.netns("h1"))

    assert exchange(lab, "l2", ("h1", "eth1"), ("h2", "eth1")) == (0, FRAMES), \
        "dropped at h1's egress hook, which the sender's send() reports"
    assert drop.counters() == {"in": 0, "out": FRAMES}
    assert carrier(lab, "h1", "eth1") and carrier(lab, "h2", "eth1")
    assert ping(lab, "h1", D2), "user traffic on the same cable must still pass"

    drop.restore()
    assert drop.table not in nft_tables(lab.netns("h1"))
    assert lacp(lab) == FRAMES
    drop.restore()


def test_inbound_lacp_drop_hides_frames_from_protocol_sockets_not_from_packet_taps(lab):
    drop = ControlPlaneDrop(lab, "h2", "eth1", "lacp", direction="in")
    drop.apply()
    assert lacp(lab) == 0
    assert drop.counters() == {"in": FRAMES}
    # Documented limit: ETH_P_ALL sockets (tcpdump, OVS userspace datapath) are served
    # before the ingress hook.
    assert lacp(lab, mode="tap") == FRAMES
    drop.restore()
    assert lacp(lab) == FRAMES


def test_vrrp_drop_at_a_host_loses_adverts_but_not_pings(lab):
    assert vrrp(lab) == FRAMES
    drop = ControlPlaneDrop(lab, "h2", "eth0", "vrrp", direction="in")
    drop.apply()
    assert vrrp(lab) == 0
    assert drop.counters() == {"in": FRAMES}
    assert carrier(lab, "h2", "eth0") and ping(lab, "h1", H2)
    drop.restore()
    assert vrrp(lab) == FRAMES


def test_vrrp_drop_on_a_switch_port_lives_in_the_root_namespace_and_is_removed(lab):
    drop = ControlPlaneDrop(lab, "sw", "p2", "vrrp", direction="out")
    drop.apply()
    assert drop.table in nft_tables()
    assert vrrp(lab) == 0 and drop.counters() == {"out": FRAMES}
    assert ping(lab, "h1", H2)
    drop.restore()
    assert drop.table not in nft_tables()
    assert vrrp(lab) == FRAMES


def test_a_switch_port_drop_never_restored_is_removed_with_the_lab(lab):
    """A killed run cannot call restore(): the journal must take the root-namespace table."""
    drop = ControlPlaneDrop(lab, "sw", "p2", "lacp", direction="out", backend="nft")
    drop.apply()
    assert drop.table in nft_tables()
    lab.stop()  # what the journal rollback does on any exit path, restore() or not
    assert drop.table not in nft_tables()


def test_two_drops_on_one_node_remove_only_their_own_table(lab):
    on_eth0 = ControlPlaneDrop(lab, "h2", "eth0", "vrrp")
    on_eth1 = ControlPlaneDrop(lab, "h2", "eth1", "lacp")
    on_eth0.apply()
    on_eth1.apply()
    on_eth0.restore()
    assert nft_tables(lab.netns("h2")) == [on_eth1.table]
    assert lacp(lab) == 0
    on_eth1.restore()
    assert nft_tables(lab.netns("h2")) == []


def test_tc_drop_on_a_kernel_without_gact_fails_and_leaves_no_qdisc(lab):
    drop = ControlPlaneDrop(lab, "h1", "eth1", "lacp", backend="tc")
    try:
        drop.apply()
    except LabError as exc:
        assert "act_gact" in exc.fix
    else:
        drop.restore()
        pytest.skip("this kernel has act_gact: the tc backend works here")
    index = lab.ipr("h1").link_lookup(ifname="eth1")[0]
    assert "clsact" not in [q.get_attr("TCA_KIND")
                            for q in lab.ipr("h1").get_qdiscs(index=index)]


def test_unknown_control_protocol_is_a_config_error(lab):
    with pytest.raises(ConfigError, match="stp"):
        ControlPlaneDrop(lab, "h1", "eth1", "stp")  # type: ignore[arg-type]


# -- degrade (netem) ---------------------------------------------------------------------

def test_degrade_without_netem_names_the_module_and_uml(lab):
    if capabilities.probe("netem"):
        pytest.skip("this host kernel has netem; the error path needs one without it")
    with pytest.raises(ConfigError) as err:
        Degrade(lab, "h2", "eth0", delay_ms=10).apply()
    assert "sch_netem" in err.value.problem and "--lab uml" in err.value.fix
    assert Degrade(lab, "h2", "eth0", delay_ms=10).qdisc("h2", "eth0") is None


def test_degrade_rejects_parameters_that_degrade_nothing(lab):
    with pytest.raises(ConfigError, match="nothing to degrade"):
        Degrade(lab, "h2", "eth0")
    with pytest.raises(ConfigError, match="loss_pct"):
        Degrade(lab, "h2", "eth0", loss_pct=120)


RTT = re.compile(r"= [\d.]+/([\d.]+)/")


def rtt_ms(lab: Lab, node: str, address: str, size: int = 56) -> float:
    """Mean RTT of 5 pings (ping's summary line is the tool's own report)."""
    proc = lab.popen(node, ["ping", "-c5", "-i0.2", "-W2", "-q", "-s", str(size), address])
    out, _err = proc.communicate(timeout=15)
    match = RTT.search(out.decode())
    assert proc.returncode == 0 and match, out
    return float(match.group(1))


def guest_main(out: str) -> None:
    """Runs inside User-mode Linux (a kernel with netem): measures, the host asserts."""
    results: dict[str, object] = {}
    run_id = new_run_id()
    with Journal(run_id) as journal:
        lab = build_lab(run_id, journal)
        try:
            results["base_ms"] = rtt_ms(lab, "h1", H2)
            near = Degrade(lab, "h2", "eth0", delay_ms=50, ends="near")
            near.apply()
            results["near_qdisc"] = near.qdisc("h2", "eth0")
            results["near_far_qdisc"] = near.qdisc("sw", "p2")
            results["near_ms"] = rtt_ms(lab, "h1", H2)
            near.restore()
            results["after_qdisc"] = near.qdisc("h2", "eth0")
            results["after_ms"] = rtt_ms(lab, "h1", H2)

            both = Degrade(lab, "h2", "eth0", delay_ms=20, jitter_ms=1)
            both.apply()
            results["both_qdiscs"] = [both.qdisc("h2", "eth0"), both.qdisc("sw", "p2")]
            results["both_ms"] = rtt_ms(lab, "h1", H2)
            try:
                Degrade(lab, "h2", "eth0", loss_pct=5).apply()
            except LabError as exc:
                results["second_root_refused"] = exc.problem
            both.restore()

            # 1400-byte pings at 1 Mbit/s: ~11.4 ms to serialise one reply.
            results["big_base_ms"] = rtt_ms(lab, "h1", H2, size=1400)
            rated = Degrade(lab, "h2", "eth0", rate="1mbit", ends="near")
            rated.apply()
            results["rated_ms"] = rtt_ms(lab, "h1", H2, size=1400)
            rated.restore()

            lossy = Degrade(lab, "h2", "eth0", loss_pct=100, ends="far")
            lossy.apply()
            results["lossy_ping"] = ping(lab, "h1", H2)
            results["lossy_carrier"] = carrier(lab, "h2", "eth0")
            lossy.restore()
            results["restored_ping"] = ping(lab, "h1", H2)

            # Debian's UML kernel lacks nft's netdev family: the drop must fall back to tc.
            results["lacp_before"] = lacp(lab)
            drop = ControlPlaneDrop(lab, "h1", "eth1", "lacp")
            drop.apply()
            results["drop_backend"] = drop.active_backend
            results["lacp_during"] = lacp(lab)
            results["drop_counters"] = drop.counters()
            results["drop_ping"] = ping(lab, "h1", D2)
            drop.restore()
            index = lab.ipr("h1").link_lookup(ifname="eth1")[0]
            results["tc_left"] = [q.get_attr("TCA_KIND") for q in
                                  lab.ipr("h1").get_qdiscs(index=index)]
            results["lacp_after"] = lacp(lab)
            vdrop = ControlPlaneDrop(lab, "h2", "eth0", "vrrp", direction="in")
            vdrop.apply()
            results["vrrp_during"] = vrrp(lab)
            results["vrrp_counters"] = vdrop.counters()
            vdrop.restore()
            results["vrrp_after"] = vrrp(lab)
        finally:
            lab.__exit__(None, None, None)
    Path(out, "guest.json").write_text(json.dumps(results))


@needs_uml
def test_degrade_in_uml_adds_netem_raises_rtt_and_restore_removes_it(tmp_path, monkeypatch):
    monkeypatch.setattr(harness.journal, "JOURNAL_DIR", tmp_path / "journal")
    script = f"from tests.lab.test_inject import guest_main; guest_main({str(tmp_path)!r})"
    run_id = new_run_id()
    with Journal(run_id) as journal:
        done = run_in_uml(GuestSpec(
            argv=[sys.executable, "-c", script], cwd=REPO, writable=[tmp_path],
            modules=("veth", "bridge", "sch_netem", "sch_ingress", "cls_u32", "act_gact")),
            deadline_s=300, journal=journal, stream=False)
    assert done.returncode == 0, done.stderr[-3000:]
    # The guest's lab died with its kernel; on the host, no guest of this run is left.
    assert not [c for c in Path("/proc").glob("[0-9]*/cmdline")
                if f"umid=redlab-{run_id}-".encode() in _read(c)]
    assert not list(Path("/tmp").glob(f"redlab-{run_id}-*"))
    r = json.loads((tmp_path / "guest.json").read_text())

    assert r["near_qdisc"]["delay_us"] == pytest.approx(50_000, abs=1)
    assert r["near_far_qdisc"] is None, "ends=near impairs only the near end"
    assert r["near_ms"] - r["base_ms"] >= 49, r
    assert r["near_ms"] - r["base_ms"] < 80, r
    assert r["after_qdisc"] is None and r["after_ms"] - r["base_ms"] < 10, r

    assert all(q and q["delay_us"] == pytest.approx(20_000, abs=1) and
               q["jitter_us"] == pytest.approx(1_000, abs=1) for q in r["both_qdiscs"])
    assert r["both_ms"] - r["base_ms"] >= 37, "both ends: the delay counts twice"
    assert "already has a root qdisc" in r.get("second_root_refused", ""), r

    assert r["rated_ms"] - r["big_base_ms"] >= 10, "a 1 Mbit/s cap serialises slowly"
    assert r["lossy_ping"] is False and r["lossy_carrier"] is True
    assert r["restored_ping"] is True

    assert r["drop_backend"] == "tc"
    assert (r["lacp_before"], r["lacp_during"], r["lacp_after"]) == (FRAMES, 0, FRAMES)
    assert r["drop_counters"] == {"in": 0, "out": FRAMES}
    assert r["drop_ping"] is True
    assert "clsact" not in r["tc_left"], "restore removed the clsact qdisc it added"
    assert (r["vrrp_during"], r["vrrp_after"]) == (0, FRAMES)
    assert r["vrrp_counters"] == {"in": FRAMES}
    LAB_REPORT.append(
        f"netem in UML (kernel {uml.module_tree().name}): ping RTT {r['base_ms']:.2f} ms,"
        f" {r['near_ms']:.2f} ms with 50 ms at one end, {r['both_ms']:.2f} ms with 20 ms at"
        f" both; control-plane drop fell back to {r['drop_backend']}")
