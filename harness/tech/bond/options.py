"""The kernel bond option vocabulary (Documentation/networking/bonding.rst), checked.

Options carry the kernel's names and values: ``miimon=100``, ``lacp_rate=fast``,
``primary=eth0``. :data:`OPTIONS` is the one definition of them (netlink attribute, value
kind and range, the modes that take them); :func:`bond_settings` checks a bond's options
against it and against each other, and converts them to what netlink takes (enum names to
numbers) before anything exists. Topology parameters derive from the same table
(:mod:`harness.tech.bond.params`), and :mod:`harness.tech.bond.netlink` sets them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from harness.errors import ConfigError

# The kernel's own names, in mode-number order.
BOND_MODES = ("balance-rr", "active-backup", "balance-xor", "broadcast", "802.3ad",
              "balance-tlb", "balance-alb")
DEFAULT_MODE = "active-backup"
# Modes with one active member (the only ones where a primary means anything).
ACTIVE_MODES = ("active-backup", "balance-tlb", "balance-alb")
# Modes that can use the ARP monitor; the others need MII monitoring.
ARP_MODES = ("balance-rr", "active-backup", "balance-xor", "broadcast")
MAX_ARP_TARGETS = 16      # BOND_MAX_ARP_TARGETS
INT_MAX = 2**31 - 1       # the kernel keeps times and counts in an int


def mode_number(mode: str | int) -> int:
    """Accept a mode name or number as the kernel does; anything else is a clear error."""
    text = str(mode).strip().lower()
    if text.isdigit() and int(text) < len(BOND_MODES):
        return int(text)
    if text in BOND_MODES:
        return BOND_MODES.index(text)
    raise ConfigError(f"unknown bond mode {mode!r}",
                      "use one of " + ", ".join(f"{n} ({i})" for i, n in enumerate(BOND_MODES)))


def mode_name(mode: str | int) -> str:
    return BOND_MODES[mode_number(mode)]


Kind = Literal["ms", "count", "enum", "targets", "member", "mac"]


@dataclass(frozen=True)
class Option:
    """One bond option: its netlink attribute, its value type, the modes that take it."""

    attr: str                            # IFLA_BOND_* in IFLA_INFO_DATA
    kind: Kind
    values: tuple[str, ...] = ()         # enum names in the kernel's numbering
    modes: tuple[str, ...] = BOND_MODES  # modes where it means something
    # Outside ``modes`` the kernel refuses it (EACCES), or else takes it and ignores it.
    refused_elsewhere: bool = True
    # The kernel's own range where it is narrower than an int's (bond_options.c tables).
    span: tuple[int, int] | None = None

    @property
    def keyword(self) -> str:
        """pyroute2's keyword for the attribute (IFLA_BOND_AD_SELECT -> bond_ad_select)."""
        return self.attr.removeprefix("IFLA_").lower()

    @property
    def limits(self) -> tuple[int, int] | None:
        """The smallest and largest whole number the kernel holds (times and counts)."""
        if self.kind not in ("ms", "count"):
            return None
        return self.span or (0, INT_MAX)


