"""The lab's nodes: a network namespace per host, held open by one idle process.

Mininet makes a host a bash shell in its own namespace, driven through a pty.  RedLab
only needs the namespace: its processes start in it with Mininet's ``mnexec -a PID``
and it configures it over netlink (pyroute2).  Inside User-mode Linux each Mininet shell
took 1.2-1.5 s to start (bash, stty and prompt round trips; Mininet's Python import
another 1.7 s per run), against 0.07 s for ``mnexec -cdn sleep infinity``, so a node is
that: Mininet's own namespace tool, without the shell.  Switches live in the root
namespace and hold no process.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

from harness import timeouts
from harness.errors import LabError

ROOT_NETNS = "/proc/self/ns/net"
CLONE_NEWNET = 0x40000000
NETLINK_ROUTE = 0


@dataclass
class Node:
    """One node: ``holder`` keeps its namespace alive (None: the root namespace)."""

    name: str
    holder: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """A process in the node's namespace."""
        return self.holder.pid if self.holder is not None else os.getpid()

    def popen(self, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        """Start ``argv`` in the node's namespace, in a session of its own (as Mininet's
        ``node.popen`` does: Ctrl-C reaches the run, which stops what it started)."""
        attach = ["-a", str(self.pid)] if self.holder is not None else []
        return subprocess.Popen(["mnexec", "-d", *attach, *argv], **kwargs)


class Nodes:
    """The running nodes by name; ``stop`` ends every holder (and so each namespace, with
    the cable ends in it)."""

    def __init__(self) -> None:
        self._nodes: dict[str, Node] = {}

    def add_host(self, name: str) -> Node:
        holder = subprocess.Popen(["mnexec", "-cdn", "sleep", "infinity"],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)
        node = self._nodes[name] = Node(name, holder)
        root = os.readlink(ROOT_NETNS)

        def own_namespace() -> bool:  # mnexec unshares after the fork Popen returned at
            if holder.poll() is not None:
                err: IO[bytes] | None = holder.stderr
                raise LabError(f"the namespace holder of {name} exited: "
                               f"{err.read().decode(errors='replace') if err else ''}",
                               "is mnexec installed (apt-get install mininet)? are we root?")
            try:
                return os.readlink(f"/proc/{holder.pid}/ns/net") != root
            except OSError:
                return False

        timeouts.wait_for(f"{name}'s network namespace", own_namespace,
                          timeouts.NODE_START, interval=0.002)
        return node

    def add_root(self, name: str) -> Node:
        node = self._nodes[name] = Node(name)
        return node

    def get(self, name: str) -> Node:
        return self._nodes[name]

    def stop(self) -> None:
        for node in self._nodes.values():
            if node.holder is not None and node.holder.poll() is None:
                node.holder.send_signal(signal.SIGKILL)
        for node in self._nodes.values():
            if node.holder is not None:
                node.holder.wait(timeout=timeouts.PROCESS_EXIT)
                if node.holder.stderr is not None:
                    node.holder.stderr.close()
        self._nodes.clear()


def netlink_fd(netns: str) -> int:
    """A new rtnetlink socket in the namespace at ``netns`` (a /proc/PID/ns/net path),
    as a file descriptor for ``IPRoute(fileno=...)``.

    pyroute2 makes one by forking a child that enters the namespace, which cost 0.4 s
    per node inside User-mode Linux (a fork of the whole harness).  A namespace belongs
    to a thread, not a process (setns(2)), so a short-lived thread enters it, opens the
    socket (which stays in the namespace it was made in) and ends."""
    made: dict[str, Any] = {}

    def enter() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    errno = ctypes.get_errno()
                    raise OSError(errno, f"setns {netns}: {os.strerror(errno)}")
            finally:
                os.close(fd)
            made["fd"] = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM,
                                       NETLINK_ROUTE).detach()
        except OSError as exc:
            made["error"] = exc

    thread = threading.Thread(target=enter, name="netns-socket")
    thread.start()
    thread.join()
    if "error" in made:
        raise LabError(f"cannot open a netlink socket in {netns}: {made['error']}",
                       "is the node still running? (RedLab needs root)")
    return int(made["fd"])
