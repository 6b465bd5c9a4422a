"""The everyday LAG: a server's kernel bond (802.3ad) against an Open vSwitch LACP bond.

              cli  198.51.100.1/24
               | eth0
               | p0
     +--------------------+
     |        sw          |   Open vSwitch bridge; p1..pN form LAG "lag0"
     |  [     lag0      ] |   (balance-tcp, LACP active, lacp-time fast by default)
     +--------------------+
        p1   p2  ..  pN        each member cable optionally shaped to member_rate_mbit
        |    |       |
      eth0 eth1 .. ethN-1
     [      bond0      ]   198.51.100.2/24, Linux bond (802.3ad, lacp_rate fast)
              srv

The bond's hash (xmit_hash_policy) spreads the server's flows over its members; the
switch hashes the other direction (balance-tcp: L4 ports). The client's own cable is
never shaped, so that the LAG is the bottleneck whose capacity the figures show.
Before traffic the harness checks that both ends negotiated LACP (aggregator, partner
system and key, synchronized/collecting/distributing on every member).
"""

from __future__ import annotations

from pydantic import Field

from harness.tech.bond.windows import WindowsTeamParams
from harness.tech.ovs.bridge import DetectMode, LacpMode, LacpTime, LagMode
from harness.topology.model import Topology

SUBNET = "198.51.100"  # TEST-NET-2: documentation addresses, never routed


class Params(WindowsTeamParams):
    # The bond modes this topology runs against the switch's LAG.
    supported_modes = ("802.3ad", "balance-xor", "active-backup")

    members: int = Field(2, ge=2, le=4, description="member cables in the LAG")
    member_rate_mbit: float | None = Field(None, gt=0, description="shape each member")
    # the server's bond (kernel option names; values and limits: harness.tech.bond.options)
    bond_mode: str = "802.3ad"
    miimon: int = 100
    lacp_rate: str = "fast"
    xmit_hash_policy: str = "layer3+4"
    # the switch's LAG (Open vSwitch option names, prefixed switch_ where they clash)
    switch_bond_mode: LagMode = "balance-tcp"
    switch_lacp: LacpMode = "active"
    switch_lacp_time: LacpTime = "fast"
    bond_detect_mode: DetectMode = "carrier"


def build(p: Params) -> Topology:
    t = Topology("lag_server", __doc__ or "")
    srv, cli, sw = t.add_host("srv"), t.add_host("cli"), t.add_switch("sw", impl="ovs")
    t.add_link(cli, "eth0", sw, "p0")
    members, ports = [], []
    for i in range(p.members):
        t.add_link(srv, f"eth{i}", sw, f"p{i + 1}", rate_mbit=p.member_rate_mbit)
        members.append(f"eth{i}")
        ports.append(f"p{i + 1}")
    bond = p.bond_options(members)
    if bond["mode"] != "802.3ad":
        bond.pop("lacp_rate", None)  # the kernel takes it in 802.3ad only
    t.add_bond(srv, "bond0", members, **bond)
    t.add_lag(sw, "lag0", ports, bond_mode=p.switch_bond_mode, lacp=p.switch_lacp,
              lacp_time=p.switch_lacp_time, bond_detect_mode=p.bond_detect_mode)
    t.add_address(cli, "eth0", f"{SUBNET}.1/24")
    t.add_address(srv, "bond0", f"{SUBNET}.2/24")
    return t
