"""LACP state readers and the negotiation check, on outputs captured from real kernels.

tests/data/lacp/ holds what a UML guest (Linux 6.1, Open vSwitch 3.1.0) printed; its
README says how each file was made.  tests/lab/test_lacp_parse.py builds a Linux 802.3ad
bond against an Open vSwitch LACP LAG inside User-mode Linux and holds them to the same
check.
"""

from __future__ import annotations

import pytest

from harness.errors import LabError
from harness.tech.lacp import check
from harness.tech.lacp.check import check_negotiated, verdict, wait_negotiated
from harness.tech.lacp.linux import Membership, distributing, linux_lacp, negotiated
from harness.tech.lacp.ovs import ovs_bond, ovs_dp_lookups, ovs_lacp
from harness.tech.lacp.state import PortState

from ..conftest import REPO
from ..lacp_pair import LINKS

DATA = REPO / "tests" / "data" / "lacp"
FULL = (PortState.ACTIVITY | PortState.TIMEOUT | PortState.AGGREGATION
        | PortState.SYNCHRONIZATION | PortState.COLLECTING | PortState.DISTRIBUTING)


def text(name: str) -> str:
    return (DATA / name).read_text()


def linux(name: str):
    return linux_lacp(text(name), "bond0")


def ovs(name: str, lag: str = "lag0"):
    return ovs_lacp(text(name), lag)


# -- /proc/net/bonding -------------------------------------------------------------

def test_a_member_back_from_a_link_failure_counts_once_lacp_negotiated_it_again() -> None:
    # srv's bond0 of the bond_pair topology, read as eth0's cable came back (both ends
    # down for 1 s, then up): each read is headed by the kernel's own member states.
    parts = [part.partition("\n") for part in text("linux-member-return.txt").split("==== ")[1:]]
    heads = [head for head, _, _ in parts]
    reads = [linux_lacp(body, "bond0") for _, _, body in parts]
    # The file alone, 0.11 s after the link returned: eth0 up, in the active aggregator,
    # distributing (stale: the kernel still holds it as a backup that sends nothing)
    assert reads[1].members["eth0"].mii_up and "'eth0': 'backup'" in heads[1]
    assert distributing(reads[1]) == {"eth0", "eth1"}
    membership = Membership()
    seen = [membership.update(read) for read in reads]
    assert seen == [{"eth1"}, {"eth1"}, {"eth1"}, {"eth1"}, {"eth0", "eth1"}]
    assert "'eth0': 'active'" in heads[4]  # the kernel sends on it again from here


def test_linux_negotiated_bond_reads_aggregator_partner_and_full_states() -> None:
    bond = linux("linux-bond-negotiated.txt")
    assert (bond.lacp_active, bond.lacp_rate, bond.ad_select) == (True, "fast", "stable")
    assert (bond.system_priority, bond.system_mac) == (65535, "7e:49:4a:4c:f9:aa")
    agg = bond.aggregator
    assert (agg.id, agg.ports, agg.actor_key, agg.partner_key, agg.partner_mac) == (
        1, 2, 15, 1, "12:33:d8:a5:94:4b")
    assert list(bond.members) == ["v1", "v2"]
    v2 = bond.members["v2"]
    assert (v2.mii_up, v2.aggregator_id, v2.actor_churn, v2.partner_churn) == (
        True, 1, "monitoring", "monitoring")
    assert (v2.actor.system, v2.actor.key, v2.actor.port, v2.actor.port_priority) == (
        "7e:49:4a:4c:f9:aa", 15, 2, 255)
    # The kernel calls the partner's key "oper key".
    assert (v2.partner.system, v2.partner.system_priority, v2.partner.key,
            v2.partner.port) == ("12:33:d8:a5:94:4b", 65534, 1, 2)
    assert v2.actor.state == v2.partner.state == FULL == 63


