"""Open vSwitch: bridges and LAGs (OVS bonds), configured with ovs-vsctl, read back.

The daemons: inside User-mode Linux the guest's init starts ovsdb-server and
ovs-vswitchd with ``ovs-ctl`` before the harness runs (``GuestSpec.start_ovs``); on a
native host :func:`ensure_daemons` starts them the same way when they are not running
and journals that, so the run that started them stops them (``ovs-ctl stop``).  A host whose
openvswitch-switch service already runs keeps it: the harness then only adds and
removes its own bridges.

Options of a LAG follow ovs-vswitchd.conf.db(5): ``bond_mode`` (active-backup,
balance-slb, balance-tcp), ``lacp`` (active, passive, off), ``other_config:lacp-time``
(fast, slow), ``other_config:bond-detect-mode`` (carrier, miimon) with
``bond-miimon-interval``, ``bond_updelay``/``bond_downdelay`` (ms) and
``other_config:lacp-fallback-ab`` and ``other_config:bond-primary`` (``primary``: the
member made active while it is up, in active-backup).  Every one is read back from the
database after set-up, and what ovs-vswitchd runs (``ovs-appctl bond/show``) must match
them.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness import timeouts
from harness.errors import ConfigError, LabError
from harness.journal import Journal
from harness.tech.lacp import ovs as lacp
from harness.tech.ovs import ctl as ovs_ctl

log = logging.getLogger(__name__)

OVS_CTL = Path("/usr/share/openvswitch/scripts/ovs-ctl")

# The LAG vocabulary, defined once: LagOptions (so lag_options) checks against these
# types, and topology parameters are declared with them.
LagMode = Literal["active-backup", "balance-slb", "balance-tcp"]
LacpMode = Literal["active", "passive", "off"]
LacpTime = Literal["fast", "slow"]
DetectMode = Literal["carrier", "miimon"]
Milliseconds = Annotated[int, Field(ge=0)]
# ovs-vswitchd takes an interval of 0 as "unset" and polls every 200 ms instead.
MiimonInterval = Annotated[int, Field(ge=1)]


class LagOptions(BaseModel):
    """A LAG's options under the harness's names (see above), with the harness's defaults.

    Strict: the topology that declares a LAG has converted its parameters already, so a
    string where a number or a bool belongs is a mistake in that topology."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    bond_mode: LagMode = "balance-tcp"
    lacp: LacpMode = "active"
    lacp_time: LacpTime = "fast"
    bond_detect_mode: DetectMode = "carrier"
    miimon_interval: MiimonInterval = 100
    updelay: Milliseconds = 0
    downdelay: Milliseconds = 0
    lacp_fallback_ab: bool = False
    primary: Annotated[str, Field(min_length=1)] | None = None  # a port's name


LAG_OPTIONS = tuple(LagOptions.model_fields)
LAG_DEFAULTS: dict[str, Any] = LagOptions().model_dump()


