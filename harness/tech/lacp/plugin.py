"""LACP as a lab technology: wherever a cable bundle joins two aggregates (a Linux
802.3ad bond, an Open vSwitch LAG) and at least one speaks LACP, bring-up waits until
both ends have negotiated (harness.tech.lacp.check) and keeps the table both ends showed;
one end without LACP is a disagreement the check reports, not a bundle to skip.  It
starts after the bonds and the OVS LAGs it reads (see the registry's order)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from harness.tech.base import Technology
from harness.tech.lacp import check, linux
from harness.tech.lacp import ovs as lacp_ovs
from harness.tech.ovs import bridge as ovs

if TYPE_CHECKING:
    from harness.lab.running import Lab
    from harness.topology.model import Topology

End = linux.LinuxLacp | lacp_ovs.OvsLacp | check.LagEnd


class LacpNegotiation(Technology):
    """Every LACP bundle of the topology, negotiated before traffic."""

    name = "lacp"

    def __init__(self, lab: Lab) -> None:
        super().__init__(lab)
        self.tables: dict[str, str] = {}  # "a - b" -> both ends' state once negotiated

    @classmethod
    def used_by(cls, topo: Topology) -> bool:
        return bool(bundles(topo))

    def start(self) -> None:
        for a, b, links in bundles(self.lab.topo):
            names = {self.lab.ifname(a, x): self.lab.ifname(b, y) for x, y in links.items()}
            verdict = check.wait_negotiated(lambda a=a, b=b: (self.read(a), self.read(b)),
                                            links=names)
            self.tables[f"{a} - {b}"] = verdict.table

    def state(self) -> dict[str, Any]:
        return {"lacp_negotiated": {k: v.splitlines() for k, v in self.tables.items()}}

    def read(self, node: str) -> End:
        """``node``'s LACP state; an end with only a problem where it speaks no LACP."""
        topo, lab = self.lab.topo, self.lab
        name = lacp_end(topo, node)
        if name is None:
            # a bundle exists only between aggregates: node has a LAG or a bond
            lag = next((g for g in topo.lags if g.switch == node), None)
            what = (f"ovs {lab.ifname(node, lag.name)} (lacp=off)" if lag else
                    f"linux {topo.bond(node).name} (mode {topo.bond(node).settings.mode})")
            return check.LagEnd(what, (), (f"{what}: does not speak LACP",))
        if topo.nodes[node].kind == "switch":
            return lacp_ovs.read_ovs(lab.ifname(node, name))
        return linux.read_linux(name, lab.pid(node))


class Bundle(NamedTuple):
    """The two ends of one cable bundle, and which member faces which."""

    a: str
    b: str
    links: dict[str, str]  # a's member interface -> b's, as the topology names them


def lacp_end(topo: Topology, node: str) -> str | None:
    """The LACP-speaking aggregate on ``node`` (an 802.3ad bond or an LACP LAG), if any."""
    for bond in topo.bonds:
        if bond.node == node and bond.settings.mode == "802.3ad":
            return bond.name
    for lag in topo.lags:
        if lag.switch == node and ovs.lag_options(lag.options)["lacp"] != "off":
            return lag.name
    return None


def bundles(topo: Topology) -> list[Bundle]:
    """Every cable bundle between two aggregates of which at least one speaks LACP."""
    def member(node: str, intf: str) -> bool:
        return (any(b.node == node and intf in b.members for b in topo.bonds)
                or any(g.switch == node and intf in g.ports for g in topo.lags))

    found: dict[tuple[str, str], dict[str, str]] = {}
    for link in topo.links:
        a, b = (link.a, link.a_intf), (link.b, link.b_intf)
        if not (member(*a) and member(*b)):
            continue
        if lacp_end(topo, a[0]) is None and lacp_end(topo, b[0]) is None:
            continue
        key = tuple(sorted((a[0], b[0])))
        first, second = (a, b) if key[0] == a[0] else (b, a)
        found.setdefault(key, {})[first[1]] = second[1]  # type: ignore[index]
    return [Bundle(a, b, links) for (a, b), links in found.items()]
