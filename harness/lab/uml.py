"""Run one command inside a freshly booted User-mode Linux kernel.

UML gives the lab a real Linux 6.1 kernel with bonding, the OVS datapath, netem and team
on machines whose own kernel lacks them, without a VM.  The guest sees the host's ``/``
read-only through hostfs, so every installed program is there; writes go to tmpfs,
except the folders the caller marks writable and a per-call control folder through which
``uml_init.sh`` reports (see that file for the protocol).  The exit code of ``linux.uml``
says nothing about the command, hence the ``status`` file.
"""

from __future__ import annotations

import codecs
import functools
import itertools
import os
import re
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from harness import timeouts
from harness.errors import ConfigError, LabError
from harness.journal import Journal, group_members, undo
from harness.lab.uml_cpu import pinned

UML_BINARY = "linux.uml"
UML_MODULES = Path("/usr/lib/uml/modules")
INIT_SCRIPT = Path(__file__).with_name("uml_init.sh")
# Built by scripts/bootstrap from native/uml_xstate.c: UML 6.1 on hosts with a large XSAVE
# area (Intel AMX) panics at its first context switch without it (see the source).
XSTATE_SHIM = Path(sys.prefix) / "lib" / "redlab" / "uml_xstate.so"
XSTATE_PANIC = "ptrace set fp regs failed"
# Mounted as tmpfs by uml_init.sh: host content below them is hidden inside the guest.
GUEST_TMPFS = ("/run", "/tmp", "/var/tmp", "/var/lib", "/var/log", "/etc/openvswitch")
GUEST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
POLL_S = 0.02
TAIL_LINES = 15

_umid_counter = itertools.count(1)
_MODULE_NAME = re.compile(r"[A-Za-z0-9_-]+")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class GuestSpec:
    argv: Sequence[str]                  # command run inside the guest
    cwd: Path                            # working directory inside (host paths are valid)
    env: Mapping[str, str] = field(default_factory=dict)  # on top of PATH, HOME, REDLAB_LAB
    writable: Sequence[Path] = ()        # host folders mounted read-write at the same path
    modules: Sequence[str] = ()          # kernel modules to load before the command
    start_ovs: bool = False              # load openvswitch, start ovsdb-server + vswitchd
    mem_mb: int = 1024
    # Host paths under a guest tmpfs (e.g. a venv in /tmp) to show read-only.  The
    # command's own executable, cwd and PYTHONPATH entries are added automatically.
    readonly: Sequence[Path] = ()


@dataclass(frozen=True)
class GuestResult:
    returncode: int
    stdout: str
    stderr: str
    boot_s: float   # linux.uml spawned -> init about to run the command
    run_s: float    # the command's own duration
    total_s: float


def uml_available() -> bool:
    """Whether ``linux.uml`` is installed together with its module tree."""
    return module_tree() is not None


@functools.cache
def module_tree() -> Path | None:
    binary = shutil.which(UML_BINARY)
    if binary is None:
        return None
    done = subprocess.run([binary, "--version"], capture_output=True, text=True,
                          timeout=timeouts.PROCESS_EXIT, check=False)
    tree = UML_MODULES / done.stdout.strip()
    return tree if (tree / "modules.dep").is_file() else None


def missing_modules(names: Iterable[str]) -> list[str]:
    """The modules among ``names`` that the UML kernel can neither load nor has built in."""
    tree = module_tree()
    known: set[str] = set()
    if tree is not None:
        for index in ("modules.dep", "modules.builtin"):
            for line in (tree / index).read_text().splitlines():
                path = line.split(":", 1)[0].strip()
                known.add(Path(path).name.split(".ko", 1)[0].replace("-", "_"))
    return [name for name in names if name.replace("-", "_") not in known]


def run_in_uml(spec: GuestSpec, *, deadline_s: float, journal: Journal,
               stream: bool = True) -> GuestResult:
    """Boot a UML kernel, run ``spec.argv`` in it, and return its status and output.

    The kernel, its helper processes and the control folder are gone when this returns
    or raises, whatever the exit path.
    """
    guest = start_guest(spec, journal=journal, stream=stream)
    try:
        status = guest.wait_for_status(deadline_s)
        _wait_for_halt(guest.proc)
        for out in guest.outputs:
            out.pump()
        return _result(status, guest.ctl, guest.outputs, guest.spawned_wall,
                       time.monotonic() - guest.spawned)
    finally:
        guest.end()


