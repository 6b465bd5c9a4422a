"""The lab tests in two streams, one per host CPU, so that CI takes the time of the longer
stream rather than of both: `scripts/bootstrap test` runs ``pytest -n 2``, and
tests/conftest.py gives pytest-xdist a scheduler (StreamScheduling) that hands each stream
whole to one worker, in order, and the unit tests one by one to whichever is free.

- ``guest``: the runs that need User-mode Linux and go to the worker's one shared guest
  (bonds, Open vSwitch, LACP, MC-LAG, teams), one at a time as the guest serves them.
- ``host``: the runs on the host's own kernel (VRRP, the unprotected path, the probe, the
  cluster) and the tests that boot guests of their own (``private_guest``, the
  calibration, the runtime and parser tests that call run_in_uml, the early runs).

Each worker holds itself, and so every process it starts, on a CPU of its own (the guest
stream the highest, where the shared guest sits; the host stream the lowest, which also
takes most of the host's interrupts): a guest's timers must not wait for a native lab's
processes, nor a native probe for the guest.  Pinned to one CPU, a worker's guests are
held there too (harness/lab/uml_cpu.py chooses among the CPUs a process may use).
Without xdist (``pytest tests/lab``) both streams run in one process, unpinned.

pytest-xdist's own ``--dist loadgroup`` would do the grouping from a mark, but with pytest
9.2 it silently does not (it renames ``item._nodeid``, which pytest no longer reads), and
a stream split over two workers would boot two shared guests and race them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import PurePosixPath

GUEST, HOST = "guest", "host"
# modules whose runs are native or boot their own guests (see above); every other lab
# module runs in the shared guest
HOST_MODULES = {
    "test_vrrp_gateway", "test_vrrp_daemon", "test_path_cut", "test_cluster",
    "test_root_namespace", "test_gapprobe", "test_pytest_plugin", "test_calibration",
    "test_killed_run", "test_run_lifecycle", "test_suite_guest", "test_lab_runtime",
    "test_lacp_parse", "test_inject", "test_lab_nodes",
}
# tests of a host module whose runs need the shared guest after all
GUEST_TESTS = ("test_the_same_gateway_fails_over_inside_user_mode_linux",)

# Runs that mostly wait (a 90 s LACP timeout) start with the host stream, in a guest of
# their own beside its native labs, and their tests collect the result: test name ->
# (scenario, --param values).  Their tests are in the host stream wherever they live.
EARLY_RUNS = {
    "test_a_member_whose_lacpdus_stop_leaves_after_three_missed_pdus[slow]": (
        "lacp-timeout", ("lacp_rate=slow", "traffic.duration_s=100", "traffic.parallel=1",
                         "traffic.probe_interval_ms=10")),
}


def stream(nodeid: str) -> str | None:
    """The stream of the test ``nodeid`` (``tests/lab/test_x.py::test_y[p]``); None for a
    test outside tests/lab, which needs no stream."""
    path, _, name = nodeid.partition("::")
    module = PurePosixPath(path)
    if module.parent != PurePosixPath("tests/lab"):
        return None
    if name in EARLY_RUNS:
        return HOST
    if module.stem in HOST_MODULES and not name.startswith(GUEST_TESTS):
        return HOST
    return GUEST


def worker() -> str | None:
    """This pytest-xdist worker's id (gw0, gw1), or None outside xdist."""
    return os.environ.get("PYTEST_XDIST_WORKER")


_unpinned: set[int] = set()  # the CPUs this worker might use before pin()


def pin(name: str) -> int | None:
    """Hold this worker (and what it starts from now on) on the stream's CPU; None when
    not under xdist or with a single CPU."""
    cpus = sorted(os.sched_getaffinity(0))
    if worker() is None or len(cpus) < 2:
        return None
    cpu = cpus[-1] if name == GUEST else cpus[0]
    _unpinned.update(cpus)
    os.sched_setaffinity(0, {cpu})
    return cpu


@contextmanager
def unpinned() -> Iterator[None]:
    """Every CPU for a test that needs them (``whole_host``: guests held on CPUs of their
    own), then the worker's stream CPU again."""
    held = os.sched_getaffinity(0)
    if _unpinned:
        os.sched_setaffinity(0, _unpinned)
    try:
        yield
    finally:
        os.sched_setaffinity(0, held)
