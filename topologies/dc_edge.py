r"""A whole redundant path: a server dual-homed to an MC-LAG leaf pair, a VRRP router pair
dual-homed to the same leaves, uplinks to a redundant upstream network, a client outside.

                      cli  203.0.113.10/24   default via 203.0.113.254 (the uplink VIP)
                  eth0 |   [ bond0 ]   | eth1      active-backup, one member per switch
                    p0 |               | p0
           +-------------+    isl    +-------------+
           |     up1     |-----------|     up2     |   the upstream network: two Linux
           +-------------+           +-------------+   bridges (uplinks=1: up1 alone)
                 p1 |                       | p1
            eth2 .1 |                       | eth2 .2      203.0.113.0/24
                  [r1]                     [r2]          routers: IPv4 forwarding,
         bond0 .1 | |                       | | bond0 .2 keepalived (VRRP on bond0,
                  | |   198.51.100.0/24     | |          priority 200 / 100; VIPs
                  | +--------+     +--------+ |          .254 on bond0 and on eth2)
              p2  |        p3|     |p2        | p3
           +-------------+ =pl=/=ka= +-------------+   the MC-LAG pair (harness/tech/
           |    leaf1    |-----------|    leaf2    |   mclag): one LACP system, a
           |     br0     |-----------|     br0     |   virtual MAC, toward srv, r1, r2
           +-------------+           +-------------+
                  p1 \                   / p1
                 eth0 \                 / eth1
                       [ bond0 ] srv 198.51.100.10/24   default via 198.51.100.254

Each router's and the server's 802.3ad bond has one member to each leaf (r1's eth0 to
leaf1, eth1 to leaf2; r2's likewise). Redundancy per tier is a parameter, so one file
shows a path with single points of failure and one without:

- ``routers=1``: one gateway (no VRRP: its own addresses are the gateways);
- ``track_uplink=false``: the VRRP instance does not track eth2, the uplink: a master
  whose uplink is cut keeps both gateways and blackholes the traffic while VRRP looks
  healthy;
- ``uplinks=1``: the upstream network is one switch, which both routers reach.

``servers=N`` dual-homes N servers (srv, then srv2 ... srvN at .11 onwards, each with
its own bond on each leaf): the scale of a rack on one MC-LAG pair and a VRRP pair
(scripts/bench_scale.py times its bring-up for 8 to 64 servers).

Not yet a parameter: a single leaf (the pair's emulation needs two).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from harness.tech.bond.params import BondParams
from harness.tech.mclag.options import Leaf, McLagOptions, McLagPair
from harness.tech.vrrp.options import vrrp_options
from harness.topology.model import Topology

LAN, UPSTREAM = "198.51.100", "203.0.113"  # TEST-NET-2 and -3: documentation ranges
VIP_HOST = 254
LEAVES = ("leaf1", "leaf2")


class Params(BondParams):
    # every bond here speaks LACP to the pair (the client's is active-backup, fixed)
    supported_modes = ("802.3ad",)
    needs_mii_monitor = True

    # the server's and the routers' bonds (kernel option names: harness.tech.bond.options)
    bond_mode: str = "802.3ad"
    miimon: int = 100
    lacp_rate: str = "fast"
    xmit_hash_policy: str = "layer3+4"
    routers: int = Field(2, ge=1, le=2, description="1: a single gateway (a SPoF)")
    track_uplink: bool = Field(True, description="VRRP tracks eth2, the uplink")
    uplinks: int = Field(2, ge=1, le=2, description="upstream switches: 2 joined by a link")
    servers: int = Field(1, ge=1, le=64, description="dual-homed servers: srv, srv2 ... srvN")
    # 1 s: at 0.1 s keepalived flapped in a User-mode Linux guest shared with two MC-LAG
    # agents and ten bonds (natively, --param advert_int=0.1 is worth a try)
    advert_int: float = Field(1.0, description="VRRP advert interval, s")
    heartbeat_ms: int = McLagOptions.model_fields["heartbeat_ms"].default
    peer_timeout_ms: int = McLagOptions.model_fields["peer_timeout_ms"].default
    delay_restore_ms: int = McLagOptions.model_fields["delay_restore_ms"].default


def dual_homed(p: Params) -> dict[str, tuple[str, str]]:
    """host -> (the leaves' bond for it, the leaf port its members reach)."""
    hosts = {"srv": ("po1", "p1"), "r1": ("po2", "p2")}
    if p.routers == 2:
        hosts["r2"] = ("po3", "p3")
    for k in range(2, p.servers + 1):  # after the routers' numbers, whether r2 is there
        hosts[f"srv{k}"] = (f"po{k + 2}", f"p{k + 2}")
    return hosts


def router_options(p: Params, number: int) -> dict[str, Any]:
    options: dict[str, Any] = {
        "interface": "bond0",
        "virtual_router_id": 51,
        "virtual_ipaddress": [f"{LAN}.{VIP_HOST}/24", f"{UPSTREAM}.{VIP_HOST}/24 dev eth2"
                              + ("" if p.track_uplink else " no_track")],
        "priority": (200, 100)[number - 1],
        "version": 3,
        "advert_int": p.advert_int,
        "track_interface": ["eth2"] if p.track_uplink else [],
    }
    vrrp_options(options)
    return options


def build(p: Params) -> Topology:
    t = Topology("dc_edge", __doc__ or "")
    options = McLagOptions(heartbeat_ms=p.heartbeat_ms, peer_timeout_ms=p.peer_timeout_ms,
                           delay_restore_ms=p.delay_restore_ms)
    hosts = dual_homed(p)
    cli, srv = t.add_host("cli"), t.add_host("srv")
    servers = [srv, *(t.add_host(f"srv{k}") for k in range(2, p.servers + 1))]
    ups = [t.add_switch(f"up{n}") for n in range(1, p.uplinks + 1)]
    for leaf in LEAVES:
        t.add_host(leaf)
    routers = [t.add_router(f"r{n}") for n in range(1, p.routers + 1)]
    t.add_link("leaf1", "pl", "leaf2", "pl")
    t.add_link("leaf1", "ka", "leaf2", "ka")
    if p.uplinks == 2:
        t.add_link("up1", "isl", "up2", "isl")
        for i, up in enumerate(ups):
            t.add_link(cli, f"eth{i}", up, "p0")
        t.add_bond(cli, "bond0", ["eth0", "eth1"], mode="active-backup", miimon=p.miimon)
    else:
        t.add_link(cli, "eth0", ups[0], "p0")
    for host, (_, port) in hosts.items():
        for i, leaf in enumerate(LEAVES):
            t.add_link(host, f"eth{i}", leaf, port)
        t.add_bond(host, "bond0", ["eth0", "eth1"], **p.bond_options(["eth0", "eth1"]))
    leaves = []
    for i, leaf in enumerate(LEAVES):
        for bond, port in hosts.values():
            t.add_bond(leaf, bond, [port], first_port=1 + i, mode="802.3ad",
                       miimon=p.miimon, lacp_rate=p.lacp_rate,
                       ad_actor_system=options.system_id,
                       ad_actor_sys_prio=options.system_priority,
                       ad_user_port_key=options.key)
        leaves.append(Leaf(leaf, peer_link="pl", keepalive="ka",
                           role_priority=100 if i == 0 else 200,
                           dual_homed={h: bond for h, (bond, _) in hosts.items()}))
    t.declare("mclag", McLagPair((leaves[0], leaves[1]), options))
    for n, router in enumerate(routers, start=1):
        # two upstream switches: r1 on up1, r2 on up2; one: both on it
        up, port = (ups[n - 1], "p1") if p.uplinks == 2 else (ups[0], f"p{n}")
        t.add_link(router, "eth2", up, port)
        t.add_address(router, "bond0", f"{LAN}.{n}/24")
        t.add_address(router, "eth2", f"{UPSTREAM}.{n}/24")
        if p.routers == 2:
            t.add_vrrp(router, **router_options(p, n))
    # with one router there is no VRRP peer: its own addresses are the gateways
    gateway = VIP_HOST if p.routers == 2 else 1
    for k, server in enumerate(servers):
        t.add_address(server, "bond0", f"{LAN}.{10 + k}/24")
        t.add_route(server, "default", f"{LAN}.{gateway}")
    t.add_address(cli, "bond0" if p.uplinks == 2 else "eth0", f"{UPSTREAM}.10/24")
    t.add_route(cli, "default", f"{UPSTREAM}.{gateway}")
    return t
