"""A run killed with SIGKILL takes its processes along at once, before any `redlab clean`.

The run's reaper (harness/reaper.py) sees it die and rolls its journal back; `redlab
clean` remains for a run whose reaper was killed as well.  These tests use a dummy run (a
`sleep` in a journal under tmp_path: no lab, no root); tests/lab/test_killed_run.py
SIGKILLs real `redlab run`s in the middle of their traffic.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import threading

from harness import journal
from harness.journal import Journal, is_running, roll_back_orphan

from ..conftest import REPO, wait_until

OWNER = """
import subprocess, sys, time
from harness.journal import Journal
journal = Journal(sys.argv[1]).open()
sleeper = subprocess.Popen(["sleep", "600"])
journal.record_process(sleeper.pid, "sleep")
folder = journal.path.with_suffix(".made")
journal.record("path", path=str(folder))
folder.mkdir()
print(sleeper.pid, journal._reaper.pid, flush=True)
time.sleep(600)
"""


def _start(pid: int) -> int | None:
    return journal.process_start_time(pid)


def test_a_killed_owner_is_rolled_back_by_its_reaper_at_once(tmp_path):
    owner = subprocess.Popen([sys.executable, "-c", OWNER, "dummy"], cwd=tmp_path,
                             stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "REDLAB_JOURNAL_DIR": str(tmp_path),
                                  "PYTHONPATH": str(REPO)})
    sleeper, reaper = (int(word) for word in owner.stdout.readline().split())
    sleeper_start, reaper_start = _start(sleeper), _start(reaper)
    assert (tmp_path / "dummy.made").is_dir() and (tmp_path / "dummy.jsonl").exists()
    owner.kill()  # and not collected yet: a zombie owner is a dead one
    took = wait_until("the sleep still runs", lambda: not is_running(sleeper, sleeper_start), 5)
    wait_until("the journal is still there", lambda: not (tmp_path / "dummy.jsonl").exists(), 5)
    assert not (tmp_path / "dummy.made").exists()
    wait_until("the reaper outlives its job", lambda: not is_running(reaper, reaper_start), 5)
    owner.wait()
    print(f"the sleep was gone {took * 1000:.0f} ms after its owner's SIGKILL")


def test_a_journal_rolled_back_by_its_owner_ends_its_reaper(tmp_path, monkeypatch):
    monkeypatch.setattr(journal, "JOURNAL_DIR", tmp_path)
    live = Journal("live").open()
    reaper = live._reaper
    assert reaper is not None and reaper.poll() is None, "no reaper watches the run"
    live.rollback()
    assert reaper.returncode is not None, "the reaper outlived the journal"
    assert list(tmp_path.iterdir()) == []


def test_rolling_back_an_orphan_waits_for_whoever_holds_it_then_finds_it_gone(tmp_path):
    """A dead run's reaper and `redlab clean` reaching one journal together: the second
    waits for the first, then does nothing."""
    path, made = tmp_path / "orphan.jsonl", tmp_path / "made"
    made.mkdir()
    owner = {"kind": "owner", "pid": 2**22 + 1, "start": 1}  # above pid_max: dead
    path.write_text(json.dumps(owner) + "\n"
                    + json.dumps({"kind": "path", "path": str(made)}) + "\n")
    second: list[list[str]] = []
    with open(path) as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        waiter = threading.Thread(target=lambda: second.append(roll_back_orphan(path)))
        waiter.start()
        waiter.join(0.3)
        assert waiter.is_alive(), "it rolled back a journal someone else was rolling back"
        first = Journal.load(path)[0].rollback()
    waiter.join(5)
    assert first == [f"path {made}"]
    assert second == [[]]
