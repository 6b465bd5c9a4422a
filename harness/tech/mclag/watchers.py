"""What an MC-LAG pair does during a trial, as events on the trial's clock: the agents'
own events copied from their files, and each dual-homed server's aggregators read from
its kernel."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from harness.tech.base import Watcher
from harness.tech.bond.status import StatusFile
from harness.tech.lacp.linux import linux_lacp

if TYPE_CHECKING:
    from harness.lab.running import Lab
    from harness.results.events import EventLog
    from harness.tech.mclag.plugin import McLag

EVENT_POLL_S = 0.05
AGGREGATOR_POLL_S = 0.05


class AgentEvents(Watcher):
    """Copies what the agents write to their events files into the trial's events, on
    the agents' own timestamps (the same wall clock as the probe's)."""

    def __init__(self, mclag: McLag, events: EventLog) -> None:
        super().__init__("mclag-events", EVENT_POLL_S)
        self.mclag, self.events = mclag, events
        self.since_ns = time.time_ns()
        self._offsets: dict[str, int] = {}

    def poll(self) -> None:
        for leaf in self.mclag.pair.leaves:
            path = self.mclag.folder(leaf.node) / "events.jsonl"
            start = self._offsets.get(leaf.node, 0)
            with contextlib.suppress(OSError), open(path, "rb") as fh:
                fh.seek(start)
                data = fh.read()
                complete = data[:data.rfind(b"\n") + 1]  # a line being written waits
                self._offsets[leaf.node] = start + len(complete)
                for line in complete.splitlines():
                    with contextlib.suppress(ValueError, KeyError):
                        event = json.loads(line)
                        if int(event["t_ns"]) >= self.since_ns:
                            self.events.add(f"mclag_{event['kind']}", leaf.node,
                                            _detail(event.get("detail")),
                                            t_ns=int(event["t_ns"]))


class ServerAggregators:
    """How a dual-homed server's bond groups its members into aggregators, read from its
    kernel: one aggregator while the pair presents one system, two when a leaf falls back
    to its own system id (a dual-active split). Polled with the other servers' by one
    Sweep; the status file is parsed only when its text changed."""

    def __init__(self, lab: Lab, server: str, events: EventLog) -> None:
        self.lab, self.server, self.events = lab, server, events
        self.bond = lab.topo.bond(server).name
        self.status = StatusFile(lab.pid(server), self.bond)
        self.seen = self._read()

    def _read(self) -> dict[int | None, tuple[str, ...]]:
        text = self.status.changed()
        if text is None:
            return self.seen
        side = linux_lacp(text, self.bond)
        groups: dict[int | None, list[str]] = {}
        for member in side.members.values():
            if member.mii_up:
                groups.setdefault(member.aggregator_id, []).append(member.name)
        return {agg: tuple(sorted(names)) for agg, names in groups.items()}

    def poll(self) -> None:
        now = self._read()
        if now != self.seen:
            self.events.add("mclag_server_aggregators", self.server,
                            f"{_groups(self.seen)} -> {_groups(now)}")
            self.seen = now


def _detail(detail: Any) -> str:
    """An agent event's detail as one line: ``key=value`` pairs for a mapping."""
    if isinstance(detail, Mapping):
        return ", ".join(f"{k}={v}" for k, v in detail.items())
    return "" if detail is None else str(detail)


def _groups(groups: Mapping[int | None, tuple[str, ...]]) -> str:
    return "; ".join(f"agg {agg}: {','.join(names)}"
                     for agg, names in sorted(groups.items(), key=str)) or "none"