def start_guest(spec: GuestSpec, *, journal: Journal, stream: bool = True) -> Guest:
    """Boot a UML kernel that runs ``spec.argv``, and return at once: the caller waits
    for it or talks to it, and must ``end()`` it.  A failure before this returns ends it."""
    _check(spec)
    umid = f"redlab-{journal.run_id}-{next(_umid_counter)}"
    ctl = Path(tempfile.gettempdir()) / f"{umid}-{secrets.token_hex(3)}"
    _check_kernel_word(ctl, "the temporary folder")
    path_entry = journal.record("path", path=str(ctl))
    proc: subprocess.Popen[bytes] | None = None
    try:
        ctl.mkdir(mode=0o700)
        (ctl / "settings.sh").write_text(_settings(spec, ctl))
        outputs = [OutputFile(ctl / "stdout", sys.stdout if stream else None),
                   OutputFile(ctl / "stderr", sys.stderr if stream else None)]
        with open(ctl / "console.log", "wb") as console:
            # On one host CPU: a guest's system calls cost 7-10x less (see uml_cpu).
            cmdline = pinned(_kernel_cmdline(spec, ctl, umid))
            spawned_wall, spawned = time.time(), time.monotonic()
            # Own session: Ctrl-C at the terminal reaches us, not the kernel, and one
            # killpg ends the kernel together with the helper processes it forks.
            proc = subprocess.Popen(cmdline, stdin=subprocess.DEVNULL, stdout=console,
                                    stderr=subprocess.STDOUT, start_new_session=True,
                                    env=_kernel_env())
        journal.record_process(proc.pid, f"{UML_BINARY} umid={umid}", group=True)
        return Guest(proc, ctl, umid, outputs, spawned_wall, spawned,
                     shlex.join(spec.argv), path_entry)
    except BaseException:
        if proc is not None:
            _end_group(proc)
        undo(path_entry)
        raise


@dataclass
class Guest:
    """A booted UML kernel whose command still runs: ``run_in_uml`` waits for the
    command; a shared guest (harness/lab/shared_guest.py) talks to it meanwhile."""
    proc: subprocess.Popen[bytes]
    ctl: Path               # the control folder (see uml_init.sh)
    umid: str
    outputs: list[OutputFile]  # the command's stdout and stderr
    spawned_wall: float
    spawned: float          # monotonic
    command: str
    path_entry: dict[str, Any]

    def poll(self, deadline_s: float) -> str | None:
        """The status line once the command has finished, else None.  LabError if the
        kernel died, did not reach init in time, or ``deadline_s`` (from boot) passed."""
        for out in self.outputs:
            out.pump()
        status = self.ctl / "status"
        if status.exists():
            return status.read_text().strip()
        elapsed = time.monotonic() - self.spawned
        if _leader_exited(self.proc):
            console = (self.ctl / "console.log").read_text(errors="replace")
            if XSTATE_PANIC in console:
                raise LabError(f"{UML_BINARY} cannot save this CPU's FPU state (its XSAVE"
                               " area is larger than UML 6.1 knows) and panicked",
                               f"run scripts/bootstrap setup: it builds {XSTATE_SHIM},"
                               " which the harness preloads into the UML kernel")
            raise LabError(f"{UML_BINARY} exited before the command finished",
                           f"read the guest console:\n{tails(self.ctl)}")
        if elapsed > timeouts.UML_BOOT and not (self.ctl / "booted").exists():
            raise LabError(f"the UML kernel did not reach init within {timeouts.UML_BOOT:g} s",
                           f"check that `{UML_BINARY} --version` runs, then read the"
                           f" guest console:\n{tails(self.ctl)}")
        if elapsed > deadline_s:
            raise LabError(f"the command in the UML guest did not finish within"
                           f" {deadline_s:g} s: {self.command}",
                           f"raise --deadline, or see where it stopped:\n{tails(self.ctl)}")
        return None

    def wait_for_status(self, deadline_s: float) -> str:
        while (status := self.poll(deadline_s)) is None:
            time.sleep(POLL_S)
        return status

    def end(self) -> None:
        """Kill the kernel with every host process it forked; remove the control folder."""
        _end_group(self.proc)
        undo(self.path_entry)


