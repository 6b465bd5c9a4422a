"""A server's two NICs teamed by the Linux team driver (teamd), to one switch, and a client.

              cli  198.51.100.1/24
               | eth0
               | p0
          +---------+
          |   sw    |   runner activebackup: a Linux bridge (a learning switch);
          +---------+   runner lacp: an Open vSwitch bridge whose p1, p2 form LAG "lag0"
            p1    p2    (balance-tcp, LACP active, lacp-time fast)
            |      |
          eth0   eth1
          [  team0  ]   198.51.100.2/24, teamd (libteam-utils) drives it
              srv

The team is the kernel bond's counterpart with its brain in userspace: teamd creates
team0, takes eth0 and eth1 and runs the runner asked for (``activebackup``: one port
carries the traffic; ``lacp``: 802.3ad against the switch's LAG), watching the ports'
links with ethtool (carrier events; ``delay_up``/``delay_down`` ms before it acts).
Compare a member failure here with the same on ``bond_server`` or ``lag_server``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from harness.tech.team.config import add_team
from harness.topology.model import Topology

SUBNET = "198.51.100"  # TEST-NET-2: documentation addresses, never routed
MEMBERS = ["eth0", "eth1"]


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

    runner: Literal["activebackup", "lacp"] = "activebackup"
    delay_up: int = Field(0, ge=0, le=60000, description="ms a port's link must stay up")
    delay_down: int = Field(0, ge=0, le=60000, description="ms a port's link must stay down")
    fast_rate: bool = Field(True, description="lacp: ask the switch for an LACPDU every 1 s")
    member_rate_mbit: float | None = Field(None, gt=0, description="shape each member")


def build(p: Params) -> Topology:
    t = Topology("team_server", __doc__ or "")
    lacp = p.runner == "lacp"
    srv, cli = t.add_host("srv"), t.add_host("cli")
    sw = t.add_switch("sw", impl="ovs" if lacp else "bridge")
    t.add_link(cli, "eth0", sw, "p0")
    for n, member in enumerate(MEMBERS, start=1):
        t.add_link(srv, member, sw, f"p{n}", rate_mbit=p.member_rate_mbit)
    options = {"fast_rate": p.fast_rate} if lacp else {}
    add_team(t, srv, "team0", MEMBERS, runner=p.runner, delay_up=p.delay_up,
             delay_down=p.delay_down, **options)
    if lacp:
        t.add_lag(sw, "lag0", ["p1", "p2"], bond_mode="balance-tcp", lacp="active",
                  lacp_time="fast")
    t.add_address(cli, "eth0", f"{SUBNET}.1/24")
    t.add_address(srv, "team0", f"{SUBNET}.2/24")
    return t
