"""The one host CPU a User-mode Linux guest runs on.

UML 6.1 runs every process of the guest as a host process under ptrace: each system call
in the guest stops that process and wakes the UML kernel's own host process, which
handles the call and resumes it.  When the two sit on different host CPUs every hand-over
is a cross-CPU wake-up, and inside a virtual machine (our build and CI machines are
Firecracker guests) that is an inter-processor interrupt and a VM exit.  Measured on such
a machine, 2 cores, 20000 calls in a loop inside the guest: ``getppid`` 120-200 us
unpinned, 17 us with the guest on one CPU; a 1 ms redlab-probe on loopback kept the
guest 21-86 % busy unpinned (at 86 % it fell seconds behind and never caught up), 6 %
pinned; booting took 7.6 s unpinned, 1.8 s pinned.

A UML guest has one virtual CPU and runs one thing at a time, so holding all its host
processes on one host CPU costs it nothing.  The CPU is chosen at boot: among those this
process may use, the one fewest running guests are held on (two runs at once get a CPU
each on a 2-core host).  ``REDLAB_UML_PIN=0`` leaves the guest unpinned, to compare.
"""

from __future__ import annotations

import os
import shutil
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

UML_COMM = "linux.uml"
PIN_ENV = "REDLAB_UML_PIN"


def pinned(cmdline: Sequence[str]) -> list[str]:
    """``cmdline`` run through ``taskset`` onto the chosen CPU (same pid: taskset execs),
    or unchanged when pinning is off, pointless (one CPU) or taskset is missing."""
    cpu, taskset = choose(), shutil.which("taskset")
    if cpu is None or taskset is None:
        return list(cmdline)
    return [taskset, "--cpu-list", str(cpu), *cmdline]


def choose() -> int | None:
    if os.environ.get(PIN_ENV, "1") == "0":
        return None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    held = Counter(cpu for pid in running_guests()
                   if len(aff := _affinity(pid)) == 1 for cpu in aff)
    # Ties go to the highest number: CPU 0 usually takes more of the host's interrupts.
    return min(reversed(cpus), key=lambda cpu: held[cpu])


def running_guests() -> list[int]:
    """The pids of running UML kernels: each leads its own process group."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        comm, rest = text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:]
        fields = rest.split()
        pid = int(stat.parent.name)
        if comm == UML_COMM and fields[0] != "Z" and int(fields[2]) == pid:
            found.append(pid)
    return found


def _affinity(pid: int) -> set[int]:
    try:
        return os.sched_getaffinity(pid)
    except OSError:
        return set()
