"""The failure units of a topology: what an audit fails, one at a time (or two).

A unit is one element an engineer could lose in production, named as they would name it,
with the scenario step that fails it in the lab:

- ``cable``: a link loses carrier at its far end (the near end sees it as a real NIC
  would see a pulled cable: carrier loss);
- ``nic``: a bond member fails on its own host (taken down at the near end);
- ``device``: a switch, a router, or a host that runs a technology's daemon (an MC-LAG
  leaf) dies: every cable down, its daemons killed, no goodbye. Other hosts (an orphan
  server) are not on the path;
- ``daemon``: a daemon a technology runs (keepalived, the MC-LAG agent) is killed while
  its box stays up.

The traffic's endpoints are not failed as devices: a dead client or server stops the
service by definition, and the audit asks about the path between them.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Any, Literal

from harness.errors import ConfigError
from harness.tech.registry import declared_daemons
from harness.topology.model import Topology

UnitKind = Literal["cable", "nic", "device", "daemon"]


@dataclass(frozen=True)
class Unit:
    kind: UnitKind
    node: str                 # where the step acts
    interface: str = ""       # cable, nic: the interface on ``node``
    far: str = ""             # cable: the node at its other end
    daemon: str = ""          # daemon: its name, as a daemon_crash step gives it
    label: str = ""           # how the table names it ("srv:eth0 <-> sw:p1")

    @property
    def key(self) -> str:
        """A name safe in a folder: the kind and the label's characters."""
        safe = "".join(c if c.isalnum() else "-" for c in self.label)
        return f"{self.kind}-{safe}".strip("-").replace("--", "-")

    def step(self, at_s: float) -> dict[str, Any]:
        """The scenario step that fails this unit at ``at_s``."""
        if self.kind == "cable":
            return {"at_s": at_s, "action": "cut", "node": self.node,
                    "interface": self.interface, "end": "far"}
        if self.kind == "nic":
            return {"at_s": at_s, "action": "cut", "node": self.node,
                    "interface": self.interface, "end": "near"}
        if self.kind == "device":
            return {"at_s": at_s, "action": "device_down", "node": self.node}
        return {"at_s": at_s, "action": "daemon_crash", "node": self.node,
                "daemon": self.daemon}


def check_endpoints(topo: Topology, endpoints: tuple[str, str]) -> None:
    """Both endpoints are hosts of ``topo``, and not the same one."""
    hosts = topo.hosts()
    for end in endpoints:
        if end not in topo.nodes:
            raise ConfigError(f"topology {topo.name} has no node {end!r} to send traffic"
                              " between", f"pick hosts of the topology: {', '.join(hosts)}")
        if end not in hosts:
            raise ConfigError(f"{end!r} is a switch of {topo.name}, not a host",
                              f"pick hosts of the topology: {', '.join(hosts)}")
    if endpoints[0] == endpoints[1]:
        raise ConfigError(f"--server and --client are both {endpoints[0]!r}",
                          "give two different hosts")


def failure_units(topo: Topology, endpoints: tuple[str, str]) -> list[Unit]:
    """Every unit of ``topo``, in a stable order: cables, member NICs, devices, daemons."""
    check_endpoints(topo, endpoints)
    units: list[Unit] = []
    for link in topo.links:
        # cut from a host's side where there is one: "end: far" takes the other end down
        node, intf, far, far_intf = ((link.a, link.a_intf, link.b, link.b_intf)
                                     if topo.nodes[link.a].kind == "host"
                                     else (link.b, link.b_intf, link.a, link.a_intf))
        units.append(Unit("cable", node, intf, far=far,
                          label=f"{node}:{intf} <-> {far}:{far_intf}"))
    for bond in topo.bonds:
        units += [Unit("nic", bond.node, member, label=f"{bond.node}:{member}")
                  for member in bond.members]
    daemons_on = declared_daemons(topo)
    units += [Unit("device", name, label=name) for name, node in topo.nodes.items()
              if name not in endpoints and (node.kind == "switch" or node.forwarding
                                            or name in daemons_on)]
    for node, daemons in daemons_on.items():
        units += [Unit("daemon", node, daemon=d, label=f"{d} on {node}") for d in daemons]
    return units


def unit_sets(units: list[Unit], order: int, max_trials: int) -> list[tuple[Unit, ...]]:
    """One tuple per trial: each unit alone (order 1), or every pair (order 2). A pair of
    one unit with something it already takes down (a device and its own cables) is left
    out: it is that device's failure again."""
    if order not in (1, 2):
        raise ConfigError(f"--order {order} is not 1 or 2",
                          "give --order 1 (each unit alone) or --order 2 (every pair)")
    if order == 1:
        return [(u,) for u in units]
    pairs = [(a, b) for a, b in combinations(units, 2) if not _contains(a, b)
             and not _contains(b, a)]
    if len(pairs) > max_trials:
        raise ConfigError(f"an order-2 audit of these {len(units)} units is {len(pairs)}"
                          f" trials, more than --max-trials {max_trials}",
                          f"pass --max-trials {len(pairs)} to run them all (each takes"
                          " about a minute in UML), or audit a smaller topology")
    return pairs


def _contains(a: Unit, b: Unit) -> bool:
    """Whether failing ``a`` already fails ``b`` (a device takes its cables, NICs and
    daemons with it)."""
    return a.kind == "device" and a.node in (b.node, b.far)
