"""The switches are layer 2 only: the host's own IP stack never joins the lab.

Linux bridges live in the root namespace, so each is an interface of the host. Our CI
machine's own network is 192.0.2.0/24, a prefix the lab uses too: before the fix its
bridge answered ARP for r2's 192.0.2.2 with the host's reply, and unicast VRRP went to
the host. The test gives the host an address inside the lab's prefix (on a veth pair of
its own: our CI kernel has no dummy interfaces; journaled, so a crashed run leaves
nothing ``redlab clean`` misses) and asks for it from a lab host of the ``path``
topology (cli - sw - srv on 198.51.100.0/24, sw a Linux bridge), with its static
neighbours left out so that ARP is asked.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from harness.journal import Journal
from harness.lab.running import Lab
from harness.naming import new_run_id, prefixed
from harness.topology.loader import build_topology

pytestmark = [pytest.mark.lab,
              pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")]

SRV, HOST_OWN = "198.51.100.2", "198.51.100.77"  # srv's address; the host's own


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
        topo, _ = build_topology("path", {})
        topo.static_neighbours = False
        with Lab(topo, run_id, journal, workdir=tmp_path) as lab:
            # the lab's own ARP works: srv answers for itself
            assert neighbour(lab, "cli", SRV).get("lladdr") == mac(lab, "srv", "eth0")
            # nobody in the lab owns HOST_OWN: before the fix the bridge answered with its
            # own MAC, now the request goes unanswered
            assert "lladdr" not in neighbour(lab, "cli", HOST_OWN)
            bridge = lab.node_name("sw")
            for name in (bridge, lab.ifname("sw", "p0"), lab.ifname("sw", "p1")):
                ipv6 = Path(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6")
                assert not ipv6.exists() or ipv6.read_text().strip() == "1", name
            assert Path(f"/proc/sys/net/ipv4/conf/{bridge}/arp_ignore").read_text().strip() \
                == "8"
    assert not Path(f"/sys/class/net/{own}").exists()
