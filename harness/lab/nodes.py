"""Mininet nodes without a shell: a namespace held by one sleeping process.

Mininet gives every node an interactive bash in a pseudo-terminal (``mnexec`` then
``bash``, a wait for its prompt, then ``stty -echo``: three programs) so that its
``cmd()`` can type commands into it.  RedLab never types into a node: it spawns each
program with ``popen`` (``mnexec -a <pid>``, harness.lab.running) and configures links,
addresses and bonds over netlink.  Inside User-mode Linux that shell cost about 0.6 s
per node, most of a 64-server lab's bring-up, and even ``mnexec -cdn sleep infinity``
costs 0.35 s (a fork of this large Python process and two execs).  Here a node is one
fork of a small C program, redlab-netns (harness/lab/native/redlab_netns.c), that each
lab starts once (journaled, and closed with the lab): the child unshares its namespaces
as ``mnexec -n`` would and sleeps, so ``mnexec -a <pid>`` enters it as before, and it
ends with a signal (SIGHUP from Mininet's ``terminate``, or the journal's kill of its
process group).  ``cmd()`` raises, so that a Mininet code path that would type into a
shell fails loudly instead of hanging.

A netlink socket in a node's namespace (``netlink_socket``) is opened the same cheap way:
pyroute2's ``IPRoute(netns=...)`` forks a child to enter the namespace and passes the
socket back, about 0.3 s per node inside User-mode Linux; here the calling thread enters
the namespace (``setns``, which moves only that thread), opens the socket and returns.

A switch node (RootSwitch) lives in the root namespace and holds the bridge's cable
ends for Mininet's bookkeeping; Mininet would also give it the root namespace's ``lo``
as a control interface, configured with ``ifconfig lo up``, which it neither needs nor
gets here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time

from mininet.node import Host, Node, Switch
from pyroute2 import IPRoute
from pyroute2.netns import setns

from harness.errors import LabError
from harness.journal import is_alive, process_start_time
from harness.native import built


def netlink_socket(netns: str) -> IPRoute:
    """An IPRoute whose socket is in the namespace at path ``netns`` (/proc/PID/ns/net).

    pyroute2 opens a socket per thread, when the thread first uses it, in the namespace
    the thread is in then: so the socket is opened here, inside the namespace, and the
    IPRoute must be used by this thread only (harness.lab.running keeps one per thread).
    """
    with contextlib.ExitStack() as fds:
        # this thread's namespace, not pyroute2's pushns (/proc/self: the main thread's)
        home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        fds.callback(os.close, home)
        target = os.open(netns, os.O_RDONLY)
        fds.callback(os.close, target)
        setns(target)
        try:
            ipr = IPRoute()
            ipr.link("get", index=1)  # opens the socket now: every namespace has lo as 1
        finally:
            setns(home)
    return ipr


HOLDER = "redlab-netns"  # harness/lab/native/redlab_netns.c, built by scripts/bootstrap
_GONE_WAIT_S = 5.0


class Holder:
    """A lab's redlab-netns: one fork of it per node (see the C source).  Given to each
    node as the Mininet parameter ``holder``; closed with the lab."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([str(built(HOLDER))], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
        self.pid = self.proc.pid
        self.lock = threading.Lock()

    def spawn(self, in_namespace: bool) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        with self.lock:
            try:
                self.proc.stdin.write("net\n" if in_namespace else "root\n")
                self.proc.stdin.flush()
                reply = self.proc.stdout.readline().strip()
            except (BrokenPipeError, ValueError):
                reply = ""
        if not reply.isdigit():
            raise LabError(f"{HOLDER} could not make a namespace: {reply or 'it exited'}",
                           "run as root on a kernel with network namespaces")
        return int(reply)

    def close(self) -> None:
        """End of input: the holder exits (its children stay until they are killed)."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=_GONE_WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class HeldProcess:
    """A node's sleeper, as much of ``subprocess.Popen`` as Mininet uses (it is the
    holder's child, not ours: the holder reaps it)."""

    def __init__(self, pid: int) -> None:
        self.pid, self.start = pid, process_start_time(pid)
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None and not is_alive(self.pid, self.start):
            self.returncode = 0
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = time.monotonic() + (timeout or _GONE_WAIT_S)
        while self.poll() is None:
            if time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"node process {self.pid}", timeout or 0)
            time.sleep(0.005)
        return 0

    def kill(self) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)


class Shellless:
    """Mixin for a Mininet node class: the node's process is a sleeper, not a shell."""

    name: str
    params: dict[str, object]
    inNamespace: bool  # noqa: N815 (Mininet's name)
    waitExited: bool  # noqa: N815 (Mininet's name)

    def startShell(self, mnopts: str | None = None) -> None:  # noqa: N802 (Mininet's name)
        holder = self.params.get("holder")
        if not isinstance(holder, Holder):
            raise LabError(f"node {self.name} was made without a holder",
                           "pass holder=Holder() to Mininet's addHost/addSwitch")
        held = HeldProcess(holder.spawn(self.inNamespace))
        self.shell, self.pid = held, held.pid
        self.stdin = self.stdout = None
        self.execed, self.lastCmd, self.lastPid = False, None, None
        self.readbuf, self.waiting = "", False

    def cmd(self, *args: object, **_kwargs: object) -> str:
        raise LabError(f"node {self.name} has no shell to run {args!r} in",
                       "run the program with Lab.popen, or configure it over netlink")

    sendCmd = cmd  # noqa: N815 (Mininet's name)

    def cleanup(self) -> None:
        shell = self.shell
        if shell is not None and self.waitExited:
            shell.wait()
        self.shell = None


class QuietHost(Shellless, Host):  # type: ignore[misc]
    """A Mininet host whose configuration is the lab's: no ``ifconfig lo up`` command
    (bring_up sets the loopback up), no address of Mininet's choosing."""

    def config(self, **_params: object) -> dict[str, object]:
        return {}


class RootSwitch(Shellless, Switch):  # type: ignore[misc]
    """A switch node in the root namespace, without a control interface (see above)."""

    def __init__(self, name: str, dpid: str | None = None, opts: str = "",
                 listenPort: int | None = None, **params: object) -> None:  # noqa: N803
        params.setdefault("inNamespace", False)
        Node.__init__(self, name, **params)
        self.dpid = self.defaultDpid(dpid)
        self.opts, self.listenPort, self.controlIntf = opts, listenPort, None