def test_linux_defaulted_bond_splits_members_into_two_aggregators() -> None:
    bond = linux("linux-bond-defaulted.txt")
    assert bond.aggregator.ports == 1
    assert bond.aggregator.partner_mac == "00:00:00:00:00:00"
    v1, v2 = bond.members["v1"], bond.members["v2"]
    assert (v1.aggregator_id, v2.aggregator_id) == (2, 1)
    # port state 71 and 79: activity, short timeout, aggregation, defaulted (+ sync on v2)
    assert v1.actor.state == PortState(71)
    assert PortState.DEFAULTED in v1.actor.state
    assert PortState.SYNCHRONIZATION not in v1.actor.state
    assert PortState.SYNCHRONIZATION in v2.actor.state and v2.actor.state == 79
    assert v1.partner.state == PortState(0) and v1.partner.system == "00:00:00:00:00:00"
    assert v1.actor.state.letters == "ASG...F."


def test_linux_file_without_details_parses_with_members_but_no_pdus() -> None:
    # What a reader without CAP_NET_ADMIN gets: the kernel leaves out the PDU details.
    lines = text("linux-bond-negotiated.txt").splitlines()
    cut = [ln for ln in lines if not ln.startswith("    ") and not ln.startswith("details")
           and not ln.startswith("System ")]
    bond = linux_lacp("\n".join(cut), "bond0")
    assert bond.system_mac is None
    assert bond.members["v1"].aggregator_id == 1
    assert bond.members["v1"].actor is None
    result = verdict(bond, ovs("ovs-lacp-negotiated.txt"), links=LINKS)
    assert not result.ok
    assert any("as root" in p for p in result.problems)


def test_linux_reader_refuses_a_bond_that_is_not_8023ad() -> None:
    active_backup = text("linux-bond-negotiated.txt").replace(
        "IEEE 802.3ad Dynamic link aggregation", "fault-tolerance (active-backup)")
    with pytest.raises(LabError, match="not in 802.3ad mode"):
        linux_lacp(active_backup, "bond0")


# -- ovs-appctl lacp/show, bond/show, dpctl/show -------------------------------------

def test_ovs_negotiated_lag_reads_identity_members_and_state_words() -> None:
    lag = ovs("ovs-lacp-negotiated.txt")
    assert (lag.lag, lag.active, lag.negotiated) == ("lag0", True, True)
    assert (lag.sys_id, lag.sys_priority, lag.key, lag.lacp_time) == (
        "12:33:d8:a5:94:4b", 65534, 1, "fast")
    p2 = lag.members["p2"]
    assert (p2.status, p2.attached, p2.may_enable, p2.port_id, p2.port_priority) == (
        "current", True, True, 2, 65535)
    assert (p2.actor.system, p2.actor.key, p2.actor.port) == ("12:33:d8:a5:94:4b", 1, 2)
    assert (p2.partner.system, p2.partner.key, p2.partner.port,
            p2.partner.port_priority) == ("7e:49:4a:4c:f9:aa", 15, 2, 255)
    assert p2.actor.state == p2.partner.state == FULL


def test_ovs_defaulted_lag_has_detached_members_and_an_empty_partner() -> None:
    lag = ovs("ovs-lacp-defaulted.txt")
    assert (lag.active, lag.negotiated) == (True, False)
    p1 = lag.members["p1"]
    assert (p1.status, p1.attached, p1.may_enable) == ("defaulted", False, False)
    assert p1.actor.state.letters == "ASG.CDF."
    assert p1.partner.state == PortState(0)      # "partner state:" with no words
    assert (p1.partner.system, p1.partner.key) == ("00:00:00:00:00:00", 0)


def test_ovs_passive_lag_has_no_activity_bit() -> None:
    lag = ovs("ovs-ovs-passive.txt", "lagy")
    assert (lag.active, lag.negotiated) == (False, True)
    assert PortState.ACTIVITY not in lag.members["y1"].actor.state
    assert PortState.ACTIVITY in lag.members["y1"].partner.state


