"""A server dual-homed to one switch through a two-NIC kernel bond, and a client.

              cli  198.51.100.1/24   (the ARP monitor's target when arp_interval is set)
               | eth0
               | p0
          +---------+
          |   sw    |   Linux bridge: a learning switch that never forwards LACPDUs, so
          +---------+   modes 0-3, 5, 6 work; 802.3ad runs but finds no LACP partner
            p1    p2
            |      |
          eth0   eth1
          [  bond0  ]   198.51.100.2/24
              srv

The bond lives in the server's namespace and is configured through netlink. The default
is mode 1 (active-backup) with MII monitoring every 100 ms. Every other kernel bond option
is a parameter named as in bonding.rst (``primary=eth1``, ``lacp_rate=fast``,
``arp_ip_target=198.51.100.1``); left unset, the kernel's default stands. Setting
``arp_interval`` without ``miimon`` turns MII monitoring off: the kernel runs one monitor.
"""

from __future__ import annotations

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from harness.errors import ConfigError
from harness.tech import bond as bonds
from harness.topology.model import Topology

SUBNET = "198.51.100"  # TEST-NET-2: documentation addresses, never routed
MEMBERS = ["eth0", "eth1"]
# Parameters passed to the bond under the kernel's name; bond_mode is the bond's "mode".
BOND_OPTIONS = tuple(bonds.OPTIONS)


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bond_mode: str = "active-backup"
    miimon: int = Field(100, ge=0, description="MII link check period, ms (0: off)")
    updelay: int = Field(0, ge=0, description="ms a member must stay up before use")
    downdelay: int = Field(0, ge=0, description="ms a member must stay down before failover")
    arp_interval: int | None = Field(None, ge=0, description="ARP link check period, ms")
    arp_ip_target: list[str] | None = Field(None, description="addresses the ARP monitor asks")
    arp_validate: str | None = None      # none, active, backup, all, filter, ...
    primary: str | None = None           # a member, preferred while it is up
    primary_reselect: str | None = None  # always, better, failure
    fail_over_mac: str | None = None     # none, active, follow
    lacp_rate: str | None = None         # slow, fast (802.3ad)
    xmit_hash_policy: str | None = None  # layer2, layer3+4, layer2+3, encap2+3, ...
    min_links: int | None = Field(None, ge=0, description="members up before carrier")
    ad_select: str | None = None         # stable, bandwidth, count (802.3ad)

    @field_validator("bond_mode", mode="before")
    @classmethod
    def _known_mode(cls, value: object) -> str:
        try:
            return bonds.mode_name(value)  # type: ignore[arg-type]
        except ConfigError as exc:
            raise ValueError(f"{exc.problem}; {exc.fix}") from None

    @field_validator(*(k for k, o in bonds.OPTIONS.items() if o.kind == "enum"))
    @classmethod
    def _kernel_name(cls, value: str | None, info: ValidationInfo) -> str | None:
        # lacp_rate=1 is stored as the kernel names it: fast.
        try:
            return bonds.enum_value(info.field_name, value) if value is not None else None
        except ConfigError as exc:
            raise ValueError(f"{exc.problem}; {exc.fix}") from None

    @field_validator("arp_ip_target", mode="before")
    @classmethod
    def _targets(cls, value: object) -> object:
        # --param arp_ip_target=198.51.100.1,198.51.100.3 arrives as one string.
        try:
            return bonds.parse_arp_targets(value) if value is not None else None  # type: ignore[arg-type]
        except ConfigError as exc:
            raise ValueError(f"{exc.problem}; {exc.fix}") from None

    @model_validator(mode="after")
    def _one_link_monitor(self) -> Params:
        if self.arp_interval and "miimon" not in self.model_fields_set:
            self.miimon = 0
        return self

    @model_serializer(mode="wrap")
    def _asked_only(self, handler: SerializerFunctionWrapHandler) -> dict[str, object]:
        # Unset options are the kernel's defaults; the bond state read back records them.
        return {k: v for k, v in handler(self).items() if v is not None}


def build(p: Params) -> Topology:
    t = Topology("bond_server", __doc__ or "")
    srv, cli, sw = t.add_host("srv"), t.add_host("cli"), t.add_switch("sw")
    t.add_link(cli, "eth0", sw, "p0")
    t.add_link(srv, "eth0", sw, "p1")
    t.add_link(srv, "eth1", sw, "p2")
    options = {key: getattr(p, key) for key in BOND_OPTIONS if getattr(p, key) is not None}
    options["mode"] = p.bond_mode
    # Every option checked here, before anything exists, with what the kernel would say.
    bonds.bond_settings(options, MEMBERS, "srv:bond0")
    t.add_bond(srv, "bond0", MEMBERS, **options)
    t.add_address(cli, "eth0", f"{SUBNET}.1/24")
    t.add_address(srv, "bond0", f"{SUBNET}.2/24")
    return t
