"""What an Open vSwitch LAG predicts when members lose carrier (a cable cut, the device at
the far end dead), from its settings as the database holds them (lab.json).

ovs-vswitchd.conf.db(5), ``other_config:bond-detect-mode``: with ``carrier`` (the
default) ovs-vswitchd hears the carrier change from the kernel at once; with ``miimon``
it polls each member's MII every ``bond-miimon-interval`` ms, so it notices at its next
poll.  It then waits ``bond_downdelay`` before it disables the member and moves its
flows.  Unlike the kernel bond's, that move is userspace work with no timer: its main
loop re-hashes the flows and the revalidators rewrite the datapath's, which RedLab
allows up to OVS_REACTION_MS (seen in UML, one loaded CPU: 31 to 54 ms round-trip
outages with carrier detection).  ``failover_gap_ms`` is within [downdelay,
downdelay + REACTION] with carrier and [downdelay, downdelay + interval + REACTION] with
miimon.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from harness.results.prediction import Failure, Prediction, first_failure

if TYPE_CHECKING:
    from harness.results.summary import TrialRecord

FIGURE = "failover_gap_ms"
OVS_REACTION_MS = 100  # ovs-vswitchd's own work after it noticed (see the docstring)


def predict(trial: TrialRecord, row: Mapping[str, Any]) -> Prediction | None:
    """The window of the LAGs whose members lose carrier in the first failure (the
    widest, where several do); None where no LAG is touched or lab.json predates the
    LAGs' cabling."""
    failure = first_failure(trial)
    cabling = trial.lab.get("lag_cabling") or {}
    if failure is None or failure.action not in ("cut", "device_down") or not cabling:
        return None
    settings = trial.lab.get("lag_settings") or {}
    alike: dict[tuple[str, ...], list[str]] = {}  # LAGs with the same timers: one basis
    for key, ports in cabling.items():
        lost = _lost(key, ports, failure)
        if lost and set(lost) >= set(ports):
            return Prediction.unknown(
                f"Open vSwitch LAG {key} loses every member ({', '.join(sorted(lost))}) in"
                f" {failure.describe}: nothing to fail over to, the outage lasts until the"
                " repair")
        if lost:
            alike.setdefault(_timers(settings.get(key) or {}), []).append(key)
    if not alike:
        return None
    found = [window(" and ".join(keys), timers) for timers, keys in alike.items()]
    return Prediction(FIGURE, min(p.min_ms for p in found), max(p.max_ms for p in found),
                      "; ".join(p.basis for p in found))


def _lost(key: str, ports: Mapping[str, str], failure: Failure) -> list[str]:
    """The LAG's members that lose carrier: cut, or cabled to the dead device (a dead
    switch's own LAG is not the one that reacts)."""
    switch = key.partition(":")[0]
    if failure.action == "cut":
        return [port for port in ports if failure.names(switch, port)]
    if switch == failure.node:
        return []
    return [port for port, far in ports.items() if far.partition(":")[0] == failure.node]


def _timers(setting: Mapping[str, Any]) -> tuple[str, ...]:
    """(detect mode, miimon interval, downdelay, updelay) as read back from the database
    (as asked where it was not read back)."""
    got = {**(setting.get("requested") or {}), **(setting.get("read_back") or {})}
    return (str(got.get("other_config:bond-detect-mode", "carrier")),
            str(got.get("other_config:bond-miimon-interval", "0")),
            str(got.get("bond_downdelay", "0")), str(got.get("bond_updelay", "0")))


def window(key: str, timers: tuple[str, ...]) -> Prediction:
    mode, interval, down, up = timers
    down_ms = int(down) if down.isdigit() else 0
    if mode == "miimon":
        poll = int(interval) if interval.isdigit() else 0
        seen = f"polls each member's MII every bond-miimon-interval {poll} ms"
    else:
        poll, seen = 0, "hears the carrier go at once (bond-detect-mode carrier)"
    return Prediction(FIGURE, down_ms, down_ms + poll + OVS_REACTION_MS, (
        f"Open vSwitch LAG {key}: ovs-vswitchd {seen}, waits bond_downdelay {down_ms} ms,"
        f" then moves the flows (its own work: up to {OVS_REACTION_MS} ms allowed). Back:"
        f" enabled again bond_updelay {up} ms after it sees the carrier (then LACP, if on)"))
