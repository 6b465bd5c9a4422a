"""The emulated MC-LAG control plane's rules (harness/tech/mclag/control.py), run as two
controllers exchanging heartbeats on a simulated clock; the heartbeat frame's codec and
the reading of the bridge's forwarding database (agent.py, fdb.py).

Each test names the real pair's rule it checks; the clock moves in heartbeat steps, so a
timeout lands between two steps exactly as it would between two heartbeats.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from harness.tech.mclag import fdb
from harness.tech.mclag.control import (
    ALONE_AFTER_START_MS,
    NONE,
    ORPHAN,
    PRIMARY,
    SECONDARY,
    Action,
    AgentConfig,
    Controller,
    Event,
    Message,
    PointMac,
    ReleasePorts,
    SendNow,
    SetSystemId,
    ShutDownPorts,
    SplitHorizon,
)
from harness.tech.mclag.heartbeat import MAX_FRAME, decode_frame, encode_frame

MS = 1_000_000
HB, TIMEOUT = 1000, 5000  # ms: Cisco vPC's keepalive interval and timeout
SHARED = "02:00:5e:10:00:01"
OWN = {"leaf1": "aa:bb:cc:00:00:01", "leaf2": "aa:bb:cc:00:00:02"}
SERVER_MAC, ORPHAN_MAC = "02:00:00:00:0a:01", "02:00:00:00:0b:01"


def settings(leaf: str, **over: Any) -> dict[str, Any]:
    return {"leaf": leaf, "peer": "leaf2" if leaf == "leaf1" else "leaf1", "bridge": "br0",
            "peer_link": "pl", "keepalive": "ka", "system_id": SHARED,
            "own_system_id": OWN[leaf], "role_priority": 100 if leaf == "leaf1" else 200,
            "dual_homed": {"srv": "po1"}, "members": {"po1": ["p1"]}, "orphans": ["p3"],
            "heartbeat_ms": HB, "peer_timeout_ms": TIMEOUT,
            "events": "/run/e.jsonl", "status": "/run/s.json", **over}


def kinds(actions: list[Action]) -> list[str]:
    return [a.kind for a in actions if isinstance(a, Event)]


def of_type(actions: list[Action], kind: type) -> list[Any]:
    return [a for a in actions if isinstance(a, kind)]


class Pair:
    """leaf1 (role priority 100) and leaf2 (200), the peer link and keepalive between
    them, heartbeats every HB ms on the paths not cut, from the leaves that are alive."""

    def __init__(self, start: tuple[str, ...] = ("leaf1", "leaf2"), **over: Any) -> None:
        self.now = 0
        self.leaves = {leaf: Controller(AgentConfig(**settings(leaf, **over)), 0)
                       for leaf in ("leaf1", "leaf2")}
        self.alive = set(start)
        self.cut: set[str] = set()
        self.actions: dict[str, list[Action]] = {leaf: [] for leaf in self.leaves}

    def __getitem__(self, leaf: str) -> Controller:
        return self.leaves[leaf]

    def revive(self, leaf: str, **over: Any) -> None:
        """A new agent (its controller starts over), as after a device death; ``over``
        changes its settings."""
        config = dataclasses.replace(self.leaves[leaf].config, **over)
        self.leaves[leaf] = Controller(config, self.now)
        self.alive.add(leaf)

    def do(self, leaf: str, actions: list[Action]) -> None:
        self.actions[leaf] += actions

    def run(self, ms: int) -> None:
        for _ in range(ms // HB):
            self.now += HB * MS
            messages = {leaf: self.leaves[leaf].message(self.now) for leaf in self.alive}
            for sender, message in messages.items():
                receiver = "leaf2" if sender == "leaf1" else "leaf1"
                for path in ("peer_link", "keepalive"):
                    if receiver in self.alive and path not in self.cut:
                        self.do(receiver, self[receiver].on_heartbeat(path, message, self.now))
            for leaf in self.alive:
                self.do(leaf, self[leaf].tick(self.now))

    def take(self, leaf: str) -> list[Action]:
        """The actions of ``leaf`` since the last take."""
        taken, self.actions[leaf] = self.actions[leaf], []
        return taken


# -- election -------------------------------------------------------------------------------
def test_the_lower_role_priority_is_elected_primary_at_the_first_heartbeat():
    pair = Pair()
    pair.run(HB)
    assert (pair["leaf1"].role, pair["leaf2"].role) == (PRIMARY, SECONDARY)
    assert "role" in kinds(pair.take("leaf1")) and "role" in kinds(pair.take("leaf2"))


def test_equal_role_priorities_elect_the_lower_own_system_id():
    pair = Pair()
    for leaf, mac in (("leaf1", "aa:bb:cc:00:00:09"), ("leaf2", "aa:bb:cc:00:00:03")):
        config = AgentConfig(**settings(leaf, role_priority=100, own_system_id=mac))
        pair.leaves[leaf] = Controller(config, 0)
    pair.run(HB)
    assert (pair["leaf1"].role, pair["leaf2"].role) == (SECONDARY, PRIMARY)


def test_a_leaf_that_hears_no_peer_becomes_primary_after_the_peer_timeout():
    alone = Controller(AgentConfig(**settings("leaf1")), 0)
    assert alone.deadline_ns() == TIMEOUT * MS
    assert alone.tick(TIMEOUT * MS - 1) == []
    actions = alone.tick(TIMEOUT * MS)
    assert alone.role == PRIMARY
    assert [a.detail["why"] for a in actions if isinstance(a, Event)] == [
        "no peer heard since start"]
    assert alone.deadline_ns() is None  # nothing heard, nothing left to wait for


def test_with_a_short_peer_timeout_a_leaf_still_waits_for_its_peer_to_start():
    """A 500 ms peer timeout, and leaf1's agent ready 1.5 s after leaf2's (seen in a busy
    User-mode Linux): leaf2 must not take the primary role alone meanwhile, so the
    priorities decide (leaf1, 100, primary)."""
    fast = {"heartbeat_ms": 100, "peer_timeout_ms": 500}
    leaf2 = Controller(AgentConfig(**settings("leaf2", **fast)), 0)
    assert leaf2.deadline_ns() == ALONE_AFTER_START_MS * MS
    assert leaf2.tick(1500 * MS) == [] and leaf2.role == NONE
    leaf1 = Controller(AgentConfig(**settings("leaf1", **fast)), 1500 * MS)
    for now in range(1500, 2500, 100):
        for me, peer in ((leaf1, leaf2), (leaf2, leaf1)):
            for path in ("peer_link", "keepalive"):
                me.on_heartbeat(path, peer.message(now * MS), now * MS)
            me.tick(now * MS)
    assert (leaf1.role, leaf2.role) == (PRIMARY, SECONDARY)
    alone = Controller(AgentConfig(**settings("leaf2", **fast)), 0)
    alone.tick(ALONE_AFTER_START_MS * MS - 1)
    assert alone.role == NONE
    alone.tick(ALONE_AFTER_START_MS * MS)
    assert alone.role == PRIMARY  # and alone it does, after the start-up wait


def test_a_primary_keeps_its_role_when_a_leaf_with_a_better_priority_returns():
    """vPC is non-preemptive: leaf1 (priority 100) comes back as secondary."""
    pair = Pair(start=("leaf2",))
    pair.run(TIMEOUT)
    assert pair["leaf2"].role == PRIMARY
    pair.take("leaf2")
    pair.revive("leaf1")
    pair.run(2 * HB)
    assert (pair["leaf1"].role, pair["leaf2"].role) == (SECONDARY, PRIMARY)
    assert "role" not in kinds(pair.take("leaf2"))


def test_a_heartbeat_from_a_leaf_that_is_not_the_peer_is_reported_once_and_ignored():
    ctl = Controller(AgentConfig(**settings("leaf1")), 0)
    stranger = Message("leaf9", "aa:bb:cc:00:00:09", 1, "primary", 1, {}, {})
    assert kinds(ctl.on_heartbeat("peer_link", stranger, MS)) == ["unexpected_heartbeat"]
    assert ctl.on_heartbeat("peer_link", stranger, 2 * MS) == []
    assert not ctl.peer_alive


# -- peer link lost, keepalive alive ------------------------------------------------------------
def test_secondary_shutdown_takes_only_the_secondary_s_ports_down_until_the_peer_link_returns():
    pair = Pair(peer_link_policy="secondary-shutdown")
    pair.run(2 * HB)
    pair.take("leaf1"), pair.take("leaf2")
    pair.cut = {"peer_link"}
    pair.run(TIMEOUT - HB)
    assert of_type(pair.take("leaf2"), ShutDownPorts) == []  # not yet: within the timeout
    pair.run(HB)
    down = pair.take("leaf2")
    assert of_type(down, ShutDownPorts) == [ShutDownPorts(True)]
    assert next(a.detail for a in down if isinstance(a, Event)
                and a.kind == "ports_shut_down") == {"ports": ["p1"]}
    assert of_type(pair.take("leaf1"), ShutDownPorts) == []
    assert pair["leaf2"].peer_alive and pair["leaf2"].role == SECONDARY
    pair.cut = set()
    pair.run(HB)
    assert of_type(pair.take("leaf2"), ShutDownPorts) == [ShutDownPorts(False)]


def test_ports_stay_down_while_the_keepalive_s_heartbeats_come_late_but_within_timeout():
    pair = Pair(peer_link_policy="secondary-shutdown")
    pair.run(HB)
    pair.cut = {"peer_link"}
    pair.run(TIMEOUT + HB)
    assert pair["leaf2"].shutdown
    pair.take("leaf2")
    pair.now += 3 * HB * MS  # a stall: no heartbeat for three intervals
    pair.do("leaf2", pair["leaf2"].tick(pair.now))
    pair.run(HB)
    assert of_type(pair.take("leaf2"), ShutDownPorts) == []


def test_a_cut_of_both_paths_takes_no_port_down_in_the_ms_between_their_timeouts():
    """The peer link's last heartbeat arrived 5 ms before the keepalive's: it expires
    first, while the keepalive is still up but no longer hearing the peer."""
    ctl = Controller(AgentConfig(**settings("leaf2")), 0)
    primary = Message("leaf1", OWN["leaf1"], 100, PRIMARY, 1, {}, {})
    ctl.on_heartbeat("peer_link", primary, 1000 * MS)
    ctl.on_heartbeat("keepalive", primary, 1005 * MS)
    first = ctl.tick((1000 + TIMEOUT) * MS)
    assert kinds(first) == ["peer_link_down"] and ctl.peer_alive
    then = ctl.tick((1005 + TIMEOUT) * MS)
    assert kinds(then) == ["keepalive_down", "peer_lost", "role"]
    assert of_type(first + then, ShutDownPorts) == []


def test_policy_none_keeps_forwarding_when_the_peer_link_fails():
    pair = Pair(peer_link_policy="none")
    pair.run(2 * HB)
    pair.cut = {"peer_link"}
    pair.run(2 * TIMEOUT)
    assert of_type(pair.take("leaf2"), ShutDownPorts) == []
    assert "peer_link_down" in kinds(pair.take("leaf1"))


def test_a_shut_down_secondary_brings_its_ports_back_once_the_peer_is_lost_too():
    """vPC auto-recovery: a secondary that became primary must not stay suspended."""
    pair = Pair(peer_link_policy="secondary-shutdown")
    pair.run(HB)
    pair.cut = {"peer_link"}
    pair.run(TIMEOUT + HB)
    pair.cut = {"peer_link", "keepalive"}
    pair.take("leaf2")
    pair.run(TIMEOUT + HB)
    assert of_type(pair.take("leaf2"), ShutDownPorts) == [ShutDownPorts(False)]
    assert pair["leaf2"].role == PRIMARY


# -- peer lost: dual-active and the primary's death ---------------------------------------------
def test_dual_active_with_revert_system_id_reverts_the_secondary_only_and_restores_on_return():
    pair = Pair(dual_active_policy="revert-system-id")
    pair.run(2 * HB)
    pair.take("leaf1"), pair.take("leaf2")
    pair.cut = {"peer_link", "keepalive"}
    pair.run(TIMEOUT + HB)
    secondary = pair.take("leaf2")
    assert of_type(secondary, SetSystemId) == [SetSystemId("po1", OWN["leaf2"])]
    assert kinds(secondary)[-3:] == ["peer_lost", "role", "system_id_reverted"]
    assert of_type(pair.take("leaf1"), SetSystemId) == []
    assert (pair["leaf1"].role, pair["leaf2"].role) == (PRIMARY, PRIMARY)
    pair.cut = set()
    pair.run(HB)
    assert of_type(pair.take("leaf2"), SetSystemId) == [SetSystemId("po1", SHARED)]
    assert (pair["leaf1"].role, pair["leaf2"].role) == (PRIMARY, SECONDARY)


def test_dual_active_with_keep_system_id_leaves_both_primary_on_the_shared_id():
    pair = Pair(dual_active_policy="keep-system-id")
    pair.run(HB)
    pair.cut = {"peer_link", "keepalive"}
    pair.run(TIMEOUT + HB)
    assert (pair["leaf1"].role, pair["leaf2"].role) == (PRIMARY, PRIMARY)
    assert of_type(pair.take("leaf1") + pair.take("leaf2"), SetSystemId) == []
    assert pair["leaf2"].status()["system_id"] == {"po1": SHARED}
    pair.cut = set()
    pair.run(HB)  # two primaries meet: the election decides
    assert (pair["leaf1"].role, pair["leaf2"].role) == (PRIMARY, SECONDARY)


@pytest.mark.parametrize("policy", ["keep-system-id", "revert-system-id"])
def test_the_primary_s_death_promotes_the_secondary_one_peer_timeout_after_its_last_heartbeat(
        policy: str):
    pair = Pair(dual_active_policy=policy)
    pair.run(2 * HB)
    last_heard = pair.now
    pair.alive.discard("leaf1")
    pair.take("leaf2")
    pair.run(TIMEOUT - HB)
    assert pair["leaf2"].role == SECONDARY
    assert pair["leaf2"].deadline_ns() == last_heard + TIMEOUT * MS
    promoted = pair["leaf2"].tick(last_heard + TIMEOUT * MS)
    assert pair["leaf2"].role == PRIMARY
    reverted = of_type(promoted, SetSystemId)
    assert reverted == ([SetSystemId("po1", OWN["leaf2"])] if policy == "revert-system-id"
                        else [])


def test_a_revived_leaf_becomes_secondary_and_the_reverted_one_takes_the_shared_id_back():
    pair = Pair(dual_active_policy="revert-system-id")
    pair.run(HB)
    pair.alive.discard("leaf1")
    pair.run(TIMEOUT + HB)
    pair.take("leaf2")
    pair.revive("leaf1")
    pair.run(HB)
    assert (pair["leaf1"].role, pair["leaf2"].role) == (SECONDARY, PRIMARY)
    assert of_type(pair.take("leaf2"), SetSystemId) == [SetSystemId("po1", SHARED)]


# -- delay restore -------------------------------------------------------------------------
DELAY = 3000  # ms


def reboot(pair: Pair, leaf: str, dead_ms: int) -> None:
    """``leaf`` dies for ``dead_ms`` and comes back with its dual-homed port held down."""
    pair.run(HB)
    pair.alive.discard(leaf)
    pair.run(dead_ms)
    pair.take("leaf1"), pair.take("leaf2")
    pair.revive(leaf, held=["p1"], delay_restore_ms=DELAY)


def test_a_rebooted_leaf_releases_its_ports_a_delay_restore_after_it_hears_its_peer():
    pair = Pair()
    reboot(pair, "leaf1", TIMEOUT + HB)
    pair.run(HB)  # the first heartbeat heard: the wait begins
    first = pair.take("leaf1")
    assert pair["leaf1"].role == SECONDARY
    assert kinds(first).count("delay_restore") == 1 and not of_type(first, ReleasePorts)
    assert pair["leaf1"].status()["held"] == ["p1"]
    pair.run(DELAY - HB)
    assert not of_type(pair.take("leaf1"), ReleasePorts)  # one heartbeat short
    pair.run(HB)
    released = pair.take("leaf1")
    assert of_type(released, ReleasePorts) == [ReleasePorts(("p1",))]
    assert "ports_released" in kinds(released)
    assert pair["leaf1"].deadline_ns() is not None  # the peer link's expiry, not the delay
    pair.run(5 * HB)
    assert not of_type(pair.take("leaf1"), ReleasePorts), "released once"


def test_a_rebooted_leaf_alone_releases_its_ports_once_primary_then_the_delay():
    pair = Pair()
    pair.run(HB)
    pair.alive.clear()
    pair.revive("leaf2", held=["p1"], delay_restore_ms=DELAY)
    pair.run(TIMEOUT - HB)
    assert not of_type(pair.take("leaf2"), ReleasePorts)
    pair.run(HB)  # primary: nobody heard since start
    assert pair["leaf2"].role == PRIMARY
    pair.run(DELAY - HB)
    assert not of_type(pair.take("leaf2"), ReleasePorts)
    assert pair["leaf2"].deadline_ns() == pair["leaf2"].ready_ns + DELAY * MS
    pair.run(HB)
    assert of_type(pair.take("leaf2"), ReleasePorts) == [ReleasePorts(("p1",))]


def test_a_rebooted_secondary_keeps_its_ports_down_while_secondary_shutdown_wants_them_down():
    pair = Pair(peer_link_policy="secondary-shutdown")
    pair.cut = {"peer_link"}
    reboot(pair, "leaf2", TIMEOUT + HB)
    pair.run(TIMEOUT + DELAY)  # heard on the keepalive only: a shut down secondary
    assert pair["leaf2"].shutdown and pair["leaf2"].role == SECONDARY
    assert not of_type(pair.take("leaf2"), ReleasePorts)
    pair.cut = set()
    pair.run(HB)
    assert not pair["leaf2"].shutdown
    assert not of_type(pair.take("leaf2"), ReleasePorts)  # the delay starts over
    pair.run(DELAY)
    assert of_type(pair.take("leaf2"), ReleasePorts) == [ReleasePorts(("p1",))]


def test_a_restarted_agent_without_held_ports_never_releases_any():
    pair = Pair()
    reboot(pair, "leaf1", HB)
    pair.revive("leaf1", held=[])  # a daemon crash: the ports stayed up
    pair.run(DELAY + 2 * HB)
    taken = pair.take("leaf1")
    assert not of_type(taken, ReleasePorts) and "delay_restore" not in kinds(taken)


def test_held_ports_must_be_members_of_a_dual_homed_bond():
    with pytest.raises(ValueError, match="held: p3 not a member"):
        AgentConfig(**settings("leaf1", held=["p3"]))


# -- split horizon -----------------------------------------------------------------------------
def both_halves_up(pair: Pair) -> None:
    for leaf in pair.leaves:
        pair.do(leaf, pair[leaf].on_local_half("srv", True, pair.now))


def test_split_horizon_starts_off_and_goes_on_once_the_peer_reports_its_half_up():
    pair = Pair()
    both_halves_up(pair)
    assert of_type(pair.take("leaf1"), SplitHorizon) == []  # no peer yet: nothing to drop
    pair.run(HB)
    for leaf in pair.leaves:
        assert of_type(pair.take(leaf), SplitHorizon) == [SplitHorizon("srv", True)]


def test_split_horizon_is_lifted_on_both_leaves_when_one_half_goes_down_and_restored_after():
    pair = Pair()
    both_halves_up(pair)
    pair.run(HB)
    pair.take("leaf1"), pair.take("leaf2")
    down = pair["leaf1"].on_local_half("srv", False, pair.now)
    assert of_type(down, SplitHorizon) == [SplitHorizon("srv", False)]
    assert SendNow(first=True) in down  # the peer hears it at once, before leaf1 acts
    up = pair["leaf1"].on_local_half("srv", True, pair.now)
    # back up: leaf1 points its MACs at its bond before the peer restores its filter
    assert of_type(up, SendNow) == [SendNow(first=False)]
    pair["leaf1"].on_local_half("srv", False, pair.now)
    pair.do("leaf2", pair["leaf2"].on_heartbeat("peer_link", pair["leaf1"].message(pair.now),
                                                pair.now))
    lifted = pair.take("leaf2")
    assert of_type(lifted, SplitHorizon) == [SplitHorizon("srv", False)]
    assert next(a.detail["why"] for a in lifted if isinstance(a, Event)
                and a.kind == "split_horizon_lifted") == "peer half down"
    pair["leaf1"].on_local_half("srv", True, pair.now)
    pair.run(HB)
    assert of_type(pair.take("leaf2"), SplitHorizon) == [SplitHorizon("srv", True)]


def test_split_horizon_is_lifted_when_the_peer_is_lost():
    pair = Pair()
    both_halves_up(pair)
    pair.run(HB)
    pair.take("leaf2")
    pair.alive.discard("leaf1")
    pair.run(TIMEOUT + HB)
    assert of_type(pair.take("leaf2"), SplitHorizon) == [SplitHorizon("srv", False)]


# -- MAC sync ----------------------------------------------------------------------------------
def synced_pair() -> Pair:
    pair = Pair()
    both_halves_up(pair)
    pair.do("leaf2", pair["leaf2"].on_local_macs({SERVER_MAC: "srv", ORPHAN_MAC: ORPHAN}, 0))
    pair.run(HB)
    return pair


def test_the_peer_s_macs_point_at_the_local_bond_for_its_server_and_at_the_peer_link_else():
    pair = synced_pair()
    points = of_type(pair.take("leaf1"), PointMac)
    assert sorted(points, key=lambda p: p.mac) == [PointMac(SERVER_MAC, "po1", None),
                                                   PointMac(ORPHAN_MAC, "pl", None)]
    assert pair["leaf1"].status()["macs"] == {SERVER_MAC: "po1", ORPHAN_MAC: "pl"}
    assert of_type(pair.take("leaf2"), PointMac) == []  # leaf1 reported nothing


def test_a_server_mac_moves_to_the_peer_link_while_the_local_half_is_down_and_back_after():
    pair = synced_pair()
    pair.take("leaf1")
    down = pair["leaf1"].on_local_half("srv", False, pair.now)
    assert of_type(down, PointMac) == [PointMac(SERVER_MAC, "pl", "po1")]
    assert {"count": 2, "on_peer_link": 2} in [a.detail for a in down if isinstance(a, Event)]
    up = pair["leaf1"].on_local_half("srv", True, pair.now)
    assert of_type(up, PointMac) == [PointMac(SERVER_MAC, "po1", "pl")]


def test_macs_the_peer_no_longer_reports_or_a_lost_peer_s_macs_are_removed():
    pair = synced_pair()
    pair.take("leaf1")
    pair["leaf2"].on_local_macs({SERVER_MAC: "srv"}, pair.now)
    pair.run(HB)
    assert of_type(pair.take("leaf1"), PointMac) == [PointMac(ORPHAN_MAC, None, "pl")]
    pair.alive.discard("leaf2")
    pair.run(TIMEOUT + HB)
    assert of_type(pair.take("leaf1"), PointMac) == [PointMac(SERVER_MAC, None, "po1")]


def test_a_mac_this_leaf_learned_itself_is_never_installed():
    pair = synced_pair()
    pair.take("leaf1")
    moved = pair["leaf1"].on_local_macs({ORPHAN_MAC: ORPHAN}, pair.now)
    assert of_type(moved, PointMac) == [PointMac(ORPHAN_MAC, None, "pl")]
    assert SendNow() in moved  # and the peer hears of it at once


def test_a_mac_learned_on_a_bond_whose_half_went_down_with_its_carrier_is_moved_to_the_peer_link():
    # a silent failure: the server stops distributing on its member to leaf1, the cable
    # stays up, leaf1's learned entry for the server would blackhole its frames
    pair = synced_pair()
    pair.take("leaf1")
    learned = pair["leaf1"].on_local_macs({SERVER_MAC: "srv"}, pair.now)  # here too
    assert of_type(learned, PointMac) == [PointMac(SERVER_MAC, None, "po1")]  # the kernel's
    down = pair["leaf1"].on_local_half("srv", False, pair.now)
    assert PointMac(SERVER_MAC, "pl", None) in of_type(down, PointMac)
    up = pair["leaf1"].on_local_half("srv", True, pair.now)
    assert PointMac(SERVER_MAC, None, "pl") in of_type(up, PointMac)  # the kernel's again


def test_a_mac_only_this_leaf_learned_is_moved_to_the_peer_link_while_its_half_is_down():
    # the peer holds the server's MAC as a static entry from this leaf's reports, so it
    # never reports it: this leaf must move its own entry (seen in UML, mclag-silent)
    pair = Pair()
    both_halves_up(pair)
    pair.run(HB)
    pair.take("leaf1")
    pair["leaf1"].on_local_macs({SERVER_MAC: "srv"}, pair.now)
    down = pair["leaf1"].on_local_half("srv", False, pair.now)
    assert of_type(down, PointMac) == [PointMac(SERVER_MAC, "pl", None)]
    pair["leaf1"].on_local_macs({}, pair.now)  # the kernel's learned entry is now static
    assert pair["leaf1"].status()["macs"] == {SERVER_MAC: "pl"}  # still where it works
    up = pair["leaf1"].on_local_half("srv", True, pair.now)
    assert of_type(up, PointMac) == [PointMac(SERVER_MAC, None, "pl")]


# -- configuration and the wire ------------------------------------------------------------------
@pytest.mark.parametrize(("change", "field"), [
    ({"peer_link_policy": "shutdown-all"}, "peer_link_policy"),
    ({"dual_active_policy": "keep"}, "dual_active_policy"),
    ({"system_id": "01:00:5e:00:00:01"}, "system_id"),
    ({"own_system_id": "not-a-mac"}, "own_system_id"),
    ({"own_system_id": SHARED}, "own_system_id"),
    ({"peer_timeout_ms": 1500}, "peer_timeout_ms"),
    ({"heartbeat_ms": 0}, "heartbeat_ms"),
    ({"role_priority": 0}, "role_priority"),
    ({"peer": "leaf1"}, "peer"),
    ({"bridge": "a-bridge-name-too-long"}, "bridge"),
    ({"members": {}}, "members"),
    ({"orphans": ["po1"]}, "named twice"),
    ({"events": "events.jsonl"}, "events"),
    ({"heartbeat": 1000}, "heartbeat"),
])
def test_a_wrong_setting_is_a_value_error_naming_it(change: dict[str, Any], field: str):
    with pytest.raises(ValueError, match=field):
        AgentConfig(**settings("leaf1", **change))


def test_the_config_file_is_read_and_a_file_that_is_no_object_is_refused(tmp_path: Path):
    path = tmp_path / "leaf1.json"
    path.write_text(json.dumps(settings("leaf1", system_id="02:00:5E:10:00:01")))
    assert AgentConfig.from_file(path).system_id == SHARED
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a JSON object"):
        AgentConfig.from_file(path)


SOURCE = bytes.fromhex("020000000001")


def test_a_heartbeat_frame_round_trips():
    message = Message("leaf1", OWN["leaf1"], 100, PRIMARY, 7, {"srv": True},
                      {"srv": [SERVER_MAC], ORPHAN: [ORPHAN_MAC]})
    frame = encode_frame(SOURCE, message)
    assert frame[:6] == bytes.fromhex("0180c200000e") and frame[6:12] == SOURCE
    assert frame[12:14] == b"\x88\xb5"
    assert decode_frame(frame) == message


def test_a_heartbeat_padded_on_the_wire_still_decodes():
    message = Message("a", OWN["leaf1"], 1, "none", 1, {}, {})
    assert decode_frame(encode_frame(SOURCE, message) + bytes(16)) == message


def test_a_heartbeat_with_too_many_macs_is_cut_to_one_frame_keeping_the_rest():
    macs = [f"02:00:00:00:{i // 256:02x}:{i % 256:02x}" for i in range(300)]
    message = Message("leaf1", OWN["leaf1"], 100, PRIMARY, 1, {"srv": True}, {"srv": macs})
    frame = encode_frame(SOURCE, message)
    decoded = decode_frame(frame)
    assert len(frame) <= MAX_FRAME and decoded is not None
    assert 40 < len(decoded.macs["srv"]) < 300 and decoded.halves == {"srv": True}


def test_other_frames_are_not_heartbeats_and_a_broken_heartbeat_is_an_error():
    ipv4 = bytes(12) + b"\x08\x00" + bytes(46)
    assert decode_frame(ipv4) is None
    with pytest.raises(ValueError):
        decode_frame(bytes(12) + b"\x88\xb5" + b"{not json")
    body = dataclasses.asdict(Message("a", OWN["leaf1"], 1, "none", 1, {}, {}))
    with pytest.raises(ValueError, match="role"):
        decode_frame(bytes(12) + b"\x88\xb5" + json.dumps({**body, "role": "boss"}).encode())


class FakeEntry(dict):
    """An fdb dump entry as pyroute2 gives it: fields by key, attributes by get_attr."""

    def get_attr(self, name: str) -> Any:
        return self["attrs"].get(name)


class FakeIpr:
    def __init__(self, entries: list[tuple[str, int, int, int | None]]) -> None:
        self.entries = [FakeEntry(ifindex=port, state=state, attrs={
            "NDA_LLADDR": mac, "NDA_MASTER": master}) for mac, port, state, master in entries]
        self.deleted: list[tuple[str, int]] = []

    def fdb(self, command: str, **kwargs: Any) -> Any:
        if command == "dump":
            return self.entries
        assert command == "del"
        self.deleted.append((kwargs["lladdr"], kwargs["ifindex"]))
        return ()


BR, PL, PO1, P3 = 10, 11, 12, 13
LEARNED, STATIC, LOCAL = 0x02, 0x40, 0x80  # NUD_REACHABLE, NUD_NOARP, NUD_PERMANENT


def fdb_table() -> FakeIpr:
    return FakeIpr([
        ("02:00:00:00:0A:01", PO1, LEARNED, BR),   # the server, learned on its bond
        ("02:00:00:00:0b:01", P3, 0x04, BR),       # an orphan host, idle (NUD_STALE)
        ("02:00:00:00:0c:01", PL, STATIC, BR),     # installed for the peer
        ("02:00:00:00:0d:01", PO1, STATIC, BR),    # installed for the peer
        ("02:00:00:00:0e:01", P3, LOCAL, BR),      # the port's own address
        ("33:33:00:00:00:01", P3, LOCAL, None),    # the port's own multicast (no master)
        ("02:00:00:00:0f:01", PL, LEARNED, 99),    # another bridge's
    ])


def test_only_what_the_bridge_learned_on_its_own_ports_is_reported():
    assert fdb.learned(fdb_table(), BR, {PO1: "srv"}, PL) == {
        "02:00:00:00:0a:01": "srv", "02:00:00:00:0b:01": ORPHAN}


def test_a_restarted_agent_removes_only_static_entries_on_the_peer_link_and_bonds():
    table = fdb_table()
    assert fdb.remove_static(table, BR, [PL, PO1]) == ["02:00:00:00:0c:01", "02:00:00:00:0d:01"]
    assert table.deleted == [("02:00:00:00:0c:01", PL), ("02:00:00:00:0d:01", PO1)]
