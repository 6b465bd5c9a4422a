"""A server dual-homed to one switch through a two-NIC kernel bond, and a client.

              cli  198.51.100.1/24   (the ARP monitor's target when arp_interval is set)
               | eth0
               | p0
          +---------+
          |   sw    |   Linux bridge: a learning switch that never forwards LACPDUs, so
          +---------+   modes 0-3, 5, 6 work; 802.3ad runs but finds no LACP partner
            p1    p2
            |      |
          eth0   eth1
          [  bond0  ]   198.51.100.2/24
              srv

The bond lives in the server's namespace and is configured through netlink. The default
is mode 1 (active-backup) with MII monitoring every 100 ms. Every other kernel bond option
is a parameter named as in bonding.rst (``primary=eth1``, ``lacp_rate=fast``,
``arp_ip_target=198.51.100.1``); left unset, the kernel's default stands. Setting
``arp_interval`` without ``miimon`` turns MII monitoring off: the kernel runs one monitor.
"""

from __future__ import annotations

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer

from harness.tech.bond.windows import WindowsTeamParams
from harness.topology.model import Topology

SUBNET = "198.51.100"  # TEST-NET-2: documentation addresses, never routed
MEMBERS = ["eth0", "eth1"]


class Params(WindowsTeamParams):
    """Every kernel bond option, under its kernel name; values and limits are the kernel's
    (harness.tech.bond.options); bond_mode is the bond's "mode", any of the seven."""

    bond_mode: str = "active-backup"
    miimon: int = Field(100, description="MII link check period, ms (0: off)")
    updelay: int = Field(0, description="ms a member must stay up before use")
    downdelay: int = Field(0, description="ms a member must stay down before failover")
    arp_interval: int | None = Field(None, description="ARP link check period, ms")
    arp_ip_target: list[str] | None = Field(None, description="addresses the ARP monitor asks")
    arp_validate: str | None = None      # which replies the ARP monitor trusts
    primary: str | None = None           # a member, preferred while it is up
    primary_reselect: str | None = None  # when a primary that is back takes over again
    fail_over_mac: str | None = None     # whose MAC address the bond shows
    lacp_rate: str | None = None         # how often the partner sends LACPDUs (802.3ad)
    xmit_hash_policy: str | None = None  # how flows spread over the members
    tlb_dynamic_lb: int | None = None    # balance-tlb/-alb: 1 by load, 0 by the hash
    min_links: int | None = Field(None, description="members up before carrier")
    ad_select: str | None = None         # which aggregator is used (802.3ad)
    ad_actor_system: str | None = None   # the LACP system id sent (802.3ad; MC-LAG)
    ad_actor_sys_prio: int | None = None  # its priority, 1-65535 (802.3ad)
    ad_user_port_key: int | None = None   # upper bits of the LACP key, 0-1023 (802.3ad)

    @model_serializer(mode="wrap")
    def _asked_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, object]:
        # Unset options are the kernel's defaults; the bond state read back records them.
        return {k: v for k, v in handler(self).items() if v is not None}


def build(p: Params) -> Topology:
    t = Topology("bond_server", __doc__ or "")
    srv, cli, sw = t.add_host("srv"), t.add_host("cli"), t.add_switch("sw")
    t.add_link(cli, "eth0", sw, "p0")
    t.add_link(srv, "eth0", sw, "p1")
    t.add_link(srv, "eth1", sw, "p2")
    t.add_bond(srv, "bond0", MEMBERS, **p.bond_options(MEMBERS))
    t.add_address(cli, "eth0", f"{SUBNET}.1/24")
    t.add_address(srv, "bond0", f"{SUBNET}.2/24")
    return t
