"""Open vSwitch's own account of its LAG members, from ovs-vswitchd's log file.

ovs-vswitchd logs each bond member it enables or disables (``bond|INFO|member p1:
enabled``), stamped in UTC to the millisecond: the moment the switch starts or stops
sending on the member and accepting frames from it. A LAG's partner may distribute on a
member before that moment, and what it sends meanwhile is dropped (the fail-back of
scenarios/lag-member-failure.yaml). Polling ``ovs-appctl bond/show`` costs tens of ms a
call inside User-mode Linux, so the log is read once, after the trial, from where it stood
at its start.
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

PIDFILE = Path("/var/run/openvswitch/ovs-vswitchd.pid")
LOG_DIR = Path("/var/log/openvswitch")  # where a bare --log-file puts it
MEMBER_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\.(\d{3})Z\|\d+\|bond\|INFO\|"
                         r"member (\S+): (enabled|disabled)$")


@dataclass(frozen=True)
class MemberChange:
    t_ns: int
    switch: str
    member: str   # the port's name in the topology
    state: str    # "enabled" or "disabled"


def log_file(pidfile: Path = PIDFILE) -> Path | None:
    """The file the running ovs-vswitchd logs to (its ``--log-file[=PATH]`` argument, which
    ovs-ctl gives it); None when it is not running or logs to no file."""
    try:
        pid = int(pidfile.read_text().strip())
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    for raw in args:
        arg = raw.decode(errors="replace")
        if arg == "--log-file":
            return LOG_DIR / "ovs-vswitchd.log"
        if arg.startswith("--log-file="):
            return Path(arg.split("=", 1)[1])
    return None


@dataclass
class LogMark:
    """Where a log file stood; :meth:`lines_since` reads what was written after."""

    path: Path
    offset: int

    @classmethod
    def now(cls, path: Path) -> LogMark:
        return cls(path, path.stat().st_size if path.exists() else 0)

    def lines_since(self) -> list[str]:
        if not self.path.exists():
            return []
        with open(self.path, "rb") as fh:
            if fh.seek(0, 2) < self.offset:  # rotated meanwhile: all of the new file
                self.offset = 0
            fh.seek(self.offset)
            return fh.read().decode(errors="replace").splitlines()


def member_changes(lines: Iterable[str],
                   members: Mapping[str, tuple[str, str]]) -> list[MemberChange]:
    """Each enable or disable of a member in ``members`` (its name in OVS -> its switch and
    port in the topology), in log order; lines about other members (another run's) are
    skipped."""
    changes = []
    for line in lines:
        match = MEMBER_LINE.match(line.strip())
        if match and match[3] in members:
            seconds = calendar.timegm(time.strptime(match[1], "%Y-%m-%dT%H:%M:%S"))
            changes.append(MemberChange(seconds * 1_000_000_000 + int(match[2]) * 1_000_000,
                                        *members[match[3]], match[4]))
    return changes
