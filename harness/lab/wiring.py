"""The lab's nodes and cables, and the root namespace kept out.

Hosts are network namespaces (harness.lab.nodes: Mininet's ``mnexec`` without its
shell); switches are Linux bridges or Open vSwitch bridges in the root namespace, named
``r<run id><name>`` with ports ``<switch>-<port>`` so that concurrent runs never share a
name.  The veth cables and the Linux bridges are made here over netlink (pyroute2), as
the lab configures everything else: Mininet made them with shell commands, each forking
an ``ip`` or ``brctl`` (30-odd for a small topology), and its shells took 1.2-1.5 s each
to start inside User-mode Linux.  An Open vSwitch bridge is made by
harness.tech.ovs.plugin.  Every root-namespace name is journaled before it is created,
and every namespace's holder as soon as it exists.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import LabError
from harness.lab.nodes import Nodes

if TYPE_CHECKING:
    from harness.lab.running import Lab


def instantiate(lab: Lab) -> Nodes:
    """Every node of ``lab.topo``, cabled, each cable up."""
    topo, journal = lab.topo, lab.journal
    nodes = lab.net = Nodes()
    for name in topo.hosts():
        host = nodes.add_host(name)
        journal.record_process(host.pid, f"network namespace of {name}", group=True)
    for name in topo.switches():
        nodes.add_root(lab.node_name(name))
    _cable(lab)
    return nodes


def _cable(lab: Lab) -> None:
    """The Linux bridges, then every cable: a veth pair made in one end's namespace with
    its peer placed in the other's, each end enslaved to its bridge and up."""
    topo, journal, root = lab.topo, lab.journal, lab.ipr_root()
    bridges: dict[str, int] = {}
    for name in topo.switches():
        if topo.nodes[name].impl == "ovs":
            continue
        real = lab.node_name(name)
        journal.record("link", name=real)
        root.link("add", ifname=real, kind="bridge")
        bridges[name] = _index(root, real)
        root.link("set", index=bridges[name], state="up")
    for node in topo.hosts():
        ipr = lab.ipr(node)
        ipr.link("set", index=_index(ipr, "lo"), state="up")
    for link in topo.links:
        ends = ((link.a, lab.ifname(link.a, link.a_intf)),
                (link.b, lab.ifname(link.b, link.b_intf)))
        for node, name in ends:
            if topo.nodes[node].kind == "switch":
                journal.record("link", name=name)
        (node_a, name_a), (node_b, name_b) = ends
        lab.ipr(node_a).link("add", ifname=name_a, kind="veth",
                             peer={"ifname": name_b, "net_ns_pid": lab.pid(node_b)})
        for node, name in ends:
            ipr = lab.ipr(node)
            index = _index(ipr, name)
            if node in bridges:
                ipr.link("set", index=index, master=bridges[node])
            ipr.link("set", index=index, state="up")


def _index(ipr: Any, name: str) -> int:
    found = ipr.link_lookup(ifname=name)
    if not found:
        raise LabError(f"interface {name} is missing right after it was made",
                       "run `redlab clean` and try again; if it persists, report it")
    return int(found[0])


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


def _write_sysctl(key: str, value: str) -> None:
    """Set a root-namespace sysctl of one interface; skipped where the interface has none
    (an Open vSwitch bridge whose internal port is not a netdev, a kernel without IPv6)."""
    path = Path("/proc/sys") / key
    if path.exists():
        path.write_text(value)
