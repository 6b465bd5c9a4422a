"""What lab objects exist on this machine right now, to prove a run left nothing behind."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from harness import journal

LAB_PROCESSES = {"linux.uml", "iperf3", "irtt", "mnexec", "keepalived", "ovs-vswitchd"}


def _comm(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


@dataclass(frozen=True)
class Snapshot:
    links: frozenset[str]
    processes: frozenset[tuple[int, str]]
    journals: frozenset[str]

    @classmethod
    def take(cls) -> Snapshot:
        links = frozenset(p.name for p in Path("/sys/class/net").iterdir())
        procs = frozenset((int(pid), _comm(pid)) for pid in os.listdir("/proc")
                          if pid.isdigit() and _comm(pid) in LAB_PROCESSES)
        jdir = journal.JOURNAL_DIR
        journals = frozenset(p.name for p in jdir.glob("*.jsonl")) if jdir.is_dir() else frozenset()
        return cls(links, procs, journals)

    def new_since(self, before: Snapshot) -> dict[str, set]:
        diff = {"links": set(self.links - before.links),
                "processes": set(self.processes - before.processes),
                "journals": set(self.journals - before.journals)}
        return {k: v for k, v in diff.items() if v}
