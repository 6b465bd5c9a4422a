"""Linux kernel bonds, created and read back through netlink (pyroute2) inside a namespace.

Options carry the kernel's names and values (Documentation/networking/bonding.rst):
``miimon=100``, ``lacp_rate=fast``, ``primary=eth0``. :func:`bond_settings` checks them
all and converts them to what netlink takes (enum names to numbers, a member name to its
ifindex) before anything exists; :func:`create_bond` then sets them one netlink request
at a time, so that a refusal names its option, and :func:`wait_ready` reads every one back.

Order matters to the kernel (6.1, seen inside User-mode Linux): mode and fail_over_mac
change only while the bond has no members (ENOTEMPTY), lacp_rate and ad_select only while
it is down (EBUSY); updelay and downdelay are kept in miimon periods, so they are set after
miimon, refused while miimon is 0 (EPERM, even a 0), and rounded down to a multiple of it;
the primary is reported only once it is a member, so it is set after enslaving. So: create
the bond with its mode, set each option while it is down and empty, enslave, set the
primary, bring it up.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from harness import timeouts
from harness.errors import ConfigError, LabError
from harness.topology.model import Bond

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


Kind = Literal["ms", "count", "enum", "targets", "member"]


@dataclass(frozen=True)
class Option:
    """One bond option: its netlink attribute, its value type, the modes that take it."""

    attr: str                            # IFLA_BOND_* in IFLA_INFO_DATA
    kind: Kind
    values: tuple[str, ...] = ()         # enum names in the kernel's numbering
    modes: tuple[str, ...] = BOND_MODES  # modes where it means something
    # Outside ``modes`` the kernel refuses it (EACCES), or else takes it and ignores it.
    refused_elsewhere: bool = True

    @property
    def keyword(self) -> str:
        """pyroute2's keyword for the attribute (IFLA_BOND_AD_SELECT -> bond_ad_select)."""
        return self.attr.removeprefix("IFLA_").lower()


# In the order they are set: miimon before the delays counted in its ticks.
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
    "lacp_rate": Option("IFLA_BOND_AD_LACP_RATE", "enum", ("slow", "fast"), ("802.3ad",)),
    "ad_select": Option("IFLA_BOND_AD_SELECT", "enum", ("stable", "bandwidth", "count"),
                        ("802.3ad",), refused_elsewhere=False),
}
# pyroute2's name for an option the kernel calls otherwise.
ALIASES = {"ad_lacp_rate": "lacp_rate"}
FIXES = {  # why the kernel answers a bond option with this errno
    errno.EACCES: "the kernel does not take this option in this mode",
    errno.EPERM: "the option needs another one first (updelay/downdelay need miimon > 0)",
    errno.EBUSY: "the option can only change while the bond is down",
    errno.ENOTEMPTY: "the option can only change while the bond has no members",
    errno.EINVAL: "the value is out of the kernel's range or conflicts with another option",
    errno.ENODEV: "the interface it names does not exist in the bond's namespace",
}


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
    wanted = {key: _value(name, key, OPTIONS[key], given[key], members)
              for key in OPTIONS if key in given}
    _check_together(name, mode, wanted)
    netlink = {key: netlink_value(OPTIONS[key], value) for key, value in wanted.items()
               # A new bond's delays are 0; the kernel refuses even 0 without miimon.
               if not (key in ("updelay", "downdelay") and value == 0)}
    return BondSettings(mode, wanted, netlink)


def _value(bond: str, key: str, opt: Option, value: Any, members: Sequence[str]) -> Any:
    def bad(why: str, fix: str) -> ConfigError:
        return ConfigError(f"bond {bond}: option {key}={value!r} {why}", fix)

    if opt.kind in ("ms", "count"):
        text = str(value).strip()
        if isinstance(value, bool) or not text.isdigit() or int(text) > INT_MAX:
            unit = "milliseconds" if opt.kind == "ms" else "a count"
            raise bad("is not a whole number", f"give {unit} from 0 to {INT_MAX}")
        return int(text)
    if opt.kind == "enum":
        return enum_value(key, value, bond)
    if opt.kind == "member":
        if value not in members:
            raise bad("is not a member of the bond", "name one of " + ", ".join(members))
        return value
    return parse_arp_targets(value, bond)


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
    return value  # ms, counts, target lists; a member name becomes an ifindex later


