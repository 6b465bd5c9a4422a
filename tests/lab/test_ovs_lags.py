"""Open vSwitch LAG options on a real kernel, read back from ovs-vswitchd itself.

One User-mode Linux guest builds the switch_lag topology once per case below (this
file's ``guest_main``, run as ``python -m tests.lab.test_ovs_lags`` inside the guest) and
prints, as JSON, what ``ovs-appctl bond/show`` and ``lacp/show`` report for each end and
whether a ping crossed the LAG.  Building a case already fails if the database or the
daemon disagrees with an option, or if LACP does not negotiate; the tests judge the
output on the host.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

import pytest

from ..conftest import guest_json_lines

pytestmark = pytest.mark.lab
GUEST_DEADLINE_S = 240

# Case -> switch_lag parameters. Together: every bond_mode, every lacp mode, both
# lacp-times, both detection modes, delays and the active-backup fallback.
CASES: dict[str, dict[str, str]] = {
    "balance-tcp-fast": {"bond_mode": "balance-tcp", "lacp": "active",
                         "peer_lacp": "active", "lacp_time": "fast"},
    "balance-slb-miimon": {"bond_mode": "balance-slb", "lacp": "active",
                           "peer_lacp": "active", "bond_detect_mode": "miimon",
                           "miimon_interval": "50", "updelay": "200", "downdelay": "100"},
    # Static (no LACP) between two OVS is active-backup here: with balance-slb on both
    # ends of a static bundle no ping got through (seen once): without LACP an SLB bond
    # takes broadcasts on one member only (ovs-vswitchd.conf.db(5),
    # other_config:all-members-active), so ARP across it is the likely casualty.
    # Both ends name the same primary: each end of a static active-backup bundle picks
    # its active member alone and drops what arrives on the other (CI saw the ping fail).
    "active-backup-static": {"bond_mode": "active-backup", "lacp": "off",
                             "peer_lacp": "off", "primary": "l1"},
    "active-backup-slow-passive": {"bond_mode": "active-backup", "lacp": "active",
                                   "peer_lacp": "passive", "lacp_time": "slow",
                                   "lacp_fallback_ab": "true"},
}


# -- inside the guest ------------------------------------------------------------------

def guest_main() -> None:
    from harness.journal import Journal
    from harness.naming import new_run_id

    with Journal(new_run_id()) as journal:
        for case, params in CASES.items():
            print(json.dumps({"case": case, **_guest_case(params, journal)}), flush=True)


def _guest_case(params: dict[str, str], journal: Any) -> dict[str, Any]:
    from harness.lab.running import Lab
    from harness.naming import new_run_id
    from harness.tech.lacp import ovs as lacp_ovs
    from harness.tech.lacp.plugin import LacpNegotiation
    from harness.topology.loader import build_topology

    topo, _ = build_topology("switch_lag", params)
    try:
        with Lab(topo, new_run_id(), journal) as lab:
            ends = {}
            for sw in ("sw1", "sw2"):
                name = lab.ifname(sw, "lag0")
                ends[sw] = {"bond": asdict(lacp_ovs.read_ovs_bond(name)),
                            "lacp": (asdict(lacp_ovs.read_ovs(name))
                                     if params.get("lacp", "active") != "off" else None)}
            ping = lab.popen("cli", ["ping", "-n", "-q", "-c", "3", "-i", "0.2", "-W", "2",
                                     "198.51.100.2"])
            ping.communicate(timeout=20)
            return {"ends": ends, "ping": ping.returncode,
                    "negotiated": [key for tech in lab.techs
                                   if isinstance(tech, LacpNegotiation)
                                   for key in tech.tables]}
    except Exception as exc:  # noqa: BLE001 - reported to the host as it is
        return {"error": f"{type(exc).__name__}: {exc}"}


# -- on the host -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def cases() -> dict[str, dict[str, Any]]:
    lines = guest_json_lines("tests.lab.test_ovs_lags", ["veth", "bridge", "openvswitch"],
                             GUEST_DEADLINE_S, start_ovs=True)
    return {line["case"]: line for line in lines}


@pytest.mark.parametrize("case", CASES)
def test_the_lag_is_built_and_carries_traffic(cases, case):
    line = cases[case]
    assert "error" not in line, line.get("error")
    assert line["ping"] == 0


@pytest.mark.parametrize("case", CASES)
def test_ovs_vswitchd_runs_the_options_asked(cases, case):
    params = CASES[case]
    for sw in ("sw1", "sw2"):
        bond = cases[case]["ends"][sw]["bond"]
        assert bond["bond_mode"] == params["bond_mode"]
        assert len(bond["members"]) == 2
        assert bond["updelay_ms"] == int(params.get("updelay", 0))
        assert bond["downdelay_ms"] == int(params.get("downdelay", 0))
        lacp_on = params["lacp" if sw == "sw1" else "peer_lacp"] != "off"
        assert (bond["lacp_status"] == "negotiated") == lacp_on
        if "lacp_fallback_ab" in params:
            assert bond["lacp_fallback_ab"] is True
        if "primary" in params:  # both ends on the member asked for
            assert bond["active_member"].endswith(f"-{params['primary']}"), bond


def test_lacp_time_and_activity_show_in_the_negotiated_state(cases):
    fast = cases["balance-tcp-fast"]["ends"]
    slow = cases["active-backup-slow-passive"]["ends"]
    assert fast["sw1"]["lacp"]["lacp_time"] == "fast"
    assert slow["sw1"]["lacp"]["lacp_time"] == "slow"
    # the passive end answers but does not claim activity
    assert slow["sw2"]["lacp"]["active"] is False and slow["sw1"]["lacp"]["active"] is True
    assert cases["balance-tcp-fast"]["negotiated"] == ["sw1 - sw2"]
    # no LACP at all: nothing to negotiate, and the harness does not try
    assert cases["active-backup-static"]["negotiated"] == []


if __name__ == "__main__":
    guest_main()
