"""What a run created, recorded where it is created, undone in reverse on every exit path.

Each run appends to ``/run/redlab/<run_id>.jsonl`` *before* it creates an object (names
are known in advance), so a run killed at any instant leaves a journal that names
everything it may have made.  ``Journal.rollback()`` undoes the entries in reverse; the
normal exit path and ``redlab clean`` use the very same code.  ``redlab clean`` only
touches journals whose owner process is gone, so it never disturbs a run in progress,
and never removes anything a journal does not name.

A run that dies without rolling back (SIGKILL, the OOM killer) is rolled back at once by
its reaper, a watchdog process that ``open()`` starts beside it (:mod:`harness.reaper`,
which says why a watchdog and not a parent-death signal); ``redlab clean`` is left for
what a reaper could not do.  Both go through :func:`roll_back_orphan`.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness import timeouts

log = logging.getLogger(__name__)

JOURNAL_DIR = Path(os.environ.get("REDLAB_JOURNAL_DIR", "/run/redlab"))


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ')'.
    return stat.rsplit(")", 1)[1].split()


def process_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot; tells a live process from a reused pid."""
    fields = _stat(pid)
    return int(fields[19]) if fields else None


def is_alive(pid: int, start: int | None) -> bool:
    return start is not None and process_start_time(pid) == start


def process_name(pid: int | str, gone: str = "?") -> str:
    """The command name of ``pid`` (/proc/<pid>/comm); ``gone`` if there is none."""
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return gone


def process_cmdline(pid: int | str) -> str:
    """The command line of ``pid``, arguments joined by spaces; "" if it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def process_state(pid: int | str) -> str | None:
    """The one-letter state of ``pid`` (R, S, T, Z...); None if it is gone."""
    fields = _stat(int(pid))
    return fields[0] if fields else None


def process_parent(pid: int | str) -> int | None:
    """The parent pid of ``pid``; None if it is gone."""
    fields = _stat(int(pid))
    return int(fields[1]) if fields else None


def is_running(pid: int, start: int | None) -> bool:
    """Alive and not a zombie: a zombie has died, freed all it held, and waits only for
    its parent (init, for an orphan, which may take a second or two) to collect it."""
    fields = _stat(pid)
    return (fields is not None and start is not None and int(fields[19]) == start
            and fields[0] != "Z")


def owner_alive(owner: dict[str, Any]) -> bool:
    """Whether a journal's owner (its header) still runs."""
    return isinstance(owner.get("pid"), int) and is_running(owner["pid"], owner.get("start"))


