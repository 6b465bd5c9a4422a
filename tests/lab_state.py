"""What lab objects exist on this machine right now, to prove a run left nothing behind."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from harness import journal

LAB_PROCESSES = {"linux.uml", "iperf3", "irtt", "redlab-probe", "mnexec", "keepalived",
                 "ovs-vswitchd", "redlab-netns"}


def _comm(pid: str) -> str:
    """The command name of a running process; "" for one gone or a zombie (it has freed
    all it held, and waits only for init to collect it)."""
    return "" if journal.process_state(pid) in (None, "Z") else journal.process_name(pid, "")


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

    def new_since(self, before: Snapshot, run_ids: tuple[str, ...] = ()) -> dict[str, set]:
        """What appeared since ``before``. With ``run_ids``, a User-mode Linux kernel counts
        only if it belongs to one of those runs (its umid carries the run id), so another
        RedLab run on the same machine is not mistaken for a leak of this one."""
        foreign = _other_live_runs(run_ids)
        foreign_pids = _pids_of(foreign)
        procs = set(self.processes - before.processes)
        procs = {(pid, comm) for pid, comm in procs if pid not in foreign_pids}
        procs = {(pid, comm) for pid, comm in procs
                 if not (comm == "linux.uml" and (
                     any(f"umid=redlab-{r}" in journal.process_cmdline(pid) for r in foreign)
                     or (run_ids and not any(f"umid=redlab-{r}" in journal.process_cmdline(pid)
                                             for r in run_ids))))}
        # A lab built inside another test process (test_inject's, whose journal lies in
        # that test's own folder) is not a live run here: with ``run_ids``, only links
        # named for those runs (every root-namespace link carries r<run id>) count, and
        # a namespace holder only once nothing alive but init holds it (a leaked one is
        # an orphan, its run's process gone).
        procs = {(pid, comm) for pid, comm in procs
                 if not (run_ids and comm == "redlab-netns" and _held_by_a_live_process(pid))}
        links = {name for name in self.links - before.links
                 if not any(name.startswith(f"r{r}") for r in foreign)
                 and (not run_ids or any(name.startswith(f"r{r}") for r in run_ids))}
        journals = {name for name in self.journals - before.journals
                    if name.split(".")[0].removesuffix("-host") not in foreign}
        diff = {"links": links, "processes": procs, "journals": journals}
        return {k: v for k, v in diff.items() if v}


def _held_by_a_live_process(pid: int) -> bool:
    """Whether the namespace holder ``pid`` (or the holder it was forked from, for a
    node) has a parent other than init: a lab still running in some process."""
    parent = journal.process_parent(pid)
    if parent is not None and journal.process_name(parent, "") == "redlab-netns":
        parent = journal.process_parent(parent)  # a node: its holder's parent
    return parent is not None and parent > 1


def _other_live_runs(ours: tuple[str, ...]) -> set[str]:
    """Run ids of RedLab runs in progress on this machine that are not ``ours``."""
    return {j.run_id.removesuffix("-host") for j, owner in _live_journals()} - set(ours)


def _pids_of(runs: set[str]) -> set[int]:
    """Processes another live run's journal says it started (its iperf3, probes...)."""
    return {entry["pid"] for j, _ in _live_journals()
            if j.run_id.removesuffix("-host") in runs
            for entry in j.entries if entry["kind"] == "process"}


def _live_journals():
    jdir = journal.JOURNAL_DIR
    for path in sorted(jdir.glob("*.jsonl")) if jdir.is_dir() else ():
        try:
            loaded, owner = journal.Journal.load(path)
        except OSError:
            continue
        if owner and journal.is_alive(owner["pid"], owner.get("start")):
            yield loaded, owner
