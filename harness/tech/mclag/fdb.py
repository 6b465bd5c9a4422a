"""A leaf bridge's forwarding database, through netlink (pyroute2): the MACs the leaf
learned on its own ports, which its heartbeats report, and the static entries it installs
for the MACs its peer reports (learning is off on the peer link, so nothing else would
send frames for them the right way).

What a dump of the bridge family holds (kernel 6.x, seen with ``bridge fdb show``): an
entry of the bridge names it in ``NDA_MASTER``; learned entries are ``NUD_REACHABLE``
(``NUD_STALE`` once idle), static ones ``NUD_NOARP``, the bridge's own addresses
``NUD_PERMANENT``; each port's own multicast addresses come without ``NDA_MASTER``.
A static entry is not aged out and not flushed when its port loses carrier (learned
ones are), which is why the controller re-points them itself.
"""

from __future__ import annotations

import errno
from collections.abc import Collection, Mapping

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from harness.tech.mclag.control import ORPHAN

NUD_NOARP, NUD_PERMANENT = 0x40, 0x80
NTF_MASTER = 0x04  # the request is for the port's master (the bridge), not the port itself


def _bridge_entries(ipr: IPRoute, bridge: int) -> list[tuple[str, int, int]]:
    """(MAC, port ifindex, NUD state) of every entry the bridge ``bridge`` holds."""
    return [(str(e.get_attr("NDA_LLADDR")).lower(), e["ifindex"], e["state"])
            for e in ipr.fdb("dump") if e.get_attr("NDA_MASTER") == bridge]


def learned(ipr: IPRoute, bridge: int, servers: Mapping[int, str],
            peer_link: int) -> dict[str, str]:
    """MAC -> server (``servers`` maps a dual-homed bond's ifindex to its server) or
    ORPHAN (any other port) of each entry the bridge learned itself; nothing learned on
    the peer link (where learning is off anyway), nothing static or the bridge's own."""
    return {mac: servers.get(port, ORPHAN)
            for mac, port, state in _bridge_entries(ipr, bridge)
            if not state & (NUD_NOARP | NUD_PERMANENT) and port not in (peer_link, bridge)}


def install(ipr: IPRoute, mac: str, port: int) -> None:
    """A static entry for ``mac`` on ``port``, moved there if it points elsewhere.

    ``bridge fdb replace MAC dev PORT master static``: replace creates or moves, so a
    re-pointed MAC has no moment without an entry (a delete and an add would flood)."""
    ipr.fdb("replace", ifindex=port, lladdr=mac, state=NUD_NOARP, flags=NTF_MASTER)


def remove(ipr: IPRoute, mac: str, port: int) -> bool:
    """Remove the static entry for ``mac`` on ``port``; False if there was none there
    (the kernel matches the port: an entry that learning moved since is left alone)."""
    try:
        ipr.fdb("del", ifindex=port, lladdr=mac, state=NUD_NOARP, flags=NTF_MASTER)
    except NetlinkError as exc:
        if exc.code != errno.ENOENT:
            raise
        return False
    return True


def remove_static(ipr: IPRoute, bridge: int, ports: Collection[int]) -> list[str]:
    """Remove every static entry on ``ports`` (the peer link and the dual-homed bonds,
    where only this agent installs any): what an agent killed before left behind."""
    return [mac for mac, port, state in _bridge_entries(ipr, bridge)
            if port in ports and state == NUD_NOARP and remove(ipr, mac, port)]