def lag_options(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` checked and completed with defaults, or a ConfigError naming the bad one."""
    unknown = sorted(set(options) - set(LAG_OPTIONS))
    if unknown:
        raise ConfigError(f"unknown Open vSwitch LAG option(s) {', '.join(unknown)}",
                          f"use: {', '.join(LAG_OPTIONS)}")
    try:
        merged = LagOptions.model_validate(options).model_dump()
    except ValidationError as exc:
        raise _lag_error(exc.errors()[0]) from None
    if merged["bond_mode"] == "balance-tcp" and merged["lacp"] == "off":
        raise ConfigError("bond_mode balance-tcp needs LACP (ovs-vswitchd.conf.db(5))",
                          "set lacp to active or passive, or use balance-slb/active-backup")
    return merged


def _lag_error(error: Any) -> ConfigError:
    """One pydantic error about a LAG option, said with the option's allowed values."""
    key, value = str(error["loc"][0]), error["input"]
    field = LagOptions.model_fields[key]
    if get_origin(field.annotation) is Literal:
        return ConfigError(f"Open vSwitch LAG option {key}={value!r} is not valid",
                           f"use one of: {', '.join(get_args(field.annotation))}")
    if field.annotation is bool:
        return ConfigError(f"{key}={value!r} is not true or false", "use true or false")
    if field.annotation is int:
        low = next(m.ge for m in field.metadata if hasattr(m, "ge"))
        return ConfigError(f"Open vSwitch LAG option {key}={value!r} is not a number of"
                           " milliseconds", f"use a whole number >= {low}")
    return ConfigError(f"{key}={value!r} is not a member's name", "name one of the LAG's ports")


def _database_settings(o: dict[str, Any]) -> dict[str, str]:
    """The Port columns ``o`` maps to, as ovs-vsctl ``column=value`` words."""
    return {
        "bond_mode": o["bond_mode"],
        "lacp": o["lacp"],
        "bond_updelay": str(o["updelay"]),
        "bond_downdelay": str(o["downdelay"]),
        "other_config:lacp-time": o["lacp_time"],
        "other_config:bond-detect-mode": o["bond_detect_mode"],
        "other_config:bond-miimon-interval": str(o["miimon_interval"]),
        "other_config:lacp-fallback-ab": str(o["lacp_fallback_ab"]).lower(),
        **({"other_config:bond-primary": o["primary"]} if o["primary"] else {}),
    }


def running() -> bool:
    if shutil.which("ovs-vsctl") is None:
        return False
    done = subprocess.run(["ovs-vsctl", "--timeout=2", "show"], capture_output=True,
                          check=False)
    ctl = subprocess.run(["ovs-appctl", "--timeout=2", "-t", "ovs-vswitchd", "version"],
                         capture_output=True, check=False)
    return done.returncode == 0 and ctl.returncode == 0


def ensure_daemons(journal: Journal) -> str:
    """ovsdb-server and ovs-vswitchd running; returns "ours" if this call started them,
    "running" if they already were (a host service, or the UML guest's init)."""
    if running():
        return "running"
    if not OVS_CTL.exists():
        raise LabError("Open vSwitch is not installed (no ovs-ctl)",
                       "apt-get install openvswitch-switch (scripts/bootstrap setup does it)")
    log.info("starting ovsdb-server and ovs-vswitchd with ovs-ctl")
    journal.record("ovs_daemons")  # undone with `ovs-ctl stop`
    ovs_ctl.run([str(OVS_CTL), "start", "--system-id=random", "--no-mlockall"],
                "starting Open vSwitch", timeout=timeouts.OVS_START)
    return "ours"


# ovs-vswitchd 3.1 sizes its upcall handlers from the CPU count, which reads 0 until the
# kernel has been up about 10 s ("Overriding n-handler-threads to 0" in its log); a
# datapath created before then gets no handler and never recovers: every packet that
# misses the flow table, LACPDUs included, is lost (`ovs-dpctl show`: lost == missed),
# so both LACP ends stay defaulted.  Only a freshly booted kernel (a UML guest) is young
# enough to hit it; see tests/data/lacp/README.md and harness/tech/lacp/ovs.py.
SETTLED_UPTIME_S = 10.5


def wait_for_settled_kernel() -> None:
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    if uptime < SETTLED_UPTIME_S:
        log.info("waiting %.1f s before the first Open vSwitch bridge: ovs-vswitchd gives a"
                 " datapath made in the kernel's first %g s no upcall handler",
                 SETTLED_UPTIME_S - uptime, SETTLED_UPTIME_S)
        time.sleep(SETTLED_UPTIME_S - uptime)


class LagRequest(NamedTuple):
    """A LAG to add to a bridge: its name, its members (interfaces on no bridge yet) and
    its options under the harness's names."""

    name: str
    members: list[str]
    options: dict[str, Any]


def add_bridge(journal: Journal, name: str, dpid: int, ports: list[str],
               lags: Sequence[LagRequest] = ()) -> dict[str, dict[str, str]]:
    """A standalone (learning) bridge on the kernel datapath with ``ports`` and ``lags``,
    in one database transaction (an ovs-vsctl process costs 0.1-0.3 s in User-mode
    Linux); returned per LAG: its database settings as asked, for :func:`checked`."""
    wait_for_settled_kernel()
    journal.record("ovs_bridge", name=name)
    args = ["add-br", name, "--", "set", "bridge", name, "fail_mode=standalone",
            f"other_config:datapath-id={dpid:016x}"]
    for port in ports:
        args += ["--", "add-port", name, port]
    asked = {lag.name: _database_settings(lag_options(lag.options)) for lag in lags}
    for lag in lags:
        args += ["--", "add-bond", name, lag.name, *lag.members,
                 *(f"{k}={v}" for k, v in asked[lag.name].items())]
    with_lags = f" with LAG {', '.join(asked)}" if lags else ""
    ovs_ctl.vsctl(*args, what=f"creating Open vSwitch bridge {name}{with_lags}")
    return asked


def checked(lag: LagRequest, settings: dict[str, str]) -> dict[str, dict[str, str]]:
    """``lag`` checked against its request, in the database (:func:`check_lag`) and in
    what ovs-vswitchd runs (:func:`check_running`): its settings as asked and as read
    back (they must match), or LabError."""
    got = check_lag(lag.name, lag.options)
    if list(got.members) != sorted(lag.members):
        raise LabError(f"LAG {lag.name} holds {', '.join(got.members)} in the database,"
                       f" asked {', '.join(sorted(lag.members))}",
                       "see `ovs-vsctl list port` for it")
    check_running(lag.name, lag.options, lag.members)
    return {"requested": settings, "read_back": {k: got.settings.get(k, "<unset>")
                                                 for k in settings}}


def check_running(name: str, options: dict[str, Any], members: list[str]) -> lacp.OvsBond:
    """What ovs-vswitchd itself runs (``ovs-appctl bond/show``) matches the options: the
    database may hold a setting the daemon has not applied or refused."""
    o = lag_options(options)
    shown = lacp.read_ovs_bond(name)
    wanted = {"bond_mode": o["bond_mode"], "updelay_ms": o["updelay"],
              "downdelay_ms": o["downdelay"], "lacp_fallback_ab": o["lacp_fallback_ab"],
              "members": sorted(members), "lacp": o["lacp"] != "off"}
    got = {"bond_mode": shown.bond_mode, "updelay_ms": shown.updelay_ms,
           "downdelay_ms": shown.downdelay_ms, "members": sorted(shown.members),
           "lacp_fallback_ab": (o["lacp_fallback_ab"] if shown.lacp_fallback_ab is None
                                else shown.lacp_fallback_ab),
           "lacp": shown.lacp_status != "off"}
    wrong = {k: (v, got[k]) for k, v in wanted.items() if got[k] != v}
    if wrong:
        detail = ", ".join(f"{k}: asked {a}, ovs-vswitchd runs {b}"
                           for k, (a, b) in wrong.items())
        raise LabError(f"LAG {name} does not run as configured ({detail})",
                       "see `ovs-appctl bond/show` and ovs-vswitchd's log")
    return shown


@dataclass(frozen=True)
class LagConfig:
    """A LAG's settings as the database holds them."""

    name: str
    members: tuple[str, ...]
    settings: dict[str, str]


def read_lag(name: str) -> LagConfig:
    columns = ["bond_mode", "lacp", "bond_updelay", "bond_downdelay", "other_config",
               "interfaces"]
    # the port and every interface's name in one process (0.1-0.3 s each in UML)
    out = ovs_ctl.vsctl("--format=json", "--", "--columns=" + ",".join(columns), "list",
                        "port", name, "--", "--columns=_uuid,name", "list", "interface",
                        what=f"reading LAG {name}")
    port, interfaces = _json_documents(out, 2)
    row = dict(zip(port["headings"], port["data"][0], strict=True))
    other = dict(row["other_config"][1])
    settings = {"bond_mode": _atom(row["bond_mode"]), "lacp": _atom(row["lacp"]),
                "bond_updelay": str(row["bond_updelay"]),
                "bond_downdelay": str(row["bond_downdelay"])}
    settings.update({f"other_config:{k}": v for k, v in other.items()})
    uuids = row["interfaces"][1] if row["interfaces"][0] == "set" else [row["interfaces"]]
    named = {uuid[1]: str(iface_name) for uuid, iface_name in interfaces["data"]}
    members = tuple(sorted(named[u[1]] for u in uuids))
    return LagConfig(name, members, settings)


def _json_documents(text: str, count: int) -> list[Any]:
    """The ``count`` JSON documents ovs-vsctl printed one after another."""
    decoder, found, at = json.JSONDecoder(), [], 0
    for _ in range(count):
        while at < len(text) and text[at].isspace():
            at += 1
        doc, at = decoder.raw_decode(text, at)
        found.append(doc)
    return found


def _atom(value: Any) -> str:
    """ovsdb JSON: an optional column that is empty reads ["set", []]."""
    if isinstance(value, list):
        return "" if value == ["set", []] else str(value[1])
    return str(value)


def check_lag(name: str, options: dict[str, Any]) -> LagConfig:
    """Every option as asked, read back from the database, else a LabError naming it."""
    wanted = _database_settings(lag_options(options))
    got = read_lag(name)
    wrong = {k: (v, got.settings.get(k, "<unset>")) for k, v in wanted.items()
             if got.settings.get(k, "<unset>") != v}
    if wrong:
        detail = ", ".join(f"{k}: asked {a}, database has {b}" for k, (a, b) in wrong.items())
        raise LabError(f"LAG {name} does not hold the requested options ({detail})",
                       "see ovs-vswitchd.conf.db(5) for the allowed combinations")
    return got
