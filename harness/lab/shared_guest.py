"""One User-mode Linux guest, booted once, that runs many ``redlab`` commands in turn.

A test session (or a suite) boots it with ``SharedGuest.boot`` and names its spool folder
in ``REDLAB_GUEST``; every ``redlab run`` that would boot a guest of its own then asks
``serving()`` first, and submits its command to the shared guest when that guest has the
modules the run needs and can write the run's folder.  The command runs there exactly
as in a private guest (same argv and environment, its own process, journal and reaper:
see harness/lab/guest_agent.py for the spool protocol), minus the boot, the imports and
the Open vSwitch uptime wait.

The guest is journaled by whoever booted it, like ``run_in_uml`` does: its kernel's
process group and its spool and control folders, so that a killed owner's reaper or
``redlab clean`` removes it.  Each submitter journals its request's lease: when a killed
submitter's reaper removes it, the agent cancels that run.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shlex
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass
from pathlib import Path

from harness import timeouts
from harness.errors import LabError
from harness.journal import Journal, is_running, process_start_time, undo
from harness.lab import uml
from harness.lab.guest_agent import GRACE_S
from harness.naming import new_run_id
from harness.tech.ovs.bridge import SETTLED_UPTIME_S

log = logging.getLogger(__name__)

ENV_VAR = "REDLAB_GUEST"  # the spool folder of the shared guest runs should use
INFO = "guest.json"       # in the spool; written once the agent answers
GUEST_ENV = {"MPLCONFIGDIR": "/tmp/matplotlib"}  # the host's home is read-only inside
POLL_S = uml.POLL_S


@dataclass(frozen=True)
class GuestInfo:
    """What a submitter needs to know about a running shared guest."""
    spool: str
    ctl: str
    kernel_pid: int
    kernel_start: int | None
    modules: list[str]
    start_ovs: bool
    writable: list[str]
    python: str    # the interpreter the agent runs, which every request must name
    harness: str   # the package folder the agent imported
    code_stamp: int  # its newest source file's mtime before the agent imported it

    def covers(self, modules: Sequence[str], start_ovs: bool, out: Path, cwd: Path,
               python: str) -> str | None:
        """Why this guest cannot run such a command as a private guest would, or None."""
        absent = sorted(set(modules) - set(self.modules))
        writable = [Path(w) for w in self.writable]
        if absent:
            return f"it lacks module(s) {', '.join(absent)}"
        if start_ovs and not self.start_ovs:
            return "it runs no Open vSwitch"
        if not any(out.is_relative_to(w) for w in writable):
            return f"{out} is not under its writable folders {', '.join(self.writable)}"
        # A folder under the guest's own /tmp is seen only where it was mounted: the
        # writable folders, and the one holding the agent's working directory (the
        # harness's checkout, a clone in /tmp included), mounted at boot.
        seen = [*writable, *filter(None, [uml.hidden_root(Path(self.harness).parent)])]
        if uml.hidden_root(cwd) and not any(cwd.is_relative_to(w) for w in seen):
            return f"the working directory {cwd} is hidden inside it"
        if python != self.python or _harness_folder() != self.harness:
            return f"it runs {self.python} with {self.harness}"
        if _code_stamp() != self.code_stamp:  # the agent holds the code of its boot
            return "the harness's code changed since it booted"
        if not is_running(self.kernel_pid, self.kernel_start):
            return "its kernel is gone"
        return None


class SharedGuest:
    def __init__(self, info: GuestInfo, guest: uml.Guest | None = None,
                 journal: Journal | None = None) -> None:
        self.info = info
        self.spool = Path(info.spool)
        self._guest = guest      # only in the process that booted it
        self._journal = journal

    @classmethod
    def boot(cls, modules: Sequence[str], writable: Sequence[Path], start_ovs: bool = True,
             mem_mb: int = 1024) -> SharedGuest:
        """Boot a guest whose agent has imported the harness, past the Open vSwitch
        uptime wait if it runs OVS.  ``close()`` it."""
        stamp = _code_stamp()
        journal = Journal(new_run_id()).open()
        try:
            spool = Path(tempfile.gettempdir()) / f"redlab-{journal.run_id}-spool"
            journal.record("path", path=str(spool))
            spool.mkdir(mode=0o700)
            spec = uml.GuestSpec(
                argv=[sys.executable, "-m", "harness.lab.guest_agent", str(spool)],
                cwd=Path(_harness_folder()).parent, env=GUEST_ENV,
                writable=[spool, *writable], modules=modules, start_ovs=start_ovs,
                mem_mb=mem_mb)
            guest = uml.start_guest(spec, journal=journal, stream=False)
            info = GuestInfo(str(spool), str(guest.ctl), guest.proc.pid,
                             process_start_time(guest.proc.pid), list(modules), start_ovs,
                             [str(w) for w in writable], sys.executable, _harness_folder(),
                             stamp)
            shared = cls(info, guest, journal)
            uptime = shared.ping(timeouts.UML_AGENT_READY)
            if start_ovs and uptime < SETTLED_UPTIME_S:
                time.sleep(SETTLED_UPTIME_S - uptime)  # once, instead of once per run
            _write_json(spool / INFO, asdict(info))
            log.info("shared User-mode Linux guest %s ready in %.1f s (modules: %s)",
                     guest.umid, time.monotonic() - guest.spawned,
                     ", ".join(modules))
            return shared
        except BaseException:
            journal.rollback()
            raise

    @classmethod
    def boot_for_any_lab(cls, writable: Sequence[Path]) -> SharedGuest:
        """A guest with every module a lab can need that this User-mode Linux has (a
        run needing one it lacks boots its own), Open vSwitch running if it can: the
        test session's and a Dask worker's guest."""
        from harness.inject.filter import TC_MODULES
        from harness.lab import capabilities, guest_modules

        wanted = (*guest_modules(capabilities.FEATURES), *TC_MODULES)
        absent = set(uml.missing_modules(wanted))
        return cls.boot([m for m in wanted if m not in absent], writable,
                        start_ovs="openvswitch" not in absent)

    @classmethod
    def attach(cls, spool: Path) -> SharedGuest | None:
        """The shared guest serving ``spool``, or None if there is none (yet)."""
        try:
            return cls(GuestInfo(**json.loads((spool / INFO).read_text())))
        except (OSError, ValueError, TypeError):
            return None

    def ping(self, timeout_s: float) -> float:
        """Wait until the agent answers; returns the guest kernel's uptime."""
        answer = self._ask({"ping": True}, None, timeout_s)
        return float(answer["uptime_s"])

    def submit(self, argv: Sequence[str], cwd: Path, env: Mapping[str, str],
               deadline_s: float, journal: Journal, stream: bool = True) -> uml.GuestResult:
        """Run ``argv`` (``python -m harness ...``) in the guest as a private guest
        would, output echoed as it comes when ``stream``; LabError past ``deadline_s``."""
        rid = _request_id()
        lease = self.spool / f"lease-{rid}"
        entry = journal.record("path", path=str(lease))
        lease.touch()
        outputs = [uml.OutputFile(self.spool / f"out-{rid}.stdout", sys.stdout if stream else None),
                   uml.OutputFile(self.spool / f"out-{rid}.stderr", sys.stderr if stream else None)]
        started = time.monotonic()
        try:
            answer = self._ask({"argv": list(argv), "cwd": str(cwd),
                                "env": uml.guest_env(env), "deadline_s": deadline_s},
                               outputs, deadline_s + GRACE_S * 3, rid)
        finally:
            undo(entry)  # a run still going is cancelled: the agent sees its lease gone
            for out in outputs:
                with suppress(OSError):
                    out.pump()
                    out.path.unlink()
        if answer["ended"] == "deadline":
            raise LabError(f"the command in the shared UML guest did not finish within"
                           f" {deadline_s:g} s: {shlex.join(argv)}",
                           f"raise --deadline, or see where it stopped:\n"
                           f"{outputs[1].text()[-3000:]}")
        if answer["ended"] != "exit":
            raise LabError(f"the shared UML guest did not run {shlex.join(argv)}:"
                           f" {answer.get('error') or answer['ended']}",
                           f"unset {ENV_VAR} to boot a guest for this run")
        if answer["leftover"]:
            log.warning("the run left processes running in the shared guest, which were"
                        " killed: %s", ", ".join(answer["leftover"]))
        return uml.GuestResult(returncode=answer["returncode"], stdout=outputs[0].text(),
                               stderr=outputs[1].text(), boot_s=0.0, run_s=answer["run_s"],
                               total_s=time.monotonic() - started)

    def close(self) -> None:
        """Stop the agent and the guest; remove the spool.  Only where it was booted."""
        if self._guest is None or self._journal is None:
            raise RuntimeError("only the process that booted a shared guest closes it")
        with suppress(OSError):  # no new submitter finds it; the agent stops
            (self.spool / INFO).unlink(missing_ok=True)
            (self.spool / "stop").touch()
        deadline = time.monotonic() + timeouts.UML_HALT
        with suppress(LabError):
            while self._guest.poll(float("inf")) is None and time.monotonic() < deadline:
                time.sleep(POLL_S)
        self._guest.end()
        self._journal.rollback()
        self._guest = self._journal = None

    def _ask(self, body: dict[str, object], outputs: list[uml.OutputFile] | None,
             timeout_s: float, rid: str | None = None) -> dict[str, object]:
        """Write a request and wait for its answer; LabError if the guest ends first or
        ``timeout_s`` passes after the agent took the request (a ping: after now, as it
        waits for nothing but the agent)."""
        rid = rid or _request_id()
        request, answer = self.spool / f"req-{rid}.json", self.spool / f"res-{rid}.json"
        _write_json(request, body)
        taken: float | None = time.monotonic() if "ping" in body else None
        try:
            while not answer.exists():
                for out in outputs or ():
                    out.pump()
                self._check_alive()
                if taken is None and not request.exists():
                    taken = time.monotonic()
                if taken is not None and time.monotonic() - taken > timeout_s:
                    raise LabError(f"the shared UML guest's agent did not answer within"
                                   f" {timeout_s:g} s", f"read its console:\n{self._tails()}")
                time.sleep(POLL_S)
            return json.loads(answer.read_text())
        finally:
            for path in (request, answer):
                path.unlink(missing_ok=True)

    def _check_alive(self) -> None:
        if self._guest is not None:  # its owner also sees the kernel fail to boot
            status = self._guest.poll(float("inf"))
        else:
            status = None if is_running(self.info.kernel_pid, self.info.kernel_start) else "?"
        if status is not None or (Path(self.info.ctl) / "status").exists():
            raise LabError("the shared UML guest ended", f"read its console:\n{self._tails()}")

    def _tails(self) -> str:
        return uml.tails(Path(self.info.ctl))


def serving(modules: Sequence[str], start_ovs: bool, out: Path, cwd: Path,
            python: str) -> SharedGuest | None:
    """The shared guest named by REDLAB_GUEST if it can run such a command, else None
    (the caller boots a guest of its own)."""
    spool = os.environ.get(ENV_VAR)
    if not spool:
        return None
    shared = SharedGuest.attach(Path(spool))
    why = ("it is not running" if shared is None
           else shared.info.covers(modules, start_ovs, out, cwd, python))
    if why:
        log.info("not using the shared guest %s (%s): booting one", spool, why)
        return None
    return shared


def _harness_folder() -> str:
    return str(Path(__file__).resolve().parents[1])


def _code_stamp() -> int:
    return max(p.stat().st_mtime_ns for p in Path(_harness_folder()).rglob("*.py"))


def _request_id() -> str:
    return f"{time.time_ns()}-{secrets.token_hex(3)}"  # sorts in submission order


def _write_json(path: Path, body: object) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(body))
    os.replace(tmp, path)