def _result(status: str, ctl: Path, outputs: list[OutputFile], spawned_wall: float,
            total_s: float) -> GuestResult:
    words = status.split()
    if words[:1] == ["fail"]:
        what, detail = (words[1:] + ["?", ""])[:2]
        if what == "module":
            raise LabError(f"kernel module {detail} did not load inside the UML guest",
                           f"the module is in the UML tree but modprobe failed:\n{tails(ctl)}")
        raise LabError(f"the UML guest could not prepare the command ({' '.join(words[1:])})",
                       f"read the guest console:\n{tails(ctl)}")
    started = float((ctl / "started").read_text())
    return GuestResult(returncode=int(words[1]), stdout=outputs[0].text(),
                       stderr=outputs[1].text(), boot_s=started - spawned_wall,
                       run_s=float(words[2]) - started, total_s=total_s)


def _wait_for_halt(proc: subprocess.Popen[bytes]) -> None:
    """The guest halts itself after writing its status; give it the chance to do so."""
    deadline = time.monotonic() + timeouts.UML_HALT
    while not _leader_exited(proc) and time.monotonic() < deadline:
        time.sleep(POLL_S)


def _leader_exited(proc: subprocess.Popen[bytes]) -> bool:
    # WNOWAIT leaves the zombie in place: while it exists, its pid (the group id) cannot
    # be reused, so the killpg in _end_group cannot hit a stranger's group.
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _end_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.returncode is None:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        with suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeouts.PROCESS_EXIT)
    deadline = time.monotonic() + timeouts.PROCESS_EXIT
    while group_members(proc.pid) and time.monotonic() < deadline:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        time.sleep(POLL_S)


class OutputFile:
    """A file the guest writes through hostfs: kept whole, new bytes echoed as they come."""

    def __init__(self, path: Path, echo: TextIO | None) -> None:
        path.touch()
        self.path = path
        self.echo = echo
        self.data = bytearray()
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def pump(self) -> None:
        with open(self.path, "rb") as fh:
            fh.seek(len(self.data))
            new = fh.read()
        if new:
            self.data += new
            if self.echo is not None:
                self.echo.write(self.decoder.decode(new))
                self.echo.flush()

    def text(self) -> str:
        return self.data.decode(errors="replace")


def tails(ctl: Path) -> str:
    """The last lines of a guest's console and of its command's stderr, for an error."""
    parts = []
    for name in ("console.log", "stderr"):
        with suppress(OSError):
            lines = (ctl / name).read_text(errors="replace").splitlines()[-TAIL_LINES:]
            if lines:
                parts.append(f"--- last lines of {name} ---\n" + "\n".join(lines))
    return "\n".join(parts) or "(the guest wrote nothing)"


def _check(spec: GuestSpec) -> None:
    if not uml_available():
        raise ConfigError(f"User-mode Linux is not installed ({UML_BINARY} or {UML_MODULES})",
                          "apt-get install user-mode-linux")
    if not spec.argv or "=" in spec.argv[0]:
        raise ConfigError(f"cannot run {list(spec.argv)!r} in the UML guest",
                          "give a command whose first word is a program, without '='")
    for name in spec.env:
        if not _ENV_NAME.fullmatch(name):
            raise ConfigError(f"{name!r} is not a valid environment variable name",
                              "use letters, digits and underscores")
    if not spec.cwd.is_absolute() or not spec.cwd.is_dir():
        raise ConfigError(f"guest working directory {spec.cwd} is not an existing absolute"
                          " folder on the host", "host folders are visible in the guest")
    for folder in [*spec.writable, *spec.readonly]:
        if not folder.is_absolute() or not folder.is_dir() or set(str(folder)) & {",", "\n"}:
            raise ConfigError(f"cannot share {folder} with the UML guest",
                              "give an existing absolute folder without commas or newlines")
    bad = [name for name in spec.modules if not _MODULE_NAME.fullmatch(name)]
    absent = bad or missing_modules([*spec.modules, *(["openvswitch"] * spec.start_ovs)])
    if absent:
        raise ConfigError(f"kernel module(s) {', '.join(absent)} not in the UML module tree"
                          f" {module_tree()}", "check the name (`find"
                          f" {UML_MODULES} -name '*.ko'` lists them) or upgrade"
                          " user-mode-linux")
    _check_kernel_word(INIT_SCRIPT, "the harness installation")


