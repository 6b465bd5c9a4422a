"""keepalived's files and command line: keepalived.conf rendered from checked options and
put through keepalived's own check (``keepalived -t``) in the router's namespace, where the
interfaces it names exist.

Each daemon has its own configuration, pid files, console log and notify FIFO in one
folder (:class:`RunFiles`); keepalived 2.2 has no configuration keyword for pid files, so
they are given on the command line (:func:`command`), and two or three daemons share one
machine without meeting.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness import timeouts
from harness.errors import ConfigError, LabError
from harness.tech.vrrp.options import VrrpOptions

KEEPALIVED = "keepalived"
INSTANCE = "VI_1"


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
    except subprocess.TimeoutExpired:
        raise LabError(f"keepalived --config-test {path} did not answer within"
                       f" {timeouts.PROCESS_EXIT:g} s", "the machine is too loaded for this lab"
                       " now: rerun when it is quieter") from None
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
