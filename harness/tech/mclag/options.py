"""An MC-LAG pair's settings, checked before anything exists, and its declaration in a
topology.

What RedLab emulates (no free MC-LAG control plane runs on a stock Linux: see
harness/tech/mclag/agent.py) follows Cisco vPC by default: a peer keepalive every second,
the peer declared lost after 5 s, the secondary suspending its dual-homed ports when the
peer link fails while the keepalive still hears the peer, and both switches keeping the
shared system id in a dual-active split.  The other policies are SONiC's and Cumulus'
(revert to the switch's own system id when the peer is lost). A rebooted leaf keeps its
dual-homed ports down until it has heard its peer and then for vPC's delay restore (30 s;
Dell VLT waits 90 s).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from harness.tech.bond.options import unicast_mac

PeerLinkPolicy = Literal["secondary-shutdown", "none"]
DualActivePolicy = Literal["keep-system-id", "revert-system-id"]


class McLagOptions(BaseModel):
    """The pair's shared LACP identity, its control plane's timers and policies."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    system_id: str = Field("02:00:5e:10:00:01", description="the shared LACP system id:"
                           " a unicast MAC both switches send instead of their own")
    system_priority: int = Field(65535, ge=1, le=65535)
    key: int = Field(10, ge=0, le=1023, description="ad_user_port_key of every switch bond")
    heartbeat_ms: int = Field(1000, ge=10, le=60000, description="Cisco vPC: 1 s")
    peer_timeout_ms: int = Field(5000, ge=10, le=600000, description="Cisco vPC: 5 s")
    peer_link_policy: PeerLinkPolicy = "secondary-shutdown"
    dual_active_policy: DualActivePolicy = "keep-system-id"
    delay_restore_ms: int = Field(30000, ge=0, le=3600000, description="Cisco vPC delay"
                                  " restore, 30 s: a rebooted leaf's dual-homed ports stay"
                                  " down this long after it has heard its peer")

    @field_validator("system_id", mode="before")
    @classmethod
    def _mac(cls, value: object) -> str:
        try:
            return unicast_mac(value)
        except ValueError as exc:
            raise ValueError(f"system_id {value!r} {exc}; give a unicast MAC such as"
                             " 02:00:5e:10:00:01") from None

    @model_validator(mode="after")
    def _timeout_after_heartbeats(self) -> McLagOptions:
        if self.peer_timeout_ms < 2 * self.heartbeat_ms:
            raise ValueError(f"peer_timeout_ms={self.peer_timeout_ms} is shorter than two"
                             f" heartbeats (heartbeat_ms={self.heartbeat_ms}): one late"
                             " heartbeat would read as a dead peer; give at least"
                             f" {2 * self.heartbeat_ms}")
        return self


@dataclass(frozen=True)
class Leaf:
    """One switch of the pair: a host node whose bridge joins its ports."""

    node: str
    peer_link: str                    # its end of the peer link (a bridge port)
    keepalive: str | None             # its end of the keepalive link (not bridged)
    role_priority: int                # lower is primary (vPC role priority)
    dual_homed: dict[str, str]        # server -> this leaf's bond for it
    orphans: tuple[str, ...] = ()     # ports of hosts cabled to this leaf only
    uplinks: tuple[str, ...] = ()     # other bridge ports (neither dual-homed nor orphan)
    # a per-leaf system id overriding the pair's (a misconfiguration to test the check)
    system_id: str | None = None

    @property
    def ports(self) -> list[str]:
        """Every port of the leaf's bridge."""
        return [*self.dual_homed.values(), *self.orphans, *self.uplinks, self.peer_link]


@dataclass(frozen=True)
class McLagPair:
    """Two leaves presenting one LACP system to every dual-homed server."""

    leaves: tuple[Leaf, Leaf]
    options: McLagOptions = field(default_factory=McLagOptions)
    bridge: str = "br0"

    def leaf(self, node: str) -> Leaf | None:
        return next((leaf for leaf in self.leaves if leaf.node == node), None)

    def peer_of(self, node: str) -> Leaf:
        a, b = self.leaves
        return b if a.node == node else a

    def servers(self) -> list[str]:
        return sorted(set(self.leaves[0].dual_homed) & set(self.leaves[1].dual_homed))
