"""RedLab's emulated MC-LAG control plane as a pure state machine: one ``Controller`` per
leaf, fed heartbeats, local bond states and learned MACs with an explicit ``now_ns``, and
answering with the actions the leaf must take. No I/O and no clock of its own, so every
rule below is a unit test (tests/unit/test_mclag_control.py); the daemon around it is
:mod:`harness.tech.mclag.agent`.

The rules, and the real pair each follows:

- Liveness (Cisco vPC peer keepalive): a path (peer link, keepalive link) is up while a
  heartbeat arrived on it within the peer timeout; the peer is alive while either is.
- Election (vPC roles, non-preemptive): alone for a peer timeout after start (at least
  ALONE_AFTER_START_MS), a leaf is primary; two leaves without a primary elect the lower
  role priority, then the lower own system id; an existing primary keeps the role when
  the peer returns; two primaries (a dual-active split that healed) are decided by the
  election rule.
- Peer link down, keepalive up, ``secondary-shutdown`` (vPC suspends its vPC ports,
  Cumulus puts its bonds in protodown): the secondary takes every member port of its
  dual-homed bonds down until the peer link is heard again. Once the peer is lost too,
  it is primary and brings them back (vPC auto-recovery).
- Peer lost: a secondary becomes primary (vPC, Cumulus, SONiC). ``revert-system-id``
  (SONiC, Cumulus, Juniper): the leaf that was secondary puts its own system id on its
  dual-homed bonds, a second LACP disruption, and the shared one back when the peer is
  heard again; ``keep-system-id`` (vPC): both keep the shared id.
- Split horizon (Arista's egress ACL, Cumulus, SONiC's ebtables drop): frames from the
  peer link stay off the bond for a server while both halves of its LAG are up.
- MAC sync (SONiC, Cumulus; learning is off on the peer link): what the peer learned on
  its bond for a server points at this leaf's bond for it while this half is up, else at
  the peer link (SONiC re-points to the peer link); the peer's orphan MACs at the peer
  link; nothing the peer no longer reports, nothing once it is lost, and nothing this
  leaf learned itself on a port that works (one learned on a bond whose half is down,
  its carrier up, is moved to the peer link too).
- Delay restore (Cisco vPC ``delay restore``, Dell VLT's, Cumulus clagd's init delay): a
  leaf back from a reboot keeps its dual-homed ports down (``held``) until it knows where
  it stands: its peer heard (whose MACs the same heartbeat syncs), or, alone, primary
  after the start-up wait above (vPC's auto-recovery, with RedLab's shorter wait); then
  ``delay_restore_ms`` more, and never while secondary-shutdown wants them down.
  Without it the servers bundle their members into a leaf that knows neither its role
  nor its peer's MACs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# the settings and the heartbeat's content (harness.tech.mclag.config), named here too:
# the agent, the wire and the tests read them beside the rules
from harness.tech.mclag.config import ORPHAN, AgentConfig, Message  # noqa: F401

NONE, PRIMARY, SECONDARY = "none", "primary", "secondary"
# A leaf that has heard no peer since it started waits at least this long before it makes
# itself primary, however short the peer timeout: both agents of a pair start together,
# and inside a busy User-mode Linux one was seen ready 1.5 s after the other (which,
# with a 500 ms timeout, took the primary role alone and reversed the roles the
# priorities asked for). Real pairs wait far longer alone: vPC's auto-recovery reload
# delay is 240 s, Cumulus clagd's init delay 180 s.
ALONE_AFTER_START_MS = 3000
FRESH = 2  # heartbeats: a path heard within this many is hearing the peer now


# The actions a Controller asks for; the agent carries them out in the order given.
@dataclass(frozen=True)
class SetRole:
    role: str


@dataclass(frozen=True)
class ShutDownPorts:
    down: bool                      # True: every dual-homed bond's members down; False: back


@dataclass(frozen=True)
class ReleasePorts:
    ports: tuple[str, ...]          # held down since the reboot: up now


@dataclass(frozen=True)
class SetSystemId:
    bond: str
    mac: str                        # ad_actor_system


@dataclass(frozen=True)
class SplitHorizon:
    server: str
    on: bool                        # True: drop frames from the peer link on its bond


@dataclass(frozen=True)
class PointMac:
    mac: str
    port: str | None                # a static entry on this port; None: remove it
    previous: str | None = None     # where the entry is now (None: nowhere)


@dataclass(frozen=True)
class Event:
    kind: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class SendNow:
    """A triggered heartbeat: something the peer acts on changed here. ``first``: before
    this leaf's own actions (a half gone down: the peer's filter must go at once); else
    after them (a half back up: this leaf points its MACs at it before the peer drops
    what still comes over the peer link)."""

    first: bool = True


Action = (SetRole | ShutDownPorts | ReleasePorts | SetSystemId | SplitHorizon | PointMac | Event
          | SendNow)


class Controller:
    """One leaf's control plane. Each ``on_*`` call and ``tick`` returns the actions that
    bring the leaf to what the rules want now; ``deadline_ns`` says when ``tick`` must
    run next (a path or the start-up wait running out) and ``message`` builds the next
    heartbeat."""

    def __init__(self, config: AgentConfig, start_ns: int) -> None:
        self.config, self.start_ns = config, start_ns
        self.timeout_ns = config.peer_timeout_ms * 1_000_000
        self.alone_ns = max(config.peer_timeout_ms, ALONE_AFTER_START_MS) * 1_000_000
        self.heartbeat_ns = config.heartbeat_ms * 1_000_000
        self.heard: dict[str, int | None] = dict.fromkeys(config.paths)
        self.path_up = dict.fromkeys(config.paths, False)
        self.peer: Message | None = None    # its last heartbeat, while it is alive
        self.peer_alive = False
        self.role, self.seq = NONE, 0
        self.local_up = dict.fromkeys(config.dual_homed, False)
        self.local_macs: dict[str, str] = {}
        self.shutdown = False
        self.reverted = self.own_id = False  # own_system_id wanted / on the bonds
        self.split = dict.fromkeys(config.dual_homed, False)
        self.macs: dict[str, str] = {}      # MAC -> port of the static entry installed
        # MACs this leaf learned on a server's bond when its half went down: pointed at
        # the peer link until the half is back (the kernel's entry, its carrier up in a
        # silent failure, would blackhole the server's frames until it aged out)
        self.stranded: dict[str, str] = {}
        self._strangers: set[str] = set()
        self.held = list(config.held)       # dual-homed ports down until delay restore
        self.delay_ns = config.delay_restore_ms * 1_000_000
        self.ready_ns: int | None = None    # when the delay restore's wait began

    # -- inputs ---------------------------------------------------------------------------
    def on_heartbeat(self, path: str, message: Message, now_ns: int) -> list[Action]:
        """A heartbeat from ``path`` ("peer_link" or "keepalive")."""
        if message.leaf != self.config.peer:
            if message.leaf == self.config.leaf or message.leaf in self._strangers:
                return []
            self._strangers.add(message.leaf)  # said once: a miswired or misnamed pair
            return [Event("unexpected_heartbeat", {"from": message.leaf, "path": path})]
        self.heard[path], self.peer = now_ns, message
        return self._reconcile(now_ns)

    def on_local_half(self, server: str, up: bool, now_ns: int) -> list[Action]:
        """This leaf's bond for ``server`` gained (``up``) or lost carrier."""
        if self.local_up[server] == up:
            return self._reconcile(now_ns)
        self.local_up[server] = up
        self.stranded = {mac: s for mac, s in self.stranded.items() if s != server}
        if not up:
            self.stranded.update({mac: server for mac, label in self.local_macs.items()
                                  if label == server})
        event = Event(f"local_half_{'up' if up else 'down'}",
                      {"server": server, "bond": self.config.dual_homed[server]})
        return [event, *self._reconcile(now_ns), SendNow(first=not up)]

    def on_local_macs(self, macs: Mapping[str, str], now_ns: int) -> list[Action]:
        """The MACs this leaf learned on its own ports (MAC -> server or ORPHAN)."""
        if macs == self.local_macs:
            return self._reconcile(now_ns)
        self.local_macs = dict(macs)
        return [*self._reconcile(now_ns), SendNow()]

    def tick(self, now_ns: int) -> list[Action]:
        return self._reconcile(now_ns)

    def deadline_ns(self) -> int | None:
        """When the next path expires, or the start-up wait ends; None: nothing pending."""
        times = [heard + self.timeout_ns for path, heard in self.heard.items()
                 if heard is not None and self.path_up[path]]
        if self.role == NONE:
            times.append(self.start_ns + self.alone_ns)
        if self.held and self.ready_ns is not None:
            times.append(self.ready_ns + self.delay_ns)
        return min(times, default=None)

    def message(self, now_ns: int) -> Message:
        """The next heartbeat (each call takes the next sequence number)."""
        self.seq += 1
        grouped: dict[str, list[str]] = {}
        for mac, label in sorted(self.local_macs.items()):
            grouped.setdefault(label, []).append(mac)
        return Message(self.config.leaf, self.config.own_system_id, self.config.role_priority,
                       self.role, self.seq, dict(self.local_up), grouped)

    def status(self) -> dict[str, Any]:
        mac = self.config.own_system_id if self.own_id else self.config.system_id
        peer = None if self.peer is None else {k: getattr(self.peer, k) for k in (
            "leaf", "role", "seq", "halves")}
        return {"leaf": self.config.leaf, "role": self.role, "paths": self.path_up,
                "peer_alive": self.peer_alive, "peer": peer, "local_halves": self.local_up,
                "split_horizon": self.split, "shutdown": self.shutdown, "held": self.held,
                "macs": self.macs,
                "system_id": dict.fromkeys(self.config.dual_homed.values(), mac)}

    # -- the rules ------------------------------------------------------------------------
    def _reconcile(self, now: int) -> list[Action]:
        actions: list[Action] = []
        for path, heard in self.heard.items():
            up = heard is not None and now - heard < self.timeout_ns
            if up != self.path_up[path]:
                self.path_up[path] = up
                actions.append(Event(f"{path}_{'up' if up else 'down'}", {}))
        alive = any(self.path_up.values())
        if alive != self.peer_alive:
            self.peer_alive = alive
            if alive:
                self.reverted = False
                actions.append(Event("peer_found", {"peer": self.config.peer}))
            else:
                # Cumulus and SONiC: the switch that was secondary falls back to its own id.
                self.reverted = (self.role == SECONDARY
                                 and self.config.dual_active_policy == "revert-system-id")
                self.peer = None
                actions.append(Event("peer_lost", {"role": self.role}))
        actions += self._elect(now)
        actions += self._shutdown(now)
        actions += self._delay_restore(now)
        actions += self._system_id()
        actions += self._split_horizon()
        actions += self._point_macs()
        return actions

    def _elect(self, now: int) -> list[Action]:
        role, why = self.role, ""
        if self.peer_alive and self.peer is not None:
            theirs = self.peer.role
            if self.role == PRIMARY and theirs != PRIMARY:
                why = "already primary (non-preemptive)"
            elif self.role != PRIMARY and theirs == PRIMARY:
                role, why = SECONDARY, "the peer is primary"
            else:
                mine = (self.config.role_priority, self.config.own_system_id, self.config.leaf)
                wins = mine < (self.peer.role_priority, self.peer.system_id, self.peer.leaf)
                role, why = (PRIMARY if wins else SECONDARY), "election"
        elif self.role == SECONDARY:
            role, why = PRIMARY, "peer lost"
        elif self.role == NONE and now - self.start_ns >= self.alone_ns:
            role, why = PRIMARY, "no peer heard since start"
        if role == self.role:
            return []
        was, self.role = self.role, role
        return [SetRole(role), Event("role", {"role": role, "was": was, "why": why}), SendNow()]

    def _shutdown(self, now: int) -> list[Action]:
        # A secondary whose peer is lost is primary by now (_elect), so the keepalive is
        # up; but to shut down it must be hearing the peer now, not just within the
        # timeout: a cut of both paths expires the peer link a few ms before the
        # keepalive (their heartbeats leave one after the other), and ports taken down
        # for those ms would cost the server a carrier loss that no real pair causes.
        keepalive = self.heard.get("keepalive")
        hearing = keepalive is not None and now - keepalive < FRESH * self.heartbeat_ns
        down = (self.role == SECONDARY and not self.path_up["peer_link"]
                and self.config.peer_link_policy == "secondary-shutdown"
                and (self.shutdown or hearing))
        if down == self.shutdown:
            return []
        self.shutdown = down
        ports = sorted(p for b in self.config.dual_homed.values() for p in self.config.members[b])
        return [ShutDownPorts(down),
                Event("ports_shut_down" if down else "ports_restored", {"ports": ports})]

    def _delay_restore(self, now: int) -> list[Action]:
        if not self.held:
            return []
        why = ("peer heard" if self.peer_alive and self.peer is not None
               else "alone, primary" if self.role == PRIMARY else "")
        if not why or self.shutdown:
            self.ready_ns = None  # not ready (again): the wait starts over
            return []
        actions: list[Action] = []
        if self.ready_ns is None:
            self.ready_ns = now
            actions.append(Event("delay_restore", {"ports": self.held, "why": why,
                                                   "delay_ms": self.delay_ns / 1e6}))
        if now - self.ready_ns < self.delay_ns:
            return actions
        ports, self.held = tuple(self.held), []
        return [*actions, ReleasePorts(ports), Event("ports_released", {"ports": list(ports)})]

    def _system_id(self) -> list[Action]:
        if self.reverted == self.own_id:
            return []
        self.own_id = self.reverted
        mac = self.config.own_system_id if self.own_id else self.config.system_id
        bonds = sorted(self.config.dual_homed.values())
        return [*(SetSystemId(bond, mac) for bond in bonds),
                Event("system_id_reverted" if self.own_id else "system_id_restored",
                      {"system_id": mac, "bonds": bonds})]

    def _split_horizon(self) -> list[Action]:
        actions: list[Action] = []
        for server, was in self.split.items():
            theirs = self.peer.halves.get(server, False) if self.peer_alive and self.peer else False
            on = self.local_up[server] and theirs
            if on != was:
                self.split[server] = on
                why = ("both halves up" if on else "local half down" if not self.local_up[server]
                       else "peer lost" if not self.peer_alive else "peer half down")
                actions += [SplitHorizon(server, on),
                            Event(f"split_horizon_{'restored' if on else 'lifted'}",
                                  {"server": server, "why": why})]
        return actions

    def _point_macs(self) -> list[Action]:
        want: dict[str, str] = {}
        if self.peer_alive and self.peer is not None:
            for mac, label in self.peer.learned().items():
                if mac in self.local_macs:
                    continue  # learned here too: the kernel's entry (stranded: below)
                bond = self.config.dual_homed.get(label)
                up = bond is not None and self.local_up[label]
                want[mac] = bond if up else self.config.peer_link
            for mac in self.stranded:
                want[mac] = self.config.peer_link
        actions: list[Action] = [PointMac(mac, None, port) for mac, port in
                                 sorted(self.macs.items()) if mac not in want]
        actions += [PointMac(mac, port, self.macs.get(mac)) for mac, port in
                    sorted(want.items()) if self.macs.get(mac) != port]
        if not actions:
            return []
        on_peer_link = sum(port == self.config.peer_link for port in want.values())
        before = sum(port == self.config.peer_link for port in self.macs.values())
        count = (len(self.macs), before)
        self.macs = want
        if (len(want), on_peer_link) != count:
            actions.append(Event("macs_installed", {"count": len(want),
                                                    "on_peer_link": on_peer_link}))
        return actions
