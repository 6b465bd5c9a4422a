"""Is a process listening yet?  Read from /proc/<pid>/net, which shows the process's netns."""

from __future__ import annotations

from pathlib import Path

_TCP_LISTEN = "0A"
_TCP_ESTABLISHED = "01"


def listening(pid: int, port: int, proto: str) -> bool:
    """True once a socket bound to ``port`` exists in ``pid``'s namespace (TCP: in LISTEN)."""
    for table in (f"{proto}", f"{proto}6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and (proto != "tcp" or fields[3] == _TCP_LISTEN):
                return True
    return False


def established(pid: int, remote_port: int, proto: str = "tcp") -> int:
    """Sockets connected to ``remote_port`` in ``pid``'s namespace (a connected UDP socket
    shows the same state as an established TCP one)."""
    count = 0
    for table in (proto, f"{proto}6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if (int(fields[2].rsplit(":", 1)[1], 16) == remote_port
                    and fields[3] == _TCP_ESTABLISHED):
                count += 1
    return count
