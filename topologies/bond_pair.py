"""Server to server: two kernel bonds cabled back to back, LACP between Linux and Linux.

              srv                            198.51.100.2/24
          [  bond0  ]   802.3ad, lacp_rate fast, xmit_hash_policy layer3+4, miimon 100
          eth0    eth1
            |       |    two direct cables, each optionally shaped to member_rate_mbit
          eth0    eth1
          [  bond0  ]   the same options
              cli                            198.51.100.1/24

No switch: a Linux bridge never forwards LACPDUs (01:80:c2:00:00:02), so the two bonds
must face each other directly to negotiate. Before traffic the harness checks that they
did (same aggregator for both members at each end, each end's partner the other's actor
system, key and port; the table is kept in lab.json under lacp_negotiated). Each end
hashes its own transmit direction over its members (layer3+4: per TCP/UDP flow).

Both bonds get the same options. In active-backup each end picks its own active member:
traffic flows only while both pick the cable of the same number (both start on eth0,
and a cut moves both ends), so prefer a mode that uses every member.
"""

from __future__ import annotations

from pydantic import Field

from harness.tech.bond.params import BondParams
from harness.topology.model import Topology

SUBNET = "198.51.100"  # TEST-NET-2: documentation addresses, never routed
MEMBERS = ["eth0", "eth1"]


class Params(BondParams):
    # modes that work over direct cables (active-backup: see above)
    supported_modes = ("802.3ad", "balance-xor", "balance-rr", "active-backup")
    # no ARP monitor here: the MII monitor is the bonds' only way to see a cut
    needs_mii_monitor = True

    # kernel option names; values and limits: harness.tech.bond.options
    bond_mode: str = "802.3ad"
    miimon: int = Field(100, description="MII link check period, ms")
    lacp_rate: str = "fast"  # 802.3ad only
    xmit_hash_policy: str = "layer3+4"
    member_rate_mbit: float | None = Field(None, gt=0, description="shape each member cable")


def build(p: Params) -> Topology:
    t = Topology("bond_pair", __doc__ or "")
    srv, cli = t.add_host("srv"), t.add_host("cli")
    for member in MEMBERS:
        t.add_link(srv, member, cli, member, rate_mbit=p.member_rate_mbit)
    options = p.bond_options()
    if p.bond_mode != "802.3ad":
        del options["lacp_rate"]  # the kernel takes it in 802.3ad only
    for node in (srv, cli):
        t.add_bond(node, "bond0", MEMBERS, **options)
    t.add_address(cli, "bond0", f"{SUBNET}.1/24")
    t.add_address(srv, "bond0", f"{SUBNET}.2/24")
    return t
