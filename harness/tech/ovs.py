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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import timeouts
from harness.errors import ConfigError, LabError
from harness.journal import Journal
from harness.tech import lacp

log = logging.getLogger(__name__)

OVS_CTL = Path("/usr/share/openvswitch/scripts/ovs-ctl")

# option -> allowed values (None: an integer of milliseconds, or a bool)
LAG_OPTIONS: dict[str, tuple[str, ...] | None] = {
    "bond_mode": ("active-backup", "balance-slb", "balance-tcp"),
    "lacp": ("active", "passive", "off"),
    "lacp_time": ("fast", "slow"),
    "bond_detect_mode": ("carrier", "miimon"),
    "miimon_interval": None,
    "updelay": None,
    "downdelay": None,
    "lacp_fallback_ab": None,
    "primary": None,
}
LAG_DEFAULTS: dict[str, Any] = {"bond_mode": "balance-tcp", "lacp": "active",
                                 "lacp_time": "fast", "bond_detect_mode": "carrier",
                                 "miimon_interval": 100, "updelay": 0, "downdelay": 0,
                                 "lacp_fallback_ab": False, "primary": None}


def lag_options(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` checked and completed with defaults, or a ConfigError naming the bad one."""
    unknown = sorted(set(options) - set(LAG_OPTIONS))
    if unknown:
        raise ConfigError(f"unknown Open vSwitch LAG option(s) {', '.join(unknown)}",
                          f"use: {', '.join(LAG_OPTIONS)}")
    merged = {**LAG_DEFAULTS, **options}
    for key, allowed in LAG_OPTIONS.items():
        value = merged[key]
        if allowed is not None:
            if str(value) not in allowed:
                raise ConfigError(f"Open vSwitch LAG option {key}={value!r} is not valid",
                                  f"use one of: {', '.join(allowed)}")
        elif key == "primary":
            if value is not None and (not isinstance(value, str) or not value):
                raise ConfigError(f"primary={value!r} is not a member's name",
                                  "name one of the LAG's ports")
        elif key == "lacp_fallback_ab":
            if not isinstance(value, bool):
                raise ConfigError(f"lacp_fallback_ab={value!r} is not true or false",
                                  "use true or false")
        elif not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"Open vSwitch LAG option {key}={value!r} is not a number of"
                              " milliseconds", "use a whole number >= 0")
    if merged["bond_mode"] == "balance-tcp" and merged["lacp"] == "off":
        raise ConfigError("bond_mode balance-tcp needs LACP (ovs-vswitchd.conf.db(5))",
                          "set lacp to active or passive, or use balance-slb/active-backup")
    return merged


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


def _run(argv: list[str], what: str, timeout: float = timeouts.OVS_COMMAND) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              check=False)
    except FileNotFoundError:
        raise LabError(f"{argv[0]} is not installed", "apt-get install openvswitch-switch"
                       " (scripts/bootstrap setup does it)") from None
    except subprocess.TimeoutExpired:
        raise LabError(f"{what}: {argv[0]} did not answer within {timeout:g} s",
                       "is ovs-vswitchd running? `redlab clean`, then retry") from None
    if done.returncode != 0:
        raise LabError(f"{what} failed: {' '.join(argv)}: {done.stderr.strip()}",
                       "read the Open vSwitch message above; ovs-vswitchd.conf.db(5)")
    return done.stdout


def vsctl(*args: str, what: str = "ovs-vsctl") -> str:
    return _run(["ovs-vsctl", f"--timeout={timeouts.OVS_COMMAND:g}", *args], what)


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
    _run([str(OVS_CTL), "start", "--system-id=random", "--no-mlockall"],
         "starting Open vSwitch", timeout=timeouts.OVS_START)
    return "ours"


# ovs-vswitchd 3.1 sizes its upcall handlers from the CPU count, which reads 0 until the
# kernel has been up about 10 s ("Overriding n-handler-threads to 0" in its log); a
# datapath created before then gets no handler and never recovers: every packet that
# misses the flow table, LACPDUs included, is lost (`ovs-dpctl show`: lost == missed),
# so both LACP ends stay defaulted.  Only a freshly booted kernel (a UML guest) is young
# enough to hit it; see tests/data/lacp/README.md and harness/tech/lacp.py.
SETTLED_UPTIME_S = 10.5


def wait_for_settled_kernel() -> None:
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    if uptime < SETTLED_UPTIME_S:
        log.info("waiting %.1f s before the first Open vSwitch bridge: ovs-vswitchd gives a"
                 " datapath made in the kernel's first %g s no upcall handler",
                 SETTLED_UPTIME_S - uptime, SETTLED_UPTIME_S)
        time.sleep(SETTLED_UPTIME_S - uptime)


def add_bridge(journal: Journal, name: str, dpid: int, ports: list[str]) -> None:
    """A standalone (learning) bridge on the kernel datapath with ``ports``."""
    wait_for_settled_kernel()
    journal.record("ovs_bridge", name=name)
    args = ["add-br", name, "--", "set", "bridge", name, "fail_mode=standalone",
            f"other_config:datapath-id={dpid:016x}"]
    for port in ports:
        args += ["--", "add-port", name, port]
    vsctl(*args, what=f"creating Open vSwitch bridge {name}")


def add_lag(bridge: str, name: str, members: list[str], options: dict[str, Any]) -> None:
    """Add LAG ``name`` of ``members`` (interfaces not yet on any bridge) to ``bridge``."""
    settings = _database_settings(lag_options(options))
    vsctl("add-bond", bridge, name, *members, *(f"{k}={v}" for k, v in settings.items()),
          what=f"creating LAG {name} on {bridge}")
    check_lag(name, options)
    check_running(name, options, members)


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
    out = vsctl("--columns=" + ",".join(columns), "--format=json", "list", "port", name,
                what=f"reading LAG {name}")
    doc = json.loads(out)
    row = dict(zip(doc["headings"], doc["data"][0], strict=True))
    other = dict(row["other_config"][1])
    settings = {"bond_mode": _atom(row["bond_mode"]), "lacp": _atom(row["lacp"]),
                "bond_updelay": str(row["bond_updelay"]),
                "bond_downdelay": str(row["bond_downdelay"])}
    settings.update({f"other_config:{k}": v for k, v in other.items()})
    uuids = row["interfaces"][1] if row["interfaces"][0] == "set" else [row["interfaces"]]
    members = tuple(sorted(vsctl("get", "interface", u[1], "name").strip().strip('"')
                           for u in uuids))
    return LagConfig(name, members, settings)


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
