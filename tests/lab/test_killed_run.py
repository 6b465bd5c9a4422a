"""A run killed with SIGKILL takes its processes along at once, before any `redlab clean`.

The run's reaper (harness/reaper.py) sees it die and rolls its journal back; `redlab
clean` remains for a run whose reaper was killed as well.  The reaper with a dummy run
(no lab, no root) is tests/unit/test_killed_run.py; these tests SIGKILL real `redlab
run`s in the middle of their traffic, one in User-mode Linux where the host lacks bonding
and one that runs keepalived natively.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import journal
from harness.journal import Journal, is_running, process_cmdline, process_name
from harness.naming import new_run_id

from ..conftest import REPO, redlab, wait_until
from ..lab_state import Snapshot

# A killed run's own User-mode Linux kernel must die with it: not the session's shared guest.
pytestmark = pytest.mark.private_guest


def _proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, start time) of every process not yet dead (zombies left out:
    PID 1 on some machines collects orphans only every second or two)."""
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            table[int(stat.parent.name)] = (int(fields[1]), int(fields[19]))
    return table


def _descendants(root: int) -> dict[int, int]:
    """pid -> start time of every process below ``root``."""
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = {}, list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found[pid] = table[pid][1]
        todo += children.get(pid, [])
    return found


def _journaled(run_id: str) -> dict[int, int]:
    """pid -> start time of the processes the run's journals (host side too) name."""
    found = {}
    for name in (run_id, f"{run_id}-host"):
        path = journal.JOURNAL_DIR / f"{name}.jsonl"
        if path.exists():
            found |= {e["pid"]: e["start"] for e in Journal.load(path)[0].entries
                      if e["kind"] == "process"}
    return found


def _marked(run_id: str, out: Path) -> set[int]:
    """Running processes whose command line names the run (its UML kernel's umid, a daemon
    whose files live in its folder): those a snapshot of the process tree could miss."""
    marks = (f"umid=redlab-{run_id}-", str(out))
    return {pid for pid in _proc_table() if any(m in process_cmdline(pid) for m in marks)}


def _start_run(scenario: str, out: Path, run_id: str, log: Path) -> subprocess.Popen[bytes]:
    """`redlab run` itself (no wrapper between us and it), once its first trial's
    traffic flows."""
    with open(log, "wb") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "harness", "run",
                                 f"scenarios/{scenario}.yaml", "--out", str(out),
                                 "--run-id", run_id], cwd=REPO,
                                stdout=subprocess.DEVNULL, stderr=stderr)
    events = out / "trial-001" / "events.csv"

    def flowing() -> bool:
        assert proc.poll() is None, f"the run ended before it was killed:\n{log.read_text()}"
        return events.exists() and "traffic_start" in events.read_text()

    wait_until("the first trial's traffic never started", flowing, 240)
    return proc


def _reapers(processes: dict[int, int]) -> dict[int, int]:
    return {pid: start for pid, start in processes.items()
            if "harness.reaper" in process_cmdline(pid)}


@pytest.mark.lab
@pytest.mark.parametrize("scenario", ["bond-active-backup", "vrrp-master-death"])
def test_a_run_killed_mid_trial_stops_its_processes_before_any_clean(tmp_path, scenario):
    before = Snapshot.take()
    out, run_id = tmp_path / "killed", new_run_id()
    proc = _start_run(scenario, out, run_id, tmp_path / "stderr")
    processes = _descendants(proc.pid) | _journaled(run_id)
    os.kill(proc.pid, signal.SIGKILL)
    killed = time.monotonic()
    reapers = _reapers(processes)
    lab = {pid: start for pid, start in processes.items() if pid not in reapers}
    comms = sorted({process_name(pid, "") for pid in lab})
    assert reapers, "the run had no reaper"
    assert {"iperf3", "linux.uml"} & set(comms), f"no traffic seen among {comms}"
    proc.wait()

    def lab_gone() -> bool:
        return (not any(is_running(pid, start) for pid, start in lab.items())
                and not _marked(run_id, out))

    wait_until("the killed run's processes still run", lab_gone, 10)
    lab_s = time.monotonic() - killed
    wait_until("the reaper outlives its job",
          lambda: not any(is_running(pid, start) for pid, start in reapers.items()), 60)
    reaper_s = time.monotonic() - killed
    where = "in User-mode Linux" if any(c == "linux.uml" for c in comms) else "natively"
    print(f"{scenario} ({where}, {len(lab)} processes: {', '.join(comms)}): all gone"
          f" {lab_s:.2f} s after the SIGKILL; the reaper done after {reaper_s:.2f} s")
    assert _journaled(run_id) == {}, "the reaper left the journal"
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["status"] == "interrupted", "the killed run's folder says what happened"

    cleaned = redlab("clean")
    assert cleaned.returncode == 0, cleaned.stderr
    wait_until("a killed run left objects", lambda: not Snapshot.take().new_since(
        before, (run_id,)), 10)


@pytest.mark.lab
def test_a_run_killed_midway_leaves_nothing_after_redlab_clean(tmp_path):
    """Its reaper killed first (the OOM killer, a cgroup stopped): `redlab clean` then
    removes everything the run left."""
    before = Snapshot.take()
    out, run_id = tmp_path / "killed", new_run_id()
    proc = _start_run("bond-active-backup", out, run_id, tmp_path / "stderr")
    for pid in _reapers(_descendants(proc.pid)):
        os.kill(pid, signal.SIGKILL)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    left = Snapshot.take().new_since(before, (run_id,))
    assert left, "a SIGKILLed run should have left something for clean to remove"

    cleaned = redlab("clean")
    assert cleaned.returncode == 0, cleaned.stderr
    assert "removed" in cleaned.stdout
    wait_until("a killed run left objects after redlab clean", lambda: not Snapshot.take()
          .new_since(before, (run_id,)), 10)
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["status"] == "interrupted", "the killed run's folder says what happened"
