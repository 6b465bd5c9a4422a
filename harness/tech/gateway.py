"""The keepalived routers of a running lab: one daemon per router, started, checked and
stopped with the lab.

Bring-up ends only once VRRP has elected: exactly one router MASTER and every other
BACKUP, as each daemon's own notifications say (checked, not assumed, like LACP).  A
router that dies (``device_down``) loses its daemon without a goodbye and, on a real box,
everything in RAM: when it comes back the harness removes the virtual addresses the
killed daemon left on its interfaces and starts keepalived afresh, as a reboot would.
A crashed daemon (``daemon_crash``) is restarted as it is: the box stayed up, and so did
whatever addresses the daemon held.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from harness import timeouts
from harness.errors import LabError
from harness.tech import vrrp

if TYPE_CHECKING:
    from harness.topology.build import Lab

log = logging.getLogger(__name__)

OnChange = Callable[[vrrp.StateChange], None]


class VrrpRouters:
    """``lab.vrrp``: the keepalived of every router that the topology gives VRRP."""

    def __init__(self, lab: Lab, on_change: OnChange | None = None) -> None:
        self.lab, self.on_change = lab, on_change
        self.daemons: dict[str, vrrp.Keepalived] = {}

    def start(self, folder: Path) -> str:
        """Start every router's keepalived, its files under ``folder/<router>``; returns
        the elected master once there is one."""
        for decl in self.lab.topo.vrrp:
            options = vrrp.vrrp_options(decl.options)
            for key, value in vrrp.router_sysctls(options).items():
                self.lab.sysctl(decl.node, key, value)
            daemon = vrrp.Keepalived(
                decl.node, options, folder / decl.node,
                functools.partial(self.lab.popen, decl.node), netns=self.lab.netns(decl.node),
                journal=self.lab.journal, on_change=self.on_change)
            self.daemons[decl.node] = daemon
            daemon.start()
        return self.wait_elected()

    def wait_elected(self) -> str:
        """One MASTER, every other router BACKUP, and nothing changed for the longest
        master down interval: a backup that does not hear the master says so only when
        that timer runs out.  Otherwise an error with each router's state."""
        settle_ns = int(1e9 * max(vrrp.master_down_interval(d.options.priority,
                                                            d.options.advert_int,
                                                            d.options.version)
                                  for d in self.daemons.values()))

        def elected() -> str | None:
            states = self.states()
            masters = [n for n, s in states.items() if s == "MASTER"]
            others = [s for n, s in states.items() if n not in masters]
            if len(masters) != 1 or not set(others) <= {"BACKUP"}:
                return None
            last = max(c.t_ns for d in self.daemons.values() for c in d.changes)
            return masters[0] if time.time_ns() - last >= settle_ns else None

        try:
            return timeouts.wait_for("VRRP to elect one master", elected,
                                     timeouts.VRRP_ELECTED + 3 * settle_ns / 1e9)
        except LabError as exc:
            raise LabError(f"VRRP elected no single master: {self.describe()}",
                           "read keepalived.log beside each router's keepalived.conf in the"
                           " trial folder") from exc

    def states(self) -> dict[str, str | None]:
        return {node: daemon.state for node, daemon in self.daemons.items()}

    def describe(self) -> str:
        return ", ".join(f"{node} {state or 'no state yet'}"
                         for node, state in self.states().items())

    def processes(self, node: str) -> list[int]:
        """``node``'s keepalived processes (parent, then VRRP child); none if it runs none."""
        daemon = self.daemons.get(node)
        return daemon.pids() if daemon else []

    def restart_after_reboot(self, node: str) -> None:
        """A router back from the dead: what the killed daemon held is gone, as after a
        power cycle, and keepalived starts again."""
        daemon = self.daemons.get(node)
        if daemon is None:
            return
        ipr = self.lab.ipr(node)
        for address in daemon.options.virtual_ipaddress:
            iface = ipaddress.ip_interface(address.address)
            for held in ipr.get_addr(address=str(iface.ip)):
                ipr.addr("del", index=held["index"], address=str(iface.ip),
                         prefixlen=iface.network.prefixlen)
        daemon.start()

    def stop(self) -> None:
        # All told at once: stopped one by one, each would hand the gateway to the next
        # (a priority-0 advert) and the teardown would read as failovers.
        for daemon in self.daemons.values():
            daemon.terminate()
        for node, daemon in reversed(self.daemons.items()):
            try:
                daemon.stop()
            except Exception as exc:  # the journal still kills what is left
                log.warning("stopping keepalived in %s: %s", node, exc)
