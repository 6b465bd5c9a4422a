"""The window each mechanism predicts beside what was measured (harness/results/prediction.py
and each technology's prediction), on hand-written trial folders with known answers: a
1 kHz probe for 200 ms, ten 0.1 s iperf3 intervals (test_summary's), a failure at 99.5 ms."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import pytest

from harness.results import prediction, summary
from harness.results.prediction import Prediction
from harness.tech.vrrp.options import VrrpOptions

from .test_summary import CUT_NS, MS, T0
from .test_summary import write_trial as write_records

SENDS = 200                           # probe round trips, one per ms (test_summary's)
GAP_31_MS = set(range(100, 130))      # lost sends: an outage window of 31 ms (99 -> 130)
CUT = "link_down srv:eth0 <-> sw:p1 (down at the far end)"


def write_trial(root: Path, describe: str, action: str = "cut", node: str = "srv",
                lab: dict[str, Any] | None = None, facts: dict[str, Any] | None = None,
                events: list[tuple[float, str, str, str]] = (), lost: set[int] = frozenset(),
                failure: bool = True) -> Path:
    """A run folder with one trial whose first failure is ``describe``; ``events``:
    (ms after the failure, kind, node, detail) recorded besides it."""
    root.mkdir(parents=True)
    (root / "metadata.json").write_text(json.dumps({
        "scenario": {"name": "hand-written", "traffic": {
            "protocol": "tcp", "parallel": 1, "rate": "10M", "probe": "irtt",
            "probe_interval_ms": 1.0}},
        "params": {}}))
    path = root / "trial-001"
    # the probe's and iperf3's records as test_summary writes them; the rest is ours
    write_records(path, lost=lost, failure=False)
    rows = [(T0, "traffic_start", "cli", "iperf3 tcp from srv")]
    if failure:
        rows.append((CUT_NS, action, node, describe))
    rows += [(CUT_NS + int(ms * MS), kind, where, detail) for ms, kind, where, detail in events]
    with open(path / "events.csv", "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["t_ns", "t_s", "kind", "node", "detail"])
        for t_ns, kind, where, detail in rows:
            out.writerow([t_ns, (t_ns - T0) / 1e9, kind, where, detail])
    (path / "lab.json").write_text(json.dumps(lab or {}))
    failures = ([{"action": action, "node": node, "t_ns": CUT_NS, "call_ns": MS,
                  "silenced_ns": None, "describe": describe}] if failure else [])
    (path / "trial.json").write_text(json.dumps({
        "lab": "native", "kernel": "6.1.0", "bring_up_s": 1.5, "failures": failures,
        **(facts or {})}))
    return path


def row_of(tmp_path: Path, describe: str = CUT, **spec: Any) -> dict[str, Any]:
    return summary.trial_row(write_trial(tmp_path / "run", describe, **spec))


def bond(mode: str = "active-backup", miimon: int = 100, downdelay: int = 0,
         updelay: int = 0, cabled_to: dict[str, str] | None = None,
         **options: Any) -> dict[str, Any]:
    """A bond srv:bond0 of eth0 and eth1 as lab.json holds it."""
    state = {"name": "bond0", "mode": mode, "miimon": miimon, "updelay": updelay,
             "downdelay": downdelay, "active_member": "eth0",
             "members": {"eth0": True, "eth1": True},
             "options": {"miimon": miimon, "updelay": updelay, "downdelay": downdelay,
                         "arp_interval": 0, "arp_ip_target": [], "arp_validate": "none",
                         "lacp_rate": "slow", **options}}
    if cabled_to is not None:
        state["cabled_to"] = cabled_to
    return {"bonds": {"srv:bond0": state}}


BOND_FACTS = {"bond": {"active_before": {"srv": "eth0"}, "active_after": {"srv": "eth1"}}}


def window(row: dict[str, Any]) -> tuple[Any, ...]:
    return (row["predicted_figure"], row["predicted_min_ms"], row["predicted_max_ms"],
            row["within_prediction"])


def assert_no_window(row: dict[str, Any], why: str) -> None:
    assert row["predicted_figure"] == "" and row["within_prediction"] is None
    assert math.isnan(row["predicted_min_ms"]) and math.isnan(row["predicted_max_ms"])
    assert why in row["prediction"], row["prediction"]


# -- bonds: MII and ARP monitoring -----------------------------------------------------------
def test_an_active_backup_bond_is_held_to_one_miimon_and_a_gap_inside_is_within(tmp_path):
    row = row_of(tmp_path, lab=bond(miimon=100), lost=GAP_31_MS)
    assert row["failover_gap_ms"] == pytest.approx(31.0)
    assert window(row) == ("failover_gap_ms", 0, 100, True)
    assert "srv:bond0 (active-backup)" in row["prediction"]
    assert "miimon 100 ms" in row["prediction"]


def test_a_gap_longer_than_the_miimon_window_is_outside(tmp_path):
    row = row_of(tmp_path, lab=bond(miimon=20), lost=GAP_31_MS)
    assert window(row) == ("failover_gap_ms", 0, 20, False)


def test_downdelay_adds_to_both_ends_where_the_monitor_moves_the_traffic(tmp_path):
    row = row_of(tmp_path, lab=bond(miimon=100, downdelay=200, updelay=300), lost=GAP_31_MS)
    assert window(row) == ("failover_gap_ms", 200, 300, False)  # 31 ms: too soon
    assert "updelay 300 ms" in row["prediction"]  # the return, said in words


def test_a_hashing_bond_drops_a_member_at_the_carrier_event(tmp_path):
    row = row_of(tmp_path, lab=bond(mode="802.3ad", miimon=100, downdelay=200),
                 lost=GAP_31_MS)
    assert window(row) == ("failover_gap_ms", 0, 300, True)


def test_a_gap_that_ran_off_the_trace_is_neither_within_nor_outside(tmp_path):
    row = row_of(tmp_path, lab=bond(miimon=100), lost=set(range(100, SENDS)))
    assert math.isnan(row["failover_gap_ms"])
    assert window(row) == ("failover_gap_ms", 0, 100, None)


def test_the_arp_monitor_takes_missed_max_and_a_half_intervals_at_most(tmp_path):
    arp = {"arp_interval": 100, "arp_ip_target": ["198.51.100.1"]}
    row = row_of(tmp_path, lab=bond(miimon=0, **arp), lost=GAP_31_MS)
    # arp_missed_max 2 (the kernel's default): down 2 to 3.5 intervals after the failure
    assert window(row) == ("failover_gap_ms", 200, 350, False)
    assert "arp_missed_max 2" in row["prediction"]
    validated = row_of(tmp_path / "v", lab=bond(miimon=0, arp_validate="active", **arp))
    assert window(validated)[1:3] == (200, 300)  # only ARP replies, sent after each check


def test_an_arp_monitor_without_a_target_has_no_window(tmp_path):
    row = row_of(tmp_path, lab=bond(miimon=0, arp_interval=100))
    assert_no_window(row, "no arp_ip_target")


def test_a_dead_switch_that_held_every_member_leaves_nothing_to_fail_over_to(tmp_path):
    lab = bond(cabled_to={"eth0": "sw:p1", "eth1": "sw:p2"})
    row = row_of(tmp_path, "device_down switch sw: p0, p1, p2 down; processes killed: none",
                 action="device_down", node="sw", lab=lab, lost=GAP_31_MS)
    assert_no_window(row, "nothing to fail over to")


def test_a_dead_switch_that_held_one_member_is_held_to_one_miimon(tmp_path):
    lab = bond(cabled_to={"eth0": "sw1:p1", "eth1": "sw2:p1"})
    row = row_of(tmp_path, "device_down switch sw1: p0, p1 down; processes killed: none",
                 action="device_down", node="sw1", lab=lab, lost=GAP_31_MS)
    assert window(row) == ("failover_gap_ms", 0, 100, True)


def test_a_device_death_without_the_cabling_on_record_says_so(tmp_path):
    row = row_of(tmp_path, "device_down switch sw: p0, p1, p2 down; processes killed: none",
                 action="device_down", node="sw", lab=bond())
    assert_no_window(row, "does not say where srv:bond0's members are cabled")


# -- LACP timeouts ---------------------------------------------------------------------------
def lacp_drop(tmp_path: Path, rate: str, left_ms: float, direction: str = "in"
              ) -> dict[str, Any]:
    return row_of(tmp_path, f"control_plane_drop lacp at srv:eth0 ({direction} via tc;"
                  " carrier kept)", action="drop_control",
                  lab=bond(mode="802.3ad", lacp_rate=rate), facts=BOND_FACTS,
                  events=[(left_ms, "lacp_members_changed", "srv", "eth0,eth1 -> eth1")])


def test_lost_lacpdus_at_the_fast_rate_leave_within_two_to_three_seconds(tmp_path):
    row = lacp_drop(tmp_path, "fast", 2500)
    assert row["lacp_member_left_ms"] == 2500.0
    assert window(row) == ("lacp_member_left_ms", 2000, 3000, True)
    assert "srv:bond0" in row["prediction"]


def test_lost_lacpdus_at_the_slow_rate_take_sixty_to_ninety_seconds(tmp_path):
    row = lacp_drop(tmp_path, "slow", 2500)
    assert window(row) == ("lacp_member_left_ms", 60000, 90000, False)


def test_lacpdus_lost_only_on_their_way_out_have_no_window(tmp_path):
    row = lacp_drop(tmp_path, "fast", 2500, direction="out")
    assert_no_window(row, "the far end's timeout decides")


# -- Open vSwitch LAGs -----------------------------------------------------------------------
def ovs_lag(detect: str = "carrier", interval: int = 100, downdelay: int = 0
            ) -> dict[str, Any]:
    settings = {"bond_mode": "balance-tcp", "lacp": "active", "bond_updelay": "0",
                "bond_downdelay": str(downdelay), "other_config:bond-detect-mode": detect,
                "other_config:bond-miimon-interval": str(interval)}
    return {"lags": {"sw1:lag0": "rxsw1-lag0", "sw2:lag0": "rxsw2-lag0"},
            "lag_settings": {key: {"requested": settings, "read_back": settings}
                             for key in ("sw1:lag0", "sw2:lag0")},
            "lag_cabling": {"sw1:lag0": {"l1": "sw2:l1", "l2": "sw2:l2"},
                            "sw2:lag0": {"l1": "sw1:l1", "l2": "sw1:l2"}}}


LAG_CUT = "link_down sw1:l1 <-> sw2:l1 (down at both ends)"


def test_an_ovs_lag_with_carrier_detection_moves_flows_at_once(tmp_path):
    row = row_of(tmp_path, LAG_CUT, node="sw1", lab=ovs_lag(), lost=GAP_31_MS)
    assert window(row) == ("failover_gap_ms", 0, 100, True)
    assert "sw1:lag0 and sw2:lag0" in row["prediction"]
    assert "carrier" in row["prediction"]


def test_an_ovs_lag_polling_mii_waits_its_interval_and_downdelay(tmp_path):
    row = row_of(tmp_path, LAG_CUT, node="sw1",
                 lab=ovs_lag("miimon", interval=50, downdelay=100), lost=GAP_31_MS)
    assert window(row) == ("failover_gap_ms", 100, 250, False)
    assert "bond-miimon-interval 50 ms" in row["prediction"]


def test_a_bond_facing_an_ovs_lag_is_the_end_that_decides(tmp_path):
    """The registry's later technology speaks for the cable: the server's bond."""
    lab = {**ovs_lag(), **bond(mode="802.3ad", miimon=300)}
    lab["lag_cabling"] = {"sw:lag0": {"p1": "srv:eth0", "p2": "srv:eth1"}}
    lab["lag_settings"] = {"sw:lag0": lab["lag_settings"]["sw1:lag0"]}
    row = row_of(tmp_path, lab=lab, lost=GAP_31_MS)
    assert window(row) == ("failover_gap_ms", 0, 300, True)
    assert row["prediction"].startswith("srv:bond0")


# -- VRRP ------------------------------------------------------------------------------------
def routers(track: list[str] = ()) -> dict[str, Any]:
    def one(priority: int) -> dict[str, Any]:
        return VrrpOptions(interface="eth0", virtual_router_id=51, version=3,
                           virtual_ipaddress=["192.0.2.254/24"], priority=priority,
                           advert_int=0.1, track_interface=list(track)
                           ).model_dump(mode="json")
    return {"vrrp": {"r1": one(200), "r2": one(100)}}


ELECTED = [(-99, "vrrp_state", "r1", "BACKUP 200"), (-98, "vrrp_state", "r2", "BACKUP 100"),
           (-90, "vrrp_state", "r1", "MASTER 200")]


def vrrp_trial(tmp_path: Path, describe: str, action: str, node: str, takeover_ms: float,
               track: list[str] = ()) -> dict[str, Any]:
    return row_of(tmp_path, describe, action=action, node=node, lab=routers(track),
                  events=[*ELECTED, (takeover_ms, "vrrp_state", "r2", "MASTER 100")])


MASTER_DEATH = "device_down host r1: eth0, eth1 down; processes killed: keepalived[8]"


def test_a_silent_master_is_taken_over_within_the_master_down_interval(tmp_path):
    row = vrrp_trial(tmp_path, MASTER_DEATH, "device_down", "r1", 300)
    # r2 at priority 100, advert_int 100 ms, VRRPv3: master down 360.937 ms, skew 60.937
    assert window(row) == ("vrrp_takeover_ms", 260.937, 360.937, True)
    late = vrrp_trial(tmp_path / "late", MASTER_DEATH, "device_down", "r1", 400)
    assert window(late)[3] is False


def test_adverts_dropped_into_the_backup_silence_the_master_as_well(tmp_path):
    row = vrrp_trial(tmp_path, "control_plane_drop vrrp at r2:eth0 (in via nft; carrier"
                     " kept)", "drop_control", "r2", 300)
    assert window(row) == ("vrrp_takeover_ms", 260.937, 360.937, True)


def test_a_tracked_uplink_lost_hands_over_after_the_skew_time(tmp_path):
    row = vrrp_trial(tmp_path, "link_down r1:eth1 <-> wan:p1 (down at the far end)", "cut",
                     "r1", 70, track=["eth1"])
    assert window(row) == ("vrrp_takeover_ms", 60.937, 260.937, True)


def test_an_untracked_uplink_lost_is_due_no_takeover(tmp_path):
    row = vrrp_trial(tmp_path, "link_down r1:eth1 <-> wan:p1 (down at the far end)", "cut",
                     "r1", 300)
    assert_no_window(row, "no takeover is due")


# -- no model --------------------------------------------------------------------------------
def test_a_baseline_has_the_columns_empty_and_says_why(tmp_path):
    row = row_of(tmp_path, failure=False)
    assert_no_window(row, "no failure")


def test_a_degrade_step_has_no_model(tmp_path):
    row = row_of(tmp_path, "degrade srv:eth0 <-> sw:p1: loss 5% per direction (egress of"
                 " near)", action="degrade", lab=bond(), lost=GAP_31_MS)
    assert_no_window(row, "no model for a degrade step")


def test_a_cut_nothing_protects_has_no_model(tmp_path):
    row = row_of(tmp_path, lost=GAP_31_MS)  # a path: no bond, no LAG, no VRRP in lab.json
    assert_no_window(row, "no redundancy mechanism")


def test_mclag_keeps_its_own_columns_and_gives_the_generic_ones_the_same_window(tmp_path):
    facts = {"mclag": {"options": {"peer_timeout_ms": 500, "heartbeat_ms": 100},
                       "roles_after": {}, "servers": [], "inter_leaf": ["leaf1:pl",
                                                                        "leaf2:pl"]}}
    row = row_of(tmp_path, "link_down leaf1:pl <-> leaf2:pl (down at both ends)",
                 node="leaf1", facts=facts, events=[(450, "mclag_peer_lost", "leaf2", "")])
    assert window(row) == ("mclag_detect_ms", 400, 500, True)
    assert [row[f"mclag_{c}"] for c in prediction.COLUMNS] == [
        row[c] for c in prediction.COLUMNS]


# -- the choice between technologies, and the failure's facts --------------------------------
def technology(answer: Prediction | None) -> type:
    class Fake:
        @staticmethod
        def prediction(trial: Any, row: Any) -> Prediction | None:
            return answer
    return Fake


def test_the_latest_technology_with_a_window_wins_over_earlier_ones_and_reasons(tmp_path):
    trial = summary.load(write_trial(tmp_path / "run", CUT))
    early, late = Prediction("a_ms", 0, 1, "early"), Prediction("b_ms", 2, 3, "late")
    reason = Prediction.unknown("no window here")
    assert prediction.choose(trial, {}, [technology(early), technology(late),
                                         technology(reason)]) == late
    assert prediction.choose(trial, {}, [technology(reason), technology(None)]) == reason
    assert "no redundancy mechanism" in prediction.choose(
        trial, {}, [technology(None)]).basis


@pytest.mark.parametrize("describe, ends, protocol, directions", [
    (CUT, ("srv:eth0", "sw:p1"), None, ()),
    ("control_plane_drop lacp at srv:eth1 (in+out via tc; carrier kept)", ("srv:eth1",),
     "lacp", ("in", "out")),
    ("control_plane_drop vrrp at r2:eth0 (out; carrier kept)", ("r2:eth0",), "vrrp",
     ("out",)),
    ("device_down host leaf1: pl, ka, p1 down; processes killed: python[9]", (), None, ()),
])
def test_the_failure_is_read_from_its_description(tmp_path, describe, ends, protocol,
                                                  directions):
    failure = prediction.first_failure(summary.load(write_trial(tmp_path / "run", describe)))
    assert failure is not None
    assert (failure.ends, failure.protocol, failure.directions) == (ends, protocol,
                                                                     directions)


def test_lab_json_records_where_bond_and_lag_members_are_cabled():
    """What a device's death is predicted from: which members face the dead device."""
    from types import SimpleNamespace

    from harness.tech.bond.plugin import Bonds
    from harness.tech.ovs.plugin import OvsSwitches
    from harness.topology.loader import build_topology

    topo, _ = build_topology("bond_two_switches", {})
    bonds = Bonds(SimpleNamespace(topo=topo))  # type: ignore[arg-type]
    bonds.states = {"srv:bond0": SimpleNamespace(as_dict=dict)}  # type: ignore[dict-item]
    assert bonds.state()["bonds"]["srv:bond0"]["cabled_to"] == {"eth0": "sw1:p1",
                                                                 "eth1": "sw2:p1"}
    topo, _ = build_topology("lag_server", {})
    lab = SimpleNamespace(topo=topo, ifname=lambda node, intf: intf)
    switches = OvsSwitches(lab)  # type: ignore[arg-type]
    assert switches.state()["lag_cabling"] == {"sw:lag0": {"p1": "srv:eth0",
                                                           "p2": "srv:eth1"}}


# -- the bond watcher's bracket ------------------------------------------------------------
def test_the_switch_over_is_bracketed_by_the_watchers_last_two_reads(tmp_path):
    """Seen switched 120 ms after the cut by a read that came 80 ms after the one that
    still saw eth0 (a starved watcher): the switch lies 40 to 120 ms after the cut."""
    seen_ns = CUT_NS + 120 * MS
    facts = {"bond": {**BOND_FACTS["bond"],
                      "active_changes_seen": [[seen_ns, seen_ns - 80 * MS]]}}
    row = row_of(tmp_path, lab=bond(), facts=facts,
                 events=[(120, "bond_active_changed", "srv", "eth0 -> eth1")])
    assert (row["failover_detected_ms"], row["failover_detected_uncertainty_ms"]) == (120, 80)


def test_a_run_without_the_bracket_on_record_leaves_its_width_unknown(tmp_path):
    row = row_of(tmp_path, lab=bond(), facts=BOND_FACTS,
                 events=[(120, "bond_active_changed", "srv", "eth0 -> eth1")])
    assert row["failover_detected_ms"] == 120
    assert math.isnan(row["failover_detected_uncertainty_ms"])
