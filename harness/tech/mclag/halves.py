"""Whether each of this leaf's halves of a dual-homed server's aggregate is up.

A local half is up when its bond has carrier AND LACP distributes on one of its members
toward a partner that collects, as the bond's status file says (the mux state; no
notification tells its changes, hence the poll): a cable back up is not a half back
until LACP has bundled it (SONiC waits for its port channel, vPC for its delay-restore),
or frames for the server go to a member that drops them; and a half goes down without
any carrier change when LACP stops distributing (its LACPDUs lost).

Not the bond's carrier alone, nor its member's "active" flag: a bond whose aggregator has
heard no partner yet enables its ports at once (Linux's fallback for a partner without
LACP), 2.4 s before the server's end collects (seen in UML: a fail-back gap of 2,323 ms
against 20 ms with the status file).

Carrier comes from netlink notifications (asked once, then kept): a pyroute2 request
costs about 5 ms inside User-mode Linux, and two per poll every 50 ms on each leaf took a
quarter of the guest's one CPU at real-time priority; the lab's probe starved.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pyroute2 import IPRoute

from harness.errors import LabError
from harness.tech.lacp.linux import Membership, read_linux
from harness.tech.lacp.state import PortState
from harness.tech.mclag.control import AgentConfig
from harness.tech.mclag.heartbeat import IFF_LOWER_UP, IFF_UP

# The bonds' LACP state is read this often while a half with carrier is down, or a half
# or a carrier changed in the last HALF_SETTLE_NS, and HALF_POLL_STEADY_NS apart
# otherwise: a read costs 1.4 ms of a User-mode Linux guest's one CPU per bond, and three
# bonds per leaf read every 50 ms by two agents at real-time priority starved a whole
# path's lab (dc_edge). Steady, the slower poll may delay only a half lost with carrier
# up (LACPDUs lost), after LACP's own 3 s (fast) or 90 s (slow) expiry, by at most
# HALF_POLL_STEADY_NS.
HALF_POLL_NS = 50_000_000
HALF_POLL_STEADY_NS = 200_000_000
HALF_SETTLE_NS = 3_000_000_000


def has_carrier(flags: int) -> bool:
    return bool(flags & IFF_UP and flags & IFF_LOWER_UP)


class LocalHalves:
    """The carrier of every dual-homed bond and member, their LACP state, and when to
    read that state next (``next_poll``, monotonic ns)."""

    def __init__(self, config: AgentConfig, index: Mapping[str, int]) -> None:
        self.config, self.index = config, index
        # every interface whose notifications may change a local half: bonds, members
        self.servers_of = {index[bond]: server for server, bond in config.dual_homed.items()}
        self.servers_of.update({index[member]: server
                                for server, bond in config.dual_homed.items()
                                for member in config.members.get(bond, ())})
        self.carrier: dict[int, bool] = {}  # interface index -> carrier
        self.membership: dict[str, Membership] = {}
        self.next_poll = 0
        self.settled_at = 0  # until then, the state is read every HALF_POLL_NS

    def read_carriers(self, ipr: IPRoute) -> None:
        """Every bond's and member's carrier, asked once; notifications keep it since."""
        self.carrier = {int(link["index"]): has_carrier(link["flags"])
                        for link in ipr.get_links(*self.servers_of)}

    def link_changed(self, msg: Any) -> str | None:
        """An RTM_NEWLINK/DELLINK notification: the server whose half it may change."""
        server = self.servers_of.get(msg["index"])
        if server is not None:
            self.carrier[msg["index"]] = (msg["event"] == "RTM_NEWLINK"
                                          and has_carrier(msg["flags"]))
        return server

    def up(self, server: str) -> bool:
        bond = self.config.dual_homed[server]
        names = [bond, *self.config.members.get(bond, ())]
        carrier = {name: self.carrier.get(self.index[name], False) for name in names}
        try:
            side = read_linux(bond)
            # Membership: a member back from a carrier loss shows its old, distributing
            # state for one LACP tick before the state machine resets it ...
            members = frozenset(
                m for m in self.membership.setdefault(bond, Membership()).update(side)
                # ... and the server's end must collect: Linux's mux (coupled control)
                # distributes once the partner is in sync, not once it collects; a
                # server's member that joined its aggregator late dropped what a rebooted
                # leaf sent it for 320 ms (UML). The partner's LACPDU says it collects.
                if (partner := side.members[m].partner) is not None
                and PortState.COLLECTING in partner.state)
        except LabError:  # the bond is gone: no half
            members = frozenset()
        # A member's own carrier counts at once: the bond notices its loss only at its
        # next MII check (up to miimon later), and the peer's traffic waits on this news.
        return carrier[bond] and any(carrier.get(m, False) for m in members)

    def unsettled(self, now: int) -> None:
        """A carrier changed: LACP follows over the next seconds, watch closely."""
        self.settled_at = now + HALF_SETTLE_NS
        self.next_poll = min(self.next_poll, now + HALF_POLL_NS)

    def polled(self, now: int, local_up: Mapping[str, bool], changed: bool) -> None:
        """Every half was just read (``local_up``; ``changed`` if one moved): when next."""
        if changed or self._bundling(local_up):
            self.settled_at = now + HALF_SETTLE_NS
        self.next_poll = now + (HALF_POLL_NS if now < self.settled_at else HALF_POLL_STEADY_NS)

    def _bundling(self, local_up: Mapping[str, bool]) -> bool:
        """A half is down while its bond has carrier: LACP may bundle it at any moment,
        with no notification (a half without carrier waits for one)."""
        return any(not up and self.carrier.get(self.index[self.config.dual_homed[server]])
                   for server, up in local_up.items())
