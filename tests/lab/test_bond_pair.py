"""Two 802.3ad bonds cabled back to back (LACP Linux to Linux), and one cable is cut.

On a kernel without bonding the run boots User-mode Linux. The harness refuses to start
traffic until harness.tech.lacp.check says both ends negotiated, and keeps the table it saw
in lab.json; the run stores no raw /proc/net/bonding text, so the negotiation is read
back from that table here.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from ..conftest import LAB_REPORT, call_start_s, read_rows, run_scenario, trial_events

pytestmark = pytest.mark.lab
SCENARIO = "bond-pair-member-failure"
MIIMON = 100
SLACK_MS = 150  # UML shares one CPU: the MII monitor's timer may run late
# Carrier loss takes a member out at the next MII check (100 ms), an LACP timeout only
# after 3 missed PDUs (3 s with lacp_rate fast). Inside UML on a busy host the MII timer
# has run up to 0.4 s late, so the mechanism is asserted, not the figure: well under 1 s.
LEFT_WITHIN_MS = 1000
NO_SYSTEM = "00:00:00:00:00:00"
# A flow left on a dead member sends nothing until the cut heals; one that moved keeps its
# 5 Mbit/s, unless the host starves the guest (a whole CI run of it has been seen). So
# the mechanism is asserted with room for a starved guest: a moved flow keeps a quarter.
MOVED = 0.25
# one end of a row of lacp.check.verdict's table: member, aggregator, actor, partner states,
# partner system/key/port
END = re.compile(r"^(?P<member>\S+)\s+agg (?P<agg>\d+|-)(?P<down>, mii down)?\s+"
                 r"(?P<actor>\S{8})\s+(?P<partner>\S{8})\s+(?P<sys>[0-9a-f:]{17})/"
                 r"(?P<key>\d+)/(?P<port>\d+)$")


@pytest.fixture(scope="module")
def bond_pair(tmp_path_factory) -> Path:
    out = run_scenario(tmp_path_factory, SCENARIO)
    row = summary(out)
    changes = "; ".join(f"{e['t_s']} s {e['node']} {e['detail']}"
                        for e in trial_events(out, "lacp_members_changed"))
    LAB_REPORT.append(
        f"bond-pair-member-failure ({row['lab']}): member left after"
        f" {row['lacp_member_left_ms']} ms; probe outage window {row['failover_gap_ms']} ms"
        f" ({row['lost_packets']} lost, {row['outages']} outage(s)); throughput"
        f" {row['throughput_before_mbps']} / {row['throughput_during_mbps']} /"
        f" {row['throughput_after_mbps']} Mbit/s before / during / after;"
        f" {row['spread_srv_bond0']}; LACP membership: {changes}")
    return out


def summary(out: Path) -> dict[str, str]:
    return read_rows(out / "summary.csv")[0]


def bonds(out: Path) -> dict[str, dict]:
    return json.loads((out / "trial-001" / "bonds.json").read_text())


def test_both_ends_are_802_3ad_bonds_with_the_same_options(bond_pair):
    states = bonds(bond_pair)
    assert set(states) == {"cli", "srv"}
    for node, state in states.items():
        assert state["mode"] == "802.3ad", node
        assert state["miimon"] == MIIMON, node
        assert state["options"]["lacp_rate"] == "fast", node
        assert state["options"]["xmit_hash_policy"] == "layer3+4", node
        assert set(state["members"]) == {"eth0", "eth1"}, node


def test_lacp_negotiated_between_the_two_linux_bonds(bond_pair):
    lab = json.loads((bond_pair / "trial-001" / "lab.json").read_text())
    table = lab["lacp_negotiated"]["cli - srv"]  # end A is cli, end B srv
    systems = re.findall(r"\(system ([0-9a-f:]{17}) key (\d+)\)", table[0])
    assert len(systems) == 2, table[0]
    # each end's LACP system id is its bond's MAC: that of its first member, eth0
    states = bonds(bond_pair)
    assert [s for s, _ in systems] == [states[n]["member_info"]["eth0"]["perm_hwaddr"]
                                       for n in ("cli", "srv")]
    rows = [line.split(" | ") for line in table[2:] if " | " in line]
    assert len(rows) == 2, table
    for side, other in ((0, 1), (1, 0)):
        ends = [END.match(row[side].strip()) for row in rows]
        assert all(ends), table
        assert {e["member"] for e in ends} == {"eth0", "eth1"}
        # both members in one aggregator, up
        assert len({e["agg"] for e in ends}) == 1 and ends[0]["agg"] != "-", table
        assert not any(e["down"] for e in ends), table
        for e in ends:
            # active, short timeout (lacp_rate fast), aggregatable, in sync, collecting,
            # distributing; neither defaulted nor expired: on both the actor and the
            # partner information this end holds
            assert e["actor"] == "ASGNCD..", table
            assert e["partner"] == "ASGNCD..", table
            assert e["sys"] != NO_SYSTEM and e["sys"] == systems[other][0], table
            assert e["key"] == systems[other][1], table


def test_the_cut_member_leaves_both_bonds_on_carrier_loss_not_lacp_timeout(bond_pair):
    row = summary(bond_pair)
    cut = trial_events(bond_pair, "cut")[0]
    assert "srv:eth0 <-> cli:eth0" in cut["detail"]
    # the cut is stamped at the middle of its netlink call: the kernel may act anywhere
    # in the call, so a member may leave after the call began, before the stamp
    began_s = call_start_s(bond_pair, "cut")
    for node in ("srv", "cli"):
        left = next(e for e in trial_events(bond_pair, "lacp_members_changed")
                    if e["node"] == node)
        assert left["detail"] == "eth0,eth1 -> eth1", node
        assert began_s <= float(left["t_s"]) < float(cut["t_s"]) + LEFT_WITHIN_MS / 1000, \
            (node, cut["detail"])
    assert float(row["lacp_member_left_ms"]) < LEFT_WITHIN_MS


def number(text: str) -> float:
    return float(text) if text else math.nan  # an empty cell: nothing was measured


def test_traffic_survives_the_member_cut(bond_pair):
    row = summary(bond_pair)
    assert float(row["throughput_during_mbps"]) > 0
    # one of two unshaped cables is left: the 4 x 5 Mbit/s still fit. Rates weighted by
    # interval length (a starved iperf3 reports uneven intervals, and the summary's plain
    # mean of their rates then overstates: 72 Mbit/s seen for these 20)
    cut_s = float(trial_events(bond_pair, "cut")[0]["t_s"])
    restore_s = float(trial_events(bond_pair, "restore")[0]["t_s"])
    rates = stream_rates(bond_pair, cut_s, restore_s)
    ahead, during = sum(a for a, _ in rates), sum(d for _, d in rates)
    assert ahead > 1 and during > MOVED * ahead, (ahead, during)
    # Each end took the member out of its transmit set on the kernel's link event, not
    # at its MII check (see the scenario): the probe's flow loses a few ms if it was
    # hashed onto eth0, and nothing (0 ms, not a blank) otherwise.
    gap = number(row["failover_gap_ms"])
    assert not math.isnan(gap) and 0 <= gap < MIIMON + SLACK_MS, gap


def test_flows_on_the_cut_member_move_to_the_other(bond_pair):
    # layer3+4 hashes each flow by its ports, which iperf3 picks at random: all four
    # can land on eth1 (one run in eight), and then no flow lost its member.
    members = {m["member"]: int(m["tx_bytes"]) for m in read_rows(
        bond_pair / "trial-001" / "members.csv") if m["group"] == "srv:bond0"}
    if members["eth0"] < 1_500_000:  # one 5 Mbit/s flow: 1.9 MB before the cut, and
        # all four after the rejoin (at most 0.5 s before the end) send less
        pytest.skip(f"no flow was hashed onto eth0 (it sent {members['eth0']} bytes)")
    cut_s = float(trial_events(bond_pair, "cut")[0]["t_s"])
    restore_s = float(trial_events(bond_pair, "restore")[0]["t_s"])
    for stream, (ahead, during) in enumerate(stream_rates(bond_pair, cut_s, restore_s)):
        assert during > MOVED * ahead, f"stream {stream}: {ahead:.2f} -> {during:.2f} Mbit/s"


def stream_rates(out: Path, cut_s: float, restore_s: float) -> list[tuple[float, float]]:
    """Per iperf3 stream, the mean received rate (Mbit/s) from 0.5 s to the cut and from
    the cut to the restore (interval times count from the traffic start, as t_s does)."""
    report = json.loads((out / "trial-001" / "iperf3.json").read_text())
    by_stream: dict[int, list[dict]] = {}
    for interval in report["intervals"]:
        for stream in interval["streams"]:
            by_stream.setdefault(stream["socket"], []).append(stream)

    def mean(samples: list[dict], start: float, end: float) -> float:
        inside = [s for s in samples if start <= s["start"] and s["end"] <= end]
        return sum(s["bytes"] * 8 for s in inside) / sum(s["seconds"] for s in inside) / 1e6

    return [(mean(s, 0.5, cut_s), mean(s, cut_s, restore_s)) for s in by_stream.values()]


def test_no_member_failed_while_the_lab_was_built(bond_pair):
    # The lab enslaves every member before it brings any up: enslaving takes a member
    # down, and had srv's bond been running then, its MII monitor could have counted
    # cli's enslaving as a failure of srv's member (seen in CI: srv eth0 already at 1
    # when the trial began, 2 at its end).
    lab = json.loads((bond_pair / "trial-001" / "lab.json").read_text())
    counts = {(key, member): info["link_failure_count"]
              for key, state in lab["bonds"].items()
              for member, info in state["member_info"].items()}
    assert len(counts) == 4 and set(counts.values()) == {0}, counts


def test_the_member_rejoins_both_bonds_after_the_restore(bond_pair):
    # The kernel's word at the end of the trial: eth0 failed once at each end and is back
    # in the active aggregator (802.3ad marks members outside it "backup").
    for node, state in bonds(bond_pair).items():
        info = state["member_info"]
        assert info["eth0"]["link_failure_count"] == 1, node
        assert info["eth1"]["link_failure_count"] == 0, node
        assert info["eth0"]["state"] == info["eth1"]["state"] == "active", (node, info)
    # and the events say so once: eth0 left, then came back when LACP had negotiated it
    # again, which takes the 2 s aggregate wait timer at least. (Before lacp.linux.Membership
    # the returning member's stale state in the status file read as a join at the
    # restore and a leave 0.1 s later.)
    restore_s = float(trial_events(bond_pair, "restore")[0]["t_s"])
    for node in ("srv", "cli"):
        changes = [e for e in trial_events(bond_pair, "lacp_members_changed")
                   if e["node"] == node]
        assert [e["detail"] for e in changes] == ["eth0,eth1 -> eth1", "eth1 -> eth0,eth1"], (
            node, changes)
        assert float(changes[1]["t_s"]) - restore_s > 1.0, (node, changes)
