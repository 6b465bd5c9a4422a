"""The switches are layer 2 only: the host's own IP stack never joins the lab.

Linux bridges live in the root namespace, so each is an interface of the host. Our CI
machine's own network is 192.0.2.0/24, a prefix the lab uses too: before the fix its
bridge answered ARP for r2's 192.0.2.2 with the host's reply, and unicast VRRP went to
the host. The test gives the host an address inside the lab's prefix (on a veth pair of
its own: our CI kernel has no dummy interfaces; journaled, so a crashed run leaves
nothing ``redlab clean`` misses) and asks for it from a lab host.

         203.0.113.1/24                     203.0.113.2/24
      h1 eth0 ---- p1 [ sw ] p2 ---- eth0 h2       sw: Linux bridge in the root namespace
                  (the host itself: 203.0.113.77 on a veth outside the lab)
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from harness.journal import Journal
from harness.naming import new_run_id, prefixed
from harness.topology.build import Lab
from harness.topology.model import Topology

pytestmark = [pytest.mark.lab,
              pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")]

H1, H2, HOST_OWN = "203.0.113.1", "203.0.113.2", "203.0.113.77"


def topology() -> Topology:
    t = Topology("root-namespace", __doc__ or "")
    h1, h2, sw = t.add_host("h1"), t.add_host("h2"), t.add_switch("sw")
    t.add_link(h1, "eth0", sw, "p1")
    t.add_link(h2, "eth0", sw, "p2")
    t.add_address(h1, "eth0", f"{H1}/24")
    t.add_address(h2, "eth0", f"{H2}/24")
    return t


def neighbour(lab: Lab, node: str, address: str) -> dict[str, object]:
    """``node``'s neighbour entry for ``address``, after one ping to it."""
    lab.popen(node, ["ping", "-n", "-q", "-c", "1", "-W", "1", address]).communicate(timeout=10)
    out, _ = lab.popen(node, ["ip", "-j", "neigh", "show", address],
                       stdout=subprocess.PIPE).communicate(timeout=10)
    entries = json.loads(out or b"[]")
    return entries[0] if entries else {}


def mac(lab: Lab, node: str, intf: str) -> str:
    return str(lab.ipr(node).get_links(ifname=intf)[0].get("IFLA_ADDRESS"))


def test_the_host_does_not_answer_the_lab_for_its_own_addresses(tmp_path: Path) -> None:
    run_id = new_run_id()
    own = prefixed(run_id, "own")
    with Journal(run_id) as journal:
        journal.record("link", name=own)  # deleting one end deletes the pair
        subprocess.run(["ip", "link", "add", own, "type", "veth", "peer", "name",
                        f"{own}2"], check=True)
        subprocess.run(["ip", "addr", "add", f"{HOST_OWN}/32", "dev", own], check=True)
        with Lab(topology(), run_id, journal, workdir=tmp_path) as lab:
            # the lab's own ARP works: h2 answers for itself
            assert neighbour(lab, "h1", H2).get("lladdr") == mac(lab, "h2", "eth0")
            # nobody in the lab owns HOST_OWN: before the fix the bridge answered with its
            # own MAC, now the request goes unanswered
            assert "lladdr" not in neighbour(lab, "h1", HOST_OWN)
            bridge = lab.node_name("sw")
            for name in (bridge, lab.ifname("sw", "p1"), lab.ifname("sw", "p2")):
                ipv6 = Path(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6")
                assert not ipv6.exists() or ipv6.read_text().strip() == "1", name
            assert Path(f"/proc/sys/net/ipv4/conf/{bridge}/arp_ignore").read_text().strip() \
                == "8"
    assert not Path(f"/sys/class/net/{own}").exists()
