"""VRRP in a trial's figures: who was master, when the backup took over, and what the
protocol predicted, all read from the keepalived state changes in events.csv.

The prediction is RFC 5798's (RFC 3768's for version 2): a backup of priority P declares
the master dead after Master_Down_Interval = 3 x Advertisement_Interval + Skew_Time
without an advert.  A master that dies silently (power, cable, SIGKILL) sent its last
advert up to one interval before, so a takeover measured from the failure lands between
Master_Down_Interval - Advertisement_Interval and Master_Down_Interval.  A master that
leaves cleanly (keepalived stopped, or an interface it tracks lost while it can still
send) sends priority 0 and the backup takes over after Skew_Time alone.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from harness.tech.vrrp.options import VrrpOptions, master_down_interval, skew_time

STATES = ("MASTER", "BACKUP", "FAULT", "STOP")
COLUMNS = ["vrrp_master_before", "vrrp_new_master", "vrrp_takeover_ms",
           "vrrp_master_down_ms", "vrrp_skew_ms", "vrrp_masters_max", "vrrp_dual_master_ms",
           "vrrp_master_after", "vrrp_failback_ms"]


# A router whose keepalived dies unannounced (the box or the daemon) is master of nothing
# from then on, though it never said so: DOWN until it notifies again.
SILENT_DEATHS = ("device_down", "daemon_crash", "daemons_silenced")


def transitions(events: Iterable[Mapping[str, Any]]) -> list[tuple[int, str, str]]:
    """(t_ns, router, state) for every MASTER/BACKUP/FAULT/STOP notice and every silent
    death (DOWN), in time order; keepalived's priority notices are left out."""
    found, routers = [], set()
    for e in events:
        if e["kind"] == "vrrp_state":
            routers.add(str(e["node"]))
            state = str(e["detail"]).split()[0] if e["detail"] else ""
            if state in STATES:
                found.append((int(e["t_ns"]), str(e["node"]), state))
    found += [(int(e["t_ns"]), str(e["node"]), "DOWN") for e in events
              if e["kind"] in SILENT_DEATHS and str(e["node"]) in routers]
    # by time alone: notices read together share one stamp and keep keepalived's order
    # (a flap read as MASTER then BACKUP must not end as MASTER)
    return sorted(found, key=lambda change: change[0])


def states_at(changes: list[tuple[int, str, str]], t_ns: int) -> dict[str, str]:
    """Each router's last state at ``t_ns``."""
    now: dict[str, str] = {}
    for t, router, state in changes:
        if t > t_ns:
            break
        now[router] = state
    return now


def masters(states: Mapping[str, str]) -> list[str]:
    return sorted(r for r, s in states.items() if s == "MASTER")


def dual_master(changes: list[tuple[int, str, str]], after_ns: int,
                end_ns: int) -> tuple[int, float]:
    """From ``after_ns`` to ``end_ns``: the most routers MASTER at once, and for how long
    (ms) two or more were.  A preemption shows a fraction of a millisecond (the new master
    notifies before the old one hears it); split brain lasts as long as its cause."""
    now = states_at(changes, after_ns)
    most, since, total = len(masters(now)), None, 0
    if most > 1:
        since = after_ns
    for t, router, state in changes:
        if not after_ns < t <= end_ns:
            continue
        now[router] = state
        count = len(masters(now))
        most = max(most, count)
        if count > 1 and since is None:
            since = t
        elif count <= 1 and since is not None:
            total, since = total + t - since, None
    if since is not None:
        total += end_ns - since
    return most, round(total / 1e6, 3)


def vrrp_columns(events: Iterable[Mapping[str, Any]], options: Mapping[str, VrrpOptions],
                 t0_ns: int, failure_ns: int | None, since_ns: int | None,
                 restore_ns: int | None, end_ns: int) -> dict[str, Any]:
    """The trial's VRRP columns.  ``failure_ns`` is the failure's event time (for a dead
    box, the moment its daemons froze) and ``since_ns`` the start of its call (a reaction
    cannot come before it)."""
    changes = transitions(events)
    before = masters(states_at(changes, since_ns - 1 if since_ns else t0_ns))
    old = before[0] if len(before) == 1 else None
    most, dual_ms = dual_master(changes, t0_ns, end_ns)
    row: dict[str, Any] = {
        "vrrp_master_before": "+".join(before) or "none",
        "vrrp_new_master": "",
        "vrrp_takeover_ms": math.nan,
        "vrrp_master_down_ms": math.nan,
        "vrrp_skew_ms": math.nan,
        "vrrp_masters_max": most,
        "vrrp_dual_master_ms": dual_ms,
        "vrrp_master_after": "+".join(masters(states_at(changes, end_ns))) or "none",
        "vrrp_failback_ms": math.nan,
    }
    if failure_ns is None or since_ns is None:
        return row
    took = next(((t, r) for t, r, s in changes
                 if t >= since_ns and s == "MASTER" and r != old), None)
    # The backup that should take over: the highest priority one but the old master.
    backups = [r for r in options if r != old]
    heir = took[1] if took else max(backups, key=lambda r: options[r].priority, default=None)
    if took:
        row["vrrp_new_master"] = took[1]
        row["vrrp_takeover_ms"] = round((took[0] - failure_ns) / 1e6, 3)
    if heir is not None:
        # v3 backups time out on the master's advert interval (learnt from its adverts)
        advert = options[old].advert_int if old in options else options[heir].advert_int
        o = options[heir]
        row["vrrp_master_down_ms"] = round(
            master_down_interval(o.priority, advert, o.version) * 1000, 3)
        row["vrrp_skew_ms"] = round(skew_time(o.priority, advert, o.version) * 1000, 3)
    if restore_ns is not None and old is not None:
        back = next((t for t, r, s in changes
                     if t >= restore_ns and r == old and s == "MASTER"), None)
        if back is not None:
            row["vrrp_failback_ms"] = round((back - restore_ns) / 1e6, 3)
    return row
