"""What a kernel bond's link monitor predicts when a member loses its carrier (a cable cut,
the device at its far end dead), from the bond as the kernel reported it (lab.json).

MII monitoring (``miimon`` ms, Documentation/networking/bonding.rst): the monitor reads
each member's carrier every miimon ms, so it sees the loss at its next check, at worst
one period later, then waits ``downdelay`` before it takes the member down; downdelay
adds to both ends of the window.  Modes with one active member (active-backup,
balance-tlb, balance-alb) move the traffic only then: ``failover_gap_ms`` within
[downdelay, miimon + downdelay].  The hashing modes (balance-rr, balance-xor, broadcast,
802.3ad) stop sending on a member without carrier at the carrier event itself (the
netdev event rebuilds the transmit set, bond_update_slave_arr in bond_main.c, and
bond_slave_can_tx checks the carrier), so their window starts at 0.

ARP monitoring (``arp_interval`` ms, ``arp_ip_target``): bonding.rst, arp_missed_max:
"the number of arp_interval monitor checks that must fail in order for an interface to
be marked down by the ARP monitor ... The default value is 2" (RedLab leaves it at the
default; kernels before 5.17 hard-code 2).  In bond_main.c a member is down at the first
check (every arp_interval) at which its last received frame is older than
arp_missed_max + 1/2 intervals (bond_time_in_interval adds half an interval of slack).
The ARP monitor sends its probes right after each check, so with only ARP replies
arriving the last one came just after the check before the failure: down within
(missed, missed + 1] intervals of the failure.  Without arp_validate every received frame
counts, and under traffic the last one came at the failure itself: (missed + 1/2,
missed + 3/2] intervals.  downdelay and updelay apply to the MII monitor only.

The switch-over's own work (a gratuitous ARP, the far switch learning the MAC again) is
not in the window.  On the return the member is used again updelay after the MII check
that sees its carrier (restore + [updelay, miimon + updelay]): that delays a fail-back,
and failback_gap_ms, the cost of switching back, is not predicted.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from harness.results.prediction import Failure, Prediction, first_failure
from harness.tech.bond.options import ACTIVE_MODES

if TYPE_CHECKING:
    from harness.results.summary import TrialRecord

FIGURE = "failover_gap_ms"
ARP_MISSED_MAX = 2  # the kernel's default arp_missed_max (fixed at 2 before Linux 5.17)
CARRIER_LOSS = ("cut", "device_down")


def bond_with_member(lab: Mapping[str, Any], end: str) -> tuple[str, dict[str, Any]] | None:
    """The bond ("node:bond", its state in lab.json) that has ``end`` ("node:member")."""
    node, _, member = end.partition(":")
    for key, state in (lab.get("bonds") or {}).items():
        if key.partition(":")[0] == node and member in state.get("members", {}):
            return key, state
    return None


def predict(trial: TrialRecord, row: Mapping[str, Any]) -> Prediction | None:
    """The window of the bonds whose members lose carrier in the trial's first failure
    (the widest, where several do); None where no bond is touched."""
    failure = first_failure(trial)
    if failure is None or failure.action not in CARRIER_LOSS:
        return None
    touched = _touched(trial.lab.get("bonds") or {}, failure)
    if isinstance(touched, Prediction):
        return touched
    alike: dict[tuple[Any, ...], list[str]] = {}  # bonds with the same timers: one basis
    for key, (state, lost) in touched.items():
        if set(lost) >= set(state.get("members", {})):
            return Prediction.unknown(
                f"{key} loses every member ({', '.join(sorted(lost))}) in {failure.describe}:"
                " nothing to fail over to, the outage lasts until the repair")
        alike.setdefault(_timers(state), []).append(key)
    if not alike:
        return None
    found = [window(" and ".join(keys), touched[keys[0]][0]) for keys in alike.values()]
    if not all(p.has_window for p in found):
        return next(p for p in found if not p.has_window)
    return Prediction(FIGURE, min(p.min_ms for p in found), max(p.max_ms for p in found),
                      "; ".join(dict.fromkeys(p.basis for p in found)))


def _touched(bonds: Mapping[str, Any], failure: Failure
             ) -> dict[str, tuple[dict[str, Any], list[str]]] | Prediction:
    """bond -> (its state, the members that lose carrier), or a reason when lab.json
    cannot say (a run before the bonds' cabling was recorded)."""
    found: dict[str, tuple[dict[str, Any], list[str]]] = {}
    for key, state in bonds.items():
        node = key.partition(":")[0]
        if failure.action == "cut":
            lost = [m for m in state.get("members", {}) if failure.names(node, m)]
        elif node == failure.node:
            continue  # the dead device's own bond: its far ends are the ones that react
        elif "cabled_to" not in state:
            return Prediction.unknown(f"lab.json does not say where {key}'s members are"
                                      " cabled (a run before RedLab recorded it): which"
                                      f" lose carrier when {failure.node} dies is unknown")
        else:
            lost = [m for m, far in state["cabled_to"].items()
                    if far.partition(":")[0] == failure.node]
        if lost:
            found[key] = (state, lost)
    return found


def _timers(state: Mapping[str, Any]) -> tuple[Any, ...]:
    options = state.get("options") or {}
    return (state.get("mode"), state.get("miimon"), state.get("downdelay"),
            state.get("updelay"), *(str(options.get(k)) for k in (
                "arp_interval", "arp_ip_target", "arp_validate", "arp_missed_max")))


def window(key: str, state: Mapping[str, Any]) -> Prediction:
    """``failover_gap_ms``'s window for one bond losing a member's carrier."""
    mode, options = str(state.get("mode")), state.get("options") or {}
    miimon = int(state.get("miimon") or 0)
    down, up = int(state.get("downdelay") or 0), int(state.get("updelay") or 0)
    arp = int(options.get("arp_interval") or 0)
    waits = mode in ACTIVE_MODES
    if miimon:
        seen = ("the MII monitor takes it down" if waits else
                "the kernel stops sending on it at the carrier event, at worst the MII"
                " monitor takes it down")
        return Prediction(FIGURE, down if waits else 0, miimon + down, (
            f"{key} ({mode}): {seen} at its next check (miimon {miimon} ms) plus downdelay"
            f" {down} ms; the switch-over's own work not included. Back: the member is"
            f" used again updelay {up} ms after the check that sees its carrier (delays a"
            " fail-back; failback_gap_ms not predicted)"))
    if arp:
        if not options.get("arp_ip_target"):
            return Prediction.unknown(f"{key} has arp_interval {arp} ms but no"
                                      " arp_ip_target: its ARP monitor asks no one")
        missed = int(options.get("arp_missed_max") or ARP_MISSED_MAX)
        validated = str(options.get("arp_validate") or "none") != "none"
        low, high = missed * arp, (missed + (1 if validated else 1.5)) * arp
        what = ("only ARP replies count (arp_validate)" if validated else
                "any frame received counts (no arp_validate)")
        return Prediction(FIGURE, low if waits else 0, high, (
            f"{key} ({mode}): the ARP monitor takes the member down at the first check"
            f" (every arp_interval {arp} ms) that finds its last frame older than"
            f" arp_missed_max {missed} + 1/2 intervals (bonding.rst: arp_missed_max,"
            f" default 2); {what}; the switch-over's own work not included. Back: at the"
            " first check after a frame arrives on it (no updelay with the ARP monitor)"))
    return Prediction.unknown(f"{key} runs no link monitor (miimon 0, no arp_interval):"
                              " a member that loses carrier is never taken out")
