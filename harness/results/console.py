"""What ``redlab run``, ``suite`` and ``verdict`` say about trials and runs, a line each:
a trial's figures, its verdict, the run's verdict."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from harness.results import verdicts
from harness.results.verdicts import Bound

Line = tuple[str, str]  # (text, "pass" | "fail" | "")


def trial_lines(rows: Sequence[Mapping[str, Any]],
                expect: Mapping[str, Bound] | None = None) -> list[Line]:
    """A line per judged trial: what held, or what failed and why (the reasons need
    ``expect``; a row read back from summary.csv says only what failed)."""
    lines = []
    for row in rows:
        verdict = str(row.get("verdict") or "")
        if not verdict:
            continue
        checks = verdicts.judge(row, expect).checks if expect else ()
        if verdict == "pass":
            said = "; ".join(c.describe(reason=False) for c in checks)
        elif row.get("steady_before_failure") is False:  # why is in verdict_failed first
            said = str(row.get("verdict_failed", ""))
        else:
            said = "; ".join(c.describe() for c in checks if not c.passed) or str(
                row.get("verdict_failed", ""))
        lines.append((f"trial {row['trial']}: {verdict.upper()}"
                      + (f": {said}" if said else ""), verdict))
    return lines


def run_line(rows: Sequence[Mapping[str, Any]]) -> Line:
    """The run's verdict: pass only when every trial passed (see harness.results.verdicts),
    with the count of trials either way."""
    found = [str(r.get("verdict") or "") for r in rows]
    verdict, judged, failed = verdicts.run_verdict(found), sum(map(bool, found)), found.count(
        "fail")
    if verdict == "pass":
        return f"verdict: PASS - {judged} of {judged} trial(s) met every expectation", verdict
    if verdict == "fail":
        return (f"verdict: FAIL - {failed} of {judged} trial(s) failed an expectation (a run"
                " passes only when every trial does)", verdict)
    return "no expectations (expect: in the scenario): no verdict", ""


def trial_figures(row: Mapping[str, Any]) -> str:
    """A trial's outage, loss and recovery, and what its redundancy mechanism did."""
    return (f"trial {row['trial']}: outage window {row['failover_gap_ms']:.1f} ms (estimate"
            f" {row['failover_gap_estimate_ms']:.1f}, {row['lost_packets']} lost,"
            f" {row['outages']} outage(s)), recovered before the repair:"
            f" {row['recovered_before_restore']}; {redundancy(row)}"
            + (f"; NOT STEADY before the failure (probe round trip {row['baseline_rtt_ms']:g}"
               f" ms, {row['baseline_loss_pct']:g} % lost): the lab's own trouble, not the"
               " failure's" if row.get("steady_before_failure") is False else ""))


def redundancy(row: Mapping[str, Any]) -> str:
    """What the redundancy mechanisms did in a trial, a phrase each (Technology.phrase)."""
    from harness.tech.registry import TECHNOLOGIES

    said = [p for tech in TECHNOLOGIES if (p := tech.phrase(row))]
    return "; ".join(said) or "no mechanism of this topology reports what it did"
