"""Layer 3 of a lab: addresses, static neighbours and routes on the hosts, and the cables'
rate limits; all through netlink in each node's namespace."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from harness.errors import LabError

if TYPE_CHECKING:
    from harness.lab.running import Lab


def configure(lab: Lab) -> None:
    """Addresses (interfaces up), static neighbours if the topology asks, then routes."""
    _addresses(lab)
    if lab.topo.static_neighbours:
        _static_neighbours(lab)
    _routing(lab)


def shape_links(lab: Lab) -> None:
    """A token bucket at both ends of every rate-limited cable (each direction)."""
    for link in lab.topo.links:
        if link.rate_mbit is None:
            continue
        rate = int(link.rate_mbit * 1e6 / 8)  # bytes/s
        # The bucket must hold at least one timer tick of traffic (UML ticks at
        # 100 Hz) and one 64 KiB TSO segment; the queue holds 20 ms at the rate.
        burst = max(rate // 100, 65536 + 1514)
        for node, intf in ((link.a, link.a_intf), (link.b, link.b_intf)):
            ipr = lab.ipr(node)
            idx = ipr.link_lookup(ifname=lab.ifname(node, intf))
            ipr.tc("add", "tbf", idx[0], handle="1:", rate=f"{rate * 8}bit",
                   burst=burst, latency="20ms")


def _addresses(lab: Lab) -> None:
    for (node, intf), cidr in lab.topo.addresses.items():
        iface = ipaddress.ip_interface(cidr)
        ipr = lab.ipr(node)
        idx = ipr.link_lookup(ifname=lab.ifname(node, intf))
        if not idx:
            raise LabError(f"{node}:{intf} does not exist to take address {cidr}",
                           f"fix the address in topologies/{lab.topo.name}.py")
        ipr.addr("add", index=idx[0], address=str(iface.ip),
                 prefixlen=iface.network.prefixlen)
        ipr.link("set", index=idx[0], state="up")


def _routing(lab: Lab) -> None:
    for node in lab.topo.routers():
        lab.sysctl(node, "net.ipv4.ip_forward", "1")
    for route in lab.topo.routes:
        dst = "0.0.0.0/0" if route.dst == "default" else route.dst
        lab.ipr(route.node).route("add", dst=dst, gateway=route.via)


def _static_neighbours(lab: Lab) -> None:
    ends = []
    for (node, intf), cidr in lab.topo.addresses.items():
        ipr = lab.ipr(node)
        idx = ipr.link_lookup(ifname=lab.ifname(node, intf))[0]
        mac = ipr.get_links(idx)[0].get("IFLA_ADDRESS")
        ends.append((node, idx, ipaddress.ip_interface(cidr), mac))
    for node, idx, iface, _ in ends:
        for other, _, other_iface, other_mac in ends:
            if other != node and other_iface.ip in iface.network:
                lab.ipr(node).neigh("add", dst=str(other_iface.ip), lladdr=other_mac,
                                    ifindex=idx, state="permanent")
