"""What LACP predicts for a silent failure: a member's LACPDUs stop arriving while its
carrier stays up (a drop_control lacp step).

IEEE 802.1AX: a port keeps its partner's information for current_while, 3 x the
partner's PDU period, refreshed by every PDU.  The period is the one the receiving port
asks for with its LACP_Timeout bit: a Linux bond's ``lacp_rate`` (fast: one PDU a second,
slow: one every 30 s), and the Linux receive machine runs current_while on that same
bit (ad_rx_machine in bond_3ad.c).  The last PDU came up to one period before the drop,
so the bond lets the member go (``lacp_member_left_ms``, from its lacp_members_changed
events) within [2, 3] periods: 2 to 3 s fast, 60 to 90 s slow.

Only PDUs dropped on their way into a kernel bond's member are predicted: the far end's
timeout (an Open vSwitch LAG's lacp-time) decides the rest, and no column measures when
a switch lets a member go.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from harness.results.prediction import Prediction, first_failure
from harness.tech.bond.prediction import bond_with_member

if TYPE_CHECKING:
    from harness.results.summary import TrialRecord

LACP_PERIOD_MS = {"fast": 1000, "slow": 30000}
MISSED_PDUS = 3  # current_while: Short/Long_Timeout_Time = 3 x the periodic time
FIGURE = "lacp_member_left_ms"


def timeout_window(rate: str) -> tuple[int, int]:
    """When a member whose PDUs stopped leaves, in ms after the drop, at ``rate``."""
    period = LACP_PERIOD_MS.get(rate, LACP_PERIOD_MS["slow"])
    return (MISSED_PDUS - 1) * period, MISSED_PDUS * period


def missed_pdus(rate: str) -> str:
    """The basis of :func:`timeout_window`, in words."""
    period = LACP_PERIOD_MS.get(rate, LACP_PERIOD_MS["slow"])
    return f"{MISSED_PDUS} missed LACPDUs at lacp_rate {rate} ({period} ms apart)"


def predict(trial: TrialRecord, row: Mapping[str, Any]) -> Prediction | None:
    failure = first_failure(trial)
    if failure is None or failure.action != "drop_control" or failure.protocol != "lacp":
        return None
    end = failure.ends[0] if failure.ends else failure.node
    if "in" not in failure.directions:
        return Prediction.unknown(f"LACPDUs dropped only on their way out of {end}: the far"
                                  " end's timeout decides, and no column measures it")
    found = bond_with_member(trial.lab, end)
    if found is None:
        return Prediction.unknown(f"LACPDUs dropped into {end}, not a kernel bond's member:"
                                  " no column measures when a switch's LAG lets it go")
    key, state = found
    if state.get("mode") != "802.3ad":
        return Prediction.unknown(f"{key} ({state.get('mode')}) speaks no LACP: losing"
                                  f" LACPDUs into {end} changes nothing")
    rate = str((state.get("options") or {}).get("lacp_rate") or "slow")
    low, high = timeout_window(rate)
    return Prediction(FIGURE, low, high, f"{missed_pdus(rate)}: {key} lets {end} go when"
                      " its partner information times out, the last PDU up to one period"
                      " before the drop")
