"""Inside a shared User-mode Linux guest: run many ``redlab`` commands, one at a time.

A private guest per run pays its boot (~3.5 s), Python's imports of the harness inside it
(pandas, Mininet and pyroute2: seconds, as UML is slow at many small reads and
mmaps), and with Open vSwitch a wait until the kernel is 10.5 s old (SETTLED_UPTIME_S in
harness/tech/ovs/bridge.py).  A shared guest (harness/lab/shared_guest.py) pays them
once: uml_init.sh runs this agent as its command; it imports the heavy modules, then
forks one child per request.  The child starts from the imported state, takes the
request's argv, cwd and environment, and returns to ``main()``, which runs the typer app
as ``python -m harness`` would; so each run is its own process with its own journal,
reaper and lab, as in a private guest.  After a child, the agent kills whatever it left
running (a private guest's halt would have), once its reaper has had time to roll back.

The spool is a host folder mounted read-write; the host writes, the agent answers:

  req-<id>.json   {"argv", "cwd", "env", "deadline_s"}, or {"ping": true}; written
                  under another name and renamed, so never read half-written.  Ids sort
                  in submission order.
  lease-<id>      the submitter still wants the run.  Gone (it gave up, or it was killed
                  and its reaper rolled back its journal, which names the lease): the run
                  is cancelled with SIGTERM, which unwinds it like Ctrl-C.
  out-<id>.stdout, out-<id>.stderr   created by the host, filled by the child as it runs
  res-<id>.json   {"returncode", "started", "run_s", "ended": "exit" | "deadline" |
                  "cancelled", "leftover"}; a ping is answered with the guest's uptime
  stop            the agent exits (and the guest halts); so it does if the spool vanishes

Presence is always checked with ``os.listdir``: hostfs passes every readdir to the host,
while a single name's lookup may be answered from the guest's dentry cache.
"""

from __future__ import annotations

import atexit
import ctypes
import gc
import importlib
import json
import os
import signal
import sys
import threading
import time
import traceback
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.journal import process_cmdline, process_name

POLL_S = 0.02   # for a request; for an exited process while a run is going
CHECK_S = 0.5   # for the lease and the deadline, while a run is going
GRACE_S = 15.0  # SIGTERM -> SIGKILL; then, for the run's reaper to roll back
STOP = "stop"
PROG_NAME = "python -m harness"  # what click shows in usage lines for the real command
# What `redlab run` imports on its way to a trial (harness/cli.py `_run`; pandas, Mininet
# and pyroute2 come with them; every technology with the registry).  Importing mininet
# would make every later logger a MininetLogger: harness/lab/wiring.py puts the plain
# class back, so a module logs the same here as in a private guest, whatever the order.
PRELOAD = ("harness.cli", "harness.lab", "harness.scenario.runner", "harness.scenario.model",
           "harness.topology.loader", "harness.tech.registry", "harness.results.summary")
PR_SET_CHILD_SUBREAPER = 36


@dataclass(frozen=True)
class Request:
    id: str
    argv: list[str]     # [python, "-m", "harness", ...]
    cwd: str
    env: dict[str, str]
    deadline_s: float


def main() -> int:
    spool = Path(sys.argv[1])
    become_subreaper()
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except Exception:  # the run that needs it fails the same way, and says so
            traceback.print_exc()
    # a check that fails here (pathCheck exits) fails again in the run that needs it
    with suppress(Exception, SystemExit):
        importlib.import_module("harness.lab.wiring").prime()
    # Children share our memory copy-on-write, and each page copy is a slow fault in
    # UML: keep the collector off the imported objects, and skip the interpreter's
    # teardown (which touches every object) when a child exits.
    gc.freeze()
    request = serve(spool)
    if request is None:
        return 0
    # Here only in a child: from now on this process is `python -m harness <args>`.
    os._exit(_run(request))


def _run(request: Request) -> int:
    """Run the typer app as ``python -m harness`` would; return its exit status after
    what an exiting interpreter does that others could notice (threads, atexit, output)."""
    from harness.cli import app

    sys.argv = [str(Path(sys.modules["harness"].__file__).with_name("__main__.py")),
                *request.argv[3:]]
    try:
        app(args=request.argv[3:], prog_name=PROG_NAME)  # raises SystemExit, as standalone
        code = 0
    except SystemExit as exc:
        code = _exit_status(exc.code)
    except KeyboardInterrupt:
        traceback.print_exc()
        code = 128 + signal.SIGINT
    except BaseException:
        traceback.print_exc()
        code = 1
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with suppress(Exception):
            stream.flush()
    return code


