"""``--keep-failed-lab``: a failed trial's lab stays up until the user has looked at it.

FRR's topotests pause on error and Mininet drops into its CLI; RedLab does the same
between a failed trial and its teardown.  What the run started dies with it (its
reaper rolls the journal back: harness/reaper.py), so the lab can only stay up while
the run waits: it waits for Enter on the terminal, or for SIGUSR1 when it has none (a
CI job, a pytest run started without one).  Ctrl-C still interrupts the run, and the
teardown removes the lab.
"""

from __future__ import annotations

import logging
import os
import signal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from harness.lab.running import Lab

log = logging.getLogger(__name__)

RELEASE = signal.SIGUSR1


def hold(lab: Lab, why: str) -> None:
    """Say how to enter each node of ``lab``, then wait to be released."""
    text = "\n".join([
        f"{why}: the lab stays up for inspection (--keep-failed-lab).",
        "enter a node's network namespace as root with:",
        *(_enter(lab, node) for node in lab.topo.nodes),
        f"the trial's files so far: {lab.workdir}",
    ])
    try:
        tty = open("/dev/tty", "r+")  # noqa: SIM115 - closed below; fails without one
    except OSError:
        tty = None
    if tty is not None:
        with tty:
            tty.write(f"{text}\npress Enter to tear it down and go on (Ctrl-C stops the run)\n")
            tty.flush()
            tty.readline()
        return
    pid = os.getpid()
    log.warning("%s\nno terminal to read Enter from: `kill -USR1 %d` tears it down and goes"
                " on (SIGINT or SIGTERM stops the run)", text, pid)
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {RELEASE})
    try:
        signal.sigwait({RELEASE})
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    log.info("released: tearing the lab down")


def _enter(lab: Lab, node: str) -> str:
    if lab.topo.nodes[node].kind == "switch":  # the root namespace: nothing to enter
        return f"  # {node}: switch {lab.node_name(node)} in the root namespace"
    return f"  nsenter -t {lab.pid(node)} -n   # {node}"
