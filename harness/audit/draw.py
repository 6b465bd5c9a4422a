"""The topology drawn with each failure unit coloured by its audit verdict (audit.png).

Devices are boxes' names, cables the lines between them; a NIC is drawn as the small
vertex where a host meets its cable. Red: a single point of failure; orange: degraded;
green: redundant; grey: not failed alone (or not measured); blue: the endpoints. A unit
whose measurement disagrees with the graph's prediction has a black ring.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import networkx as nx  # noqa: E402

from harness.audit import graph  # noqa: E402
from harness.audit.units import Unit  # noqa: E402
from harness.topology.model import Topology  # noqa: E402

COLOURS = {"spof": "#d62728", "degraded": "#ff7f0e", "redundant": "#2ca02c"}
UNTESTED = "#c7c7c7"
ENDPOINT = "#1f77b4"


def draw(topo: Topology, endpoints: tuple[str, str], results: list[tuple[Unit, dict[str, Any]]],
         path: Path) -> Path:
    """``results``: each unit failed alone, with its audit row (verdict, agrees)."""
    g = graph.build_graph(topo)
    colour: dict[graph.Vertex, str] = {}
    ringed: set[graph.Vertex] = set()
    for unit, row in results:
        for v in graph.vertices(topo, unit):
            if unit.kind == "daemon" and v in colour:
                continue  # the box's own death colours it
            colour[v] = COLOURS.get(str(row.get("verdict")), UNTESTED)
            if row.get("agrees") is False:
                ringed.add(v)
    for end in endpoints:
        colour[graph.device(end)] = ENDPOINT
    pos = nx.kamada_kawai_layout(g)
    fig, ax = plt.subplots(figsize=(8, 6))
    nx.draw_networkx_edges(g, pos, ax=ax, edge_color="#555555")
    kinds = {"node": (900, "s"), "cable": (220, "o"), "nic": (120, "o")}
    for kind, (size, shape) in kinds.items():
        vs = [v for v in g if v[0] == kind]
        nx.draw_networkx_nodes(
            g, pos, nodelist=vs, ax=ax, node_size=size, node_shape=shape,
            node_color=[colour.get(v, UNTESTED) for v in vs],
            edgecolors=["black" if v in ringed else "white" for v in vs],
            linewidths=[3 if v in ringed else 1 for v in vs])
    nx.draw_networkx_labels(g, pos, ax=ax, font_size=8,
                            labels={v: v[1] if v[0] == "node" else
                                    (v[2] if v[0] == "nic" else "") for v in g})
    handles = [plt.Line2D([], [], marker="s", linestyle="", color=c, label=name)
               for name, c in (*COLOURS.items(), ("not failed alone", UNTESTED),
                               ("endpoint", ENDPOINT))]
    ax.legend(handles=handles, loc="lower left", fontsize=8, frameon=False)
    ax.set_title(f"SPoF audit of {topo.name}: {endpoints[0]} -> {endpoints[1]}"
                 " (ringed: the lab disagrees with the graph)", fontsize=10)
    ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
