"""What every failure shares: the apply/restore/describe contract and commands in a node.

A failure is applied and restored by the scenario runner, which records the returned
wall-clock nanoseconds as the event time. As for LinkCut, that is the middle of the call
that made the change (a netlink request up to its ack, an nft run up to its committed
batch, the first SIGSTOP up to every process seen stopped), and ``call_ns`` is that
call's length: the change happened within ``t ± call_ns / 2``. ``restore()`` is
idempotent and safe after the lab is gone: a failure may be restored twice (a scenario's
restore step, then the cleanup path) or never applied at all.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from harness import timeouts
from harness.errors import LabError

if TYPE_CHECKING:
    from harness.lab.running import Lab


@runtime_checkable
class Failure(Protocol):
    call_ns: int
    silenced: tuple[int, int] | None

    def apply(self) -> int: ...
    def restore(self) -> int: ...
    def describe(self) -> str: ...


class Reversible:
    """``with failure: ...`` applies on entry and restores on every way out."""

    # A failure that froze the node's daemons before its event (a device's death: they
    # stop first, then its links go down) keeps the (before, stopped) bracket of that
    # freeze here. The protocols those daemons spoke fell silent then, not at the event.
    silenced: tuple[int, int] | None = None

    call_ns: int = 0  # length of the call behind the last returned time: its uncertainty

    def _event(self, brackets: Sequence[tuple[int, int]]) -> int:
        """The event time from the first change's (before, acked) bracket; records call_ns."""
        if not brackets:  # nothing to change (e.g. already restored): now, exactly
            self.call_ns = 0
            return time.time_ns()
        before, acked = brackets[0]
        self.call_ns = acked - before
        return (before + acked) // 2

    def apply(self) -> int:
        raise NotImplementedError

    def restore(self) -> int:
        raise NotImplementedError

    def __enter__(self) -> Reversible:
        self.apply()
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()


def node_interfaces(lab: Lab, node: str) -> list[str]:
    """``node``'s ends of the topology's cables, in declaration order."""
    intfs = []
    for link in lab.topo.links:
        if link.a == node:
            intfs.append(link.a_intf)
        if link.b == node:
            intfs.append(link.b_intf)
    return intfs


def netns_id(path: str | None) -> str:
    """The identity of a network namespace (``net:[inode]``); None means ours (root)."""
    return os.readlink(path or "/proc/self/ns/net")


def lab_netns(lab: Lab, node: str) -> str | None:
    """``node``'s namespace path while the lab runs; None for the root namespace."""
    if lab.topo.nodes[node].kind == "switch":
        return None
    if lab.net is None:
        raise LabError(f"cannot inject into {node}: the lab is not running",
                       "apply failures between Lab start and stop")
    return lab.netns(node)


def run_in_netns(netns: str | None, argv: Sequence[str], stdin: str = "",
                 timeout: float = timeouts.LINK_STATE) -> subprocess.CompletedProcess[str]:
    """Run a short command in a namespace and wait for it.

    nsenter, not ``lab.popen``: the command needs its stdin, and it is waited for here, so
    it never outlives us and needs no journal entry.
    """
    full = ["nsenter", f"--net={netns}", *argv] if netns else list(argv)
    try:
        return subprocess.run(full, input=stdin, capture_output=True, text=True,
                              timeout=timeout, check=False)
    except FileNotFoundError as exc:
        raise LabError(f"cannot run {full[0]}: not installed",
                       "apt-get install util-linux nftables") from exc
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{' '.join(argv)} did not finish within {timeout:g} s",
                       "the machine is overloaded, or the command hangs: run it by hand"
                       " in the node") from exc


def bracket(call: Callable[[], object]) -> tuple[int, int]:
    """Wall clock just before ``call`` and just after it returned (the kernel's ack)."""
    before = time.time_ns()
    call()
    return before, time.time_ns()