def test_ovs_older_slave_wording_reads_the_same() -> None:
    # Open vSwitch before 2.15 said "slave" where 3.1 says "member" (derived from a capture).
    new = ovs("ovs-lacp-negotiated.txt")
    old = ovs_lacp(text("ovs-lacp-negotiated.txt").replace("member:", "slave:"), "lag0")
    assert old == new
    bond_text = text("ovs-bond-negotiated.txt")
    old_bond = ovs_bond(bond_text.replace("member ", "slave ").replace(
        "active member", "active slave"), "lag0")
    assert old_bond == ovs_bond(bond_text, "lag0")


def test_ovs_lacp_show_of_several_lags_needs_a_name() -> None:
    both = text("ovs-ovs-active.txt") + text("ovs-ovs-passive.txt")
    assert ovs_lacp(both, "lagy").lag == "lagy"
    with pytest.raises(LabError, match="lagx, lagy"):
        ovs_lacp(both)
    with pytest.raises(LabError, match="not lag9"):
        ovs_lacp(both, "lag9")


def test_ovs_bond_show_reads_status_delays_and_members() -> None:
    good = ovs_bond(text("ovs-bond-negotiated.txt"))
    assert (good.bond_mode, good.lacp_status, good.lacp_fallback_ab) == (
        "balance-tcp", "negotiated", False)
    assert (good.updelay_ms, good.downdelay_ms, good.detect_mode) == (0, 0, None)
    assert good.active_member == "p1"
    assert [(m.name, m.enabled, m.may_enable, m.active) for m in good.members.values()] == [
        ("p1", True, True, True), ("p2", True, True, False)]
    bad = ovs_bond(text("ovs-bond-defaulted.txt"))
    assert (bad.lacp_status, bad.active_member) == ("configured", None)
    assert not any(m.enabled or m.may_enable for m in bad.members.values())
    delays = ovs_bond(text("ovs-bond-delays.txt"), "lagx")
    assert (delays.updelay_ms, delays.downdelay_ms, delays.active_member) == (200, 100, "x2")


def test_dp_lookups_show_upcalls_lost_on_the_broken_kernel_datapath() -> None:
    (lost,) = ovs_dp_lookups(text("ovs-dpctl-show-lost.txt")).values()
    assert (lost.datapath, lost.hit, lost.missed, lost.lost) == ("system@ovs-system", 0, 37, 37)
    (ok,) = ovs_dp_lookups(text("ovs-dpctl-show-ok.txt")).values()
    assert (ok.hit, ok.lost) == (40, 0)


# -- the check ---------------------------------------------------------------------

def test_negotiated_linux_and_ovs_ends_agree() -> None:
    result = check_negotiated(linux("linux-bond-negotiated.txt"),
                              ovs("ovs-lacp-negotiated.txt"), links=LINKS)
    assert result.ok and result.problems == ()
    assert [(a.name, b.name) for a, b in result.pairs] == [("v1", "p1"), ("v2", "p2")]


def test_members_are_paired_by_the_ports_they_exchanged_without_links() -> None:
    # OVS numbered x1 port 2 and x2 port 1: pairing follows the LACPDUs, not the names.
    result = check_negotiated(ovs("ovs-ovs-active.txt", "lagx"),
                              ovs("ovs-ovs-passive.txt", "lagy"))
    assert [(a.name, b.name) for a, b in result.pairs] == [("x1", "y1"), ("x2", "y2")]


def test_linux_to_linux_bonds_agree_and_ends_of_one_name_are_told_apart() -> None:
    result = check_negotiated(linux("linux-linux-a.txt"), linux("linux-linux-b.txt"))
    assert result.ok
    assert "linux bond0 (end A)" in result.table and "linux bond0 (end B)" in result.table


