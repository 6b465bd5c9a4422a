"""A whole device dies: every interface at once, and its daemons without a goodbye.

A dead box is not a cut cable: all its links fail together and the processes that speak
for it (keepalived, ovs-vswitchd) stop mid-sentence. Its own interfaces go
administratively down, so each neighbour sees carrier loss on its side of the cable -
exactly what a NIC sees when the box at the other end loses power. For a switch these are
its bridge ports, so every host cabled to it loses carrier at once.

The daemons are frozen first (SIGSTOP: from that instant they cannot react to the links
going down), then the links go down, then the daemons are killed. ``restore()`` powers
the links back on but does not restart daemons: that is the caller's job, as after a real
reboot, because only the caller knows their configuration (start them again with
``lab.popen``). Admin down also drops what the kernel ties to an up interface: routes via
it other than the connected one, and IPv6 addresses unless keep_addr_on_down is set; the
caller re-adds those too.

``held`` names interfaces the reboot leaves down: what the device's own software brings up
once it is ready (an MC-LAG leaf's dual-homed ports wait for its control plane, as vPC's
delay restore does). Their far ends keep seeing no carrier.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from harness import timeouts
from harness.inject.base import Reversible, bracket, node_interfaces
from harness.inject.daemon import Pinned, ProcessRef, check_in_node, freeze, kill
from harness.inject.link import admin_up, carrier, set_admin_state

if TYPE_CHECKING:
    from harness.lab.running import Lab


@dataclass
class DeviceFailure(Reversible):
    """``node`` loses power: its cables' near ends go down, ``processes`` are SIGKILLed."""

    lab: Lab
    node: str
    processes: Sequence[ProcessRef] = ()
    held: Collection[str] = ()
    _killed: list[str] = field(init=False, default_factory=list)

    def interfaces(self) -> list[str]:
        return node_interfaces(self.lab, self.node)

    def far_ends(self, intfs: Collection[str] | None = None) -> list[tuple[str, str]]:
        return [self.lab.topo.far_end(self.node, intf) for intf in (
            self.interfaces() if intfs is None else intfs)]

    def describe(self) -> str:
        kind = self.lab.topo.nodes[self.node].kind
        killed = ", ".join(self._killed) or "none"
        held = f"; held down after the reboot: {', '.join(self.held)}" if self.held else ""
        return (f"device_down {kind} {self.node}: {', '.join(self.interfaces())} down;"
                f" processes killed: {killed}{held}")

    def apply(self) -> int:
        """Returns when the first interface went down (middle of its netlink call); the
        freeze before it is kept in ``silenced``."""
        pinned = [Pinned.of(p) for p in self.processes]
        check_in_node(self.lab, self.node, pinned)
        self._killed = [f"{p.name()}[{p.pid}]" for p in pinned]
        frozen: list[Pinned] = []
        self.silenced = bracket(lambda: frozen.extend(freeze(pinned))) if pinned else None
        try:
            calls = [set_admin_state(self.lab, self.node, intf, up=False)
                     for intf in self.interfaces()]
        finally:
            kill(frozen)  # never leave a daemon stopped, whatever happened to the links
        self._wait_carrier(present=False)
        return self._event(calls)

    def restore(self) -> int:
        """Power the links back on, all but ``held``; returns when the first came up
        (middle of its call).

        Safe to call again, or after the lab stopped (its namespaces are gone then, and the
        links with them).
        """
        if self.lab.net is None:
            return self._event([])
        back = [intf for intf in self.interfaces() if intf not in self.held]
        calls = [set_admin_state(self.lab, self.node, intf, up=True) for intf in back]
        self._wait_carrier(present=True, intfs=back)
        return self._event(calls)

    def _wait_carrier(self, present: bool, intfs: Collection[str] | None = None) -> None:
        # The neighbours' view is what matters: their NICs must see the change.  A
        # neighbour's port that is itself down (a dead neighbour: two adjacent devices
        # failed together) sees no carrier until its own restore, which waits for it.
        far = [(n, i) for n, i in self.far_ends(intfs)
               if not present or admin_up(self.lab, n, i)]
        timeouts.wait_for(
            f"carrier {'back' if present else 'loss'} at {self.node}'s neighbours",
            lambda: all(carrier(self.lab, n, i) == present for n, i in far),
            timeouts.LINK_STATE, interval=0.005)
