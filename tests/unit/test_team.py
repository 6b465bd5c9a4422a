"""The team driver's declarations, teamd's configuration and its state dump read back
(harness/tech/team): pure code, on a dump teamd printed (tests/data/team)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from harness.tech.lacp import check
from harness.tech.lacp.state import NEGOTIATED
from harness.tech.team import state
from harness.tech.team.config import Team, add_team, teamd_config
from harness.tech.team.plugin import Teams
from harness.topology.model import Topology

DUMP = json.loads((Path(__file__).parents[1] / "data" / "team" / "lacp-state-dump.json")
                  .read_text())


def topology(**options) -> Topology:
    t = Topology("t", "")
    srv, sw = t.add_host("srv"), t.add_switch("sw", impl="ovs")
    t.add_link(srv, "eth0", sw, "p1")
    t.add_link(srv, "eth1", sw, "p2")
    add_team(t, srv, "team0", ["eth0", "eth1"], **options)
    if options.get("runner") == "lacp":
        t.add_lag(sw, "lag0", ["p1", "p2"], lacp="active")
    return t


def test_the_configuration_carries_the_runner_and_the_link_watch_delays():
    lacp = teamd_config(Team("srv", "team0", ("eth0", "eth1"), runner="lacp",
                             delay_down=200, fast_rate=False))
    assert lacp["device"] == "team0" and set(lacp["ports"]) == {"eth0", "eth1"}
    assert lacp["runner"] == {"name": "lacp", "active": True, "fast_rate": False,
                              "tx_hash": ["eth", "ipv4", "ipv6", "l4"]}
    assert lacp["link_watch"] == {"name": "ethtool", "delay_up": 0, "delay_down": 200}
    backup = teamd_config(Team("srv", "team0", ("eth0", "eth1")))
    assert backup["runner"] == {"name": "activebackup", "hwaddr_policy": "same_all"}


@pytest.mark.parametrize("options, problem", [
    ({"runner": "roundrobin"}, "runner 'roundrobin' is not one of activebackup, lacp"),
    ({"delay_down": -1}, "delay_down=-1 (0 to 60000 ms)"),
    ({"tx_hash": ["l7"]}, "tx_hash ['l7']"),
    ({"fast": True}, "unknown option 'fast'"),
    ({"runner": "lacp", "lag": False}, "needs its members cabled to one Open vSwitch LAG"),
])
def test_a_bad_team_is_named_before_anything_exists(options, problem):
    topo = topology(**{k: v for k, v in options.items() if k != "lag"})
    if options.get("lag") is False:
        topo.lags.clear()
    problems = Teams.check(topo)
    assert any(problem in p for p in problems), problems


def test_a_good_team_has_no_problem_and_names_its_daemon():
    topo = topology(runner="lacp")
    assert Teams.check(topo) == [] and Teams.used_by(topo)
    assert Teams.declared_daemons(topo) == {"srv": ("teamd",)}
    assert Teams.aliases(topo, "srv") == ()      # no active port in lacp
    assert Teams.aliases(topology(), "srv") == ("active",)


def test_a_negotiated_lacp_team_reads_as_one_end_of_a_lag():
    end = state.lag_end(DUMP, "teamd team0")
    assert end.problems == ()
    assert [m.name for m in end.members] == ["a0", "a1"]
    assert all(m.in_aggregate and m.aggregate == "agg 3, selected" for m in end.members)
    assert all(m.partner.state & NEGOTIATED == NEGOTIATED for m in end.members)
    assert end.members[0].partner.system == "ce:c3:c5:37:e9:a0"
    assert state.view(DUMP).carrying() == {"a0", "a1"}


def test_a_port_that_lost_its_link_stops_carrying_and_a_silent_one_is_a_problem():
    down = copy.deepcopy(DUMP)
    down["ports"]["a0"]["runner"]["selected"] = False
    down["ports"]["a0"]["link_watches"]["up"] = False
    assert state.view(down).carrying() == {"a1"}
    down["ports"]["a1"]["runner"]["partner_lacpdu_info"]["system"] = "00:00:00:00:00:00"
    end = state.lag_end(down, "teamd team0")
    assert "teamd team0: a port has heard no partner" in end.problems
    assert not check.verdict(end, end).ok


def test_an_activebackup_team_is_ready_with_an_active_port_and_every_link():
    dump = {"setup": {"runner_name": "activebackup"}, "runner": {"active_port": "eth0"},
            "ports": {p: {"link_watches": {"up": True}} for p in ("eth0", "eth1")}}
    assert state.ready_problem(dump, ("eth0", "eth1")) is None
    dump["ports"]["eth1"]["link_watches"]["up"] = False
    assert state.ready_problem(dump, ("eth0", "eth1")) == "ports ['eth1'] have no link"
    assert state.ready_problem(None, ("eth0",)) == "teamd does not answer"


def test_the_terminal_line_says_what_each_mechanism_of_the_row_did():
    from harness.results.console import redundancy

    team = {"team_ports_before": "srv:team0:eth0", "team_ports_after": "srv:team0:eth1",
            "team_failover_detected_ms": 97.8}
    assert redundancy(team) == ("team ports srv:team0:eth0 -> srv:team0:eth1, moved"
                                " 97.8 ms after the failure")
    both = {**team, "active_before": "cli:eth0", "active_after": "cli:eth1"}
    assert redundancy(both).split("; ") == ["active cli:eth0 -> cli:eth1",
                                            redundancy(team)]
    assert redundancy({}) == "no mechanism of this topology reports what it did"
