"""An unprotected path: one client, one switch, one server, single cables.

        cli  198.51.100.1/24            srv  198.51.100.2/24
         | eth0                          | eth0
         | p0                            | p1
       +------------------------------------+
       |                 sw                 |   Linux bridge
       +------------------------------------+

Nothing here is redundant, so an outage injected on srv's cable is exactly the outage
traffic sees: `redlab calibrate` uses it to check the probe against known outages.
Neighbour entries are permanent: Linux flushes a device's ARP entries when its carrier
drops and re-resolves only on the neighbour retransmit timer (up to 1 s later), which
would add a real but unrelated outage after each restore. Needs only veth and bridge,
so it runs natively on almost any kernel.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from harness.topology.model import Topology

SUBNET = "198.51.100"  # TEST-NET-2: documentation addresses, never routed


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")


def build(p: Params) -> Topology:
    t = Topology("path", __doc__ or "")
    cli, srv, sw = t.add_host("cli"), t.add_host("srv"), t.add_switch("sw")
    t.add_link(cli, "eth0", sw, "p0")
    t.add_link(srv, "eth0", sw, "p1")
    t.add_address(cli, "eth0", f"{SUBNET}.1/24")
    t.add_address(srv, "eth0", f"{SUBNET}.2/24")
    t.static_neighbours = True
    return t
