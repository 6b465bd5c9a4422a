"""The bonding driver's status file (``/proc/net/bonding/<bond>``), read by watchers.

Netlink (:mod:`harness.tech.bond.netlink`) is the bond's record; this file is what a
watcher polls during a trial, because it is cheap: see :func:`status_text`.
"""

from __future__ import annotations

from pathlib import Path


def status_text(pid: int, name: str) -> str:
    """The bonding driver's status file of bond ``name`` in the namespace of ``pid``.

    ``/proc/<pid>/net`` shows the network namespace of ``pid``. Reading it costs about
    0.3 ms inside User-mode Linux against 5 ms for a pyroute2 request, so a watcher
    polling every few ms reads this and does not starve the lab it watches.
    """
    return Path(f"/proc/{pid}/net/bonding/{name}").read_text()


class StatusFile:
    """A bond's status file read every few ms by a watcher, which parses it only when it
    changed: :meth:`changed` is the new text, or None when it is the text read last."""

    def __init__(self, pid: int, name: str) -> None:
        self.pid, self.name, self.text = pid, name, ""

    def changed(self) -> str | None:
        text = status_text(self.pid, self.name)
        if text == self.text:
            return None
        self.text = text
        return text


def active_member_in(text: str) -> str | None:
    """The active member named in a status file; None in modes without one (802.3ad,
    balance-*)."""
    for line in text.splitlines():
        if line.startswith("Currently Active Slave:"):
            value = line.partition(":")[2].strip()
            return None if value == "None" else value
    return None
