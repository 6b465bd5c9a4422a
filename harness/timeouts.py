"""Every named wait of the harness, in seconds, in one place.

Waits poll for a state until their deadline; none of these is a fixed sleep.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from harness.errors import LabError

UML_BOOT = 30.0            # linux.uml start -> guest init reports it is running
UML_RUN_DEFAULT = 900.0    # a whole scenario inside UML, unless --deadline says otherwise
UML_HALT = 10.0            # guest told to halt -> process gone, before SIGKILL
UML_AGENT_READY = 180.0    # shared guest booted -> its agent has imported the harness
PROCESS_EXIT = 5.0         # SIGTERM -> process gone, before SIGKILL
BOND_MEMBERS_UP = 10.0     # bond enslaved -> every member reports carrier and an active member
LINK_STATE = 5.0           # an injected link change is visible in the kernel
IPERF_SERVER_READY = 15.0  # server started -> listening (CI, host loaded by two guests: > 5 s)
IPERF_CONNECTED = 20.0     # iperf3 client started -> every stream up (SYN resent 1, 3, 7, 15 s)
# gap probe started -> iperf3 flowing: a probe that can be ended (redlab-probe) runs for
# the traffic plus this ceiling and is ended after iperf3, however long iperf3 took to start
PROBE_START = IPERF_SERVER_READY + IPERF_CONNECTED + 5.0
PING_READY = 10.0          # topology up -> first end-to-end reply
OVS_COMMAND = 10.0         # one ovs-vsctl/ovs-appctl request answered
OVS_START = 60.0           # ovs-ctl start -> ovsdb-server and ovs-vswitchd running
LACP_NEGOTIATED = 20.0     # LAG up -> both sides synchronized, collecting, distributing
TRAFFIC_DRAIN = 15.0       # traffic duration elapsed -> tool has written its JSON
TEAMD_START = 10.0         # teamd started -> teamdctl answers on its control socket
TEAM_READY = 10.0          # teamd answering -> an active port with link (activebackup)
KEEPALIVED_START = 10.0    # keepalived started -> its VRRP child has written its pid file
VRRP_ELECTED = 10.0        # keepalived running -> one MASTER, settled (+ 3 x master down)
MCLAG_ELECTED = 30.0       # MC-LAG agents launched -> elected (+ 3 x peer timeout); a starved
                           # guest took 8 s to start one agent's Python (CI, 2026-12-01)
SYSCTL = 5.0               # sysctl in a node -> done

T = TypeVar("T")


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    timeout: float,
    interval: float = 0.01,
) -> T:
    """Poll ``probe`` until it returns something truthy, or fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise LabError(
                f"timed out after {timeout:g} s waiting for {what}",
                "the lab did not reach the expected state: read the run folder (events.csv,"
                " raw tool output), or raise the timeout in harness/timeouts.py if this"
                " machine is slow",
            )
        time.sleep(interval)


def sleep_until(t_ns: int) -> None:
    """Sleep until the wall clock reaches ``t_ns``: a scenario's schedule, not a state wait."""
    while (delay := (t_ns - time.time_ns()) / 1e9) > 0:
        time.sleep(delay)
