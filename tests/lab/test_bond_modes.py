"""Every bond mode and option on a real kernel, read back from the kernel itself.

The kernel of our CI has no bonding, so one User-mode Linux guest does all the work: it
builds the bond_server topology once per case below (this file's ``guest_main``, run as
``python -m tests.lab.test_bond_modes`` inside the guest) and prints what the kernel reports
as JSON, one line per case. The tests judge that output on the host.

Beside the topology cases, the guest asks its kernel directly for every option in a mode
where the harness refuses it: where the harness says the kernel refuses, the kernel must
refuse (with one error naming the option, and no bond left behind).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from ..conftest import guest_json_lines

pytestmark = pytest.mark.lab
GUEST_DEADLINE_S = 360  # about 2 min on an idle 2-CPU machine; margin for a loaded one
PINGS = 4
CLIENT = "198.51.100.1"

# Case -> bond_server parameters, as --param would give them. Together they cover every
# mode (by name and by number) and set every option at least once to a non-default value.
CASES: dict[str, dict[str, str]] = {
    "balance-rr": {"bond_mode": "balance-rr", "miimon": "50", "updelay": "100",
                   "downdelay": "150", "min_links": "1"},
    "active-backup": {"bond_mode": "active-backup", "primary": "eth1",
                      "primary_reselect": "failure", "fail_over_mac": "active",
                      "updelay": "200"},
    "active-backup-arp": {"bond_mode": "1", "arp_interval": "100",
                          "arp_ip_target": "198.51.100.1,198.51.100.3",
                          "arp_validate": "all"},
    "balance-xor": {"bond_mode": "balance-xor", "xmit_hash_policy": "layer3+4",
                    "min_links": "2"},
    "broadcast": {"bond_mode": "3", "miimon": "200", "downdelay": "400"},
    "802.3ad": {"bond_mode": "802.3ad", "lacp_rate": "fast", "ad_select": "bandwidth",
                "xmit_hash_policy": "layer2+3", "ad_actor_system": "02:00:5E:10:00:01",
                "ad_actor_sys_prio": "100", "ad_user_port_key": "5"},
    "balance-tlb": {"bond_mode": "balance-tlb", "primary": "eth0",
                    "xmit_hash_policy": "encap3+4"},
    "balance-alb": {"bond_mode": "6", "primary": "eth1", "primary_reselect": "better",
                    "fail_over_mac": "follow"},
}
# What the kernel must report for each case: every option asked, as the kernel names it.
EXPECTED: dict[str, dict[str, Any]] = {
    "balance-rr": {"mode": "balance-rr", "miimon": 50, "updelay": 100, "downdelay": 150,
                   "min_links": 1},
    "active-backup": {"mode": "active-backup", "miimon": 100, "primary": "eth1",
                      "primary_reselect": "failure", "fail_over_mac": "active",
                      "updelay": 200},
    "active-backup-arp": {"mode": "active-backup", "miimon": 0, "arp_interval": 100,
                          "arp_ip_target": ["198.51.100.1", "198.51.100.3"],
                          "arp_validate": "all"},
    "balance-xor": {"mode": "balance-xor", "xmit_hash_policy": "layer3+4", "min_links": 2},
    "broadcast": {"mode": "broadcast", "miimon": 200, "downdelay": 400},
    "802.3ad": {"mode": "802.3ad", "lacp_rate": "fast", "ad_select": "bandwidth",
                "xmit_hash_policy": "layer2+3", "ad_actor_system": "02:00:5e:10:00:01",
                "ad_actor_sys_prio": 100, "ad_user_port_key": 5},
    "balance-tlb": {"mode": "balance-tlb", "primary": "eth0", "xmit_hash_policy": "encap3+4"},
    "balance-alb": {"mode": "balance-alb", "primary": "eth1", "primary_reselect": "better",
                    "fail_over_mac": "follow"},
}


# Windows NIC teaming profiles (harness.tech.bond.windows), every combination Windows
# offers, and the bond the kernel must report for each: the mapping, read back.
WINDOWS_CASES: dict[str, dict[str, str]] = {
    f"windows-{mode}-{lb}": {"teaming_mode": mode, "load_balancing": lb}
    for mode in ("switch_independent", "static", "lacp")
    for lb in ("address_hash", "dynamic", "hyperv_port")}
WINDOWS_CASES["windows-switch_independent-standby"] = {
    "teaming_mode": "switch_independent", "standby_adapter": "eth1"}
WINDOWS_CASES["windows-lacp-slow"] = {"teaming_mode": "lacp", "lacp_timer": "slow"}
TLB = {"mode": "balance-tlb", "tlb_dynamic_lb": 0}
EXPECTED.update({
    "windows-switch_independent-address_hash": {**TLB, "xmit_hash_policy": "layer3+4"},
    "windows-switch_independent-dynamic": {"mode": "balance-tlb", "tlb_dynamic_lb": 1},
    "windows-switch_independent-hyperv_port": {**TLB, "xmit_hash_policy": "layer2"},
    "windows-static-address_hash": {"mode": "balance-xor", "xmit_hash_policy": "layer3+4"},
    "windows-static-dynamic": {"mode": "balance-xor", "xmit_hash_policy": "layer3+4"},
    "windows-static-hyperv_port": {"mode": "balance-xor", "xmit_hash_policy": "layer2"},
    "windows-lacp-address_hash": {"mode": "802.3ad", "lacp_rate": "fast",
                                  "xmit_hash_policy": "layer3+4"},
    "windows-lacp-dynamic": {"mode": "802.3ad", "lacp_rate": "fast",
                             "xmit_hash_policy": "layer3+4"},
    "windows-lacp-hyperv_port": {"mode": "802.3ad", "lacp_rate": "fast",
                                 "xmit_hash_policy": "layer2"},
    "windows-switch_independent-standby": {"mode": "active-backup", "primary": "eth0",
                                           "primary_reselect": "always"},
    "windows-lacp-slow": {"mode": "802.3ad", "lacp_rate": "slow"},
})
CASES.update(WINDOWS_CASES)


# -- inside the guest ------------------------------------------------------------------

def guest_main() -> None:
    from harness.journal import Journal
    from harness.naming import new_run_id

    with Journal(new_run_id()) as journal:
        for case, params in CASES.items():
            print(json.dumps({"case": case, **_guest_case(params, journal)}), flush=True)
    for line in _guest_refusals():
        print(json.dumps(line), flush=True)


def _guest_case(params: dict[str, str], journal: Any) -> dict[str, Any]:
    """Build the lab, send a few pings from the server, report the bond and who sent them."""
    from harness.lab.running import Lab
    from harness.measure import counters
    from harness.naming import new_run_id
    from harness.tech.bond.plugin import Bonds
    from harness.topology.loader import build_topology

    topo, _ = build_topology("bond_server", params)
    try:
        with Lab(topo, new_run_id(), journal) as lab:
            group = next(g for g in counters.groups(lab) if g.label == "srv:bond0")
            before = counters.snapshot(lab, group)
            ping = lab.popen("srv", ["ping", "-n", "-q", "-c", str(PINGS), "-i", "0.2",
                                     "-W", "2", CLIENT])
            ping.communicate(timeout=20)
            after = counters.snapshot(lab, group)
            return {"state": lab.tech(Bonds).states["srv:bond0"].as_dict(), "ping": ping.returncode,
                    "counters": after,
                    "sent": {m: after[m]["tx_packets"] - before[m]["tx_packets"]
                             for m in after}}
    except Exception as exc:  # noqa: BLE001 - reported to the host as it is
        return {"error": f"{type(exc).__name__}: {exc}"}


def _guest_refusals() -> list[dict[str, Any]]:
    """Each option the harness keeps out of a mode, asked of the kernel in that mode."""
    from pyroute2 import IPRoute

    from harness.errors import ConfigError
    from harness.tech.bond import netlink
    from harness.tech.bond import options as bonds

    members = ["rt0", "rt1"]
    lines = []
    with IPRoute() as ipr:  # the guest's own kernel: nothing else lives here
        for member in members:
            ipr.link("add", ifname=member, kind="veth", peer=f"{member}p")
        for key, opt in bonds.OPTIONS.items():
            for mode in bonds.BOND_MODES:
                if mode in opt.modes:
                    continue
                value = opt.values[-1] if opt.kind == "enum" else {
                    "ms": 100, "count": 1, "targets": ["198.51.100.1"], "member": "rt0",
                    "mac": "02:00:5e:10:00:01"}[opt.kind]
                settings = bonds.BondSettings(mode, {key: value},
                                              {key: bonds.netlink_value(opt, value)})
                line: dict[str, Any] = {"case": "refusal", "option": key, "mode": mode,
                                        "harness_says_refused": opt.refused_elsewhere}
                try:
                    netlink.build_bond(ipr, "rtbond", members, settings)
                    line["error"] = None
                    ipr.link("del", index=ipr.link_lookup(ifname="rtbond")[0])
                except ConfigError as exc:
                    line["error"] = str(exc)
                line["left"] = [ipr.get_links(i)[0].get("IFLA_IFNAME")
                                for i in ipr.link_lookup(ifname="rtbond")]
                line["enslaved"] = [m for m in members if ipr.get_links(
                    ipr.link_lookup(ifname=m)[0])[0].get("IFLA_MASTER")]
                lines.append(line)
        for member in members:
            ipr.link("del", ifname=member)
    return lines


# -- on the host -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def guest_lines() -> list[dict[str, Any]]:
    return guest_json_lines("tests.lab.test_bond_modes", ["veth", "bridge", "bonding"],
                            GUEST_DEADLINE_S)


@pytest.fixture(scope="module")
def cases(guest_lines) -> dict[str, dict[str, Any]]:
    return {line["case"]: line for line in guest_lines if line["case"] in CASES}


@pytest.mark.parametrize("case", CASES)
def test_the_kernel_reports_the_mode_and_every_option_asked(cases, case):
    line = cases[case]
    assert "error" not in line, line.get("error")
    state = line["state"]
    reported = {"mode": state["mode"], **state["options"]}
    assert {k: reported[k] for k in EXPECTED[case]} == EXPECTED[case]
    assert set(state["members"]) == {"eth0", "eth1"} and all(state["members"].values())


@pytest.mark.parametrize("case", CASES)
def test_every_option_is_read_back_not_only_those_asked(cases, case):
    options = cases[case]["state"]["options"]
    assert set(options) == {"miimon", "updelay", "downdelay", "arp_interval", "arp_ip_target",
                            "arp_validate", "primary", "primary_reselect", "fail_over_mac",
                            "xmit_hash_policy", "min_links", "tlb_dynamic_lb", "lacp_rate",
                            "ad_select", "ad_actor_system", "ad_actor_sys_prio",
                            "ad_user_port_key"}
    # The kernel reports the LACP actor settings of 802.3ad bonds only (bond_fill_info),
    # and tlb_dynamic_lb of balance-tlb and -alb bonds
    actor = {"ad_actor_system", "ad_actor_sys_prio", "ad_user_port_key"}
    mode = cases[case]["state"]["mode"]
    assert all(v is not None for k, v in options.items()
               if k != "primary" and (mode == "802.3ad" or k not in actor)
               and (mode in ("balance-tlb", "balance-alb") or k != "tlb_dynamic_lb"))
    assert mode == "802.3ad" or all(options[k] is None for k in actor)


def test_modes_with_an_active_member_choose_the_primary(cases):
    for case in ("active-backup", "balance-tlb", "balance-alb",
                 "windows-switch_independent-standby"):  # the standby stays backup
        state = cases[case]["state"]
        assert state["active_member"] == EXPECTED[case]["primary"], case
        info = state["member_info"]
        assert info[state["active_member"]]["state"] == "active", case
    assert cases["802.3ad"]["state"]["active_member"] is None


def test_member_info_and_counters_come_per_member(cases):
    for case in CASES:
        state, counters = cases[case]["state"], cases[case]["counters"]
        assert set(state["member_info"]) == set(counters) == {"eth0", "eth1"}
        for member, info in state["member_info"].items():
            # The ARP monitor validates a backup only after some intervals: not yet here.
            if state["options"]["miimon"] or member == state["active_member"]:
                assert info["mii_status"] == "up", (case, member)
            assert info["state"] in ("active", "backup"), (case, member)
            assert set(counters[member]) == {"tx_bytes", "rx_bytes", "tx_packets",
                                             "rx_packets"}


@pytest.mark.parametrize("case", CASES)
def test_traffic_crosses_the_bond_in_every_mode(cases, case):
    assert cases[case]["ping"] == 0, f"{case}: the client did not answer"


def test_counters_show_which_members_carried_the_pings(cases):
    # broadcast: every frame on every member; balance-rr: frames in turn on each member.
    assert all(n >= PINGS for n in cases["broadcast"]["sent"].values())
    assert all(n > 0 for n in cases["balance-rr"]["sent"].values())
    # active-backup: only the active member sends.
    state, sent = cases["active-backup"]["state"], cases["active-backup"]["sent"]
    assert sent[state["active_member"]] >= PINGS
    assert sum(sent.values()) == sent[state["active_member"]]


def test_the_kernel_refuses_what_the_harness_says_it_refuses(guest_lines):
    refusals = [line for line in guest_lines if line["case"] == "refusal"]
    assert {line["option"] for line in refusals} == {
        "arp_interval", "arp_validate", "primary", "lacp_rate", "ad_select",
        "ad_actor_system", "ad_actor_sys_prio", "ad_user_port_key", "tlb_dynamic_lb"}
    for line in refusals:
        where = f"{line['option']} in {line['mode']}"
        if line["harness_says_refused"]:
            assert line["error"], f"the kernel took {where}"
            assert f"option {line['option']}=" in line["error"], line["error"]
            assert "mode " + line["mode"] in line["error"]
        else:
            assert line["error"] is None, f"the kernel refused {where}: {line['error']}"
        assert line["left"] == [] and line["enslaved"] == [], f"{where} left {line}"


if __name__ == "__main__":
    guest_main()
