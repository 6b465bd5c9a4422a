"""MC-LAG's summary columns, computed from the trial folder alone (events, trial.json,
the run's parameters): what the pair did about the failure and when, how long each
dual-homed server stood split, and the protocols' prediction beside the measured figure
(harness.tech.mclag.prediction)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from harness.tech.mclag.prediction import predict

if TYPE_CHECKING:
    from harness.results.prediction import Prediction
    from harness.results.summary import TrialRecord

DETECTIONS = ("mclag_peer_link_down", "mclag_keepalive_down", "mclag_peer_lost")
POLICY_ACTIONS = ("mclag_ports_shut_down", "mclag_system_id_reverted", "mclag_role")


def _longest_split_ms(trial: TrialRecord, server: str) -> float:
    """The longest time ``server``'s bond had members up in two or more aggregators
    (0 when it never split)."""
    longest, since = 0.0, None
    for event in trial.events:
        if event["kind"] != "mclag_server_aggregators" or event["node"] != server:
            continue
        split = str(event["detail"]).partition(" -> ")[2].count("agg ") > 1
        if split and since is None:
            since = event["t_ns"]
        elif not split and since is not None:
            longest, since = max(longest, (event["t_ns"] - since) / 1e6), None
    if since is not None:
        longest = max(longest, (trial.end_ns - since) / 1e6)
    return round(longest, 3)


def columns(trial: TrialRecord, before: Mapping[str, Any]) -> dict[str, Any]:
    """What the pair did about the first failure before its repair, on the trial's
    clock (a leaf's death counted from when its agent fell silent): when a leaf
    noticed it over the heartbeats (beside the window the timers predict: the last
    heartbeat came up to one interval before the failure, so a path is declared
    down between peer_timeout - heartbeat and peer_timeout after it), when a policy
    acted, how long each dual-homed server's bond stood split into two aggregators,
    and the protocols' window for the figure that the failure puts to the test
    (harness.tech.mclag.prediction)."""
    facts = trial.facts.get("mclag")
    if not facts:
        return {}
    options = facts["options"]
    cut = trial.failure
    # A dying leaf's agent stops sending when the harness freezes it, before its links
    # go down: its peer's timeout runs from there. As for VRRP, the failure counts
    # from the middle of the freezing call and reactions from its start (the call's
    # length, in trial.json, is the uncertainty).
    silenced = trial.facts["failures"][0].get("silenced_ns") if cut else None
    failure_ns = sum(silenced) // 2 if silenced else cut["t_ns"] if cut else 0
    since_ns = silenced[0] if silenced else failure_ns
    restore = trial.first("restore")
    until_ns = restore["t_ns"] if restore else trial.end_ns
    # what the pair did about the failure, not about its repair
    after = [e for e in trial.events if cut and since_ns <= e["t_ns"] < until_ns]

    def since_cut(kinds: tuple[str, ...]) -> tuple[float, str]:
        hit = next((e for e in after if e["kind"] in kinds), None)
        if hit is None or cut is None:
            return math.nan, ""
        return round((hit["t_ns"] - failure_ns) / 1e6, 3), f"{hit['node']} {hit['kind']}"

    detect_ms, detected = since_cut(DETECTIONS)
    action_ms, action = since_cut(POLICY_ACTIONS)
    row: dict[str, Any] = {
        "mclag_roles_after": ";".join(f"{k}:{v}" for k, v in facts["roles_after"].items()),
        "mclag_detect_ms": detect_ms, "mclag_detected": detected,
        "mclag_detect_predicted_min_ms": options["peer_timeout_ms"] - options["heartbeat_ms"],
        "mclag_detect_predicted_max_ms": options["peer_timeout_ms"],
        "mclag_action_ms": action_ms, "mclag_action": action,
    }
    for server in facts["servers"]:
        row[f"split_{server}_ms"] = _longest_split_ms(trial, server)
    # each split's start and end is seen up to this late (the aggregators' longest sweep)
    row["mclag_split_resolution_ms"] = facts.get("aggregators_read_every_ms", math.nan)
    predicted = window(trial)
    if predicted is not None:
        # the measured figure may be the probe's or another technology's column
        row.update(predicted.columns({**before, **row}, prefix="mclag_"))
    return row


def window(trial: TrialRecord) -> Prediction | None:
    """The protocols' window for the figure the first failure puts to the test
    (harness.tech.mclag.prediction); None outside an MC-LAG trial or without a model."""
    facts = trial.facts.get("mclag")
    if not facts or trial.failure is None:
        return None
    return predict(trial.facts["failures"][0], trial.run.get("params", {}),
                   facts["options"], facts.get("inter_leaf", ()))
