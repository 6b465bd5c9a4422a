"""The per-leaf MC-LAG daemon, RedLab's emulation of a pair's control plane (the rules are
in :mod:`harness.tech.mclag.control`; this module does their I/O).

Run by the harness inside the leaf's namespace as ``python -m harness.tech.mclag.agent
CONFIG.json`` (:class:`~harness.tech.mclag.control.AgentConfig`); SIGTERM stops it within
a select wake-up (exit 0) and leaves the leaf as it is, like SIGKILL (device death). A
restarted agent first clears what a killed one may have left: split horizon filters,
static MAC entries on the peer link and the bonds, a reverted system id. Started after a
reboot, it brings the dual-homed ports the harness held down up once the controller's
delay restore allows.

- Heartbeats: raw Ethernet on the peer link and the keepalive link
  (:mod:`harness.tech.mclag.heartbeat`).
- Local halves: a bond's carrier and LACP distributing on one of its members, read when
  a netlink notification concerns the bond or a member, and every 50 ms (the LACP mux
  state changes without one); the bridge's learned MACs re-read when the bridge
  reports an FDB change.
- One loop: select on the heartbeat sockets, the netlink socket and a signal wake-up
  pipe, with a timeout to the next heartbeat or the controller's next deadline.
- Events: one JSON object per line, ``{"t_ns", "kind", "detail"}``, appended and flushed
  at once; the status (:meth:`Controller.status`) replaced atomically on every change.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

from pyroute2 import IPRoute

from harness.tech.bond.options import OPTIONS, netlink_value
from harness.tech.mclag import control, fdb, splithorizon
from harness.tech.mclag.control import Action, AgentConfig, Controller
from harness.tech.mclag.halves import LocalHalves
from harness.tech.mclag.heartbeat import (
    AF_BRIDGE,
    IFF_UP,
    HeartbeatPort,
    LinkWatch,
    decode_frame,
)

log = logging.getLogger("redlab.mclag.agent")

# the bridge's FDB is read when a notification says it changed, and this often besides
# (a safety net): a dump at every heartbeat (10 per second at heartbeat_ms 100) took
# a quarter of a User-mode Linux guest's one CPU, at real-time priority
FDB_RESYNC_NS = 1_000_000_000
AGENT_RT_PRIORITY = 60     # above redlab-probe's 50 (harness/measure/native)
STARTUP_RT_PRIORITY = 40   # while it imports: below the probe and the running agents


class Agent:
    """One leaf's daemon: the controller, the leaf's kernel, the loop between them."""

    def __init__(self, config: AgentConfig, ipr: IPRoute) -> None:
        self.config, self.ipr = config, ipr
        names = [config.bridge, *(getattr(config, path) for path in config.paths),
                 *config.dual_homed.values(), *(p for ps in config.members.values() for p in ps),
                 *config.orphans]
        found = {name: self.ipr.link_lookup(ifname=name) for name in names}
        if missing := [name for name, indexes in found.items() if not indexes]:
            raise ValueError(f"{', '.join(missing)} (in the config): no such interface here")
        self.index = {name: int(indexes[0]) for name, indexes in found.items()}
        self.servers = {self.index[bond]: s for s, bond in config.dual_homed.items()}
        self.local = LocalHalves(config, self.index)
        self.ports = [HeartbeatPort(path, getattr(config, path)) for path in config.paths]
        self.watch = LinkWatch()
        self.controller = Controller(config, time.monotonic_ns())
        config.events.parent.mkdir(parents=True, exist_ok=True)
        self.events = config.events.open("a", encoding="utf-8")
        self.downed: list[str] = []  # member ports this agent took down, to bring back
        self.fdb_dirty, self.changed = True, True
        self.next_beat = self.next_fdb_read = 0
        # what woke the loop, and what it then did: an agent that spins starves its
        # leaf's other processes (stopped: in agent.log)
        self.counts = dict.fromkeys(("loops", "timeouts", "heartbeats_in", "netlink",
                                     "netlink_messages", "fdb_reads", "half_reads",
                                     "actions", "status_writes"), 0)

    # -- start, loop, stop ----------------------------------------------------------------
    def start(self) -> None:
        """Clear what a killed agent left, then read the leaf as it is."""
        bonds = sorted(self.config.dual_homed.values())
        splithorizon.prepare(bonds)
        for bond in bonds:
            data = self.ipr.get_links(self.index[bond])[0].get_nested(
                "IFLA_LINKINFO", "IFLA_INFO_DATA")
            actor = data.get("IFLA_BOND_AD_ACTOR_SYSTEM") if data is not None else None
            if actor and str(actor).lower() != self.config.system_id:
                self._set_system_id(bond, self.config.system_id)
        cleared = fdb.remove_static(self.ipr, self.index[self.config.bridge],
                                    [self.index[p] for p in (self.config.peer_link, *bonds)])
        # The controller's clock (its wait for a peer before it may call itself primary)
        # starts now that it listens: the clearing above took longer than a 500 ms peer
        # timeout in User-mode Linux under load, and a rebooted leaf then took the
        # primary role before reading the heartbeat waiting on its socket.
        self.controller = Controller(self.config, time.monotonic_ns())
        # cpu_s: what starting (imports, the clearing above) cost; "stopped" has the total
        self._event("started", {"pid": os.getpid(), "cpu_s": round(time.process_time(), 3),
                                "static_macs_cleared": len(cleared),
                                "held": list(self.config.held)})
        self.local.read_carriers(self.ipr)
        self._read_halves()

    def run(self, stopping: Callable[[], bool], wake: int) -> None:
        heartbeat = self.config.heartbeat_ms * 1_000_000
        while not stopping():
            now = time.monotonic_ns()
            if now >= self.next_beat:
                if self.fdb_dirty or now >= self.next_fdb_read:
                    self._refresh_macs(now)
                self._beat()
                self.next_beat += heartbeat
                if self.next_beat <= now:  # the first beat, or a stall: no burst to catch up
                    self.next_beat = now + heartbeat
            if now >= self.local.next_poll:
                self._read_halves()
            due = min(self.next_beat, self.local.next_poll,
                      self.controller.deadline_ns() or self.next_beat)
            ready = select.select([*self.ports, self.watch, wake], [], [],
                                  max(0, due - now) / 1e9)[0]
            now = time.monotonic_ns()
            self.counts["loops"] += 1
            self.counts["timeouts"] += not ready
            for port in (p for p in self.ports if p in ready):
                for frame in port.receive():
                    self._heartbeat(port.path, frame, now)
            if self.watch in ready:
                self._netlink(now)
            if wake in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake, 512)
            if self.fdb_dirty:
                self._refresh_macs(now)
            self._execute(self.controller.tick(now))
            if self.changed:
                self._write_status()

    def close(self) -> None:
        # its CPU time: an agent that spins starves its peer on one CPU (SCHED_FIFO)
        self._event("stopped", {"pid": os.getpid(), "cpu_s": round(time.process_time(), 3),
                                **self.counts})
        self._write_status()
        self.events.close()
        for closing in (*self.ports, self.watch):
            closing.sock.close()

    # -- inputs ---------------------------------------------------------------------------
    def _beat(self) -> None:
        message = self.controller.message(time.monotonic_ns())
        for port in self.ports:
            port.send(message)

    def _heartbeat(self, path: str, frame: bytes, now: int) -> None:
        try:
            message = decode_frame(frame)
        except ValueError as exc:
            log.warning("ignoring a malformed heartbeat on %s: %s", path, exc)
            return
        if message is not None:
            self.counts["heartbeats_in"] += 1
            self._execute(self.controller.on_heartbeat(path, message, now))

    def _netlink(self, now: int) -> None:
        messages, overran = self.watch.read()
        self.counts["netlink"] += 1
        self.counts["netlink_messages"] += len(messages)
        changed: set[str] = set()
        for msg in messages:
            if msg["event"] in ("RTM_NEWNEIGH", "RTM_DELNEIGH") and msg["family"] == AF_BRIDGE:
                self.fdb_dirty = True
            elif (msg["event"] in ("RTM_NEWLINK", "RTM_DELLINK")
                  and (server := self.local.link_changed(msg)) is not None):
                changed.add(server)
        if overran:  # notifications lost: read the whole state again
            log.warning("netlink notifications overran: reading the bonds and FDB again")
            self.local.read_carriers(self.ipr)
            changed |= set(self.config.dual_homed)
            self.fdb_dirty = True
        for server in sorted(changed):
            self._half(server, now)
        if changed:
            self.local.unsettled(now)

    def _read_halves(self) -> None:
        self.counts["half_reads"] += 1
        now = time.monotonic_ns()
        before = dict(self.controller.local_up)
        for server in self.config.dual_homed:
            self._half(server, now)
        self.local.polled(now, self.controller.local_up, self.controller.local_up != before)

    def _half(self, server: str, now: int) -> None:
        self._execute(self.controller.on_local_half(server, self.local.up(server), now))

    def _refresh_macs(self, now: int) -> None:
        self.counts["fdb_reads"] += 1
        try:
            macs = fdb.learned(self.ipr, self.index[self.config.bridge], self.servers,
                               self.index[self.config.peer_link])
        except Exception as exc:  # e.g. a dump interrupted by a change: at the next wake-up
            log.warning("reading the bridge's FDB failed (%s): again later", exc)
            self.fdb_dirty = True
            return
        self.fdb_dirty = False
        self.next_fdb_read = now + FDB_RESYNC_NS
        self._execute(self.controller.on_local_macs(macs, now))

    # -- actions --------------------------------------------------------------------------
    def _execute(self, actions: list[Action]) -> None:
        sends = [a.first for a in actions if isinstance(a, control.SendNow)]
        if any(sends):
            self._beat()  # the peer first: what it must do waits on this news
        self.counts["actions"] += len(actions)
        for action in actions:
            self.changed = True
            try:
                self._do(action)
            except Exception as exc:  # one failed action must not stop the control plane
                log.exception("%s failed", action)
                self._event("action_failed", {"action": repr(action), "error": str(exc)})
        if sends and not any(sends):
            self._beat()  # news the peer must act on only after this leaf did

    def _do(self, action: Action) -> None:
        if isinstance(action, control.Event):
            self._event(action.kind, action.detail)
        elif isinstance(action, control.SendNow):
            pass  # sent before or after the actions (_execute)
        elif isinstance(action, control.ShutDownPorts):
            self._shut_down(action.down)
        elif isinstance(action, control.ReleasePorts):
            for port in action.ports:
                self.ipr.link("set", index=self.index[port], state="up")
        elif isinstance(action, control.SetSystemId):
            self._set_system_id(action.bond, action.mac)
        elif isinstance(action, control.SplitHorizon):
            bond = self.config.dual_homed[action.server]
            if action.on:
                splithorizon.install(bond, self.config.peer_link)
            else:
                splithorizon.lift(bond)
        elif isinstance(action, control.PointMac):
            if action.port is not None:
                fdb.install(self.ipr, action.mac, self.index[action.port])
            elif action.previous is not None:
                fdb.remove(self.ipr, action.mac, self.index[action.previous])
        # SetRole: the role is the controller's; the status file and the event carry it

    def _shut_down(self, down: bool) -> None:
        """Administratively down, as a real pair's protodown: the server sees its cable's
        carrier go (veth has no protodown). Brought back: only what this agent took down."""
        if down:
            members = sorted(p for b in self.config.dual_homed.values()
                             for p in self.config.members[b])
            self.downed = [p for p in members
                           if self.ipr.get_links(self.index[p])[0]["flags"] & IFF_UP]
        for port in self.downed:
            self.ipr.link("set", index=self.index[port], state="down" if down else "up")
        if not down:
            self.downed = []

    def _set_system_id(self, bond: str, mac: str) -> None:
        """ad_actor_system changes on a running bond: its next LACPDUs carry the new id."""
        option = OPTIONS["ad_actor_system"]
        self.ipr.link("set", index=self.index[bond], kind="bond",
                      **{option.keyword: netlink_value(option, mac)})

    def _event(self, kind: str, detail: dict[str, Any]) -> None:
        line = {"t_ns": time.time_ns(), "kind": kind, "detail": detail}
        self.events.write(json.dumps(line) + "\n")
        self.events.flush()
        log.info("%s %s", kind, json.dumps(detail))

    def _write_status(self) -> None:
        self.changed = False
        self.counts["status_writes"] += 1
        status = {"t_ns": time.time_ns(), **self.controller.status()}
        tmp = self.config.status.with_name(self.config.status.name + ".tmp")
        tmp.write_text(json.dumps(status, indent=1) + "\n")
        os.replace(tmp, self.config.status)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s mclag-agent %(message)s")
    if len(args) != 1:
        print("usage: python -m harness.tech.mclag.agent CONFIG.json", file=sys.stderr)
        return 2
    try:
        config = AgentConfig.from_file(args[0])
    except (OSError, ValueError) as exc:
        print(f"mclag agent: {args[0]}: {exc}", file=sys.stderr)
        return 2
    stop: list[int] = []
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK)
    signal.set_wakeup_fd(wake_w)  # a signal during select wakes it at once
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda number, _frame: stop.append(number))
    with IPRoute() as ipr:
        try:
            agent = Agent(config, ipr)
        except (OSError, ValueError) as exc:
            print(f"mclag agent {config.leaf}: {exc}", file=sys.stderr)
            return 1
        try:
            agent.start()
            # A switch's control plane runs ahead of the traffic it steers: on one CPU
            # (User-mode Linux) the gap probe (SCHED_FIFO 50) and iperf3 otherwise starve
            # the heartbeats for hundreds of ms, and a 500 ms peer timeout fires with
            # both leaves alive. Not before: start() runs tc, which held the probe off
            # for 360 ms at this priority.
            with contextlib.suppress(OSError, AttributeError):
                os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(AGENT_RT_PRIORITY))
            agent.run(lambda: bool(stop), wake_r)
        finally:
            agent.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
