"""The window each MC-LAG failure is held to (harness.tech.mclag.prediction)."""

from __future__ import annotations

import math

from harness.tech.mclag.prediction import predict

OPTIONS = {"peer_timeout_ms": 500, "heartbeat_ms": 100}
INTER_LEAF = ["leaf1:ka", "leaf1:pl", "leaf2:ka", "leaf2:pl"]
PARAMS = {"miimon": 100, "lacp_rate": "fast"}


def failure(action: str, describe: str) -> dict[str, str]:
    return {"action": action, "describe": describe}


def test_a_cut_server_cable_is_held_to_one_miimon():
    window = predict(failure("cut", "link_down srv:eth1 <-> leaf2:p1 (down at the far end)"),
                     PARAMS, OPTIONS, INTER_LEAF)
    assert window is not None and (window.figure, window.min_ms, window.max_ms) == (
        "failover_gap_ms", 0, 100)
    assert window.columns({"failover_gap_ms": 40.0}, prefix="mclag_")[
        "mclag_within_prediction"] is True
    assert window.columns({"failover_gap_ms": 106.0}, prefix="mclag_")[
        "mclag_within_prediction"] is False
    assert window.columns({"failover_gap_ms": math.nan}, prefix="mclag_")[
        "mclag_within_prediction"] is None


def test_an_inter_leaf_cut_is_held_to_the_peer_timeout_after_the_last_heartbeat():
    window = predict(failure("cut", "link_down leaf1:pl <-> leaf2:pl (down at both ends)"),
                     PARAMS, OPTIONS, INTER_LEAF)
    assert window is not None
    assert (window.figure, window.min_ms, window.max_ms) == ("mclag_detect_ms", 400, 500)


def test_lost_lacpdus_are_held_to_three_missed_pdus_at_the_bonds_rate():
    drop = failure("drop_control", "control_plane_drop lacp at srv:eth1 (in via tc)")
    fast = predict(drop, PARAMS, OPTIONS, INTER_LEAF)
    slow = predict(drop, {**PARAMS, "lacp_rate": "slow"}, OPTIONS, INTER_LEAF)
    assert fast is not None and (fast.figure, fast.min_ms, fast.max_ms) == (
        "lacp_member_left_ms", 2000, 3000)
    assert slow is not None and (slow.min_ms, slow.max_ms) == (60000, 90000)


def test_a_leaf_death_is_held_to_one_miimon():
    window = predict(failure("device_down", "device_down host leaf1: pl, ka, p1, p2 down"),
                     PARAMS, OPTIONS, INTER_LEAF)
    assert window is not None and window.figure == "failover_gap_ms"
    assert window.max_ms == 100
