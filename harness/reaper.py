"""A run's watchdog: if the run dies without rolling back its journal, roll it back at once.

``Journal.open()`` starts ``python -m harness.reaper <journal path>`` beside every run.  The
reaper reads the owner's pid and start time from the journal's header and sleeps until
that process has exited (a pidfd becomes readable; no polling, no CPU).  Then:

- the journal is gone: the run rolled back itself.  Nothing to do.  (A run that rolls
  back also kills its reaper, which is idle while its owner lives, so a long-lived
  process that opens many journals, ``redlab suite``, does not collect reapers.)
- the journal is still there: the run was killed (SIGKILL, the OOM killer, a crash in
  C code).  The reaper kills every process it names (their process groups where the
  journal says so: a User-mode Linux kernel with all its host processes), parents before
  children, and then rolls back the rest of the journal, links, bridges, nft tables,
  folders, run folder marked ``interrupted``, with the very code ``redlab clean`` runs
  (:func:`harness.journal.roll_back_orphan`), under the lock that keeps the two from
  undoing one journal at the same time.  It then exits.

So a killed run stops using the CPU within a fraction of a second (tests/lab/test_killed_run.py
measures it) and leaves nothing, and ``redlab clean`` remains for what a reaper cannot do
(it was killed as well, e.g. by ``systemctl stop`` killing a whole cgroup, or the machine
rebooted).

Why a watchdog and not a parent-death signal (``PR_SET_PDEATHSIG``) on each child:

- the signal reaches only direct children.  keepalived's VRRP child, the helper
  processes of User-mode Linux, and the lab nodes' namespace holders are grandchildren;
  the journal already names each of them (or their process group).
- it fires when the *thread* that forked the child exits, not the process: a child
  started from a short-lived thread would die with that thread (tests boot two guests
  at once from a thread pool), and setting it needs a ``preexec_fn``, which Python
  warns is unsafe in a process with threads (ours has watcher threads).
- it undoes only processes.  The reaper replays the journal, which names everything.

The reaper runs in its own session, so a SIGKILL (or a Ctrl-C) sent to the run's process
group from a terminal does not take it along; it inherits the run's stderr, where it
says what it removed.  It is never in the journal itself: it outlives its owner only for
as long as the rollback takes.  Inside a User-mode Linux guest the run in the guest has
its own reaper; the host-side run (journal ``<run id>-host``) has one too, and killing
the host side kills the guest's kernel, and everything in the guest with it.
"""

from __future__ import annotations

import logging
import os
import select
import sys
import time
from pathlib import Path

from harness.journal import Journal, owner_alive, roll_back_orphan

log = logging.getLogger("redlab.reaper")
POLL_S = 0.2  # only where the kernel has no pidfd_open (before Linux 5.3)


def wait_for_exit(owner: dict[str, object]) -> None:
    """Return once the journal's owner has exited (a zombie counts as exited)."""
    pid = owner.get("pid")
    if not isinstance(pid, int):
        return
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except OSError:  # ENOSYS: an older kernel
        while owner_alive(owner):
            time.sleep(POLL_S)
        return
    try:
        # Checked after opening the pidfd, so the pid cannot be reused in between.
        if owner_alive(owner):
            select.select([pidfd], [], [])  # readable once the process has exited
    finally:
        os.close(pidfd)


def reap(path: Path) -> list[str]:
    """Wait for the owner of the journal at ``path`` to exit; roll back what it left."""
    try:
        _, owner = Journal.load(path)
    except FileNotFoundError:
        return []  # rolled back before this process got going
    wait_for_exit(owner)
    return roll_back_orphan(path)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S")
    path = Path(sys.argv[1])
    removed = reap(path)
    if removed:
        log.warning("run %s died without cleaning up; its reaper removed: %s",
                    path.stem, "; ".join(removed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
