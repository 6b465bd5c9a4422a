"""Sockets of a process's network namespace, read from /proc/<pid>/net (no `ss` scraping).

/proc/<pid>/net shows the namespace of <pid>, so the harness can watch a lab host's
sockets without entering it: to know that a server listens, or that a client's
connections are up.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

_TCP_LISTEN = "0A"
_CONNECTED = "01"  # TCP_ESTABLISHED; a connected UDP socket shows the same state


def _sockets(pid: int, proto: str) -> Iterator[tuple[int, int, str]]:
    """(local port, remote port, state) of every ``proto`` socket, IPv4 and IPv6."""
    for table in (proto, f"{proto}6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            yield (int(fields[1].rsplit(":", 1)[1], 16), int(fields[2].rsplit(":", 1)[1], 16),
                   fields[3])


def listening(pid: int, port: int, proto: str) -> bool:
    """True once a socket bound to ``port`` exists in ``pid``'s namespace (TCP: in LISTEN)."""
    return any(local == port and (proto != "tcp" or state == _TCP_LISTEN)
               for local, _, state in _sockets(pid, proto))


def established(pid: int, remote_port: int, proto: str = "tcp") -> int:
    """Sockets connected to ``remote_port`` in ``pid``'s namespace."""
    return sum(1 for _, remote, state in _sockets(pid, proto)
               if remote == remote_port and state == _CONNECTED)