# In the order they are set: miimon before the delays counted in its ticks (see
# harness.tech.bond.netlink for the order the kernel needs).
OPTIONS: dict[str, Option] = {
    "miimon": Option("IFLA_BOND_MIIMON", "ms"),
    "updelay": Option("IFLA_BOND_UPDELAY", "ms"),
    "downdelay": Option("IFLA_BOND_DOWNDELAY", "ms"),
    "arp_interval": Option("IFLA_BOND_ARP_INTERVAL", "ms", modes=ARP_MODES),
    "arp_ip_target": Option("IFLA_BOND_ARP_IP_TARGET", "targets"),
    "arp_validate": Option("IFLA_BOND_ARP_VALIDATE", "enum",
                           ("none", "active", "backup", "all", "filter", "filter_active",
                            "filter_backup"), ARP_MODES),
    "primary": Option("IFLA_BOND_PRIMARY", "member", modes=ACTIVE_MODES),
    "primary_reselect": Option("IFLA_BOND_PRIMARY_RESELECT", "enum",
                               ("always", "better", "failure")),
    "fail_over_mac": Option("IFLA_BOND_FAIL_OVER_MAC", "enum", ("none", "active", "follow")),
    "xmit_hash_policy": Option("IFLA_BOND_XMIT_HASH_POLICY", "enum",
                               ("layer2", "layer3+4", "layer2+3", "encap2+3", "encap3+4",
                                "vlan+srcmac")),
    "min_links": Option("IFLA_BOND_MIN_LINKS", "count"),
    # balance-tlb (and -alb): 1 rebalances flows by load, 0 hashes them by
    # xmit_hash_policy (Windows' Dynamic and Address Hash: harness.tech.bond.windows)
    "tlb_dynamic_lb": Option("IFLA_BOND_TLB_DYNAMIC_LB", "count",
                             modes=("balance-tlb", "balance-alb"), span=(0, 1)),
    "lacp_rate": Option("IFLA_BOND_AD_LACP_RATE", "enum", ("slow", "fast"), ("802.3ad",)),
    "ad_select": Option("IFLA_BOND_AD_SELECT", "enum", ("stable", "bandwidth", "count"),
                        ("802.3ad",), refused_elsewhere=False),
    # What an MC-LAG pair's two switches share so that a server sees one partner: the
    # LACP system id (a MAC; changeable on a running bond), its priority and the upper
    # ten bits of the key (only while the bond is down).
    "ad_actor_system": Option("IFLA_BOND_AD_ACTOR_SYSTEM", "mac", modes=("802.3ad",)),
    "ad_actor_sys_prio": Option("IFLA_BOND_AD_ACTOR_SYS_PRIO", "count", modes=("802.3ad",),
                                span=(1, 65535)),
    "ad_user_port_key": Option("IFLA_BOND_AD_USER_PORT_KEY", "count", modes=("802.3ad",),
                               span=(0, 1023)),
}
# pyroute2's name for an option the kernel calls otherwise.
ALIASES = {"ad_lacp_rate": "lacp_rate"}


@dataclass(frozen=True)
class BondSettings:
    """Checked options of one bond: what to ask the kernel, and what to read back."""

    mode: str
    wanted: dict[str, Any] = field(default_factory=dict)   # option -> value as the kernel names it
    netlink: dict[str, Any] = field(default_factory=dict)  # option -> value netlink takes


def bond_settings(options: Mapping[str, Any], members: Sequence[str],
                  name: str = "bond") -> BondSettings:
    """Check ``options`` (kernel names; ``mode`` among them) against each other and the
    kernel's rules, or raise ConfigError naming the option. Nothing is touched."""
    given = {ALIASES.get(k, k): v for k, v in options.items() if v is not None}
    mode = mode_name(given.pop("mode", DEFAULT_MODE))
    unknown = sorted(set(given) - set(OPTIONS))
    if unknown:
        raise ConfigError(f"bond {name}: unknown option(s) {', '.join(unknown)}",
                          "known options: mode, " + ", ".join(OPTIONS))
    wanted = {key: option_value(key, given[key], members, name)
              for key in OPTIONS if key in given}
    _check_together(name, mode, wanted)
    netlink = {key: netlink_value(OPTIONS[key], value) for key, value in wanted.items()
               # A new bond's delays are 0; the kernel refuses even 0 without miimon.
               if not (key in ("updelay", "downdelay") and value == 0)}
    return BondSettings(mode, wanted, netlink)


def option_value(key: str, value: Any, members: Sequence[str] | None = None,
                 bond: str = "") -> Any:
    """``value`` of option ``key`` as the kernel names it, or ConfigError saying why not.

    ``members``: the bond's members, which a primary must be one of (None: not known yet,
    so any interface name passes)."""
    opt = OPTIONS[key]

    def bad(why: str, fix: str) -> ConfigError:
        return ConfigError(f"{_bond(bond)}option {key}={value!r} {why}", fix)

    if opt.limits is not None:
        low, high = opt.limits
        text = str(value).strip()
        if isinstance(value, bool) or not text.isdigit() or not low <= int(text) <= high:
            unit = "milliseconds" if opt.kind == "ms" else "a count"
            raise bad("is not a whole number", f"give {unit} from {low} to {high}")
        return int(text)
    if opt.kind == "enum":
        return enum_value(key, value, bond)
    if opt.kind == "member":
        if members is not None and value not in members:
            raise bad("is not a member of the bond", "name one of " + ", ".join(members))
        return value
    if opt.kind == "mac":
        try:
            return unicast_mac(value)
        except ValueError as exc:
            raise bad(str(exc), "give a unicast MAC such as 02:00:5e:10:00:01 (a locally"
                      " administered one: first octet 02)") from None
    return parse_arp_targets(value, bond)


MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")


