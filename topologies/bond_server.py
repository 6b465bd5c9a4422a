"""A server dual-homed to one switch through a two-NIC kernel bond, and a client.

              cli  198.51.100.1/24
               | eth0
               | p0
          +---------+
          |   sw    |   Linux bridge (learning switch; no LACP needed for modes 0-3, 5, 6)
          +---------+
            p1    p2
            |      |
          eth0   eth1
          [  bond0  ]   198.51.100.2/24
              srv

The bond lives in the server's namespace and is configured through netlink. The default
is mode 1 (active-backup) with MII monitoring every 100 ms.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness.errors import ConfigError
from harness.tech.bond import mode_name
from harness.topology.model import Topology

SUBNET = "198.51.100"  # TEST-NET-2: documentation addresses, never routed


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bond_mode: str = "active-backup"
    miimon: int = Field(100, ge=0, le=10_000, description="MII link check period, ms")
    updelay: int = Field(0, ge=0, description="ms a member must stay up before use")
    downdelay: int = Field(0, ge=0, description="ms a member must stay down before failover")

    @field_validator("bond_mode", mode="before")
    @classmethod
    def _known_mode(cls, value: object) -> str:
        try:
            return mode_name(value)  # type: ignore[arg-type]
        except ConfigError as exc:
            raise ValueError(f"{exc.problem}; {exc.fix}") from None


def build(p: Params) -> Topology:
    t = Topology("bond_server", __doc__ or "")
    srv, cli, sw = t.add_host("srv"), t.add_host("cli"), t.add_switch("sw")
    t.add_link(cli, "eth0", sw, "p0")
    t.add_link(srv, "eth0", sw, "p1")
    t.add_link(srv, "eth1", sw, "p2")
    t.add_bond(srv, "bond0", ["eth0", "eth1"], mode=p.bond_mode, miimon=p.miimon,
               updelay=p.updelay, downdelay=p.downdelay)
    t.add_address(cli, "eth0", f"{SUBNET}.1/24")
    t.add_address(srv, "bond0", f"{SUBNET}.2/24")
    return t
