"""Two keepalived routers on a real kernel: the higher priority takes the virtual IP; a
crashed master's backup takes over within the master-down interval (advert_int 1 s, 0.1 s,
0.01 s); the master restarted takes its role back; use_vmac over unicast hands out the
virtual MAC.

VRRP needs no kernel module beyond veth and a bridge, so this runs natively.

        r1 192.0.2.1/24          r2 192.0.2.2/24          cli 192.0.2.10/24
        priority 200             priority 100
          | eth0                   | eth0                   | eth0
          | p1                     | p2                     | p3
       +--------------------------------------------------------+
       |                          lan                           |  Linux bridge
       +--------------------------------------------------------+
                 virtual IP 192.0.2.254/24, VRID 51, VRRPv3
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import timeouts
from harness.inject.daemon import DaemonCrash
from harness.journal import Journal, is_running, process_start_time
from harness.lab.running import Lab
from harness.naming import new_run_id
from harness.tech.vrrp.config import keepalived_version
from harness.tech.vrrp.daemon import Keepalived, virtual_addresses_held
from harness.tech.vrrp.options import VrrpOptions, master_down_interval, router_sysctls
from harness.topology.model import Topology

pytestmark = [pytest.mark.lab,
              pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
              pytest.mark.skipif(shutil.which("keepalived") is None,
                                 reason="keepalived not installed")]

VIP = "192.0.2.254"
PRIORITIES = {"r1": 200, "r2": 100}
ADDRESSES = {"r1": "192.0.2.1", "r2": "192.0.2.2", "cli": "192.0.2.10"}


def topology() -> Topology:
    t = Topology("vrrp_pair", __doc__ or "")
    lan = t.add_switch("lan")
    for n, (name, address) in enumerate(ADDRESSES.items(), start=1):
        t.add_host(name)
        t.add_link(name, "eth0", lan, f"p{n}")
        t.add_address(name, "eth0", f"{address}/24")
    return t


def options(router: str, **extra: Any) -> VrrpOptions:
    return VrrpOptions(**{"interface": "eth0", "virtual_router_id": 51,
                          "virtual_ipaddress": [f"{VIP}/24"], "version": 3,
                          "priority": PRIORITIES[router], **extra})


@contextlib.contextmanager
def vrrp_lab(folder: Path, **extra: Any) -> Iterator[tuple[Lab, dict[str, Keepalived]]]:
    """The lab with keepalived started in r1 and r2; afterwards, none of their processes
    may be left."""
    pinned: list[tuple[int, int | None]] = []
    with Journal(new_run_id()) as journal, Lab(topology(), journal.run_id, journal) as lab:
        routers = {name: Keepalived(name, options(name, **extra), folder / name,
                                    functools.partial(lab.popen, name),
                                    netns=lab.netns(name), journal=journal)
                   for name in PRIORITIES}
        try:
            for k in routers.values():
                k.start()
                pinned += [(pid, process_start_time(pid)) for pid in k.pids()]
            assert len(pinned) == 2 * len(routers), "a parent and a VRRP child per router"
            yield lab, routers
        finally:
            for k in routers.values():
                pinned += [(pid, process_start_time(pid)) for pid in k.pids()]  # restarted
                k.stop()
    # A zombie has freed all it held: an orphan's waits for init, which here collects
    # them only every second or two.
    left = sorted({pid for pid, start in pinned if is_running(pid, start)})
    assert not left, f"keepalived processes {left} outlived their lab"


def reaches_vip(lab: Lab) -> bool:
    return lab.popen("cli", ["ping", "-c", "1", "-W", "2", VIP]).wait(timeout=10) == 0


@pytest.mark.parametrize("advert_int", [1.0, 0.1, 0.01])
def test_backup_takes_over_from_a_crashed_master_within_master_down(tmp_path, advert_int):
    with vrrp_lab(tmp_path, advert_int=advert_int) as (lab, routers):
        r1, r2 = routers["r1"], routers["r2"]
        elected = r1.wait_for_state("MASTER", timeout=10)
        r2.wait_for_state("BACKUP", timeout=10)
        assert virtual_addresses_held(lab.ipr("r1"), r1.options) == {VIP}
        assert virtual_addresses_held(lab.ipr("r2"), r2.options) == set()
        assert r2.state == "BACKUP", r2.changes
        assert reaches_vip(lab), "the client reaches the virtual IP on r1"
        # r1 advertises every advert_int from its election on: crash it half-way between
        # two adverts, once r2 has heard it for a while (at least 0.3 s).
        period_ns = int(advert_int * 1e9)
        adverts = math.ceil(0.3 / advert_int + 3)
        timeouts.sleep_until(elected.t_ns + adverts * period_ns + period_ns // 2)

        crashed_ns = DaemonCrash(lab, "r1", r1.proc).apply()
        took_over = r2.wait_for_state("MASTER", timeout=10, after_ns=crashed_ns)
        measured = (took_over.t_ns - crashed_ns) / 1e9
        down = master_down_interval(PRIORITIES["r2"], advert_int, 3)
        # The crash call takes a few ms: the last advert is the last one scheduled before it.
        # (At 10 ms, r1's adverts drift off this nominal schedule within the run, so there
        # only the window below means something.)
        last_advert_ns = crashed_ns - (crashed_ns - elected.t_ns) % period_ns
        predicted = (last_advert_ns - crashed_ns) / 1e9 + down
        print(f"\n{keepalived_version()}, advert_int {advert_int:g} s: r1 crashed ->"
              f" r2 MASTER in {measured * 1000:.1f} ms; predicted from r1's advert schedule"
              f" {predicted * 1000:.1f} ms (master down interval {down * 1000:.1f} ms; any"
              f" crash: {(down - advert_int) * 1000:.1f} to {down * 1000:.1f} ms)")
        # The last advert left up to one advert_int before the crash.  Never earlier than
        # possible; up to 0.5 s late on a loaded 2-CPU machine.
        assert down - advert_int - 0.005 <= measured <= down + 0.5
        assert virtual_addresses_held(lab.ipr("r2"), r2.options) == {VIP}
        assert reaches_vip(lab), "the client reaches the virtual IP on r2"
        assert "STOP" not in [c.state for c in r1.changes], "a crash says no goodbye"
    assert r2.changes[-1].state == "STOP"
    assert "MASTER" in (tmp_path / "r2" / "notify.log").read_text()


def test_a_restarted_master_preempts_its_backup(tmp_path):
    with vrrp_lab(tmp_path, advert_int=0.1) as (lab, routers):
        r1, r2 = routers["r1"], routers["r2"]
        r1.wait_for_state("MASTER", timeout=10)
        r2.wait_for_state("BACKUP", timeout=10)
        crash = DaemonCrash(lab, "r1", r1.proc, restart=r1.start)
        crashed_ns = crash.apply()
        r2.wait_for_state("MASTER", timeout=10, after_ns=crashed_ns)
        restarted_ns = crash.restore()
        back = r1.wait_for_state("MASTER", timeout=10, after_ns=restarted_ns)
        r2.wait_for_state("BACKUP", timeout=10, after_ns=restarted_ns)
        # r1 starts as BACKUP, ignores r2's lower-priority adverts (preempt) and takes over
        # when its own master-down timer expires.
        down = master_down_interval(PRIORITIES["r1"], 0.1, 3)
        print(f"\nr1 restarted -> MASTER again in {(back.t_ns - restarted_ns) / 1e6:.1f} ms"
              f" (its master down interval {down * 1000:.1f} ms)")
        assert (back.t_ns - restarted_ns) / 1e9 >= down - 0.005
        assert virtual_addresses_held(lab.ipr("r1"), r1.options) == {VIP}
        assert virtual_addresses_held(lab.ipr("r2"), r2.options) == set()
        states = [c.state for c in r1.changes if c.state in ("MASTER", "BACKUP")]
        assert states == ["BACKUP", "MASTER", "BACKUP", "MASTER"], r1.changes


def test_a_stopped_master_says_goodbye_before_it_is_killed(tmp_path):
    """stop() kills keepalived once it notified STOP, skipping its idle second: the
    priority-0 advert must have gone out by then, so the backup takes over after its skew
    time, not after the master down interval."""
    advert_int = 1.0  # a master down interval of 3.6 s: a goodbye stands out from silence
    with vrrp_lab(tmp_path, advert_int=advert_int) as (lab, routers):
        r1, r2 = routers["r1"], routers["r2"]
        r1.wait_for_state("MASTER", timeout=10)
        r2.wait_for_state("BACKUP", timeout=10)
        asked_ns = time.time_ns()
        r1.stop()
        took_over = r2.wait_for_state("MASTER", timeout=10, after_ns=asked_ns)
        skew = (256 - PRIORITIES["r2"]) / 256 * advert_int
        down = master_down_interval(PRIORITIES["r2"], advert_int, 3)
        print(f"\nr1 stopped -> r2 MASTER in {(took_over.t_ns - asked_ns) / 1e6:.1f} ms"
              f" (skew time {skew * 1000:.0f} ms, master down interval {down * 1000:.0f} ms)")
        assert (took_over.t_ns - asked_ns) / 1e9 < down - advert_int / 2
        assert "STOP" in [c.state for c in r1.changes]
        assert "sent 0 priority" in r1.files.log.read_text()
        assert r1.proc is not None and r1.proc.poll() is not None
        assert virtual_addresses_held(lab.ipr("r1"), r1.options) == set()


def test_use_vmac_over_unicast_answers_with_the_virtual_mac(tmp_path):
    peers = {"r1": ADDRESSES["r2"], "r2": ADDRESSES["r1"]}
    with Journal(new_run_id()) as journal, Lab(topology(), journal.run_id, journal) as lab:
        routers = {}
        try:
            for name in PRIORITIES:
                o = options(name, advert_int=0.1, use_vmac=True, unicast_peer=[peers[name]])
                for key, value in router_sysctls(o).items():
                    assert lab.popen(name, ["sysctl", "-q", "-w", f"{key}={value}"]).wait() == 0
                routers[name] = k = Keepalived(name, o, tmp_path / name,
                                               functools.partial(lab.popen, name),
                                               netns=lab.netns(name), journal=journal)
                k.start()
            routers["r1"].wait_for_state("MASTER", timeout=10)
            routers["r2"].wait_for_state("BACKUP", timeout=10)
            o = routers["r1"].options
            ipr = lab.ipr("r1")
            holder = next(a["index"] for a in ipr.get_addr(address=VIP))
            link = ipr.get_links(holder)[0]
            assert link.get_attr("IFLA_ADDRESS") == o.virtual_mac == "00:00:5e:00:01:33"
            assert reaches_vip(lab)
            cli = lab.ipr("cli")
            macs = {n.get_attr("NDA_LLADDR") for n in cli.get_neighbours(dst=VIP)}
            assert macs == {o.virtual_mac}, "the client learnt the virtual MAC"
        finally:
            for k in routers.values():
                k.stop()
