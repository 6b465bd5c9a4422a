"""Veth cables and Linux bridges made over netlink, with Mininet's bookkeeping kept.

Mininet makes each cable with a shell command (``ip link add``), brings each end up with
another (``ifconfig up``), deletes each end with a third, and builds a Linux bridge with
``brctl``, one command per port: a process each.  Inside User-mode Linux a process costs
about 0.19 s, so a dual-homed server's cables took seconds and 64 of them minutes.  Here
the same objects are made with one netlink request each, from a socket in the namespace
of the cable's first end (as Mininet's own command runs there, so that a name the root
namespace already uses, ``eth0``, can be made in a host), the peer created straight in
the other end's namespace (``IFLA_NET_NS_PID``).  Mininet still owns the nodes (shell-free,
harness.lab.nodes) and its view of every interface (the ``Link`` and ``Intf`` objects it keeps).

Teardown needs no command either: a cable with an end in a host's namespace goes with
that namespace when the host's process ends, and every root-namespace end and bridge is in
the run's journal, which removes it over netlink (harness/journal.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from mininet.link import Intf, Link
from mininet.node import Host
from pyroute2 import IPRoute

from harness.lab.nodes import RootSwitch

Sockets = Callable[[object], IPRoute]  # a Mininet node -> a netlink socket in its namespace


def make_cable(sockets: Sockets, node1: object, name1: str, node2: object, name2: str) -> None:
    """A veth pair: ``name1`` in ``node1``'s namespace, ``name2`` in ``node2``'s."""
    sockets(node1).link("add", ifname=name1, kind="veth",
                        peer={"ifname": name2, "net_ns_pid": node2.pid})  # type: ignore[attr-defined]


def bring_up(sockets: Sockets, ends: Iterable[tuple[object, str]]) -> None:
    """Set each (node, interface) administratively up, and each host's loopback."""
    hosts = set()
    for node, name in ends:
        sockets(node).link("set", ifname=name, state="up")
        if isinstance(node, Host):
            hosts.add(node)
    for host in hosts:
        sockets(host).link("set", ifname="lo", state="up")


class PrewiredLink(Link):  # type: ignore[misc]
    """Mininet's record of a cable make_cable already made."""

    @classmethod
    def makeIntfPair(cls, *_args: object, **_kwargs: object) -> None:  # noqa: N802 (Mininet's name)
        return None


class NetlinkIntf(Intf):  # type: ignore[misc]
    """An interface Mininet neither brings up (bring_up does) nor deletes (see above)."""

    def isUp(self, setUp: bool = False) -> bool:  # noqa: N802, N803 (Mininet's names)
        return True if setUp else bool(super().isUp())

    def delete(self) -> None:
        self.node.delIntf(self)
        self.link = None


class NetlinkBridge(RootSwitch):  # type: ignore[misc]
    """A Linux bridge without spanning tree, as Mininet's LinuxBridge makes it with
    ``brctl addbr`` (the kernel's defaults either way), its ports enslaved and the bridge
    set up over netlink; deleted with the journal (see above)."""

    def start(self, _controllers: object) -> None:
        ports = [i.name for i in self.intfList() if self.name in i.name]
        with IPRoute() as ipr:
            ipr.link("add", ifname=self.name, kind="bridge")
            bridge = ipr.link_lookup(ifname=self.name)[0]
            for port in ports:
                ipr.link("set", ifname=port, master=bridge)
            ipr.link("set", index=bridge, state="up")

    def stop(self, deleteIntfs: bool = True) -> None:  # noqa: N803 (Mininet's name)
        with IPRoute() as ipr:
            found = ipr.link_lookup(ifname=self.name)
            if found:
                ipr.link("del", index=found[0])
        super().stop(deleteIntfs)
