"""The MC-LAG control plane's settings and its heartbeat's content, as data checked by
pydantic: an agent's configuration (what the plugin writes to CONFIG.json) and one
heartbeat's message. The rules that use them are in :mod:`harness.tech.mclag.control`.
"""

from __future__ import annotations

import json
from dataclasses import field
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, ConfigDict, Field, StringConstraints, model_validator
from pydantic.dataclasses import dataclass as checked_dataclass

from harness.tech.bond.options import unicast_mac
from harness.tech.mclag.options import DualActivePolicy, PeerLinkPolicy

ORPHAN = "orphan"  # what a MAC learned on any port but a dual-homed bond is reported as
Name = Annotated[str, StringConstraints(min_length=1)]
Ifname = Annotated[str, StringConstraints(min_length=1, max_length=15)]  # IFNAMSIZ - 1
Mac = Annotated[str, BeforeValidator(unicast_mac)]  # lower case, unicast


@checked_dataclass(config=ConfigDict(extra="forbid"))
class AgentConfig:
    """One leaf's agent, as the plugin writes it to CONFIG.json (see the module's rules).
    A pydantic dataclass: a wrong field is a ValueError (ValidationError) naming it."""

    leaf: Name
    peer: Name
    bridge: Ifname
    peer_link: Ifname
    system_id: Mac                  # the shared virtual MAC (the bonds start with it)
    own_system_id: Mac              # this leaf's own MAC, for revert-system-id
    events: Path                    # JSON lines, appended
    status: Path                    # JSON, replaced on every change
    keepalive: Ifname | None = None
    role_priority: int = Field(32667, ge=1, le=65535)  # lower wins primary; vPC's default
    dual_homed: dict[Name, Ifname] = field(default_factory=dict)    # server -> bond
    members: dict[Ifname, list[Ifname]] = field(default_factory=dict)  # bond -> ports
    orphans: list[Ifname] = field(default_factory=list)
    heartbeat_ms: int = Field(1000, gt=0)          # vPC peer keepalive interval
    peer_timeout_ms: int = Field(5000, gt=0)       # vPC peer keepalive timeout
    peer_link_policy: PeerLinkPolicy = "secondary-shutdown"
    dual_active_policy: DualActivePolicy = "keep-system-id"
    held: list[Ifname] = field(default_factory=list)  # ports down since a reboot
    delay_restore_ms: int = Field(30000, ge=0)     # vPC delay restore

    @classmethod
    def from_file(cls, path: str | Path) -> AgentConfig:
        try:
            return cls(**json.loads(Path(path).read_text()))
        except (json.JSONDecodeError, TypeError) as exc:  # TypeError: not an object
            raise ValueError(f"{path} is not a JSON object of settings: {exc}") from None

    @model_validator(mode="after")
    def _consistent(self) -> AgentConfig:
        if relative := [n for n in ("events", "status") if not getattr(self, n).is_absolute()]:
            raise ValueError(f"{relative[0]}: a relative path (the agent runs elsewhere)")
        if self.peer == self.leaf:
            raise ValueError(f"peer: {self.peer!r} is this leaf's own name")
        if self.own_system_id == self.system_id:
            raise ValueError("own_system_id: equals the shared system_id; give the leaf's"
                             " own MAC (revert-system-id falls back to it)")
        if self.peer_timeout_ms < 2 * self.heartbeat_ms:
            raise ValueError(f"peer_timeout_ms: {self.peer_timeout_ms} is shorter than two"
                             f" heartbeats ({2 * self.heartbeat_ms}): one late heartbeat"
                             " would read as a dead peer")
        members = {p for b in self.dual_homed.values() for p in self.members.get(b, ())}
        if stray := sorted(set(self.held) - members):
            raise ValueError(f"held: {', '.join(stray)} not a member of a dual-homed bond"
                             " (only those wait for the delay restore)")
        if ORPHAN in self.dual_homed:
            raise ValueError(f"dual_homed: {ORPHAN!r} is the label of single-homed MACs")
        bonds = list(self.dual_homed.values())
        if missing := sorted(b for b in set(bonds) if not self.members.get(b)):
            raise ValueError(f"members: no member ports for bond(s) {', '.join(missing)}")
        names = [self.peer_link, self.keepalive, *bonds, *self.orphans]
        if twice := sorted({n for n in names if n is not None and names.count(n) > 1}):
            raise ValueError(f"dual_homed/orphans/keepalive: {', '.join(twice)} named"
                             " twice (each port has one job)")
        return self

    @property
    def paths(self) -> tuple[str, ...]:
        """The paths heartbeats take: "peer_link", and "keepalive" if the leaf has one."""
        return ("peer_link", "keepalive") if self.keepalive else ("peer_link",)


@checked_dataclass(frozen=True)
class Message:
    """One heartbeat's content: the sender, its election credentials, the state of its
    half of each dual-homed server's LAG, and the MACs it learned on its own ports.
    Built from a received payload, a malformed one is a ValueError (ValidationError)."""

    leaf: Name
    system_id: Mac                  # the sender's own system id (the election tie-break)
    role_priority: int
    role: Literal["none", "primary", "secondary"]
    seq: int
    halves: dict[str, bool]         # server -> the sender's bond for it has carrier
    macs: dict[str, list[Mac]]      # server the MACs were learned for (or ORPHAN) -> MACs

    def learned(self) -> dict[str, str]:
        """MAC -> server (or ORPHAN)."""
        return {mac: label for label, group in self.macs.items() for mac in group}