@dataclass(frozen=True)
class BondState:
    """What the kernel says about a bond, read back after every change."""

    name: str
    mode: str
    miimon: int
    updelay: int
    downdelay: int
    active_member: str | None
    members: dict[str, bool]  # member -> carrier
    options: dict[str, Any] = field(default_factory=dict)  # every OPTIONS key, kernel names
    # member -> state (active/backup), mii_status (up/down), link_failure_count, perm_hwaddr
    member_info: dict[str, dict[str, Any]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "mode": self.mode, "miimon": self.miimon,
                "updelay": self.updelay, "downdelay": self.downdelay,
                "active_member": self.active_member, "members": self.members,
                "options": self.options, "member_info": self.member_info}


def _index(ipr: IPRoute, ifname: str) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise LabError(f"interface {ifname!r} does not exist in the namespace",
                       "check the topology's link and bond member names")
    return found[0]


def create_bond(ipr: IPRoute, bond: Bond) -> BondSettings:
    """Create ``bond`` through ``ipr`` (a socket in the node's namespace) and enslave its
    members, leaving the bond and its members down; :func:`start_bond` brings them up.

    A lab builds every bond before it starts any: enslaving takes a member down, and
    when the other end of its cable is a running bond's member (two servers bonded to
    each other), that bond's MII monitor may catch the carrier loss and count a link
    failure that no scenario caused."""
    settings = bond_settings(bond.options, bond.members, bond.name)
    build_bond(ipr, bond.name, bond.members, settings)
    return settings


def start_bond(ipr: IPRoute, bond: Bond) -> None:
    """Bring ``bond``'s members and the bond up; :func:`wait_ready` then waits for it to
    settle and reads every option back."""
    for member in bond.members:
        ipr.link("set", index=_index(ipr, member), state="up")
    ipr.link("set", index=_index(ipr, bond.name), state="up")


def build_bond(ipr: IPRoute, name: str, members: Sequence[str],
               settings: BondSettings) -> None:
    """Apply ``settings`` as they are, members enslaved, all down: on a refusal the bond
    is deleted (its members released) and the error names the option."""
    _request(f"to create bond {name} in mode {settings.mode}", "mode", lambda: ipr.link(
        "add", ifname=name, kind="bond", bond_mode=mode_number(settings.mode)))
    master = _index(ipr, name)
    try:
        # Still down and empty: every option may change now, except the primary, which
        # the kernel reports only once it is a member.
        for key, value in settings.netlink.items():
            if key != "primary":
                _set(ipr, master, name, key, settings.wanted[key], value, settings.mode)
        for member in members:
            idx = _index(ipr, member)
            # The kernel refuses to enslave an interface that is up.
            ipr.link("set", index=idx, state="down")
            ipr.link("set", index=idx, master=master)
        if "primary" in settings.netlink:
            _set(ipr, master, name, "primary", settings.wanted["primary"],
                 _index(ipr, settings.wanted["primary"]), settings.mode)
    except BaseException:
        with contextlib.suppress(NetlinkError):  # deleting the bond releases its members
            ipr.link("del", index=master)
        raise


def _set(ipr: IPRoute, master: int, bond: str, key: str, asked: Any, value: Any,
         mode: str) -> None:
    keyword = OPTIONS[key].keyword
    _request(f"bond {bond} option {key}={asked} (mode {mode})", key,
             lambda: ipr.link("set", index=master, kind="bond", **{keyword: value}))


def _request(what: str, key: str, call: Callable[[], object]) -> None:
    try:
        call()
    except NetlinkError as exc:
        why = FIXES.get(exc.code, "")
        raise ConfigError(f"the kernel refused {what}: {exc}", (why + "; " if why else "")
                          + f"see {key} in Documentation/networking/bonding.rst") from exc


def check_read_back(settings: BondSettings, state: BondState) -> None:
    """Every option asked for, as the kernel reports it, or LabError naming each miss."""
    wrong = {k: (v, state.options.get(k)) for k, v in settings.wanted.items()
             if state.options.get(k) != v}
    if state.mode != settings.mode:
        wrong["mode"] = (settings.mode, state.mode)
    if wrong:
        detail = ", ".join(f"{k}: asked {a}, kernel has {b}" for k, (a, b) in wrong.items())
        raise LabError(f"bond {state.name} does not hold the requested options ({detail})",
                       "the kernel adjusted an option: read bonding.rst for its constraints")


