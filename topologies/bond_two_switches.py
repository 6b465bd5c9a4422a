"""A server dual-homed to TWO switches through an active-backup bond: no single switch
is a single point of failure (the fix for bond-single-switch-death).

                    cli  198.51.100.1/24
                     | eth0
                     | p0
               +-----------+
               |   core    |   Linux bridge; the client hangs off neither access switch
               +-----------+
                 p1     p2
                 |       |
                 p0      p0
           +-------+   +-------+
           |  sw1  |   |  sw2  |   Linux bridges (access switches), NOT cabled together
           +-------+   +-------+
                 p1      p1
                 |       |
               eth0     eth1
               [  bond0   ]   198.51.100.2/24, active-backup, miimon 100
                    srv

Why this shape: the client must survive the loss of either access switch, so it sits
behind a third switch (core) cabled to both. A sw1-sw2 cable as well would close a
loop core-sw1-sw2-core, and Linux bridges run no spanning tree here: a broadcast storm.
Without it the only other path between sw1 and sw2 runs through the server's bond,
and a bond never forwards between its members (it is an end station, and in
active-backup it even drops what arrives on the backup member), so there is no loop.
The bond's active member decides which access switch carries the traffic; eth0 is
active at start (enslaved first, or ``primary=eth0``).

When the active member's switch dies, eth0 loses carrier, the MII monitor moves the
bond to eth1 within one miimon period and the bond announces itself with a gratuitous
ARP (num_grat_arp, default 1) through sw2, so that core learns the server's MAC on p2;
core's p1 lost carrier too, which already flushed what it had learned there. The MAC
does not move (fail_over_mac none) and neither end's address loses carrier, so no
neighbour entry has to be re-resolved.

Only the modes that need nothing from the switches are allowed (active-backup,
balance-tlb, balance-alb): the others hash or aggregate across members and expect both
cables on one switch or one LAG.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from harness.tech.bond.params import BondParams
from harness.topology.model import Topology

SUBNET = "198.51.100"  # TEST-NET-2: documentation addresses, never routed
MEMBERS = ["eth0", "eth1"]


class Params(BondParams):
    # The modes that need nothing from the switches (see above).
    supported_modes = ("active-backup", "balance-tlb", "balance-alb")
    # no ARP monitor here: the MII monitor is the bond's only way to see a switch die
    needs_mii_monitor = True

    # kernel option names; values and limits: harness.tech.bond.options
    bond_mode: str = "active-backup"
    miimon: int = Field(100, description="MII link check period, ms")
    updelay: int = Field(0, description="ms a member must stay up before use")
    downdelay: int = Field(0, description="ms a member must stay down before failover")
    primary: Literal["eth0", "eth1"] | None = None  # preferred while it is up
    primary_reselect: str | None = None  # kernel default: always


def build(p: Params) -> Topology:
    t = Topology("bond_two_switches", __doc__ or "")
    srv, cli = t.add_host("srv"), t.add_host("cli")
    core, sw1, sw2 = t.add_switch("core"), t.add_switch("sw1"), t.add_switch("sw2")
    t.add_link(cli, "eth0", core, "p0")
    t.add_link(core, "p1", sw1, "p0")
    t.add_link(core, "p2", sw2, "p0")
    t.add_link(srv, "eth0", sw1, "p1")
    t.add_link(srv, "eth1", sw2, "p1")
    # Every parameter is a bond option under its kernel name; unset: the kernel's default.
    t.add_bond(srv, "bond0", MEMBERS, **p.bond_options())
    t.add_address(cli, "eth0", f"{SUBNET}.1/24")
    t.add_address(srv, "bond0", f"{SUBNET}.2/24")
    return t
