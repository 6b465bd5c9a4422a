"""What an audit trial measured, beside what the graph predicted.

- ``spof``: the service was not back before the repair (the probe's traffic stayed lost
  while the units were down);
- ``degraded``: it came back, with less than half its throughput;
- ``redundant``: it came back, with at least half (the gap in ms and the capacity
  retained say how well).

A disagreement is a unit the graph calls redundant that the lab shows is a single point
of failure, or the other way round: the shape alone cannot see a protocol's behaviour
(an untracked uplink, a control plane that shuts ports down).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from harness.audit.plan import Trial

DEGRADED_BELOW_PCT = 50.0
COLUMNS = ["trial", "units", "kind", "predicted", "measured", "gap_ms", "capacity_pct",
           "verdict", "agrees", "note", "run"]


def seen(row: dict[str, Any], verdict: str) -> str:
    """What the trial showed, in words: how long the service stopped, or that it did
    not come back before the repair (``verdict``: classify's)."""
    if verdict == "spof":
        return "down until the repair"
    gap = _number(row.get("failover_gap_ms"))
    return "nothing lost" if gap == 0 else f"back after {gap:g} ms"


def classify(row: dict[str, Any]) -> str:
    back = row.get("recovered_before_restore")
    if isinstance(back, str):
        back = back.strip().lower() == "true"
    if not back:
        return "spof"
    capacity = _number(row.get("capacity_retained_pct"))
    if not math.isnan(capacity) and capacity < DEGRADED_BELOW_PCT:
        return "degraded"
    return "redundant"


def audit_row(trial: Trial, predicted: str, row: dict[str, Any] | None, run: str,
              problem: str = "") -> dict[str, Any]:
    """The table's row for one trial; ``row`` is its summary row (None: it did not run
    to the end, and ``problem`` says why)."""
    kinds = "+".join(u.kind for u in trial.units)
    if row is None:
        return {"trial": trial.number, "units": trial.names, "kind": kinds,
                "predicted": predicted, "measured": "", "gap_ms": math.nan,
                "capacity_pct": math.nan, "verdict": "not measured", "agrees": "",
                "note": problem, "run": run}
    verdict = classify(row)
    agrees = (verdict == "spof") == (predicted == "spof")
    note = "" if agrees else (
        "the graph has a path without it, yet the service stopped until the repair"
        if verdict == "spof" else
        "the graph has no path without it, yet the service came back before the repair")
    return {"trial": trial.number, "units": trial.names, "kind": kinds,
            "predicted": predicted, "measured": seen(row, verdict),
            "gap_ms": _number(row.get("failover_gap_ms")),
            "capacity_pct": _number(row.get("capacity_retained_pct")),
            "verdict": verdict, "agrees": agrees, "note": note, "run": run}


def table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=COLUMNS)


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
