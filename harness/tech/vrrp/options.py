"""VRRP options as keepalived names them, checked before anything exists, and the timers
the protocol itself predicts from them.

Options carry keepalived's own names (keepalived.conf(5), ``vrrp_instance``): ``version``,
``advert_int``, ``priority``, ``preempt``/``nopreempt``, ``preempt_delay``,
``track_interface``, ``track_script``, ``use_vmac``, ``garp_master_delay``,
``garp_master_repeat``, ``garp_master_refresh``, ``unicast_peer``, ``virtual_router_id``,
``virtual_ipaddress``, ``interface``, ``state``.  :class:`VrrpOptions` checks every value
and every combination keepalived documents before anything exists, so a mistake is a
:class:`ConfigError` naming the option, not a warning in a daemon's log; the rendered
file is then put through keepalived's own check (:mod:`harness.tech.vrrp.config`).
"""

from __future__ import annotations

import ipaddress
import shutil
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from harness.errors import ConfigError
from harness.naming import IFNAMSIZ

# keepalived.conf(5) ranges: VRRPv3 carries the advert interval in centiseconds in 12 bits.
V3_ADVERT_MIN, V3_ADVERT_MAX = 0.01, 40.95
V2_ADVERT_MAX = 255

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IpInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


class TrackScript(BaseModel):
    """A ``vrrp_script``: a command run every ``interval`` s; ``weight`` 0 means FAULT after
    ``fall`` failures, else the priority moves by ``weight``."""

    model_config = ConfigDict(extra="forbid")

    script: str = Field(min_length=1)
    interval: int = Field(1, ge=1, le=4294)   # whole seconds in keepalived 2.2
    weight: int = Field(0, ge=-253, le=253)
    fall: int = Field(1, ge=1)
    rise: int = Field(1, ge=1)
    timeout: int | None = Field(None, ge=1)

    @field_validator("script")
    @classmethod
    def _program_exists(cls, value: str) -> str:
        program = value.split()[0]
        if shutil.which(program) is None:
            raise ValueError(f"program {program!r} is not found (an absolute path, or on PATH)")
        return value


