"""What the topology's shape predicts for each failure unit (networkx).

The topology becomes an undirected graph whose vertices are its devices, its cables and
its hosts' NICs (host - NIC - cable - switch port), so that a cable or a NIC is a vertex
that can be removed like a device. A unit (or a pair) is predicted a single point of
failure when removing its vertices leaves no path between the traffic's endpoints; the
articulation points of the graph are the candidates. A daemon is predicted as its box:
what its death takes away is that box's part in the redundancy (a gateway, a leaf's
control plane), which is what a shape can say and what the measurement then tests.

The shape knows nothing of protocols: a VRRP master whose untracked uplink is cut keeps
the gateway and blackholes the traffic, although the graph still has a path through
the backup. That is a disagreement the audit reports, not an error of the prediction.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

import networkx as nx

from harness.audit.units import Unit
from harness.topology.model import Topology

Vertex = tuple[str, ...]
Predicted = Literal["spof", "redundant"]


def device(name: str) -> Vertex:
    return ("node", name)


def build_graph(topo: Topology) -> nx.Graph:
    graph = nx.Graph()
    graph.add_nodes_from(device(name) for name in topo.nodes)
    for i, link in enumerate(topo.links):
        cable: Vertex = ("cable", str(i))
        for node, intf in ((link.a, link.a_intf), (link.b, link.b_intf)):
            if topo.nodes[node].kind == "host":
                nic: Vertex = ("nic", node, intf)
                graph.add_edge(device(node), nic)
                graph.add_edge(nic, cable)
            else:
                graph.add_edge(device(node), cable)
    return graph


def vertices(topo: Topology, unit: Unit) -> list[Vertex]:
    """The graph vertices that ``unit``'s failure removes."""
    if unit.kind == "cable":
        index = next(i for i, link in enumerate(topo.links)
                     if link.end(unit.node, unit.interface) is not None)
        return [("cable", str(index))]
    if unit.kind == "nic":
        return [("nic", unit.node, unit.interface)]
    return [device(unit.node)]  # a device, or a daemon predicted as its box


def connected_without(graph: nx.Graph, removed: Iterable[Vertex],
                      endpoints: tuple[str, str]) -> bool:
    view = nx.restricted_view(graph, list(removed), [])
    return nx.has_path(view, device(endpoints[0]), device(endpoints[1]))


def single_points(graph: nx.Graph, endpoints: tuple[str, str]) -> set[Vertex]:
    """The articulation points whose loss separates the endpoints."""
    ends = {device(end) for end in endpoints}
    return {v for v in nx.articulation_points(graph)
            if v not in ends and not connected_without(graph, [v], endpoints)}


def predict(topo: Topology, units: Iterable[tuple[Unit, ...]], endpoints: tuple[str, str]
            ) -> list[Predicted]:
    """Per unit set: "spof" if failing it leaves no path between the endpoints."""
    graph = build_graph(topo)
    cut = single_points(graph, endpoints)
    out: list[Predicted] = []
    for unit_set in units:
        removed = [v for unit in unit_set for v in vertices(topo, unit)]
        if len(unit_set) == 1:
            out.append("spof" if set(removed) & cut else "redundant")
        else:
            out.append("redundant" if connected_without(graph, removed, endpoints)
                       else "spof")
    return out
