"""The technologies a lab can hold, in the order a lab builds and starts them (and stops
them in reverse): Open vSwitch bridges and kernel bonds first, teams (teamd) beside
the bonds once the LAGs they face exist, an MC-LAG pair's bridges
and control plane around its bonds, LACP once both ends of its bundles exist, VRRP last
(its routers' interfaces must be up and addressed).

A new technology is one import and one entry here, beside its own package.
"""

from __future__ import annotations

from harness.tech.base import Technology
from harness.tech.bond.plugin import Bonds
from harness.tech.lacp.plugin import LacpNegotiation
from harness.tech.mclag.plugin import McLag
from harness.tech.ovs.plugin import OvsSwitches
from harness.tech.team.plugin import Teams
from harness.tech.vrrp.plugin import VrrpRouters
from harness.topology.model import Topology

TECHNOLOGIES: tuple[type[Technology], ...] = (OvsSwitches, Bonds, Teams, McLag,
                                              LacpNegotiation, VrrpRouters)


def technologies_for(topo: Topology) -> list[type[Technology]]:
    """The technologies ``topo`` uses, in start order."""
    return [tech for tech in TECHNOLOGIES if tech.used_by(topo)]


def check(topo: Topology) -> list[str]:
    """What each technology finds wrong in its part of ``topo`` (before anything exists)."""
    return [problem for tech in technologies_for(topo) for problem in tech.check(topo)]


def declared_daemons(topo: Topology) -> dict[str, list[str]]:
    """node -> the daemons the technologies of ``topo`` will run on it, by name."""
    found: dict[str, list[str]] = {}
    for tech in technologies_for(topo):
        for node, names in tech.declared_daemons(topo).items():
            found.setdefault(node, []).extend(names)
    return found


def kernel_features(topo: Topology) -> list[str]:
    """The kernel features a lab of ``topo`` needs beyond every lab's, in a stable order."""
    return list(dict.fromkeys(f for tech in technologies_for(topo)
                              for f in tech.kernel_features))


def aliases(topo: Topology, node: str) -> set[str]:
    """The symbolic interface names a scenario may give on ``node`` (``active``)."""
    return {a for tech in technologies_for(topo) for a in tech.aliases(topo, node)}
