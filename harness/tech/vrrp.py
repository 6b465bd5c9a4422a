"""keepalived VRRP: options checked, keepalived.conf rendered and tested, one daemon per router.

Options carry keepalived's own names (keepalived.conf(5), ``vrrp_instance``): ``version``,
``advert_int``, ``priority``, ``preempt``/``nopreempt``, ``preempt_delay``,
``track_interface``, ``track_script``, ``use_vmac``, ``garp_master_delay``,
``garp_master_repeat``, ``garp_master_refresh``, ``unicast_peer``, ``virtual_router_id``,
``virtual_ipaddress``, ``interface``, ``state``.  :class:`VrrpOptions` checks every value
and every combination keepalived documents before anything exists, so a mistake is a
:class:`ConfigError` naming the option, not a warning in a daemon's log; the rendered
file is then put through keepalived's own check (``keepalived -t``) in the router's
namespace, where the interfaces it names exist.

Each router runs its own keepalived in the foreground (:class:`Keepalived`), started in
its namespace by the caller (``Lab.popen``), VRRP subsystem only, with its own
configuration, pid files, console log and notify FIFO in one folder; keepalived 2.2 has no
configuration keyword for pid files, so they are given on the command line, and two or
three daemons share one machine without meeting.

State changes on the clock: keepalived writes a line such as ``INSTANCE "VI_1" MASTER 200``
to the FIFO (``vrrp_notify_fifo``) as it changes state, after it has added or removed the
virtual addresses.  A harness thread waits on the FIFO and stamps each read with
``time.time_ns()``, the clock of the traffic samples.  The stamp is when the harness read
the line, so it is late by the pipe wake-up (tens of microseconds on an idle machine,
up to a scheduler slice or a GIL hand-over, a few ms, under load); lines that arrive in
one read share one stamp.  A notify script would cost a fork and exec per change (ms);
keepalived never blocks on the FIFO (it opens it non-blocking), so a stalled reader
loses lines rather than delaying VRRP.  Every line is also kept with its stamp in
``notify.log`` beside the configuration.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import re
import selectors
import shutil
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harness import timeouts
from harness.errors import ConfigError, LabError
from harness.journal import Journal, is_alive, process_start_time
from harness.naming import IFNAMSIZ

log = logging.getLogger(__name__)

KEEPALIVED = "keepalived"
INSTANCE = "VI_1"
# keepalived.conf(5) ranges: VRRPv3 carries the advert interval in centiseconds in 12 bits.
V3_ADVERT_MIN, V3_ADVERT_MAX = 0.01, 40.95
V2_ADVERT_MAX = 255

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


class TrackScript(BaseModel):
    """A ``vrrp_script``: a command run every ``interval`` s; ``weight`` 0 means FAULT after
    ``fall`` failures, else the priority moves by ``weight``."""

    model_config = ConfigDict(extra="forbid")

    script: str = Field(min_length=1)
    interval: int = Field(1, ge=1, le=4294)   # whole seconds in keepalived 2.2
    weight: int = Field(0, ge=-253, le=253)
    fall: int = Field(1, ge=1)
    rise: int = Field(1, ge=1)
    timeout: int | None = Field(None, ge=1)

    @field_validator("script")
    @classmethod
    def _program_exists(cls, value: str) -> str:
        program = value.split()[0]
        if shutil.which(program) is None:
            raise ValueError(f"program {program!r} is not found (an absolute path, or on PATH)")
        return value


class VirtualAddress(BaseModel):
    """One ``virtual_ipaddress`` line: ``192.0.2.254/24``, or ``198.51.100.254/24 dev eth1``
    for an address the instance moves on another interface (a gateway's upstream side).

    keepalived tracks the interface of an address given a ``dev`` (the instance goes FAULT
    when it loses carrier, seen with keepalived 2.2.7) unless the line says ``no_track``
    (keepalived.conf(5): the instance stays MASTER if the address goes).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: IpInterface
    dev: str | None = Field(None, min_length=1, max_length=IFNAMSIZ)
    no_track: bool = False

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        """``ADDRESS[/PREFIX] [dev NAME] [no_track]``, as keepalived.conf writes it."""
        if not isinstance(value, str | ipaddress.IPv4Interface | ipaddress.IPv6Interface):
            return value
        words = str(value).split()
        if not words:
            return {"address": ""}
        parsed: dict[str, Any] = {"address": words[0]}
        rest = words[1:]
        while rest:
            word = rest.pop(0)
            if word == "dev" and rest:
                parsed["dev"] = rest.pop(0)
            elif word == "no_track":
                parsed["no_track"] = True
            else:
                raise ValueError(f"{word!r} in {value!r}: RedLab takes ADDRESS/PREFIX"
                                 " [dev NAME] [no_track]")
        return parsed

    @property
    def ip(self) -> IpAddress:
        return self.address.ip

    @property
    def version(self) -> int:
        return self.address.version

    @property
    def text(self) -> str:
        """As keepalived.conf writes it."""
        return " ".join([self.address.with_prefixlen, *(["dev", self.dev] if self.dev else []),
                         *(["no_track"] if self.no_track else [])])


class VrrpOptions(BaseModel):
    """One ``vrrp_instance`` as keepalived names its options; defaults are keepalived's.

    Building one checks it: the constructor raises ConfigError, never anything else.
    """

    model_config = ConfigDict(extra="forbid")

    interface: str = Field(min_length=1, max_length=IFNAMSIZ)
    virtual_router_id: int = Field(ge=1, le=255)
    virtual_ipaddress: list[VirtualAddress] = Field(min_length=1)
    state: Literal["MASTER", "BACKUP"] = "BACKUP"
    priority: int = Field(100, ge=1, le=255)
    version: Literal[2, 3] = 2
    advert_int: float = 1.0
    preempt: bool | None = None        # None: keepalived's default, preempting
    nopreempt: bool | None = None      # keepalived's keyword; the inverse of preempt
    preempt_delay: float = Field(0.0, ge=0, le=1000)
    track_interface: list[str] = Field(default_factory=list)
    track_script: list[TrackScript] = Field(default_factory=list)
    use_vmac: bool = False
    garp_master_delay: int = Field(5, ge=0)
    garp_master_repeat: int = Field(5, ge=1)
    garp_master_refresh: int = Field(0, ge=0)
    unicast_peer: list[IpAddress] = Field(default_factory=list)  # empty: multicast

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "options"
            raise ConfigError(f"VRRP option {where}: {first['msg']}"
                              f" (given {first.get('input')!r})",
                              "see keepalived.conf(5), vrrp_instance") from None

    @field_validator("track_script", mode="before")
    @classmethod
    def _one_script(cls, value: Any) -> Any:
        """A single script (a command line or a mapping) is a list of one."""
        if isinstance(value, str):
            return [{"script": value}]
        return [value] if isinstance(value, dict) else value

    @field_validator("track_interface", "unicast_peer", "virtual_ipaddress", mode="before")
    @classmethod
    def _one_item(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _together(self) -> VrrpOptions:
        if self.preempt is not None and self.nopreempt is not None \
                and self.preempt == self.nopreempt:
            raise ConfigError(f"preempt={self.preempt} and nopreempt={self.nopreempt}"
                              " contradict each other", "give only one of them")
        nopreempt = bool(self.nopreempt) if self.nopreempt is not None \
            else self.preempt is False
        self.nopreempt, self.preempt = nopreempt, not nopreempt
        _check_advert_int(self.version, self.advert_int)
        families = {a.version for a in self.virtual_ipaddress}
        if len(families) > 1:
            raise ConfigError("virtual_ipaddress mixes IPv4 and IPv6",
                              "one vrrp_instance carries one address family: use two")
        family = families.pop()
        if family == 6 and self.version == 2:
            raise ConfigError("VRRP version 2 carries IPv4 only (RFC 3768)",
                              "use version 3 for IPv6 virtual addresses")
        _unique("virtual_ipaddress", [str(a.ip) for a in self.virtual_ipaddress])
        _unique("unicast_peer", [str(p) for p in self.unicast_peer])
        wrong = [str(p) for p in self.unicast_peer if p.version != family]
        if wrong:
            raise ConfigError(f"unicast_peer {', '.join(wrong)} is not of the virtual"
                              " addresses' family", "peers and virtual addresses: one family")
        if self.nopreempt and self.state == "MASTER":
            raise ConfigError("nopreempt needs initial state BACKUP (keepalived.conf(5))",
                              "set state BACKUP, or drop nopreempt")
        if self.nopreempt and self.priority == 255:
            raise ConfigError("nopreempt is incompatible with priority 255 (the address"
                              " owner always takes over)", "lower the priority below 255")
        if self.preempt_delay and self.state == "MASTER":
            raise ConfigError("preempt_delay needs initial state BACKUP (keepalived"
                              " clears it otherwise)", "set state BACKUP")
        if self.preempt_delay and self.nopreempt:
            raise ConfigError("preempt_delay with nopreempt: there is no preemption to"
                              " delay", "drop one of them")
        for name in self.track_interface:
            if not 0 < len(name) <= IFNAMSIZ:
                raise ConfigError(f"track_interface {name!r} is not an interface name",
                                  f"1 to {IFNAMSIZ} characters")
            if name == self.interface:
                raise ConfigError(f"track_interface {name} is the instance's own interface,"
                                  " which keepalived always tracks (and ignores here)",
                                  "track other interfaces, e.g. the uplink")
        _unique("track_interface", self.track_interface)
        if self.priority == 255 and any(s.weight for s in self.track_script):
            raise ConfigError("a track_script weight cannot move priority 255 (the address"
                              " owner's priority is fixed)", "use weight 0, or priority < 255")
        return self

    @property
    def advert_text(self) -> str:
        """advert_int as written in keepalived.conf."""
        if self.version == 2:
            return str(int(self.advert_int))
        return f"{self.advert_int:.2f}".rstrip("0").rstrip(".")

    @property
    def virtual_mac(self) -> str | None:
        """The MAC the master answers with: RFC 5798's 00:00:5e:00:01:VRID with use_vmac
        (IPv6: 00:00:5e:00:02:VRID), else None (the router's own MAC, kept fresh by GARP)."""
        if not self.use_vmac:
            return None
        kind = 1 if self.virtual_ipaddress[0].version == 4 else 2
        return f"00:00:5e:00:{kind:02x}:{self.virtual_router_id:02x}"


def router_sysctls(o: VrrpOptions) -> dict[str, str]:
    """Sysctls the router's namespace needs before keepalived starts.

    With use_vmac the virtual IP sits on a macvlan over ``interface``, and keepalived tunes
    the macvlan's ARP settings but not its parent's, whose Linux defaults leak the
    router's own MAC for the virtual IP: arp_ignore=0 answers ARP requests for it, and
    arp_announce=0 asks for a neighbour (the master replying from the virtual IP) with
    the virtual IP as sender, so the client's entry flips to the parent's MAC.  So the
    parent answers only for its own addresses (arp_ignore=1) and asks with its own
    (arp_announce=2), and the client keeps 00:00:5e:00:01:<VRID>.
    """
    if not o.use_vmac:
        return {}
    return {f"net.ipv4.conf.{o.interface}.arp_ignore": "1",
            f"net.ipv4.conf.{o.interface}.arp_announce": "2"}


def vrrp_options(options: dict[str, Any]) -> VrrpOptions:
    """Scenario parameters -> checked options (ConfigError names the bad one)."""
    return VrrpOptions(**options)


def _check_advert_int(version: int, value: float) -> None:
    if version == 2:
        if value != int(value) or not 1 <= value <= V2_ADVERT_MAX:
            raise ConfigError(f"advert_int {value:g} s with VRRP version 2: version 2 carries"
                              f" whole seconds, 1 to {V2_ADVERT_MAX} (RFC 3768)",
                              "use a whole number of seconds, or version 3 for down to 0.01 s")
        return
    centis = round(value * 100)
    if abs(value * 100 - centis) > 1e-6 or not V3_ADVERT_MIN <= value <= V3_ADVERT_MAX:
        raise ConfigError(f"advert_int {value:g} s with VRRP version 3: version 3 carries"
                          f" centiseconds, {V3_ADVERT_MIN} to {V3_ADVERT_MAX} s (RFC 5798)",
                          "use a multiple of 0.01 s in that range")


def _unique(option: str, values: list[str]) -> None:
    twice = sorted({v for v in values if values.count(v) > 1})
    if twice:
        raise ConfigError(f"{option} lists {', '.join(twice)} more than once",
                          "list each once")


# -- the protocol's own prediction ----------------------------------------------------------
def skew_time(priority: int, advert_int: float, version: int) -> float:
    """Skew_Time in seconds as keepalived computes it (µs integers, vrrp.h VRRP_TIMER_SKEW):
    v3 (RFC 5798) scales with the master's advert interval, v2 (RFC 3768) does not."""
    if version == 3:
        return ((256 - priority) * round(advert_int * 100) * 625 // 16) / 1e6
    return ((256 - priority) * 1_000_000 // 256) / 1e6


def master_down_interval(priority: int, advert_int: float, version: int) -> float:
    """How long a backup of ``priority`` waits after the master's last advert: 3 x
    advert_int + skew.  A master that dies sent its last advert up to one advert_int
    before, so the takeover comes between this minus advert_int and this."""
    return 3 * advert_int + skew_time(priority, advert_int, version)


# -- keepalived.conf -----------------------------------------------------------------------
def render_config(router: str, o: VrrpOptions, notify_fifo: Path,
                  instance: str = INSTANCE) -> str:
    """A complete keepalived.conf for ``router``: one vrrp_instance, notifications to
    ``notify_fifo``.  Pid files are not here: keepalived takes them on its command line."""
    lines = [f"# keepalived.conf for {router}, written by RedLab", "global_defs {",
             f"    router_id {router}",
             f"    vrrp_notify_fifo {notify_fifo}",
             # Scripts run as root (the harness's user; Debian has no keepalived_script
             # user), and keepalived runs root scripts only with script security on: it
             # then refuses a script whose path is writable by anyone but root.
             "    script_user root", "    enable_script_security", "}"]
    for n, s in enumerate(o.track_script, start=1):
        lines += [f"vrrp_script chk_{n} {{", f"    script {_quote(s.script)}",
                  f"    interval {s.interval}", f"    weight {s.weight}",
                  f"    fall {s.fall}", f"    rise {s.rise}"]
        if s.timeout is not None:
            lines.append(f"    timeout {s.timeout}")
        lines.append("}")
    body = [f"state {o.state}", f"interface {o.interface}",
            f"virtual_router_id {o.virtual_router_id}", f"priority {o.priority}",
            f"version {o.version}", f"advert_int {o.advert_text}"]
    if o.nopreempt:
        body.append("nopreempt")
    elif o.preempt_delay:
        body.append(f"preempt_delay {o.preempt_delay:g}")
    if o.use_vmac:
        body.append("use_vmac")
        if o.unicast_peer:
            body.append("vmac_xmit_base")  # keepalived.conf(5): unicast with use_vmac needs it
    body += [f"garp_master_delay {o.garp_master_delay}",
             f"garp_master_repeat {o.garp_master_repeat}",
             f"garp_master_refresh {o.garp_master_refresh}",
             "notify_priority_changes true"]
    body += _block("unicast_peer", [str(p) for p in o.unicast_peer])
    body += _block("track_interface", o.track_interface)
    body += _block("track_script", [f"chk_{n}" for n in range(1, len(o.track_script) + 1)])
    # With use_vmac an address naming no device goes on the vrrp.<VRID> macvlan.
    body += _block("virtual_ipaddress", [a.text for a in o.virtual_ipaddress])
    lines.append(f"vrrp_instance {instance} {{")
    lines += [f"    {line}" for line in body]
    lines.append("}")
    return "\n".join(lines) + "\n"


def _block(name: str, items: list[str]) -> list[str]:
    return [f"{name} {{", *(f"    {i}" for i in items), "}"] if items else []


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def check_config(path: Path, netns: str | None = None) -> None:
    """``keepalived -t``: keepalived's own check, in ``netns`` (a /proc/PID/ns/net path)
    where the interfaces exist; any complaint is a ConfigError quoting it."""
    argv = [KEEPALIVED, "--config-test", f"--use-file={path}"]
    if netns:
        argv = ["nsenter", f"--net={netns}", *argv]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False,
                              timeout=timeouts.PROCESS_EXIT)
    except FileNotFoundError:
        raise LabError(f"{argv[0]} is not installed",
                       "apt-get install keepalived (scripts/bootstrap setup does it)") from None
    said = (done.stderr + done.stdout).strip()
    # keepalived exits 0 only for a clean file: it "fixes" many mistakes with a warning
    # (rounding advert_int, clearing nopreempt) and reports those with a non-zero status.
    if done.returncode != 0:
        raise ConfigError(f"keepalived rejects {path} (exit {done.returncode}):\n{said}",
                          "fix the option it names; keepalived.conf(5)")


def command(files: RunFiles) -> list[str]:
    """keepalived in the foreground, VRRP only, logging to the console (not syslog), with
    pid files of its own so several daemons share a machine."""
    return [KEEPALIVED, "--dont-fork", "--log-console", "--log-detail", "--no-syslog",
            "--vrrp", f"--use-file={files.conf}", f"--pid={files.pid}",
            f"--vrrp_pid={files.vrrp_pid}", f"--checkers_pid={files.checkers_pid}",
            f"--bfd_pid={files.bfd_pid}"]


def keepalived_version() -> str:
    done = subprocess.run([KEEPALIVED, "--version"], capture_output=True, text=True,
                          check=False)
    return (done.stderr or done.stdout).splitlines()[0].strip()


# -- state changes -------------------------------------------------------------------------
NOTIFY_LINE = re.compile(r'^(INSTANCE|GROUP)\s+"([^"]*)"\s+([A-Z_]+)(?:\s+(\d+))?\s*$')


@dataclass(frozen=True)
class StateChange:
    """One notification: ``state`` is MASTER, BACKUP, FAULT, STOP, or keepalived's
    MASTER_PRIORITY/BACKUP_PRIORITY/MASTER_RX_LOWER_PRI; ``t_ns`` when the harness read it."""

    t_ns: int
    router: str
    instance: str
    state: str
    priority: int | None


def parse_notify(line: str, router: str, t_ns: int) -> StateChange | None:
    """``INSTANCE "VI_1" MASTER 100`` -> a StateChange; None for anything else."""
    m = NOTIFY_LINE.match(line.strip())
    if not m:
        return None
    return StateChange(t_ns, router, m[2], m[3], int(m[4]) if m[4] else None)


class NotifyFifo:
    """Reads keepalived's notify FIFO in a thread and stamps each read on the wall clock."""

    def __init__(self, path: Path, router: str, raw_log: Path,
                 sink: Callable[[StateChange], None]) -> None:
        self.path, self.router, self.raw_log, self.sink = path, router, raw_log, sink
        self._fd = -1
        self._wake_r, self._wake_w = -1, -1
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Idempotent: across a keepalived restart the same reader goes on (no line lost)."""
        if self._thread is not None:
            return
        if self.path.exists() and not stat.S_ISFIFO(self.path.stat().st_mode):
            raise LabError(f"{self.path} exists and is not a FIFO", "remove it")
        if not self.path.exists():
            os.mkfifo(self.path, 0o600)
        # Read-write: the harness is a writer too, so the FIFO never reads end-of-file
        # while keepalived restarts, and opening never blocks.
        self._fd = os.open(self.path, os.O_RDWR | os.O_NONBLOCK)
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name=f"vrrp-notify-{self.router}",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pending = b""
        with selectors.DefaultSelector() as sel, open(self.raw_log, "a") as raw:
            sel.register(self._fd, selectors.EVENT_READ)
            sel.register(self._wake_r, selectors.EVENT_READ)
            while True:
                ready = {key.fd for key, _ in sel.select()}
                t_ns = time.time_ns()  # first thing after waking: the stamp
                if self._fd in ready:
                    with contextlib.suppress(BlockingIOError):
                        pending += os.read(self._fd, 65536)
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        text = line.decode(errors="replace")
                        raw.write(f"{t_ns} {text}\n")
                        change = parse_notify(text, self.router, t_ns)
                        if change is None:
                            log.warning("%s: unexpected notify line %r", self.router, text)
                        else:
                            self.sink(change)
                    raw.flush()
                if self._wake_r in ready:
                    return

    def stop(self) -> None:
        if self._thread is not None:
            os.write(self._wake_w, b"x")
            self._thread.join(timeout=timeouts.PROCESS_EXIT)
            self._thread = None
        for fd in (self._fd, self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._fd = self._wake_r = self._wake_w = -1
        self.path.unlink(missing_ok=True)


# -- the daemon ----------------------------------------------------------------------------
@dataclass(frozen=True)
class RunFiles:
    """Everything one keepalived reads and writes, in its own folder."""

    folder: Path
    conf: Path
    pid: Path            # the parent's
    vrrp_pid: Path       # the VRRP child's
    checkers_pid: Path   # never written (--vrrp), but never the system's either
    bfd_pid: Path
    log: Path            # keepalived's console log
    fifo: Path           # vrrp_notify_fifo
    notify_log: Path     # every notify line with its read stamp

    NAMES = {"conf": "keepalived.conf", "pid": "keepalived.pid", "vrrp_pid": "vrrp.pid",
             "checkers_pid": "checkers.pid", "bfd_pid": "bfd.pid", "log": "keepalived.log",
             "fifo": "notify.fifo", "notify_log": "notify.log"}

    @classmethod
    def in_folder(cls, folder: Path) -> RunFiles:
        return cls(folder, **{key: folder / name for key, name in cls.NAMES.items()})


# spawn(argv, stdout=..., stderr=...) starts argv in the router's namespace and journals it,
# e.g. functools.partial(lab.popen, "r1").
Spawn = Callable[..., "subprocess.Popen[bytes]"]


class Keepalived:
    """One router's keepalived: ``with Keepalived(...) as k: k.wait_for_state("MASTER")``."""

    def __init__(self, router: str, options: VrrpOptions, folder: Path, spawn: Spawn,
                 netns: str | None = None, journal: Journal | None = None,
                 on_change: Callable[[StateChange], None] | None = None) -> None:
        self.router, self.options, self.spawn = router, options, spawn
        self.netns, self.journal, self.on_change = netns, journal, on_change
        self.files = RunFiles.in_folder(folder.resolve())
        self.proc: subprocess.Popen[bytes] | None = None
        self._changes: list[StateChange] = []
        self._lock = threading.Lock()
        self._fifo = NotifyFifo(self.files.fifo, router, self.files.notify_log, self._record)

    def _record(self, change: StateChange) -> None:
        with self._lock:
            self._changes.append(change)
        if self.on_change is not None:
            self.on_change(change)

    # -- life cycle -----------------------------------------------------------------------
    def start(self) -> subprocess.Popen[bytes]:
        """Check the configuration, start the daemon, return once its VRRP process runs.
        Also the restart after a crash (``DaemonCrash(..., restart=k.start)``): the notify
        reader and the lists of changes carry on."""
        if self.proc is not None and self.proc.poll() is None:
            raise LabError(f"keepalived in {self.router} is already running",
                           "stop it (or crash it) before starting it again")
        self.files.folder.mkdir(parents=True, exist_ok=True)
        self.files.conf.write_text(render_config(self.router, self.options, self.files.fifo))
        check_config(self.files.conf, self.netns)
        for stale in (self.files.pid, self.files.vrrp_pid):
            stale.unlink(missing_ok=True)  # keepalived refuses to start over a live pid file
        self._fifo.start()
        with open(self.files.log, "ab") as log_file:  # the daemon keeps its own copy
            self.proc = self.spawn(command(self.files), stdout=log_file,
                                   stderr=subprocess.STDOUT)
        child = timeouts.wait_for(f"keepalived's VRRP process in {self.router}",
                                  self._vrrp_child, timeouts.KEEPALIVED_START)
        if self.journal is not None:  # gone with its parent normally; the journal makes sure
            self.journal.record_process(child, f"keepalived VRRP child in {self.router}")
        return self.proc

    def _vrrp_child(self) -> int | None:
        if self.proc is not None and self.proc.poll() is not None:
            raise LabError(f"keepalived in {self.router} exited with {self.proc.returncode}"
                           " at start", f"read {self.files.log}")
        return self.vrrp_pid()

    def vrrp_pid(self) -> int | None:
        """The VRRP child's pid, while it runs."""
        try:
            pid = int(self.files.vrrp_pid.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if is_alive(pid, process_start_time(pid)) else None

    def pids(self) -> list[int]:
        """Parent first, then the VRRP child: the order to freeze them in."""
        found = [self.proc.pid] if self.proc is not None and self.proc.poll() is None else []
        child = self.vrrp_pid()
        return found + ([child] if child else [])

    def terminate(self) -> None:
        """SIGTERM, without waiting (``stop`` waits and cleans up)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = timeouts.PROCESS_EXIT) -> int | None:
        """SIGTERM (keepalived drops its addresses and sends priority 0), then SIGKILL to
        both processes after ``timeout``.  Returns the parent's exit status."""
        status = None
        try:
            if self.proc is not None:
                child = self.vrrp_pid()
                self.terminate()
                try:
                    status = self.proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    log.warning("keepalived in %s ignored SIGTERM for %g s: killing it",
                                self.router, timeout)
                    self.proc.kill()
                    status = self.proc.wait(timeout=timeout)
                if child and is_alive(child, process_start_time(child)):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child, signal.SIGKILL)
        finally:
            self._fifo.stop()
        return status

    def __enter__(self) -> Keepalived:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- state ----------------------------------------------------------------------------
    @property
    def changes(self) -> list[StateChange]:
        with self._lock:
            return list(self._changes)

    @property
    def state(self) -> str | None:
        """The last MASTER/BACKUP/FAULT/STOP notified, None before the first."""
        states = [c.state for c in self.changes if c.state in ("MASTER", "BACKUP", "FAULT",
                                                                "STOP")]
        return states[-1] if states else None

    def wait_for_state(self, state: str, timeout: float, after_ns: int = 0) -> StateChange:
        """The first change to ``state`` read at or after ``after_ns``."""
        def found() -> StateChange | None:
            return next((c for c in self.changes if c.state == state and c.t_ns >= after_ns),
                        None)
        return timeouts.wait_for(f"{self.router} to become {state}", found, timeout)


def virtual_addresses_held(ipr: Any, options: VrrpOptions) -> set[str]:
    """Which of the virtual addresses ``ipr``'s namespace holds now (any interface: with
    use_vmac they sit on the vrrp.<VRID> macvlan)."""
    wanted = {str(a.ip) for a in options.virtual_ipaddress}
    held = {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr()}
    return wanted & held

