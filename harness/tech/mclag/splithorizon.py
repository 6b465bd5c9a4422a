"""Split horizon on a Linux leaf: a tc flower filter on a dual-homed bond's egress that
drops every frame which entered the bridge through the peer link.

Why tc flower: its ``indev`` matches ``skb->skb_iif``, the interface the frame was
received on, which the bridge keeps when it forwards the frame, so the filter on the
bond's egress (a clsact qdisc) sees where the frame came in. An nftables bridge rule
(``iifname`` ... ``oifname`` ... ``drop``) would do the same, but nobody tried whether the
nftables bridge family loads in the User-mode Linux guest; ``bridge link set ... isolated
on`` does not fit (isolated ports cannot reach each other at all). cls_flower and
act_gact are modules of the guest's kernel, not of every host's.

tc is run through its own CLI (pyroute2's flower support has no ``indev``). Once the
agent runs, one ``tc -batch -`` process takes every change as a line on its stdin: a
new tc process per change costs about 150 ms inside User-mode Linux (every system call
of its start-up is a ptrace round trip there), and the peer's traffic for a server whose
half went down waits for this filter to go.
"""

from __future__ import annotations

import logging
import re
import subprocess
import threading
from collections.abc import Sequence
from typing import IO

log = logging.getLogger(__name__)

PREF = 10  # the filter's priority on the bond's egress: the one this agent owns
TC_TIMEOUT_S = 5.0


class TcError(RuntimeError):
    pass


def _is_missing(stderr: str) -> bool:
    """tc's words for "there is no such filter" (iproute2 6.1)."""
    return any(words in stderr for words in (
        "Cannot find specified filter chain", "Filter with specified priority/protocol"
        " not found", "TC classifier not found"))


def batch_errors(stderr: str) -> dict[int, str]:
    """``tc -force -batch``'s complaints by the line that failed: each command's own
    message comes first, then ``Command failed -:N``."""
    errors: dict[int, str] = {}
    said: list[str] = []
    for line in stderr.splitlines():
        found = re.fullmatch(r"Command failed -:(\d+)", line.strip())
        if found:
            errors[int(found[1])] = " ".join(said)
            said = []
        elif line.strip():
            said.append(line.strip())
    return errors


def prepare(bonds: Sequence[str]) -> None:
    """Give each of ``bonds`` a clsact qdisc (kept if it has one) and no split horizon
    filter: an agent killed while the filter was on left it there, and the controller
    starts off. One tc process for them all: two per bond, about 150 ms each inside
    User-mode Linux, made a 32-server pair's first sync take 16.1 s (7.3 s after)."""
    lines = [line for bond in bonds for line in (
        f"qdisc replace dev {bond} clsact", f"filter del dev {bond} egress pref {PREF}")]
    if not lines:
        return
    done = subprocess.run(["tc", "-force", "-batch", "-"], input="\n".join(lines) + "\n",
                          capture_output=True, text=True, timeout=TC_TIMEOUT_S, check=False)
    errors = batch_errors(done.stderr)
    line = dict(enumerate(lines, start=1))
    fatal = [f"tc {line.get(n, f'line {n}')}: {said or 'failed'}"
             for n, said in sorted(errors.items())
             if not (line.get(n, "").startswith("filter del") and _is_missing(said))]
    if fatal or (done.returncode != 0 and not errors):
        raise TcError("; ".join(fatal) or f"tc -batch exited with {done.returncode}:"
                      f" {done.stderr.strip()}")


def install(bond: str, peer_link: str) -> None:
    _batch().run("filter", "add", "dev", bond, "egress", "pref", str(PREF), "protocol",
                 "all", "flower", "indev", peer_link, "action", "drop")


def lift(bond: str) -> None:
    _batch().run("filter", "del", "dev", bond, "egress", "pref", str(PREF))


class TcBatch:
    """One long-lived ``tc -force -batch -``: each command is a line, carried out as it is
    read; what tc says about a failed one is logged (as a warning) by a reader thread."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(["tc", "-force", "-batch", "-"], stdin=subprocess.PIPE,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     text=True, bufsize=1)
        threading.Thread(target=self._log, args=(self.proc.stderr,), daemon=True).start()

    def run(self, *args: str) -> None:
        if self.proc.poll() is not None or self.proc.stdin is None:
            raise TcError(f"tc -batch exited with {self.proc.returncode}")
        self.proc.stdin.write(" ".join(args) + "\n")
        self.proc.stdin.flush()

    @staticmethod
    def _log(stream: IO[str] | None) -> None:
        for line in stream or ():
            if line.strip() and not _is_missing(line):
                log.warning("tc: %s", line.strip())


_shared: list[TcBatch] = []


def _batch() -> TcBatch:
    if not _shared or _shared[0].proc.poll() is not None:
        _shared[:] = [TcBatch()]
    return _shared[0]