def unicast_mac(value: Any) -> str:
    """``value`` as a lower-case MAC that may identify a system (the kernel's
    is_valid_ether_addr: not multicast, not all zeros), or ValueError saying why not."""
    text = str(value).strip().lower().replace("-", ":")
    if not MAC.fullmatch(text):
        raise ValueError("is not a MAC address (six hex octets, colon-separated)")
    if int(text[:2], 16) & 1:
        raise ValueError("is a multicast MAC (the first octet's low bit is set)")
    if text == "00:00:00:00:00:00":
        raise ValueError("is the all-zeros MAC")
    return text


def enum_value(key: str, value: Any, bond: str = "") -> str:
    """The kernel's name for ``value`` of enum option ``key``, given by name or number."""
    names = OPTIONS[key].values
    text = str(value).strip().lower()
    if text.isdigit() and int(text) < len(names):
        return names[int(text)]
    if text in names:
        return text
    raise ConfigError(f"{_bond(bond)}option {key}={value!r} is not a value the kernel knows",
                      "use one of " + ", ".join(f"{v} ({i})" for i, v in enumerate(names)))


def _bond(name: str) -> str:
    return f"bond {name}: " if name else ""


def parse_arp_targets(value: str | Sequence[str], bond: str = "") -> list[str]:
    """IPv4 unicast addresses, given as a list or one string split at commas or spaces."""
    words = re.split(r"[,\s]+", value.strip()) if isinstance(value, str) else list(value)
    words = [str(w).strip() for w in words if str(w).strip()]
    targets: list[str] = []
    for word in words:
        try:
            address = ipaddress.IPv4Address(word)
        except ValueError:
            address = None
        if address is None or address.is_multicast or address.is_unspecified or (
                address == ipaddress.IPv4Address("255.255.255.255")):
            raise ConfigError(f"{_bond(bond)}arp_ip_target {word!r} is not an IPv4 unicast"
                              " address", "give addresses such as 198.51.100.1, separated"
                              " by commas")
        if str(address) in targets:
            raise ConfigError(f"{_bond(bond)}arp_ip_target {word} is given twice",
                              "list each target once")
        targets.append(str(address))
    if len(targets) > MAX_ARP_TARGETS:
        raise ConfigError(f"{_bond(bond)}{len(targets)} arp_ip_target addresses",
                          f"the kernel takes at most {MAX_ARP_TARGETS}")
    return targets


def _check_together(bond: str, mode: str, wanted: dict[str, Any]) -> None:
    for key, value in wanted.items():
        opt = OPTIONS[key]
        if mode not in opt.modes:
            kernel = "refuses it" if opt.refused_elsewhere else "ignores it"
            raise ConfigError(f"bond {bond}: option {key}={value} does not apply to mode"
                              f" {mode} (the kernel {kernel})", f"{key} works only in mode(s) "
                              + ", ".join(opt.modes) + "; drop it or change the mode")
    miimon, arp = wanted.get("miimon"), wanted.get("arp_interval", 0)
    if miimon and arp:
        raise ConfigError(f"bond {bond}: miimon={miimon} and arp_interval={arp} are both"
                          " set", "the kernel runs one link monitor: set the other to 0")
    if arp and not wanted.get("arp_ip_target"):
        raise ConfigError(f"bond {bond}: arp_interval={arp} without arp_ip_target",
                          "name the addresses the ARP monitor should ask for")
    if wanted.get("arp_validate", "none") != "none" and not arp:
        raise ConfigError(f"bond {bond}: arp_validate={wanted['arp_validate']} without ARP"
                          " monitoring", "set arp_interval (and miimon=0) or drop"
                          " arp_validate")
    for key in ("updelay", "downdelay"):
        delay = wanted.get(key, 0)
        if not delay:
            continue
        if not miimon:
            raise ConfigError(f"bond {bond}: {key}={delay} without MII monitoring",
                              f"the kernel counts {key} in miimon periods: set miimon > 0")
        if delay % miimon:
            lower, upper = delay - delay % miimon, delay - delay % miimon + miimon
            raise ConfigError(f"bond {bond}: {key}={delay} is not a multiple of"
                              f" miimon={miimon}", f"the kernel would round it down to"
                              f" {lower}; ask for {lower} or {upper}")


def netlink_value(opt: Option, value: Any) -> Any:
    """``value`` (checked, as the kernel names it) as netlink carries it."""
    if opt.kind == "enum":
        return opt.values.index(value)
    if opt.kind == "mac":  # six bytes (pyroute2 would send the text itself)
        return bytes.fromhex(value.replace(":", ""))
    return value  # ms, counts, target lists; a member name becomes an ifindex later
