"""An MC-LAG pair: two leaf switches presenting one LACP system (a virtual MAC) to
dual-homed servers, with a peer link, a keepalive link and an orphan server.

          cli  198.51.100.1/24: the upstream, itself dual-homed (bond0, 802.3ad)
        eth0 |          | eth1
          p2 |          | p2
     +---------------+ pl     pl +---------------+
     |     leaf1     |-----------|     leaf2     |   each leaf: a namespace whose Linux
     | br0: po1 po2  |   peer    | br0: po1 po2  |   bridge br0 joins a bond per
     |      pl       |   link    |      pl p3    |   dual-homed server (po1: srv,
     +---------------+ ka     ka +---------------+   po2: cli), the peer link and the
          p1 |     \\-----------/    | p1  | p3      orphan port; ka, the keepalive
        eth0 |       keepalive      | eth1 | eth0   link, is not bridged
          [ bond0 ]  srv  198.51.100.2/24  orph 198.51.100.3/24 (on leaf2 only)

Both leaves' bonds po1 and po2 carry the pair's system id, priority and key
(``ad_actor_system``, ``ad_actor_sys_prio``, ``ad_user_port_key``), so srv's and cli's
802.3ad bonds each see one partner and put both members in one aggregator. leaf2's
ports are numbered after leaf1's (port 2, not 1) as a real pair's are. Server-to-leaf
cables are direct: a Linux bridge never forwards LACPDUs.

Each leaf runs RedLab's emulated MC-LAG control plane (harness/tech/mclag: heartbeats on
the peer link and the keepalive link, the primary/secondary election, MAC sync, split
horizon and the policies). leaf1 is primary by default. The orphan hangs off leaf2, the
secondary, which is where real pairs cut orphans off when the peer link fails.

cli reaches srv through either leaf: each end's bond hashes its flows over its members,
and a frame crosses the peer link only when a leaf has no local half for its target.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationError, model_validator

from harness.tech.bond.options import unicast_mac
from harness.tech.bond.windows import WindowsTeamParams
from harness.tech.mclag.options import (
    DualActivePolicy,
    Leaf,
    McLagOptions,
    McLagPair,
    PeerLinkPolicy,
)
from harness.topology.model import Topology

SUBNET = "198.51.100"  # TEST-NET-2: documentation addresses, never routed
LEAVES = ("leaf1", "leaf2")
# server -> (its member cabled to leaf1, to leaf2), the leaves' bond for it
DUAL_HOMED = {"srv": ("po1", "p1"), "cli": ("po2", "p2")}


class Params(WindowsTeamParams):
    # the dual-homed servers' bonds speak LACP to the pair
    supported_modes = ("802.3ad",)

    # the servers' bonds (kernel option names; values and limits: harness.tech.bond.options)
    bond_mode: str = "802.3ad"
    miimon: int = 100
    lacp_rate: str = Field("fast", description="the servers' and the leaves' bonds")
    xmit_hash_policy: str = "layer3+4"
    member_rate_mbit: float | None = Field(None, gt=0, description="shape server cables")
    # the pair (harness.tech.mclag.options.McLagOptions)
    system_id: str = McLagOptions.model_fields["system_id"].default
    system_priority: int = McLagOptions.model_fields["system_priority"].default
    key: int = McLagOptions.model_fields["key"].default
    heartbeat_ms: int = McLagOptions.model_fields["heartbeat_ms"].default
    peer_timeout_ms: int = McLagOptions.model_fields["peer_timeout_ms"].default
    peer_link_policy: PeerLinkPolicy = McLagOptions.model_fields["peer_link_policy"].default
    dual_active_policy: DualActivePolicy = McLagOptions.model_fields[
        "dual_active_policy"].default
    delay_restore_ms: int = McLagOptions.model_fields["delay_restore_ms"].default
    keepalive: bool = Field(True, description="a keepalive link beside the peer link")
    primary_leaf: Literal["leaf1", "leaf2"] = "leaf1"
    # a misconfiguration to show the check: leaf2's bonds with another system id
    leaf2_system_id: str | None = None

    @model_validator(mode="after")
    def _pair(self) -> Params:
        try:
            self.pair_options()
        except ValidationError as exc:
            raise ValueError("; ".join(str(e["msg"]).removeprefix("Value error, ")
                                       for e in exc.errors())) from None
        if self.leaf2_system_id is not None:
            try:
                self.leaf2_system_id = unicast_mac(self.leaf2_system_id)
            except ValueError as exc:
                raise ValueError(f"leaf2_system_id {self.leaf2_system_id!r} {exc}") from None
        return self

    def pair_options(self) -> McLagOptions:
        return McLagOptions(**{k: getattr(self, k) for k in McLagOptions.model_fields})


def build(p: Params) -> Topology:
    options = p.pair_options()
    t = Topology("mclag", __doc__ or "")
    for host in ("srv", "cli", "orph", *LEAVES):
        t.add_host(host)
    t.add_link("leaf1", "pl", "leaf2", "pl")
    if p.keepalive:
        t.add_link("leaf1", "ka", "leaf2", "ka")
    t.add_link("orph", "eth0", "leaf2", "p3")
    for server, (_, port) in DUAL_HOMED.items():
        for i, leaf in enumerate(LEAVES):
            t.add_link(server, f"eth{i}", leaf, port, rate_mbit=p.member_rate_mbit)
        t.add_bond(server, "bond0", ["eth0", "eth1"], **p.bond_options(["eth0", "eth1"]))
    leaves = []
    for i, leaf in enumerate(LEAVES):
        system_id = (p.leaf2_system_id if leaf == "leaf2" and p.leaf2_system_id
                     else options.system_id)
        for bond, port in DUAL_HOMED.values():
            t.add_bond(leaf, bond, [port], first_port=1 + i, mode="802.3ad",
                       miimon=p.miimon, lacp_rate=p.lacp_rate, ad_actor_system=system_id,
                       ad_actor_sys_prio=options.system_priority,
                       ad_user_port_key=options.key)
        leaves.append(Leaf(
            leaf, peer_link="pl", keepalive="ka" if p.keepalive else None,
            role_priority=100 if leaf == p.primary_leaf else 200,
            dual_homed={server: bond for server, (bond, _) in DUAL_HOMED.items()},
            orphans=("p3",) if leaf == "leaf2" else (),
            system_id=system_id if system_id != options.system_id else None))
    t.declare("mclag", McLagPair((leaves[0], leaves[1]), options))
    t.add_address("cli", "bond0", f"{SUBNET}.1/24")
    t.add_address("srv", "bond0", f"{SUBNET}.2/24")
    t.add_address("orph", "eth0", f"{SUBNET}.3/24")
    return t
