"""What VRRP predicts for a trial's first failure, on ``vrrp_takeover_ms``, from the
columns harness.measure.vrrp_timing computed (the master before, the heir's
Master_Down_Interval and Skew_Time) and each router's options in lab.json.

- The master falls silent (the box dead, keepalived killed, its VRRP interface cut, or
  its adverts dropped on their way to the backups): a backup declares it dead
  Master_Down_Interval after the last advert, which came up to one advert_int before
  the failure: within [master_down - advert_int, master_down] (RFC 5798 6.4.2).
- The master leaves cleanly (a tracked interface lost while it can still send): its
  priority-0 advert makes the backup wait Skew_Time alone, so at least skew, and sooner
  than any silent takeover could come: within [skew, master_down - advert_int].
- Anything else the master survives (an untracked uplink cut, a backup lost): no
  takeover is due, and the prediction says so with no window.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from harness.results.prediction import Failure, Prediction, first_failure

if TYPE_CHECKING:
    from harness.results.summary import TrialRecord

FIGURE = "vrrp_takeover_ms"


def predict(trial: TrialRecord, row: Mapping[str, Any]) -> Prediction | None:
    options = trial.lab.get("vrrp")
    failure = first_failure(trial)
    if not options or failure is None or failure.action == "degrade":
        return None
    master = str(row.get("vrrp_master_before", ""))
    if master not in options:
        return Prediction.unknown(f"no single VRRP master before the failure ({master}):"
                                  " no takeover to predict")
    down, skew = float(row.get("vrrp_master_down_ms", math.nan)), float(
        row.get("vrrp_skew_ms", math.nan))
    if math.isnan(down):
        return Prediction.unknown("no VRRP backup to take over from the master")
    advert = float(options[master]["advert_int"]) * 1000
    how = _how_it_leaves(failure, master, options[master])
    if how == "silent":
        return Prediction(FIGURE, round(down - advert, 3), down, (
            f"{master} falls silent: a backup takes over Master_Down_Interval {down:g} ms"
            f" (3 x advert_int {advert:g} ms + skew {skew:g} ms) after its last advert, up"
            " to one advert_int before the failure (RFC 5798)"))
    if how == "clean":
        return Prediction(FIGURE, skew, round(down - advert, 3), (
            f"{master} leaves with a priority-0 advert (a tracked interface lost): the"
            f" backup waits Skew_Time {skew:g} ms alone, sooner than a silent takeover"
            f" (master_down - advert_int) could come (RFC 5798)"))
    return Prediction.unknown(how)


def _how_it_leaves(failure: Failure, master: str, o: Mapping[str, Any]) -> str:
    """"silent", "clean", or why no takeover is due."""
    vrrp_if, tracked = str(o.get("interface")), list(o.get("track_interface") or [])
    if failure.action in ("device_down", "daemon_crash"):
        if failure.node != master:
            return f"{failure.node}, not the master {master}, failed: no takeover is due"
        if failure.action == "daemon_crash" and "keepalived" not in failure.describe:
            return f"{master}'s keepalived runs on: no takeover is due"
        return "silent"
    if failure.action == "cut":
        if failure.names(master, vrrp_if):
            return "silent"  # its adverts die with the cable
        lost = [intf for intf in tracked if failure.names(master, intf)]
        if lost:
            return "clean"
        return (f"{master} stays master: the cut ({failure.describe}) takes no interface it"
                f" sends adverts on ({vrrp_if}) or tracks ({', '.join(tracked) or 'none'}),"
                " so no takeover is due")
    if failure.action == "drop_control" and failure.protocol == "vrrp":
        # the master's adverts lost on their way out, or on their way into a backup
        if ("out" if failure.node == master else "in") in failure.directions:
            return "silent"
        return f"adverts dropped where the backups still hear {master}: no takeover is due"
    return f"no VRRP model for a {failure.action}"
