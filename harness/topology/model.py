"""A topology as pure data: nodes, links, bonds and addresses, validated before anything exists.

Topology modules in ``topologies/`` return a :class:`Topology` from ``build(params)``;
the harness checks it here (every link end names a declared node, names fit the kernel's
limits, no interface used twice) and only then instantiates it.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any, Literal

from harness.errors import ConfigError
from harness.tech.bond.options import BondSettings, bond_settings

NodeKind = Literal["host", "switch"]
# A switch is a Linux bridge (a learning switch that never forwards LACPDUs) or an Open
# vSwitch bridge (needed wherever a switch takes part in LACP: a LAG on its ports).
SwitchImpl = Literal["bridge", "ovs"]

# Switch names are prefixed with "r" + a 4-character run id in the root namespace, and
# their ports are "<switch>-<port>", so both must stay short to fit IFNAMSIZ (15).
MAX_SWITCH_NAME = 4
MAX_PORT_NAME = 4
MAX_HOST_IFNAME = 15


@dataclass(frozen=True)
class Node:
    name: str
    kind: NodeKind = "host"
    impl: SwitchImpl = "bridge"  # switches only
    forwarding: bool = False     # hosts only: a router (IPv4 forwarding on)


@dataclass(frozen=True)
class Link:
    """A cable: ``a:a_intf`` <-> ``b:b_intf``."""

    a: str
    a_intf: str
    b: str
    b_intf: str
    # Shaped to this rate in both directions (a token bucket at each end's egress), so
    # that member and aggregate capacity show in the figures; None: as fast as the CPU.
    rate_mbit: float | None = None

    def end(self, node: str, intf: str) -> tuple[str, str] | None:
        """The far end of this cable seen from ``node:intf``, or None if not its end."""
        if (self.a, self.a_intf) == (node, intf):
            return self.b, self.b_intf
        if (self.b, self.b_intf) == (node, intf):
            return self.a, self.a_intf
        return None


@dataclass(frozen=True)
class Bond:
    """A Linux kernel bond on a host, with its options checked (kernel names and values)."""

    node: str
    name: str
    members: tuple[str, ...]
    settings: BondSettings
    # 802.3ad numbers a bond's ports 1, 2, ... in enslave order and has no option to
    # choose: the number its first member gets (see netlink.build_bond). An MC-LAG pair's
    # second switch starts after the first's, as real pairs' port numbers differ.
    first_port: int = 1


@dataclass(frozen=True)
class Lag:
    """An Open vSwitch bond (a LAG) on a switch's ports.

    ``options``: those of harness.tech.ovs.bridge.LagOptions (bond_mode, lacp, lacp_time,
    bond_detect_mode, miimon_interval, updelay, downdelay, lacp_fallback_ab, primary).
    """

    switch: str
    name: str
    ports: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Route:
    """A static route on a host: ``dst`` ("default" or a prefix) via gateway ``via``."""

    node: str
    dst: str
    via: str


@dataclass(frozen=True)
class Vrrp:
    """keepalived on a router: one vrrp_instance, ``options`` as keepalived names them
    (see harness.tech.vrrp.options.VrrpOptions)."""

    node: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Topology:
    name: str
    diagram: str
    nodes: dict[str, Node] = field(default_factory=dict)
    links: list[Link] = field(default_factory=list)
    bonds: list[Bond] = field(default_factory=list)
    lags: list[Lag] = field(default_factory=list)
    routes: list[Route] = field(default_factory=list)
    vrrp: list[Vrrp] = field(default_factory=list)
    # (node, interface) -> "address/prefix"
    addresses: dict[tuple[str, str], str] = field(default_factory=dict)
    # Permanent neighbour (ARP) entries between hosts on one subnet. Off by default:
    # re-resolving a neighbour after carrier loss is part of what a real failover costs.
    static_neighbours: bool = False
    # What a technology without a field of its own declares (technology name -> its
    # declarations, in the order given): a new technology's topology helper adds here,
    # and its plug-in reads and checks it (harness.tech.base.Technology.check).
    declarations: dict[str, list[Any]] = field(default_factory=dict)

    # -- building (what topology modules call) ----------------------------------------
    def declare(self, technology: str, item: Any) -> Any:
        """Add ``item`` to ``technology``'s declarations; returns it."""
        self.declarations.setdefault(technology, []).append(item)
        return item

    def declared(self, technology: str) -> list[Any]:
        return list(self.declarations.get(technology, ()))

    def add_host(self, name: str) -> str:
        return self._add(Node(name, "host"))

    def add_router(self, name: str) -> str:
        """A host that forwards IPv4 between its interfaces."""
        return self._add(Node(name, "host", forwarding=True))

    def add_route(self, node: str, dst: str, via: str) -> Route:
        route = Route(node, dst, via)
        self.routes.append(route)
        return route

    def add_vrrp(self, node: str, **options: Any) -> Vrrp:
        vrrp = Vrrp(node, dict(options))
        self.vrrp.append(vrrp)
        return vrrp

    def add_switch(self, name: str, impl: SwitchImpl = "bridge") -> str:
        return self._add(Node(name, "switch", impl))

    def add_link(self, a: str, a_intf: str, b: str, b_intf: str,
                 rate_mbit: float | None = None) -> Link:
        link = Link(a, a_intf, b, b_intf, rate_mbit)
        self.links.append(link)
        return link

    def add_lag(self, switch: str, name: str, ports: list[str], **options: Any) -> Lag:
        lag = Lag(switch, name, tuple(ports), dict(options))
        self.lags.append(lag)
        return lag

    def add_bond(self, node: str, name: str, members: list[str], *, first_port: int = 1,
                 **options: Any) -> Bond:
        """A bond with ``options`` under their kernel names (``mode`` among them), checked
        against each other and the kernel's rules here, once, before anything exists: a
        ConfigError names a bad one. ``first_port``: the 802.3ad port number of its first
        member."""
        settings = bond_settings(options, members, f"{node}:{name}")
        if first_port != 1 and settings.mode != "802.3ad":
            raise ConfigError(f"bond {node}:{name}: first_port={first_port} in mode"
                              f" {settings.mode}", "port numbers exist in 802.3ad only")
        if not 1 <= first_port <= 255:
            raise ConfigError(f"bond {node}:{name}: first_port={first_port}",
                              "give a port number from 1 to 255")
        bond = Bond(node, name, tuple(members), settings, first_port)
        self.bonds.append(bond)
        return bond

    def add_address(self, node: str, intf: str, cidr: str) -> None:
        self.addresses[(node, intf)] = cidr

    def _add(self, node: Node) -> str:
        if node.name in self.nodes:
            raise ConfigError(f"topology {self.name}: node {node.name!r} is declared twice",
                              "give every node a unique name")
        self.nodes[node.name] = node
        return node.name

    # -- queries -------------------------------------------------------------------------
    def hosts(self) -> list[str]:
        return [n.name for n in self.nodes.values() if n.kind == "host"]

    def switches(self) -> list[str]:
        return [n.name for n in self.nodes.values() if n.kind == "switch"]

    def ovs_switches(self) -> list[str]:
        return [n.name for n in self.nodes.values() if n.kind == "switch" and n.impl == "ovs"]

    def routers(self) -> list[str]:
        return [n.name for n in self.nodes.values() if n.forwarding]

    def vrrp_of(self, node: str) -> Vrrp | None:
        return next((v for v in self.vrrp if v.node == node), None)

    def cable_ends(self, node: str) -> set[str]:
        """The interfaces of ``node`` that a cable ends at."""
        return {intf for link in self.links
                for n, intf in ((link.a, link.a_intf), (link.b, link.b_intf)) if n == node}

    def interfaces(self, node: str) -> set[str]:
        """``node``'s cable ends and bonds."""
        return self.cable_ends(node) | {b.name for b in self.bonds if b.node == node}

    def lag(self, switch: str, name: str | None = None) -> Lag:
        for lag in self.lags:
            if lag.switch == switch and (name is None or lag.name == name):
                return lag
        raise ConfigError(f"topology {self.name}: switch {switch!r} has no LAG"
                          + (f" named {name!r}" if name else ""),
                          "target a switch whose topology declares a LAG")

    def far_end(self, node: str, intf: str) -> tuple[str, str]:
        for link in self.links:
            other = link.end(node, intf)
            if other:
                return other
        raise ConfigError(f"topology {self.name}: no cable ends at {node}:{intf}",
                          "name an interface that a link in the topology uses")

    def bond(self, node: str, name: str | None = None) -> Bond:
        for bond in self.bonds:
            if bond.node == node and (name is None or bond.name == name):
                return bond
        raise ConfigError(f"topology {self.name}: node {node!r} has no bond"
                          + (f" named {name!r}" if name else ""),
                          "target a node whose topology declares a bond")

    def address(self, node: str) -> str:
        """The first address of ``node`` (without prefix length)."""
        for (n, _intf), cidr in self.addresses.items():
            if n == node:
                return cidr.split("/")[0]
        raise ConfigError(f"topology {self.name}: node {node!r} has no address",
                          "add one with add_address()")

    # -- validation ----------------------------------------------------------------------
    def validate(self) -> Topology:
        problems: list[str] = []
        used: set[tuple[str, str]] = set()
        for link in self.links:
            for node, intf in ((link.a, link.a_intf), (link.b, link.b_intf)):
                if node not in self.nodes:
                    problems.append(f"link {link.a}:{link.a_intf}-{link.b}:{link.b_intf} "
                                    f"references node {node!r}, which is not declared")
                    continue
                if (node, intf) in used:
                    problems.append(f"interface {node}:{intf} is used by two links")
                used.add((node, intf))
                limit = MAX_PORT_NAME if self.nodes[node].kind == "switch" else MAX_HOST_IFNAME
                if len(intf) > limit:
                    problems.append(f"interface name {node}:{intf} is longer than {limit}"
                                    " characters")
        for name in self.switches():
            if len(name) > MAX_SWITCH_NAME:
                problems.append(f"switch name {name!r} is longer than {MAX_SWITCH_NAME}"
                                " characters (it is prefixed with the run id)")
        for bond in self.bonds:
            if bond.node not in self.nodes:
                problems.append(f"bond {bond.name} is on node {bond.node!r}, which is not"
                                " declared")
            for member in bond.members:
                if (bond.node, member) not in used:
                    problems.append(f"bond {bond.node}:{bond.name} member {member!r} is not"
                                    " an interface of any link")
        for lag in self.lags:
            node = self.nodes.get(lag.switch)
            if node is None or node.kind != "switch" or node.impl != "ovs":
                problems.append(f"LAG {lag.name} is on {lag.switch!r}, which is not an Open"
                                " vSwitch switch (add_switch(name, impl='ovs'))")
            if len(lag.ports) < 2:
                problems.append(f"LAG {lag.switch}:{lag.name} needs at least two ports")
            for port in lag.ports:
                if (lag.switch, port) not in used:
                    problems.append(f"LAG {lag.switch}:{lag.name} port {port!r} is not an"
                                    " interface of any link")
            primary = lag.options.get("primary")
            if primary is not None and primary not in lag.ports:
                problems.append(f"LAG {lag.switch}:{lag.name} primary {primary!r} is not one"
                                f" of its ports ({', '.join(lag.ports)})")
            if len(lag.name) > MAX_PORT_NAME:
                problems.append(f"LAG name {lag.name!r} is longer than {MAX_PORT_NAME}"
                                " characters (it is prefixed like a switch port)")
        for link in self.links:
            if link.rate_mbit is not None and link.rate_mbit <= 0:
                problems.append(f"link {link.a}:{link.a_intf}-{link.b}:{link.b_intf} has rate"
                                f" {link.rate_mbit} Mbit/s; use a positive rate or None")
        for (node, intf), cidr in self.addresses.items():
            if node not in self.nodes:
                problems.append(f"address {cidr} is on node {node!r}, which is not declared")
            try:
                ipaddress.ip_interface(cidr)
            except ValueError:
                problems.append(f"address {cidr!r} on {node}:{intf} is not address/prefix")
        problems += self._routing_problems()
        if problems:
            raise ConfigError(f"topology {self.name} is inconsistent:\n  - "
                              + "\n  - ".join(problems),
                              f"correct topologies/{self.name}.py")
        return self

    def _routing_problems(self) -> list[str]:
        problems = []
        hosts = set(self.hosts())
        for route in self.routes:
            if route.node not in hosts:
                problems.append(f"route {route.dst} via {route.via} is on {route.node!r},"
                                " which is not a declared host")
            try:
                ipaddress.ip_address(route.via)
                if route.dst != "default":
                    ipaddress.ip_network(route.dst)
            except ValueError:
                problems.append(f"route {route.dst} via {route.via} on {route.node}: give"
                                " 'default' or a prefix, via an address")
        for vrrp in self.vrrp:
            node = self.nodes.get(vrrp.node)
            if node is None or not node.forwarding:
                problems.append(f"VRRP is on {vrrp.node!r}, which is not a declared router"
                                " (add_router)")
                continue
            have = self.interfaces(vrrp.node)
            tracked = vrrp.options.get("track_interface", [])
            named = [vrrp.options.get("interface"),
                     *([tracked] if isinstance(tracked, str) else tracked)]
            for address in vrrp.options.get("virtual_ipaddress", []):
                words = str(address).split()
                if "dev" in words[:-1]:
                    named.append(words[words.index("dev") + 1])
            for intf in filter(None, named):
                if intf not in have:
                    problems.append(f"VRRP on {vrrp.node} names interface {intf!r}, which"
                                    f" {vrrp.node} does not have ({', '.join(sorted(have))})")
        twice = {v.node for v in self.vrrp if sum(w.node == v.node for w in self.vrrp) > 1}
        problems += [f"VRRP is declared twice on {node}" for node in sorted(twice)]
        return problems