def test_defaulted_pair_is_refused_with_both_ends_in_the_message() -> None:
    with pytest.raises(LabError) as info:
        check_negotiated(linux("linux-bond-defaulted.txt"), ovs("ovs-lacp-defaulted.txt"),
                         links=LINKS)
    message = str(info.value)
    assert "linux bond0 v1: defaulted" in message
    assert "ovs lag0 p1: defaulted" in message
    # One table row per link, both ends side by side.
    row_v1 = next(line for line in message.splitlines() if line.startswith("v1 "))
    assert "agg 2" in row_v1 and "ASG...F." in row_v1
    assert "| p1 (defaulted)" in row_v1 and "detached, disabled" in row_v1
    assert "ASG.CDF." in row_v1
    assert "ovs-dpctl show" in info.value.fix


def test_one_defaulted_end_is_refused_and_names_the_identity_mismatch() -> None:
    # The Linux end has heard a partner, but not this OVS (a stale or wrong peer).
    result = verdict(linux("linux-bond-negotiated.txt"), ovs("ovs-lacp-defaulted.txt"),
                     links=LINKS)
    assert not result.ok
    assert "ovs lag0: LACP status is not negotiated" in result.problems
    assert any(p.startswith("linux bond0 v1: partner is 12:33:d8:a5:94:4b key 1 port 1,"
                            " but ovs lag0 p1 is 06:e8:52:c0:21:4c") for p in result.problems)


def test_a_missing_end_and_a_missing_member_are_refused() -> None:
    assert not verdict(linux("linux-bond-negotiated.txt"), None, links=LINKS).ok
    bond = linux("linux-bond-negotiated.txt")
    lag = ovs("ovs-lacp-negotiated.txt")
    one_member = type(lag)(**{**lag.__dict__, "members": {"p1": lag.members["p1"]}})
    result = verdict(bond, one_member, links=LINKS)
    assert not result.ok
    assert "linux bond0 v2: no linked member in ovs lag0" in result.problems


def test_wait_negotiated_returns_once_both_ends_agree_and_shows_the_last_table() -> None:
    reads = iter([(linux("linux-bond-defaulted.txt"), ovs("ovs-lacp-defaulted.txt")),
                  (linux("linux-bond-negotiated.txt"), ovs("ovs-lacp-negotiated.txt"))])
    assert wait_negotiated(lambda: next(reads), 5, links=LINKS, interval_s=0).ok
    stuck = (linux("linux-bond-defaulted.txt"), ovs("ovs-lacp-defaulted.txt"))
    with pytest.raises(LabError, match=r"did not negotiate within 0.05 s") as info:
        wait_negotiated(lambda: stuck, 0.05, links=LINKS, interval_s=0.01)
    assert "| p1 (defaulted)" in str(info.value)



def test_a_bond_whose_members_all_distribute_in_sync_is_negotiated() -> None:
    assert negotiated(linux("linux-bond-negotiated.txt"))
    assert not negotiated(linux("linux-bond-defaulted.txt"))


def test_a_gated_wait_reads_both_ends_only_when_the_gate_opens() -> None:
    stuck = (linux("linux-bond-defaulted.txt"), ovs("ovs-lacp-defaulted.txt"))
    good = (linux("linux-bond-negotiated.txt"), ovs("ovs-lacp-negotiated.txt"))
    gate_says, reads = iter([False, False, False, True]), []

    def read():
        reads.append(len(reads))
        return good if len(reads) > 1 else stuck

    # both ends are read at the start (a full reading is due), then not again until
    # the gate opens: two full readings in all, where an ungated wait made five
    assert wait_negotiated(read, 5, links=LINKS, gate=lambda: next(gate_says)).ok
    assert reads == [0, 1] and next(gate_says, None) is None


def test_a_gate_that_never_opens_costs_time_not_the_verdict(monkeypatch) -> None:
    monkeypatch.setattr(check, "UNGATED_READ_S", 0.05)
    reads = iter([(linux("linux-bond-defaulted.txt"), ovs("ovs-lacp-defaulted.txt")),
                  (linux("linux-bond-negotiated.txt"), ovs("ovs-lacp-negotiated.txt"))])
    assert wait_negotiated(lambda: next(reads), 5, links=LINKS, gate=lambda: False).ok