def read_bond(ipr: IPRoute, name: str) -> BondState:
    master = _index(ipr, name)
    links = {link["index"]: link for link in ipr.get_links()}
    data = links[master].get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA")
    if data is None:
        raise LabError(f"{name} is not a bond (no bonding data from the kernel)",
                       "the kernel lacks bonding: run with --lab uml")
    slaves = [m for m in links.values() if m.get("IFLA_MASTER") == master]
    names = {idx: link.get("IFLA_IFNAME") for idx, link in links.items()}
    options = read_options(data, names)
    active_idx = data.get("IFLA_BOND_ACTIVE_SLAVE")
    return BondState(
        name=name,
        mode=BOND_MODES[data.get("IFLA_BOND_MODE")],
        miimon=options["miimon"],
        updelay=options["updelay"],
        downdelay=options["downdelay"],
        active_member=names.get(active_idx) if active_idx else None,
        members={m.get("IFLA_IFNAME"): m.get("IFLA_CARRIER") == 1 for m in slaves},
        options=options,
        member_info={m.get("IFLA_IFNAME"): _member_info(m) for m in slaves},
    )


def read_options(data: Any, names: Mapping[int, str]) -> dict[str, Any]:
    """Every option of OPTIONS from a bond's IFLA_INFO_DATA, named as the kernel names it."""
    options: dict[str, Any] = {}
    for key, opt in OPTIONS.items():
        raw = data.get(opt.attr)
        if opt.kind == "enum":
            value: Any = opt.values[raw] if raw is not None and raw < len(opt.values) else raw
        elif opt.kind == "targets":  # absent when there are none
            value = [_target(cell) for cell in raw or ()]
        elif opt.kind == "member":  # absent until the primary is a member
            value = names.get(raw) if raw else None
        else:
            value = raw
        options[key] = value
    return options


def _target(cell: Any) -> str:
    return str(cell.get_value() if hasattr(cell, "get_value") else cell)


SLAVE_STATES = ("active", "backup")
MII_STATUS = ("up", "fail", "down", "back")  # BOND_LINK_UP, _FAIL, _DOWN, _BACK


def _member_info(link: Any) -> dict[str, Any]:
    data = link.get_nested("IFLA_LINKINFO", "IFLA_INFO_SLAVE_DATA")
    if data is None:
        return {}
    state, mii = data.get("IFLA_BOND_SLAVE_STATE"), data.get("IFLA_BOND_SLAVE_MII_STATUS")
    return {
        "state": SLAVE_STATES[state] if state is not None and state < 2 else state,
        "mii_status": MII_STATUS[mii] if mii is not None and mii < 4 else mii,
        "link_failure_count": data.get("IFLA_BOND_SLAVE_LINK_FAILURE_COUNT"),
        "perm_hwaddr": data.get("IFLA_BOND_SLAVE_PERM_HWADDR"),
    }


def active_member(ipr: IPRoute, name: str) -> str | None:
    """Only the active member: one link query, cheap enough to poll every few ms."""
    link = ipr.get_links(_index(ipr, name))[0]
    data = link.get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA")
    active_idx = data.get("IFLA_BOND_ACTIVE_SLAVE") if data is not None else None
    return ipr.get_links(active_idx)[0].get("IFLA_IFNAME") if active_idx else None


def status_text(pid: int, name: str) -> str:
    """The bonding driver's status file of bond ``name`` in the namespace of ``pid``.

    ``/proc/<pid>/net`` shows the network namespace of ``pid``. Reading it costs about
    0.3 ms inside User-mode Linux against 5 ms for a pyroute2 request, so a watcher
    polling every few ms reads this and does not starve the lab it watches.
    """
    return Path(f"/proc/{pid}/net/bonding/{name}").read_text()


def active_member_in(text: str) -> str | None:
    """The active member named in a status file; None in modes without one (802.3ad,
    balance-*)."""
    for line in text.splitlines():
        if line.startswith("Currently Active Slave:"):
            value = line.partition(":")[2].strip()
            return None if value == "None" else value
    return None


def wait_ready(ipr: IPRoute, name: str, settings: BondSettings) -> BondState:
    """Every member has carrier, the MII monitor has settled and, where the mode has one,
    an active member is chosen; the state then, checked against ``settings``.

    Settled means no member is still in a delay (``back`` during updelay, ``fail`` during
    downdelay): until then the kernel may still change its active member (a primary in
    updelay takes over when the delay ends), so a state read earlier is not the one the
    trial runs with. The ARP monitor validates backups only as replies come, so there
    only the active member counts. An updelay asked for lengthens the wait.
    """

    def ready() -> BondState | None:
        state = read_bond(ipr, name)
        if not (state.members and all(state.members.values())):
            return None
        if state.mode in ACTIVE_MODES and not state.active_member:
            return None
        if state.miimon and any(info.get("mii_status") != "up"
                                for info in state.member_info.values()):
            return None
        return state

    budget = timeouts.BOND_MEMBERS_UP + settings.wanted.get("updelay", 0) / 1000
    state = timeouts.wait_for(f"bond {name} members up and settled", ready, budget)
    check_read_back(settings, state)
    return state
