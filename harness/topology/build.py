"""Instantiate a validated :class:`Topology` with Mininet, and tear it down on every path.

Hosts are Mininet hosts (a shell in its own network namespace); switches are Linux
bridges or Open vSwitch bridges in the root namespace, named ``r<run id><name>`` with
ports ``<switch>-<port>`` so that concurrent runs never share a name, and kept layer 2
only (the host answers no ARP and sends no IPv6 through them).  Mininet makes the
namespaces and the veth cables; Open vSwitch bridges and their LAGs are made by
:mod:`harness.tech.ovs` once the cables exist, and rate-limited cables get a token
bucket (tbf) at each end's egress.  Routers get IPv4 forwarding and hosts their static
routes; keepalived starts last on the routers that have VRRP (:mod:`harness.tech.gateway`),
and bring-up ends once they have elected a master.  Every root-namespace object is written to
the run's journal *before* Mininet creates it; host shells and the processes started in
hosts are journaled as soon as they exist.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from pyroute2 import IPRoute

from harness import timeouts
from harness.errors import LabError
from harness.journal import Journal
from harness.naming import check_ifname, prefixed
from harness.tech import bond as bonds
from harness.tech import gateway, lacp, lacp_check, ovs
from harness.topology.model import Topology

log = logging.getLogger(__name__)


class Lab:
    """A running topology: ``with Lab(topo, run_id, journal) as lab: ...``."""

    def __init__(self, topo: Topology, run_id: str, journal: Journal,
                 workdir: Path | None = None,
                 on_vrrp_change: gateway.OnChange | None = None) -> None:
        self.topo = topo.validate()
        self.run_id = run_id
        self.journal = journal
        # Daemons' configurations and logs (keepalived) go here, kept with the results.
        self.workdir = workdir
        self.vrrp = gateway.VrrpRouters(self, on_vrrp_change)
        self.net: Any = None
        self.bond_states: dict[str, bonds.BondState] = {}  # "node:bond" -> state
        self.ovs_daemons: str | None = None  # "ours" or "running" once OVS is in use
        self.lacp_tables: dict[str, str] = {}  # both ends' LACP state once negotiated
        # "node:bond" -> its 802.3ad members over the polls so far (see poll_bond)
        self._lacp_members: dict[str, lacp.Membership] = {}
        self._mark = journal.mark()
        self._sockets: dict[tuple[int, str | None], IPRoute] = {}
        self._sockets_lock = threading.Lock()

    # -- names ---------------------------------------------------------------------------
    def node_name(self, node: str) -> str:
        """The name Mininet and the kernel know ``node`` by."""
        return prefixed(self.run_id, node) if self.topo.nodes[node].kind == "switch" else node

    def ifname(self, node: str, intf: str) -> str:
        if self.topo.nodes[node].kind == "switch":
            return check_ifname(f"{self.node_name(node)}-{intf}")
        return check_ifname(intf)

    def netns(self, node: str) -> str | None:
        """Path of ``node``'s network namespace for pyroute2; None for the root namespace."""
        if self.topo.nodes[node].kind == "switch":
            return None
        return f"/proc/{self.net.get(node).pid}/ns/net"

    def ipr(self, node: str) -> IPRoute:
        """A netlink socket in ``node``'s namespace, kept for the lab's lifetime.

        Opening one forks a helper (pyroute2 enters the namespace in a child), which is
        slow inside User-mode Linux, so sockets are reused; one per thread, because a
        pyroute2 socket belongs to the thread that made it.
        """
        netns = self.netns(node)
        key = (threading.get_ident(), netns)
        with self._sockets_lock:
            if key not in self._sockets:
                self._sockets[key] = IPRoute(netns=netns) if netns else IPRoute()
            return self._sockets[key]

    # -- life cycle ----------------------------------------------------------------------
    def __enter__(self) -> Lab:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        from mininet.log import setLogLevel
        from mininet.net import Mininet
        from mininet.nodelib import LinuxBridge

        setLogLevel("error")
        self.net = net = Mininet(controller=None, build=False, autoSetMacs=False,
                                 autoStaticArp=False)
        for name in self.topo.hosts():
            host = net.addHost(name, ip=None)
            self.journal.record_process(host.pid, f"mininet host shell {name}", group=True)
        for number, name in enumerate(self.topo.switches(), start=1):
            real = self.node_name(name)
            is_ovs = self.topo.nodes[name].impl == "ovs"
            if not is_ovs:
                self.journal.record("link", name=real)
            # Mininet derives a dpid from digits in the name, which a run id may lack.
            switch = net.addSwitch(real, cls=_ovs_ports_class() if is_ovs else LinuxBridge,
                                   dpid=f"{number:016x}")
            self.journal.record_process(switch.pid, f"mininet switch shell {real}",
                                        group=True)
        for link in self.topo.links:
            names = (self.ifname(link.a, link.a_intf), self.ifname(link.b, link.b_intf))
            for node, name in ((link.a, names[0]), (link.b, names[1])):
                if self.topo.nodes[node].kind == "switch":
                    self.journal.record("link", name=name)
            net.addLink(self.node_name(link.a), self.node_name(link.b),
                        intfName1=names[0], intfName2=names[1])
        net.build()
        net.start()
        self._shape_links()
        if self.topo.ovs_switches():
            self.ovs_daemons = ovs.ensure_daemons(self.journal)
            self._configure_ovs()
        self._keep_root_namespace_out()
        # Every bond is built before any starts (see bonds.create_bond).
        built = [(bond, bonds.create_bond(self.ipr(bond.node), bond))
                 for bond in self.topo.bonds]
        for bond, _ in built:
            bonds.start_bond(self.ipr(bond.node), bond)
        self._configure_addresses()
        if self.topo.static_neighbours:
            self._configure_static_neighbours()
        self._configure_routing()
        for bond, settings in built:
            self.bond_states[f"{bond.node}:{bond.name}"] = bonds.wait_ready(
                self.ipr(bond.node), bond.name, settings)
        for pair in self.lacp_pairs():
            verdict = lacp_check.wait_negotiated(pair.read, links=pair.links)
            self.lacp_tables[f"{pair.a} - {pair.b}"] = verdict.table
        # Open every node's socket now: opening one costs tens of ms under UML, which
        # must not land inside a measured failure.
        for node in self.topo.nodes:
            self.ipr(node)
        if self.topo.vrrp:
            if self.workdir is None:
                raise LabError("a topology with VRRP needs a folder for keepalived's files",
                               "pass workdir= to Lab (the runner gives the trial folder)")
            self.vrrp.start(self.workdir / "keepalived")

    def _configure_ovs(self) -> None:
        for number, name in enumerate(self.topo.switches(), start=1):
            if self.topo.nodes[name].impl != "ovs":
                continue
            lags = [lag for lag in self.topo.lags if lag.switch == name]
            in_lag = {port for lag in lags for port in lag.ports}
            ports = [self.ifname(name, intf) for node, intf in self._ends() if node == name
                     and intf not in in_lag]
            ovs.add_bridge(self.journal, self.node_name(name), number, ports)
            for lag in lags:
                options = dict(lag.options)
                if options.get("primary"):  # a port of the topology: its real name
                    options["primary"] = self.ifname(name, options["primary"])
                ovs.add_lag(self.node_name(name), self.ifname(name, lag.name),
                            [self.ifname(name, port) for port in lag.ports], options)

    def _ends(self) -> list[tuple[str, str]]:
        return [end for link in self.topo.links
                for end in ((link.a, link.a_intf), (link.b, link.b_intf))]

    def _keep_root_namespace_out(self) -> None:
        """Make the switches layer 2 only: the host's own IP stack must not join the lab.

        The switches live in the root namespace, so each Linux bridge is an interface of
        the host, and by default (arp_ignore 0) the host answers ARP arriving on it for any
        address it owns on any interface. A host whose own network reuses a lab prefix
        (our CI machine has 192.0.2.2/24 on eth0) then claims that lab address: r1's
        unicast VRRP adverts to r2's 192.0.2.2 went to the host for 5 s and both routers
        were master. So no switch answers ARP (arp_ignore 8), and neither the switches nor
        their ports run IPv6 (no link-local chatter into the lab).
        """
        ends = [self.ifname(node, intf) for node, intf in self._ends()
                if self.topo.nodes[node].kind == "switch"]
        switches = [self.node_name(s) for s in self.topo.switches()]
        for name in switches:
            _write_sysctl(f"net/ipv4/conf/{name}/arp_ignore", "8")
        for name in switches + ends:
            _write_sysctl(f"net/ipv6/conf/{name}/disable_ipv6", "1")

    def _shape_links(self) -> None:
        """A token bucket at both ends of every rate-limited cable (each direction)."""
        for link in self.topo.links:
            if link.rate_mbit is None:
                continue
            rate = int(link.rate_mbit * 1e6 / 8)  # bytes/s
            # The bucket must hold at least one timer tick of traffic (UML ticks at
            # 100 Hz) and one 64 KiB TSO segment; the queue holds 20 ms at the rate.
            burst = max(rate // 100, 65536 + 1514)
            for node, intf in ((link.a, link.a_intf), (link.b, link.b_intf)):
                ipr = self.ipr(node)
                idx = ipr.link_lookup(ifname=self.ifname(node, intf))
                ipr.tc("add", "tbf", idx[0], handle="1:", rate=f"{rate * 8}bit",
                       burst=burst, latency="20ms")

    # -- LACP ------------------------------------------------------------------------------
    def lacp_end(self, node: str) -> str | None:
        """The LACP-speaking aggregate on ``node`` (an 802.3ad bond or an LACP LAG), if any."""
        for bond in self.topo.bonds:
            mode = bonds.mode_name(bond.options.get("mode", bonds.DEFAULT_MODE))
            if bond.node == node and mode == "802.3ad":
                return bond.name
        for lag in self.topo.lags:
            if lag.switch == node and ovs.lag_options(lag.options)["lacp"] != "off":
                return lag.name
        return None

    def read_lacp(self, node: str) -> lacp.LacpSide | lacp_check.LagEnd:
        """``node``'s LACP state; an end with only a problem where it speaks no LACP."""
        name = self.lacp_end(node)
        if name is None:
            # a pair exists only between aggregates: node has a LAG or a bond
            lag = next((g for g in self.topo.lags if g.switch == node), None)
            what = (f"ovs {self.ifname(node, lag.name)} (lacp=off)" if lag else
                    f"linux {self.topo.bond(node).name}"
                    f" (mode {self.topo.bond(node).options.get('mode')})")
            return lacp_check.LagEnd(what, (), (f"{what}: does not speak LACP",))
        if self.topo.nodes[node].kind == "switch":
            return lacp.read_ovs(self.ifname(node, name))
        return lacp.read_linux(name, self.net.get(node).pid)

    def lacp_pairs(self) -> list[LacpPair]:
        """Every cable bundle between two aggregates (bond or LAG) of which at least one
        speaks LACP: (end a, end b, member name pairs).  One end without LACP is a
        disagreement the check reports, not a bundle to skip."""
        pairs: dict[tuple[str, str], dict[str, str]] = {}
        for link in self.topo.links:
            a, b = (link.a, link.a_intf), (link.b, link.b_intf)
            if not (self._aggregate_member(*a) and self._aggregate_member(*b)):
                continue
            if self.lacp_end(a[0]) is None and self.lacp_end(b[0]) is None:
                continue
            key = tuple(sorted((a[0], b[0])))
            first, second = (a, b) if key[0] == a[0] else (b, a)
            pairs.setdefault(key, {})[self.ifname(*first)] = self.ifname(*second)
        return [LacpPair(self, a, b, links) for (a, b), links in pairs.items()]

    def _aggregate_member(self, node: str, intf: str) -> bool:
        return (any(b.node == node and intf in b.members for b in self.topo.bonds)
                or any(g.switch == node and intf in g.ports for g in self.topo.lags))

    def _configure_addresses(self) -> None:
        for (node, intf), cidr in self.topo.addresses.items():
            iface = ipaddress.ip_interface(cidr)
            ipr = self.ipr(node)
            idx = ipr.link_lookup(ifname=self.ifname(node, intf))
            if not idx:
                raise LabError(f"{node}:{intf} does not exist to take address {cidr}",
                               f"fix the address in topologies/{self.topo.name}.py")
            ipr.addr("add", index=idx[0], address=str(iface.ip),
                     prefixlen=iface.network.prefixlen)
            ipr.link("set", index=idx[0], state="up")

    def _configure_routing(self) -> None:
        for node in self.topo.routers():
            self.sysctl(node, "net.ipv4.ip_forward", "1")
        for route in self.topo.routes:
            dst = "0.0.0.0/0" if route.dst == "default" else route.dst
            self.ipr(route.node).route("add", dst=dst, gateway=route.via)

    def sysctl(self, node: str, key: str, value: str) -> None:
        """Set ``key`` in ``node``'s namespace (net.* sysctls are per namespace)."""
        proc = self.popen(node, ["sysctl", "-q", "-w", f"{key}={value}"])
        _, err = proc.communicate(timeout=timeouts.SYSCTL)
        if proc.returncode != 0:
            raise LabError(f"sysctl {key}={value} failed in {node}: {err.decode().strip()}",
                           "apt-get install procps (scripts/bootstrap setup does it)")

    def daemon_processes(self, node: str) -> list[int]:
        """The daemons that speak for ``node`` (its keepalived), to die with it."""
        return self.vrrp.processes(node)

    def daemons_rebooted(self, node: str) -> None:
        """``node`` is back after a device failure: its daemons start again."""
        self.vrrp.restart_after_reboot(node)

    def _configure_static_neighbours(self) -> None:
        ends = []
        for (node, intf), cidr in self.topo.addresses.items():
            ipr = self.ipr(node)
            idx = ipr.link_lookup(ifname=self.ifname(node, intf))[0]
            mac = ipr.get_links(idx)[0].get("IFLA_ADDRESS")
            ends.append((node, idx, ipaddress.ip_interface(cidr), mac))
        for node, idx, iface, _ in ends:
            for other, _, other_iface, other_mac in ends:
                if other != node and other_iface.ip in iface.network:
                    self.ipr(node).neigh("add", dst=str(other_iface.ip), lladdr=other_mac,
                                         ifindex=idx, state="permanent")

    def stop(self) -> None:
        self.vrrp.stop()
        with self._sockets_lock:
            for sock in self._sockets.values():
                sock.close()
            self._sockets.clear()
        if self.net is not None:
            try:
                self.net.stop()
            except Exception as exc:  # the journal below still removes what is left
                log.warning("mininet stop failed: %s", exc)
            self.net = None
        self.journal.rollback_to(self._mark)

    # -- running things inside -----------------------------------------------------------
    def popen(self, node: str, argv: Sequence[str], stdout: IO[bytes] | int | None = None,
              stderr: IO[bytes] | int | None = subprocess.PIPE) -> subprocess.Popen[bytes]:
        """Start ``argv`` in ``node``'s namespace; the journal kills it if we do not."""
        proc = self.net.get(self.node_name(node)).popen(
            list(argv), stdout=stdout if stdout is not None else subprocess.PIPE,
            stderr=stderr, stdin=subprocess.DEVNULL)
        self.journal.record_process(proc.pid, f"{argv[0]} in {node}")
        return proc

    def read_bond(self, node: str, name: str | None = None) -> bonds.BondState:
        bond = self.topo.bond(node, name)
        return bonds.read_bond(self.ipr(node), bond.name)

    def active_member(self, node: str, name: str | None = None) -> str | None:
        return bonds.active_member(self.ipr(node), self.topo.bond(node, name).name)

    def poll_bond(self, node: str, name: str | None = None) -> BondView:
        """The bond's active member and, in 802.3ad, its distributing members (a member
        back from a link failure only once LACP has negotiated it again: see
        lacp.Membership): cheap enough to call every few ms (see bonds.status_text)."""
        bond = self.topo.bond(node, name)
        text = bonds.status_text(self.net.get(self.node_name(node)).pid, bond.name)
        members = None
        if "Bonding Mode: IEEE 802.3ad" in text:
            membership = self._lacp_members.setdefault(f"{node}:{bond.name}",
                                                       lacp.Membership())
            members = membership.update(lacp.linux_lacp(text, bond.name))
        return BondView(bonds.active_member_in(text), members)

    def write_state(self, path: Path) -> None:
        """Record names as instantiated, for people reading a run folder."""
        import json

        path.write_text(json.dumps({
            "run_id": self.run_id,
            "nodes": {n: self.node_name(n) for n in self.topo.nodes},
            "bonds": {k: v.as_dict() for k, v in self.bond_states.items()},
            "lags": {f"{lag.switch}:{lag.name}": self.ifname(lag.switch, lag.name)
                     for lag in self.topo.lags},
            "ovs_daemons": self.ovs_daemons,
            "lacp_negotiated": {k: v.splitlines() for k, v in self.lacp_tables.items()},
        }, indent=2))


@dataclass(frozen=True)
class BondView:
    """What a watcher follows: the active member (modes that have one) and the members
    distributing (802.3ad; None in other modes)."""

    active: str | None
    distributing: frozenset[str] | None


@dataclass(frozen=True)
class LacpPair:
    """The two LACP ends of one cable bundle, and which member faces which."""

    lab: Lab
    a: str
    b: str
    links: dict[str, str]  # a's member interface -> b's, as the kernel names them

    def read(self) -> tuple[lacp.LacpSide | lacp_check.LagEnd,
                            lacp.LacpSide | lacp_check.LagEnd]:
        return self.lab.read_lacp(self.a), self.lab.read_lacp(self.b)


@functools.cache
def _ovs_ports_class() -> type:
    from mininet.node import Switch

    class OvsPorts(Switch):  # type: ignore[misc]
        """Mininet's view of an Open vSwitch bridge: a root-namespace node holding the
        bridge's cable ends.  The bridge itself is made by harness.tech.ovs, so Mininet
        neither needs nor touches the OVS database (nor its own controller logic)."""

        def start(self, _controllers: object) -> None:
            for intf in self.intfList():
                if self.name in intf.name:
                    self.cmd("ip link set", intf, "up")

    return OvsPorts


def _write_sysctl(key: str, value: str) -> None:
    """Set a root-namespace sysctl of one interface; skipped where the interface has none
    (an Open vSwitch bridge whose internal port is not a netdev, a kernel without IPv6)."""
    path = Path("/proc/sys") / key
    if path.exists():
        path.write_text(value)