def _check_kernel_word(path: Path, what: str) -> None:
    # The kernel command line is split at spaces; hostfs mount options at commas.
    if set(str(path)) & {" ", ",", "\n", "\t"}:
        raise ConfigError(f"{what} path {path} contains a space or comma, which the UML"
                          " kernel command line cannot carry",
                          "set TMPDIR / install the harness under a path without them")


def _kernel_cmdline(spec: GuestSpec, ctl: Path, umid: str) -> list[str]:
    binary = shutil.which(UML_BINARY) or UML_BINARY
    # init=/bin/sh with the script as its argument: package data may lose its exec bit.
    return [binary, f"mem={spec.mem_mb}M", "root=/dev/root", "rootfstype=hostfs",
            "rootflags=/", "ro", "con=null", "con0=null,fd:1", "ssl=null", f"umid={umid}",
            f"uml_dir={ctl / 'uml'}", "quiet", f"redlab_ctl={ctl}", "init=/bin/sh",
            "--", str(INIT_SCRIPT)]


def _kernel_env() -> dict[str, str]:
    """linux.uml's own environment: the host's, with the XSAVE shim preloaded if built.
    (The guest's programs never see it: init gets its environment from the kernel.)"""
    env = dict(os.environ)
    if XSTATE_SHIM.is_file():
        env["LD_PRELOAD"] = " ".join(filter(None, [str(XSTATE_SHIM), env.get("LD_PRELOAD")]))
    return env


def hidden_root(path: Path) -> Path | None:
    """The top folder to re-expose if ``path`` lies under a guest tmpfs, else None."""
    for root in GUEST_TMPFS:
        parts = path.relative_to(root).parts if path.is_relative_to(root) else ()
        if parts:
            return Path(root, parts[0])
    return None


def _mounts(spec: GuestSpec, ctl: Path) -> list[tuple[str, Path]]:
    rw = {ctl, *spec.writable}
    wanted = [spec.cwd, *spec.readonly, *(Path(p) for p in
                                          spec.env.get("PYTHONPATH", "").split(":") if p)]
    if spec.argv[0].startswith("/"):
        wanted.append(Path(spec.argv[0]))
    ro = {root for p in wanted if (root := hidden_root(p)) is not None} - rw
    ro |= {p for p in spec.readonly if p not in rw}
    # Parents first, so a child mount is not hidden under its parent's.
    return sorted([("rw", p) for p in rw] + [("ro", p) for p in ro],
                  key=lambda m: (len(m[1].parts), str(m[1])))


def guest_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The whole environment of a command in the guest: ``extra`` on top of PATH and HOME."""
    return {"PATH": GUEST_PATH, "HOME": "/root", **extra,
            "REDLAB_LAB": "uml", "PYTHONDONTWRITEBYTECODE": "1"}


def _settings(spec: GuestSpec, ctl: Path) -> str:
    env = guest_env(spec.env)
    command = ["env", "-i", "--", *(f"{k}={v}" for k, v in env.items()), *spec.argv]
    mounts = "\n".join(f"{mode} {path}" for mode, path in _mounts(spec, ctl))
    modules = " ".join(spec.modules)
    return "\n".join([
        "# written by harness/lab/uml.py, read by uml_init.sh",
        f"REDLAB_MOUNTS={shlex.quote(mounts)}",
        f"REDLAB_MODULES={shlex.quote(modules)}",
        f"REDLAB_START_OVS={int(spec.start_ovs)}",
        f"REDLAB_CWD={shlex.quote(str(spec.cwd))}",
        f"redlab_command() {{ {shlex.join(command)}; }}",
        "",
    ])