@dataclass
class Journal:
    run_id: str
    path: Path = field(init=False)
    entries: list[dict[str, Any]] = field(default_factory=list)
    # The watchdog that rolls back if this process dies first (see harness.reaper).
    _reaper: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False,
                                                    compare=False)

    def __post_init__(self) -> None:
        self.path = JOURNAL_DIR / f"{self.run_id}.jsonl"

    # -- writing ------------------------------------------------------------------
    def open(self) -> Journal:
        JOURNAL_DIR.mkdir(parents=True, exist_ok=True)
        pid = os.getpid()
        header = {"kind": "owner", "pid": pid, "start": process_start_time(pid),
                  "created": time.time()}
        with open(self.path, "x") as fh:  # "x": a colliding run id fails loudly
            fh.write(json.dumps(header) + "\n")
        self._reaper = subprocess.Popen(
            [sys.executable, "-m", "harness.reaper", str(self.path.resolve())],
            # Its own session: a signal to our process group does not reach it.  Started
            # where this package is importable, whatever our working directory.
            start_new_session=True, cwd=Path(__file__).resolve().parents[1],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        return self

    def record(self, kind: str, **attrs: Any) -> dict[str, Any]:
        entry = {"kind": kind, **attrs}
        self.entries.append(entry)
        with open(self.path, "a") as fh:
            fh.write(json.dumps(entry) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        return entry

    def record_process(self, pid: int, what: str, group: bool = False) -> dict[str, Any]:
        return self.record("process", pid=pid, start=process_start_time(pid), what=what,
                           group=group)

    # -- undoing ------------------------------------------------------------------
    def mark(self) -> int:
        """A point to roll back to: what is recorded after it can be undone on its own."""
        return len(self.entries)

    def rollback_to(self, mark: int) -> list[str]:
        """Undo the entries recorded since ``mark``, newest first. Returns what was removed."""
        removed: list[str] = []
        while len(self.entries) > mark:
            entry = self.entries.pop()
            try:
                if undo(entry):
                    removed.append(describe(entry))
            except Exception as exc:  # keep going: one stuck object must not strand the rest
                log.warning("could not undo %s: %s", describe(entry), exc)
        return removed

    def rollback(self) -> list[str]:
        """Undo every entry in reverse, then drop the journal. Returns what was removed."""
        removed = self.rollback_to(0)
        self.path.unlink(missing_ok=True)
        if self._reaper is not None:
            # Idle while we live (it acts only once we are dead): ending it cuts nothing short.
            self._reaper.kill()
            self._reaper.wait()
            self._reaper = None
        return removed

    def __enter__(self) -> Journal:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.rollback()

    # -- reading ------------------------------------------------------------------
    @classmethod
    def load(cls, path: Path) -> tuple[Journal, dict[str, Any]]:
        journal = cls(run_id=path.stem)
        journal.path = path  # wherever it lies, not only in JOURNAL_DIR
        owner: dict[str, Any] = {}
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a crash: everything before it still counts
            if entry.get("kind") == "owner":
                owner = entry
            else:
                journal.entries.append(entry)
        return journal, owner


def describe(entry: dict[str, Any]) -> str:
    kind = entry["kind"]
    if kind == "process":
        return f"process {entry['pid']} ({entry.get('what', '?')})"
    if kind in ("link", "ovs_bridge"):
        return f"{kind} {entry['name']}"
    if kind == "ovs_daemons":
        return "ovsdb-server and ovs-vswitchd started with ovs-ctl"
    if kind == "nft_table":
        return f"nft table {entry['family']} {entry['name']}"
    if kind == "path":
        return f"path {entry['path']}"
    if kind == "run_folder":
        return f"run folder {entry['path']} (marked interrupted)"
    return json.dumps(entry)


def undo(entry: dict[str, Any]) -> bool:
    """Remove one recorded object if it still exists. Returns whether anything was done."""
    kind = entry["kind"]
    if kind == "process":
        return _kill(entry["pid"], entry.get("start"), entry.get("group", False))
    if kind == "link":
        return _delete_link(entry["name"])
    if kind == "ovs_bridge":
        return _delete_ovs_bridge(entry["name"])
    if kind == "ovs_daemons":
        return _stop_ovs()
    if kind == "nft_table":
        return _delete_nft_table(entry["family"], entry["name"])
    if kind == "path":
        return _remove_path(Path(entry["path"]))
    if kind == "run_folder":
        return _mark_interrupted(Path(entry["path"]))
    log.warning("journal entry of unknown kind %r left alone", kind)
    return False


def _kill(pid: int, start: int | None, group: bool) -> bool:
    if not is_alive(pid, start):
        return False
    try:
        if group:
            os.killpg(pid, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeouts.PROCESS_EXIT
    while not _dead(pid, start) or (group and group_members(pid)):
        if time.monotonic() > deadline:
            break
        if group:  # the group id stays ours while a member lives: none can reuse it
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        time.sleep(0.01)
    return True


def _dead(pid: int, start: int | None) -> bool:
    """Gone, or a zombie: our own child we collect (no zombie left); an orphan is init's
    to collect, which may take seconds, too long to wait for at every process."""
    fields = _stat(pid)
    if fields is None or start is None or int(fields[19]) != start:
        return True
    if fields[0] != "Z":
        return False
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    return True


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group ``pgid``."""
    return [pid for pid in (int(p.name) for p in Path("/proc").glob("[0-9]*"))
            if (fields := _stat(pid)) and int(fields[2]) == pgid and fields[0] != "Z"]


def _delete_link(name: str) -> bool:
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    with IPRoute() as ipr:
        idx = ipr.link_lookup(ifname=name)
        if not idx:
            return False
        try:
            ipr.link("del", index=idx[0])
        except NetlinkError as exc:
            if exc.code != 19:  # ENODEV: its peer went first and took it along
                raise
        return True


def _delete_ovs_bridge(name: str) -> bool:
    if shutil.which("ovs-vsctl") is None:
        return False
    done = subprocess.run(["ovs-vsctl", "--timeout=5", "--if-exists", "del-br", name],
                          capture_output=True, check=False)
    return done.returncode == 0


def _stop_ovs() -> bool:
    ctl = Path("/usr/share/openvswitch/scripts/ovs-ctl")
    if not ctl.exists():
        return False
    done = subprocess.run([str(ctl), "stop"], capture_output=True, check=False,
                          timeout=timeouts.OVS_START)
    return done.returncode == 0


def _delete_nft_table(family: str, name: str) -> bool:
    """A root-namespace nft table: a netdev one outlives the device it hooks, so only the
    journal can be sure it goes."""
    if shutil.which("nft") is None:
        return False
    listed = subprocess.run(["nft", "list", "table", family, name], capture_output=True,
                            check=False)
    if listed.returncode != 0:
        return False
    subprocess.run(["nft", "delete", "table", family, name], capture_output=True, check=False)
    return True


def _remove_path(path: Path) -> bool:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
        return True
    if path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)
        return True
    return False


def _mark_interrupted(folder: Path) -> bool:
    """A killed run cannot say it was interrupted: say it for it, keeping every result."""
    meta_path = folder / "metadata.json"
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    if meta.get("status") != "running":
        return False
    meta["status"] = "interrupted"
    meta["error"] = "the run was killed; redlab clean removed what it left"
    tmp = meta_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(meta, indent=2))
    os.replace(tmp, meta_path)
    return True


def stale_journals() -> Iterator[tuple[Journal, dict[str, Any]]]:
    """Journals whose owner process is gone: what a crashed or killed run left."""
    if not JOURNAL_DIR.is_dir():
        return
    for path in sorted(JOURNAL_DIR.glob("*.jsonl")):
        try:
            journal, owner = Journal.load(path)
        except FileNotFoundError:
            continue  # its reaper has just rolled it back
        if owner and owner_alive(owner):
            continue  # a run in progress: not ours to touch
        yield journal, owner


def roll_back_orphan(path: Path) -> list[str]:
    """Roll back the journal at ``path`` if its owner is dead: its processes first
    (oldest first), then the rest in reverse.  Returns what was removed.

    A dead run's reaper and ``redlab clean`` may reach one journal at the same moment, so
    this holds an exclusive lock on the file meanwhile; whoever waited for the lock then
    finds the journal gone (unlinked) and does nothing.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return []
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released when fd is closed
        if os.fstat(fd).st_nlink == 0:
            return []
        journal, owner = Journal.load(path)
        if owner and owner_alive(owner):
            return []
        # Processes first, so that they stop using the CPU before links and folders go,
        # and oldest first (rollback pops from the end): a parent before its child, or
        # keepalived starts a new VRRP child in place of the one killed.
        processes = [entry for entry in journal.entries if entry["kind"] == "process"]
        journal.entries = ([entry for entry in journal.entries if entry["kind"] != "process"]
                           + processes[::-1])
        return journal.rollback()
    finally:
        os.close(fd)


def clean_stale() -> list[str]:
    removed: list[str] = []
    for journal, _owner in stale_journals():
        removed += roll_back_orphan(journal.path)
    return removed