def _exit_status(code: object) -> int:
    """What Python makes of ``sys.exit(code)``."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def serve(spool: Path) -> Request | None:
    """Answer requests until told to stop: None in the agent; in each child it forks,
    the request that child is to run."""
    print(f"redlab guest agent {os.getpid()} serving {spool}", file=sys.stderr, flush=True)
    while True:
        try:
            names = set(os.listdir(spool))
        except FileNotFoundError:
            return None
        if STOP in names:
            return None
        for name in sorted(n for n in names if n.startswith("req-") and n.endswith(".json")):
            rid = name.removeprefix("req-").removesuffix(".json")
            body = json.loads((spool / name).read_text())
            (spool / name).unlink()
            if body.get("ping"):
                _answer(spool, rid, {"uptime_s": uptime(), "pid": os.getpid()})
                continue
            request = Request(rid, list(body["argv"]), body["cwd"], dict(body["env"]),
                              float(body["deadline_s"]))
            if request.argv[1:3] != ["-m", "harness"]:
                _answer(spool, rid, {"returncode": None, "ended": "refused",
                                     "error": "only `python -m harness ...` runs here"})
                continue
            pid = _fork(spool, request)
            if pid == 0:
                return request
            _answer(spool, rid, _wait(spool, request, pid))
        time.sleep(POLL_S)


def uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


def _fork(spool: Path, request: Request) -> int:
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    out = os.open(spool / f"out-{request.id}.stdout", flags, 0o644)
    err = os.open(spool / f"out-{request.id}.stderr", flags, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        os.close(out)
        os.close(err)
        return pid
    # Own process group: a cancellation reaches the run and what it started in-group.
    os.setpgid(0, 0)
    null = os.open(os.devnull, os.O_RDONLY)
    for fd, target in ((null, 0), (out, 1), (err, 2)):
        os.dup2(fd, target)
        os.close(fd)
    os.environ.clear()
    os.environ.update(request.env)
    os.chdir(request.cwd)
    return 0


def _wait(spool: Path, request: Request, pid: int) -> dict[str, Any]:
    started_wall, started = time.time(), time.monotonic()
    ended, signalled = "exit", 0.0
    lease = f"lease-{request.id}"
    checked = started
    # Orphans of the run are ours to collect (as a private guest's init collects them
    # at once); the spool is read only every CHECK_S: hostfs calls cost the guest's one
    # CPU, which the run being measured needs.
    while (status := _reap(pid)) is None:
        time.sleep(POLL_S)
        now = time.monotonic()
        if signalled and now - signalled > GRACE_S:
            _signal_group(pid, signal.SIGKILL)
        if signalled or now - checked < CHECK_S:
            continue
        checked = now
        if now - started > request.deadline_s:
            ended = "deadline"
        elif not _exists(spool, lease):
            ended = "cancelled"
        if ended != "exit":
            _signal_group(pid, signal.SIGTERM)
            signalled = now
    run_s = time.monotonic() - started
    code = os.waitstatus_to_exitcode(status)
    leftover = _end_leftovers()
    os.sync()  # the child's output reaches the host's files before the result does
    return {"returncode": 128 - code if code < 0 else code, "started": started_wall,
            "run_s": run_s, "ended": ended, "leftover": leftover}


def _reap(child: int) -> int | None:
    """Collect every exited descendant (we are their subreaper); ``child``'s wait status
    once it has exited, else None."""
    found = None
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return found
        if pid == 0:
            return found
        if pid == child:
            found = status


def _exists(spool: Path, name: str) -> bool:
    try:
        return name in os.listdir(spool)
    except FileNotFoundError:
        return False


def _signal_group(pgid: int, sig: int) -> None:
    with suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _end_leftovers() -> list[str]:
    """Kill the processes the run left (none, when it rolled back): orphans, which the
    kernel hands to us as their subreaper.  A run's reaper still rolling back (the run was
    killed) gets GRACE_S first.  Returns their names."""
    deadline = time.monotonic() + GRACE_S
    while ((left := _descendants()) and time.monotonic() < deadline
           and any("harness.reaper" in process_cmdline(pid) for pid in left)):
        _reap(0)
        time.sleep(POLL_S)
    names = sorted(f"{pid} {process_name(pid)}" for pid in left)
    for pid in left:
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    while _descendants():
        _reap(0)
        time.sleep(POLL_S)
    _reap(0)
    return names


def _descendants() -> set[int]:
    """Our live descendants, zombies aside."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with suppress(OSError, IndexError):
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                if fields[0] != "Z":
                    parents[int(entry)] = int(fields[1])
    found: set[int] = set()
    frontier = {os.getpid()}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


def become_subreaper() -> None:
    """Orphans of our children are re-parented to us, not to init: we find what a run
    left by walking our own descendants, also when the agent runs on a busy host."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def _answer(spool: Path, rid: str, result: dict[str, Any]) -> None:
    tmp = spool / f"res-{rid}.json.tmp"
    tmp.write_text(json.dumps(result))
    os.replace(tmp, spool / f"res-{rid}.json")


if __name__ == "__main__":
    sys.exit(main())
