"""Cable cuts: take one end of a link down, or both, and bring it back.

A veth pair loses carrier on both ends when either end goes down, so "far" (the
switch's port) is what a pulled cable looks like to the server's NIC: the NIC stays
administratively up and sees carrier loss, which is what the bond's MII monitor watches.
One member is failed by its interface, never by node pair (Mininet's
``configLinkStatus`` would take every link between the two nodes down at once).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from harness import timeouts
from harness.errors import LabError

if TYPE_CHECKING:
    from harness.lab.running import Lab

End = Literal["near", "far", "both"]


def set_admin_state(lab: Lab, node: str, intf: str, up: bool) -> tuple[int, int]:
    """Change the state; returns the wall clock just before the request and at its ack.

    The kernel makes the change somewhere inside that call (a link going down takes a few
    ms of work before the ack), so the call's middle is the event's time and its length
    the uncertainty.
    """
    ipr = lab.ipr(node)
    idx = ipr.link_lookup(ifname=lab.ifname(node, intf))
    if not idx:
        raise LabError(f"cannot change {node}:{intf}: no such interface",
                       "check the scenario's node and interface names")
    before = time.time_ns()
    ipr.link("set", index=idx[0], state="up" if up else "down")
    return before, time.time_ns()


def carrier(lab: Lab, node: str, intf: str) -> bool:
    ipr = lab.ipr(node)
    idx = ipr.link_lookup(ifname=lab.ifname(node, intf))
    return bool(idx) and ipr.get_links(idx[0])[0].get("IFLA_CARRIER") == 1


def admin_up(lab: Lab, node: str, intf: str) -> bool:
    """Whether ``node:intf`` is administratively up (IFF_UP): one that is down, a dead
    device's port say, shows no carrier whatever its cable does."""
    ipr = lab.ipr(node)
    idx = ipr.link_lookup(ifname=lab.ifname(node, intf))
    return bool(idx) and bool(ipr.get_links(idx[0])[0]["flags"] & 1)


@dataclass
class LinkCut:
    """Cut the cable at ``node:intf``; ``end`` says which side of it is switched off."""

    lab: Lab
    node: str
    intf: str
    end: End = "far"
    call_ns: int = 0  # length of the last netlink call: the uncertainty of its time
    silenced: tuple[int, int] | None = None  # a cable has no daemon to freeze

    def ends(self) -> list[tuple[str, str]]:
        far = self.lab.topo.far_end(self.node, self.intf)
        return {"near": [(self.node, self.intf)], "far": [far],
                "both": [(self.node, self.intf), far]}[self.end]

    def describe(self) -> str:
        far_node, far_intf = self.lab.topo.far_end(self.node, self.intf)
        where = "both ends" if self.end == "both" else f"the {self.end} end"
        return (f"link_down {self.node}:{self.intf} <-> {far_node}:{far_intf}"
                f" (down at {where})")

    def _switch(self, up: bool) -> int:
        calls = [set_admin_state(self.lab, node, intf, up) for node, intf in self.ends()]
        before, acked = calls[0]
        self.call_ns = acked - before
        return (before + acked) // 2

    def apply(self) -> int:
        """Cut; returns when the first end went down (middle of its netlink call)."""
        t = self._switch(up=False)
        timeouts.wait_for(f"carrier loss on {self.node}:{self.intf}",
                          lambda: not carrier(self.lab, self.node, self.intf),
                          timeouts.LINK_STATE, interval=0.02)
        return t

    def restore(self) -> int:
        """Undo the cut; returns when the first end came up (middle of its netlink call)."""
        t = self._switch(up=True)
        timeouts.wait_for(f"carrier back on {self.node}:{self.intf}",
                          lambda: carrier(self.lab, self.node, self.intf),
                          timeouts.LINK_STATE, interval=0.02)
        return t
