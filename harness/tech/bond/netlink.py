"""Kernel bonds created, started and read back through netlink (pyroute2) inside a namespace.

:func:`create_bond` sets a bond's checked options (:class:`BondSettings`, from
:mod:`harness.tech.bond.options`) in the request that creates it and, if the kernel
refuses, one request at a time, so that the refusal names its option; :func:`wait_ready`
reads every one back.

Order matters to the kernel (6.1, seen inside User-mode Linux): mode and fail_over_mac
change only while the bond has no members (ENOTEMPTY), lacp_rate and ad_select only while
it is down (EBUSY); updelay and downdelay are kept in miimon periods, so they are set after
miimon, refused while miimon is 0 (EPERM, even a 0), and rounded down to a multiple of it;
the primary is reported only once it is a member, so it is set after enslaving. So: create
the bond with its mode and options (down and empty), enslave, set the primary, bring it
up.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from harness import timeouts
from harness.errors import ConfigError, LabError
from harness.tech.bond.options import (
    ACTIVE_MODES,
    BOND_MODES,
    OPTIONS,
    BondSettings,
    mode_number,
)
from harness.topology.model import Bond

FIXES = {  # why the kernel answers a bond option with this errno
    errno.EACCES: "the kernel does not take this option in this mode",
    errno.EPERM: "the option needs another one first (updelay/downdelay need miimon > 0)",
    errno.EBUSY: "the option can only change while the bond is down",
    errno.ENOTEMPTY: "the option can only change while the bond has no members",
    errno.EINVAL: "the value is out of the kernel's range or conflicts with another option",
    errno.ENODEV: "the interface it names does not exist in the bond's namespace",
}


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


def ifindex(ipr: IPRoute, ifname: str) -> int:
    found = ipr.link_lookup(ifname=ifname)
    if not found:
        raise _no_such_interface(ifname)
    return found[0]


def _no_such_interface(ifname: str) -> LabError:
    return LabError(f"interface {ifname!r} does not exist in the namespace",
                    "check the topology's link and bond member names")


def create_bond(ipr: IPRoute, bond: Bond) -> None:
    """Create ``bond`` through ``ipr`` (a socket in the node's namespace) and enslave its
    members, leaving the bond and its members down; :func:`start_bond` brings them up.

    A lab builds every bond before it starts any: enslaving takes a member down, and
    when the other end of its cable is a running bond's member (two servers bonded to
    each other), that bond's MII monitor may catch the carrier loss and count a link
    failure that no scenario caused."""
    build_bond(ipr, bond.name, bond.members, bond.settings, bond.first_port)


def start_bond(ipr: IPRoute, bond: Bond) -> None:
    """Bring ``bond``'s members and the bond up; :func:`wait_ready` then waits for it to
    settle and reads every option back."""
    for name in (*bond.members, bond.name):
        set_link(ipr, name, state="up")


def set_link(ipr: IPRoute, ifname: str, **attrs: Any) -> None:
    """One request that names the interface for the kernel to look up, where a lookup then
    a request made two: a netlink request costs milliseconds inside User-mode Linux, and
    a lab of 64 dual-homed servers sets its 196 bonds' members one by one."""
    try:
        ipr.link("set", ifname=ifname, **attrs)
    except NetlinkError as exc:
        if exc.code == errno.ENODEV:
            raise _no_such_interface(ifname) from exc
        raise


def build_bond(ipr: IPRoute, name: str, members: Sequence[str],
               settings: BondSettings, first_port: int = 1) -> None:
    """Apply ``settings`` as they are, members enslaved, all down: on a refusal the bond
    is deleted (its members released) and the error names the option.

    802.3ad numbers ports in enslave order (the first member 1, then the last one's + 1)
    and keeps the number when an earlier member leaves: ``first_port`` > 1 enslaves
    that many minus one placeholder veths first and deletes them once the members are in.
    """
    # Every option but the primary (reported only once it is a member) in the request
    # that creates the bond, as `ip link add ... type bond mode ... miimon ...` does: a
    # netlink request costs milliseconds inside User-mode Linux, and a lab of 64 servers
    # builds 196 bonds.  If the kernel refuses, nothing was created, and the bond is
    # made again in steps, the options one at a time, so the refused one is named.
    options = {k: v for k, v in settings.netlink.items() if k != "primary"}
    keywords = {OPTIONS[k].keyword: v for k, v in options.items()}
    try:
        ipr.link("add", ifname=name, kind="bond", bond_mode=mode_number(settings.mode),
                 **keywords)
        in_steps = False
    except NetlinkError:
        _request(f"to create bond {name} in mode {settings.mode}", "mode", lambda: ipr.link(
            "add", ifname=name, kind="bond", bond_mode=mode_number(settings.mode)))
        in_steps = True
    master = ifindex(ipr, name)
    try:
        if in_steps:  # still down and empty: each option may change now
            for key, value in options.items():
                _set(ipr, master, name, key, settings.wanted[key], value, settings.mode)
        placeholders = [f"{name[:8]}ph{i}" for i in range(first_port - 1)]
        for placeholder in placeholders:
            ipr.link("add", ifname=placeholder, kind="veth", peer=placeholder + "p")
        for member in [*placeholders, *members]:
            # The kernel refuses to enslave an interface that is up.
            set_link(ipr, member, state="down")
            set_link(ipr, member, master=master)
        for placeholder in placeholders:  # the veth's peer goes with it
            ipr.link("del", ifname=placeholder)
        if "primary" in settings.netlink:
            _set(ipr, master, name, "primary", settings.wanted["primary"],
                 ifindex(ipr, settings.wanted["primary"]), settings.mode)
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
    try:  # one request by name, not a lookup then a get
        link = ipr.link("get", ifname=name)[0]
    except NetlinkError as exc:
        raise _no_such_interface(name) from exc
    master = link["index"]
    data = link.get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA")
    if data is None:
        raise LabError(f"{name} is not a bond (no bonding data from the kernel)",
                       "the kernel lacks bonding: run with --lab uml")
    slaves = members_of(ipr, master)
    names = {link["index"]: link.get("IFLA_IFNAME") for link in slaves}
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


def members_of(ipr: IPRoute, master: int) -> list[Any]:
    """The links enslaved to ``master``, from a dump the kernel filters by IFLA_MASTER
    (``ip link show master``; no client-side filter, ``dump_filter={}``): a leaf of 64
    dual-homed servers has 200 links, and parsing them all for each of its bonds made
    reading every bond quadratic. Checked again here, whatever the kernel did."""
    return [link for link in ipr.link("dump", master=master, dump_filter={})
            if link.get("IFLA_MASTER") == master]


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
        elif opt.kind == "mac":
            value = str(raw).lower() if raw else None
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
    try:
        link = ipr.link("get", ifname=name)[0]
    except NetlinkError as exc:
        raise _no_such_interface(name) from exc
    data = link.get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA")
    active_idx = data.get("IFLA_BOND_ACTIVE_SLAVE") if data is not None else None
    return ipr.get_links(active_idx)[0].get("IFLA_IFNAME") if active_idx else None


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
