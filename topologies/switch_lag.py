"""Switch to switch: two Open vSwitch bridges joined by an LACP LAG.

          cli  198.51.100.1/24                    srv  198.51.100.2/24
           | eth0                                  | eth0
           | p0                                    | p0
     +-------------+   l1 ------------- l1   +-------------+
     |     sw1     |   l2 ------------- l2   |     sw2     |
     |  [ lag0 ]   |   ..               ..   |  [ lag0 ]   |
     +-------------+                         +-------------+
       Open vSwitch: l1..lN form LAG "lag0" on each side (balance-tcp, LACP active,
       lacp-time fast by default); each member cable optionally shaped to member_rate_mbit

The uplink between two switches, as in a data centre's access-to-aggregation layer.
Both ends run Open vSwitch's own LACP; the harness checks they negotiated (aggregation
key, partner system and port, synchronized/collecting/distributing on every member)
before traffic. `peer_lacp` sets sw2's LACP mode (active or passive: LACP needs at
least one active end).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from harness.tech.ovs.bridge import (
    DetectMode,
    LacpMode,
    LacpTime,
    LagMode,
    MiimonInterval,
    Milliseconds,
)
from harness.topology.model import Topology

SUBNET = "198.51.100"  # TEST-NET-2: documentation addresses, never routed


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

    members: int = Field(2, ge=2, le=4, description="member cables in the LAG")
    member_rate_mbit: float | None = Field(None, gt=0, description="shape each member")
    # Open vSwitch option names (ovs-vswitchd.conf.db(5)), types and limits from
    # harness.tech.ovs; both LAG ends alike
    bond_mode: LagMode = "balance-tcp"
    lacp: LacpMode = "active"
    peer_lacp: LacpMode = "active"
    lacp_time: LacpTime = "fast"
    bond_detect_mode: DetectMode = "carrier"
    miimon_interval: MiimonInterval = Field(100, description="ms, with bond_detect_mode miimon")
    updelay: Milliseconds = 0
    downdelay: Milliseconds = 0
    lacp_fallback_ab: bool = False
    # other_config:bond-primary, on both ends: without LACP nothing else makes the two
    # ends of an active-backup bundle pick the same member, and each drops what arrives
    # on a member other than its active one
    primary: str | None = None


def build(p: Params) -> Topology:
    t = Topology("switch_lag", __doc__ or "")
    cli, srv = t.add_host("cli"), t.add_host("srv")
    sw1, sw2 = t.add_switch("sw1", impl="ovs"), t.add_switch("sw2", impl="ovs")
    t.add_link(cli, "eth0", sw1, "p0")
    t.add_link(srv, "eth0", sw2, "p0")
    ports = [f"l{i + 1}" for i in range(p.members)]
    for port in ports:
        t.add_link(sw1, port, sw2, port, rate_mbit=p.member_rate_mbit)
    common = {"bond_mode": p.bond_mode, "lacp_time": p.lacp_time,
              "bond_detect_mode": p.bond_detect_mode, "miimon_interval": p.miimon_interval,
              "updelay": p.updelay, "downdelay": p.downdelay,
              "lacp_fallback_ab": p.lacp_fallback_ab, "primary": p.primary}
    t.add_lag(sw1, "lag0", ports, lacp=p.lacp, **common)
    t.add_lag(sw2, "lag0", ports, lacp=p.peer_lacp, **common)
    t.add_address(cli, "eth0", f"{SUBNET}.1/24")
    t.add_address(srv, "eth0", f"{SUBNET}.2/24")
    return t