class VirtualAddress(BaseModel):
    """One ``virtual_ipaddress`` line: ``192.0.2.254/24``, or ``198.51.100.254/24 dev eth1``
    for an address the instance moves on another interface (a gateway's upstream side).

    keepalived tracks the interface of an address given a ``dev`` (the instance goes FAULT
    when it loses carrier, seen with keepalived 2.2.7) unless the line says ``no_track``
    (keepalived.conf(5): the instance stays MASTER if the address goes).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: IpInterface
    dev: str | None = Field(None, min_length=1, max_length=IFNAMSIZ)
    no_track: bool = False

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        """``ADDRESS[/PREFIX] [dev NAME] [no_track]``, as keepalived.conf writes it."""
        if not isinstance(value, str | ipaddress.IPv4Interface | ipaddress.IPv6Interface):
            return value
        words = str(value).split()
        if not words:
            return {"address": ""}
        parsed: dict[str, Any] = {"address": words[0]}
        rest = words[1:]
        while rest:
            word = rest.pop(0)
            if word == "dev" and rest:
                parsed["dev"] = rest.pop(0)
            elif word == "no_track":
                parsed["no_track"] = True
            else:
                raise ValueError(f"{word!r} in {value!r}: RedLab takes ADDRESS/PREFIX"
                                 " [dev NAME] [no_track]")
        return parsed

    @property
    def ip(self) -> IpAddress:
        return self.address.ip

    @property
    def version(self) -> int:
        return self.address.version

    @property
    def text(self) -> str:
        """As keepalived.conf writes it."""
        return " ".join([self.address.with_prefixlen, *(["dev", self.dev] if self.dev else []),
                         *(["no_track"] if self.no_track else [])])


class VrrpOptions(BaseModel):
    """One ``vrrp_instance`` as keepalived names its options; defaults are keepalived's.

    Building one checks it: the constructor raises ConfigError, never anything else.
    """

    model_config = ConfigDict(extra="forbid")

    interface: str = Field(min_length=1, max_length=IFNAMSIZ)
    virtual_router_id: int = Field(ge=1, le=255)
    virtual_ipaddress: list[VirtualAddress] = Field(min_length=1)
    state: Literal["MASTER", "BACKUP"] = "BACKUP"
    priority: int = Field(100, ge=1, le=255)
    version: Literal[2, 3] = 2
    advert_int: float = 1.0
    preempt: bool | None = None        # None: keepalived's default, preempting
    nopreempt: bool | None = None      # keepalived's keyword; the inverse of preempt
    preempt_delay: float = Field(0.0, ge=0, le=1000)
    track_interface: list[str] = Field(default_factory=list)
    track_script: list[TrackScript] = Field(default_factory=list)
    use_vmac: bool = False
    garp_master_delay: int = Field(5, ge=0)
    garp_master_repeat: int = Field(5, ge=1)
    garp_master_refresh: int = Field(0, ge=0)
    unicast_peer: list[IpAddress] = Field(default_factory=list)  # empty: multicast

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "options"
            raise ConfigError(f"VRRP option {where}: {first['msg']}"
                              f" (given {first.get('input')!r})",
                              "see keepalived.conf(5), vrrp_instance") from None

    @field_validator("track_script", mode="before")
    @classmethod
    def _one_script(cls, value: Any) -> Any:
        """A single script (a command line or a mapping) is a list of one."""
        if isinstance(value, str):
            return [{"script": value}]
        return [value] if isinstance(value, dict) else value

    @field_validator("track_interface", "unicast_peer", "virtual_ipaddress", mode="before")
    @classmethod
    def _one_item(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _together(self) -> VrrpOptions:
        if self.preempt is not None and self.nopreempt is not None \
                and self.preempt == self.nopreempt:
            raise ConfigError(f"preempt={self.preempt} and nopreempt={self.nopreempt}"
                              " contradict each other", "give only one of them")
        nopreempt = bool(self.nopreempt) if self.nopreempt is not None \
            else self.preempt is False
        self.nopreempt, self.preempt = nopreempt, not nopreempt
        _check_advert_int(self.version, self.advert_int)
        families = {a.version for a in self.virtual_ipaddress}
        if len(families) > 1:
            raise ConfigError("virtual_ipaddress mixes IPv4 and IPv6",
                              "one vrrp_instance carries one address family: use two")
        family = families.pop()
        if family == 6 and self.version == 2:
            raise ConfigError("VRRP version 2 carries IPv4 only (RFC 3768)",
                              "use version 3 for IPv6 virtual addresses")
        _unique("virtual_ipaddress", [str(a.ip) for a in self.virtual_ipaddress])
        _unique("unicast_peer", [str(p) for p in self.unicast_peer])
        wrong = [str(p) for p in self.unicast_peer if p.version != family]
        if wrong:
            raise ConfigError(f"unicast_peer {', '.join(wrong)} is not of the virtual"
                              " addresses' family", "peers and virtual addresses: one family")
        if self.nopreempt and self.state == "MASTER":
            raise ConfigError("nopreempt needs initial state BACKUP (keepalived.conf(5))",
                              "set state BACKUP, or drop nopreempt")
        if self.nopreempt and self.priority == 255:
            raise ConfigError("nopreempt is incompatible with priority 255 (the address"
                              " owner always takes over)", "lower the priority below 255")
        if self.preempt_delay and self.state == "MASTER":
            raise ConfigError("preempt_delay needs initial state BACKUP (keepalived"
                              " clears it otherwise)", "set state BACKUP")
        if self.preempt_delay and self.nopreempt:
            raise ConfigError("preempt_delay with nopreempt: there is no preemption to"
                              " delay", "drop one of them")
        for name in self.track_interface:
            if not 0 < len(name) <= IFNAMSIZ:
                raise ConfigError(f"track_interface {name!r} is not an interface name",
                                  f"1 to {IFNAMSIZ} characters")
            if name == self.interface:
                raise ConfigError(f"track_interface {name} is the instance's own interface,"
                                  " which keepalived always tracks (and ignores here)",
                                  "track other interfaces, e.g. the uplink")
        _unique("track_interface", self.track_interface)
        if self.priority == 255 and any(s.weight for s in self.track_script):
            raise ConfigError("a track_script weight cannot move priority 255 (the address"
                              " owner's priority is fixed)", "use weight 0, or priority < 255")
        return self

    @property
    def advert_text(self) -> str:
        """advert_int as written in keepalived.conf."""
        if self.version == 2:
            return str(int(self.advert_int))
        return f"{self.advert_int:.2f}".rstrip("0").rstrip(".")

    @property
    def virtual_mac(self) -> str | None:
        """The MAC the master answers with: RFC 5798's 00:00:5e:00:01:VRID with use_vmac
        (IPv6: 00:00:5e:00:02:VRID), else None (the router's own MAC, kept fresh by GARP)."""
        if not self.use_vmac:
            return None
        kind = 1 if self.virtual_ipaddress[0].version == 4 else 2
        return f"00:00:5e:00:{kind:02x}:{self.virtual_router_id:02x}"


def router_sysctls(o: VrrpOptions) -> dict[str, str]:
    """Sysctls the router's namespace needs before keepalived starts.

    With use_vmac the virtual IP sits on a macvlan over ``interface``, and keepalived tunes
    the macvlan's ARP settings but not its parent's, whose Linux defaults leak the
    router's own MAC for the virtual IP: arp_ignore=0 answers ARP requests for it, and
    arp_announce=0 asks for a neighbour (the master replying from the virtual IP) with
    the virtual IP as sender, so the client's entry flips to the parent's MAC.  So the
    parent answers only for its own addresses (arp_ignore=1) and asks with its own
    (arp_announce=2), and the client keeps 00:00:5e:00:01:<VRID>.
    """
    if not o.use_vmac:
        return {}
    return {f"net.ipv4.conf.{o.interface}.arp_ignore": "1",
            f"net.ipv4.conf.{o.interface}.arp_announce": "2"}


def vrrp_options(options: dict[str, Any]) -> VrrpOptions:
    """Scenario parameters -> checked options (ConfigError names the bad one)."""
    return VrrpOptions(**options)


def _check_advert_int(version: int, value: float) -> None:
    if version == 2:
        if value != int(value) or not 1 <= value <= V2_ADVERT_MAX:
            raise ConfigError(f"advert_int {value:g} s with VRRP version 2: version 2 carries"
                              f" whole seconds, 1 to {V2_ADVERT_MAX} (RFC 3768)",
                              "use a whole number of seconds, or version 3 for down to 0.01 s")
        return
    centis = round(value * 100)
    if abs(value * 100 - centis) > 1e-6 or not V3_ADVERT_MIN <= value <= V3_ADVERT_MAX:
        raise ConfigError(f"advert_int {value:g} s with VRRP version 3: version 3 carries"
                          f" centiseconds, {V3_ADVERT_MIN} to {V3_ADVERT_MAX} s (RFC 5798)",
                          "use a multiple of 0.01 s in that range")


def _unique(option: str, values: list[str]) -> None:
    twice = sorted({v for v in values if values.count(v) > 1})
    if twice:
        raise ConfigError(f"{option} lists {', '.join(twice)} more than once",
                          "list each once")


# -- the protocol's own prediction ----------------------------------------------------------
def skew_time(priority: int, advert_int: float, version: int) -> float:
    """Skew_Time in seconds as keepalived computes it (µs integers, vrrp.h VRRP_TIMER_SKEW):
    v3 (RFC 5798) scales with the master's advert interval, v2 (RFC 3768) does not."""
    if version == 3:
        return ((256 - priority) * round(advert_int * 100) * 625 // 16) / 1e6
    return ((256 - priority) * 1_000_000 // 256) / 1e6


def master_down_interval(priority: int, advert_int: float, version: int) -> float:
    """How long a backup of ``priority`` waits after the master's last advert: 3 x
    advert_int + skew.  A master that dies sent its last advert up to one advert_int
    before, so the takeover comes between this minus advert_int and this."""
    return 3 * advert_int + skew_time(priority, advert_int, version)
