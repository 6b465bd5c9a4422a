"""Mininet instantiation of a topology's nodes and cables, and the root namespace kept out.

Hosts are Mininet hosts, each a namespace held by a sleeping process (harness.lab.nodes);
switches are Linux bridges or Open vSwitch bridges in the root namespace, named
``r<run id><name>`` with ports ``<switch>-<port>`` so that concurrent runs never share a
name.  Mininet makes the namespaces; the veth cables and Linux bridges are made over
netlink (harness.lab.cables) and handed to Mininet's bookkeeping; an Open vSwitch bridge
here is only the node holding its cable ends (the bridge itself is made by
harness.tech.ovs.plugin).  Every root-namespace name is journaled before Mininet creates
it, and every node's process as soon as it exists.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

# Imported with the module, not at the first trial: Mininet brings pkg_resources and
# distutils, 2.5 s of the first trial's wiring inside User-mode Linux, which a shared
# guest's agent (harness/lab/guest_agent.py) now pays once for all its runs.
from mininet.log import setLogLevel
from mininet.net import Mininet

from harness.lab import cables, nodes

# Importing mininet makes every logger created after it a MininetLogger (level OUTPUT,
# a handler of its own): a module's logging would depend on whether it was imported
# before or after this one. Ours stay plain loggers, whatever the import order.
logging.setLoggerClass(logging.Logger)

if TYPE_CHECKING:
    from harness.lab.running import Lab


def instantiate(lab: Lab) -> Any:
    """Build and start the Mininet network of ``lab.topo``; returns it."""
    topo, journal = lab.topo, lab.journal
    setLogLevel("error")
    net = lab.net = Mininet(controller=None, build=False, autoSetMacs=False,
                            autoStaticArp=False, host=nodes.QuietHost)
    holder = lab.holder = nodes.Holder()
    journal.record_process(holder.pid, "redlab-netns, the nodes' holder")
    for name in topo.hosts():
        host = net.addHost(name, ip=None, holder=holder)
        journal.record_process(host.pid, f"mininet host {name}", group=True)
    for number, name in enumerate(topo.switches(), start=1):
        real = lab.node_name(name)
        is_ovs = topo.nodes[name].impl == "ovs"
        if not is_ovs:
            journal.record("link", name=real)
        # Mininet derives a dpid from digits in the name, which a run id may lack.
        switch = net.addSwitch(real, cls=_ovs_ports_class() if is_ovs else cables.NetlinkBridge,
                               dpid=f"{number:016x}", holder=holder)
        journal.record_process(switch.pid, f"mininet switch {real}", group=True)
    # a Mininet node -> the lab's netlink socket in its namespace (opened once, kept)
    by_name = {lab.node_name(n): n for n in topo.nodes}

    def sockets(node: Any) -> Any:
        return lab.ipr(by_name[node.name])

    ends = []
    for link in topo.links:
        names = (lab.ifname(link.a, link.a_intf), lab.ifname(link.b, link.b_intf))
        for node, name in ((link.a, names[0]), (link.b, names[1])):
            if topo.nodes[node].kind == "switch":
                journal.record("link", name=name)
        a, b = net.get(lab.node_name(link.a)), net.get(lab.node_name(link.b))
        cables.make_cable(sockets, a, names[0], b, names[1])
        net.addLink(a, b, intfName1=names[0], intfName2=names[1], cls=cables.PrewiredLink,
                    intf=cables.NetlinkIntf)
        ends += [(a, names[0]), (b, names[1])]
    cables.bring_up(sockets, ends)
    net.build()
    net.start()
    return net


def prime() -> None:
    """Mininet's once-per-process checks (`which` of mnexec and ifconfig, the core
    count): over a second of a run's first wiring inside User-mode Linux, which a shared
    guest's agent runs once before it forks its runs."""
    from mininet.util import numCores

    nodes.QuietHost.checkSetup()
    numCores()


def keep_root_namespace_out(lab: Lab) -> None:
    """Make the switches layer 2 only: the host's own IP stack must not join the lab.

    The switches live in the root namespace, so each Linux bridge is an interface of
    the host, and by default (arp_ignore 0) the host answers ARP arriving on it for any
    address it owns on any interface. A host whose own network reuses a lab prefix
    (our CI machine has 192.0.2.2/24 on eth0) then claims that lab address: r1's
    unicast VRRP adverts to r2's 192.0.2.2 went to the host for 5 s and both routers
    were master. So no switch answers ARP (arp_ignore 8), and neither the switches nor
    their ports run IPv6 (no link-local chatter into the lab).
    """
    topo = lab.topo
    ends = [lab.ifname(node, intf) for node, intf in lab.ends()
            if topo.nodes[node].kind == "switch"]
    switches = [lab.node_name(s) for s in topo.switches()]
    for name in switches:
        _write_sysctl(f"net/ipv4/conf/{name}/arp_ignore", "8")
    for name in switches + ends:
        _write_sysctl(f"net/ipv6/conf/{name}/disable_ipv6", "1")


@functools.cache
def _ovs_ports_class() -> type:
    class OvsPorts(nodes.RootSwitch):  # type: ignore[misc]
        """Mininet's view of an Open vSwitch bridge: a root-namespace node holding the
        bridge's cable ends.  The bridge itself is made by harness.tech.ovs.plugin, so Mininet
        neither needs nor touches the OVS database (nor its own controller logic)."""

        def start(self, _controllers: object) -> None:
            """Nothing to do: its cable ends are up already (cables.bring_up)."""

    return OvsPorts


def _write_sysctl(key: str, value: str) -> None:
    """Set a root-namespace sysctl of one interface; skipped where the interface has none
    (an Open vSwitch bridge whose internal port is not a netdev, a kernel without IPv6)."""
    path = Path("/proc/sys") / key
    if path.exists():
        path.write_text(value)
