"""Windows NIC teaming (LBFO), as its users name it, realised with the closest kernel bond.

A Windows team is a teaming mode, a load-balancing algorithm and, in switch-independent
mode, an optional standby adapter (New-NetLbfoTeam -TeamingMode -LoadBalancingAlgorithm;
Set-NetLbfoTeamMember -AdministrativeMode Standby; -LacpTimer Fast/Slow). Each
combination maps onto one bond; what the bond cannot reproduce is said beside it, in
MAPPING (the README's table is this one). Sources: Microsoft, "NIC Teaming" (Windows
Server 2016+ docs: teaming modes, load-balancing modes, standby adapter) and the
New-NetLbfoTeam / Set-NetLbfoTeam reference (LacpTimer); the kernel's bonding.rst for the
Linux side; ../shared/mclag-notes.md gathered both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from harness.errors import ConfigError
from harness.tech.bond.options import OPTIONS
from harness.tech.bond.params import BondParams

TeamingMode = Literal["switch_independent", "static", "lacp"]
LoadBalancing = Literal["address_hash", "dynamic", "hyperv_port"]
TEAMING_MODES: tuple[str, ...] = ("switch_independent", "static", "lacp")
LOAD_BALANCING: tuple[str, ...] = ("address_hash", "dynamic", "hyperv_port")


@dataclass(frozen=True)
class Row:
    windows: str
    linux: str
    differs: str
    source: str


NIC_TEAMING = "Microsoft, NIC Teaming (Windows Server), teaming and load-balancing modes"
LBFO_CMDLET = "Microsoft, New-NetLbfoTeam / Set-NetLbfoTeam (-LacpTimer)"
MAPPING: tuple[Row, ...] = (
    Row("Switch Independent + Address Hash", "balance-tlb, tlb_dynamic_lb 0,"
        " xmit_hash_policy layer3+4",
        "none in sending (both hash each flow's addresses and ports onto an active"
        " member); both receive on one member only", NIC_TEAMING),
    Row("Switch Independent + Dynamic", "balance-tlb, tlb_dynamic_lb 1",
        "Windows moves flowlets between members at their gaps; the kernel rebalances by"
        " load every 10 s, per flow", NIC_TEAMING),
    Row("Switch Independent + Hyper-V Port", "balance-tlb, tlb_dynamic_lb 0,"
        " xmit_hash_policy layer2",
        "no exact match: Windows pins each virtual switch port (a VM) to a member and"
        " receives it there too; the nearest is hashing by source MAC, and inbound"
        " still arrives on one member", NIC_TEAMING),
    Row("Switch Independent + standby adapter", "active-backup, primary = the other"
        " member, primary_reselect always",
        "none: the standby carries traffic only while the active member is down, and"
        " goes back to standby when it recovers", NIC_TEAMING),
    Row("Static Teaming + Address Hash or Dynamic", "balance-xor, xmit_hash_policy"
        " layer3+4", "Dynamic's flowlet moves are not reproduced; the switch must"
        " bundle the ports statically (a LAG without LACP)", NIC_TEAMING),
    Row("Static Teaming + Hyper-V Port", "balance-xor, xmit_hash_policy layer2",
        "per-VM port pinning approximated by source MAC", NIC_TEAMING),
    Row("LACP (+ any load balancing)", "802.3ad, lacp_rate fast or slow,"
        " xmit_hash_policy layer3+4 (layer2 for Hyper-V Port)",
        "none in the protocol; Windows' -LacpTimer Fast/Slow is lacp_rate. Across two"
        " switches it needs a multi-chassis switch (an MC-LAG pair)", LBFO_CMDLET),
)


def team_options(teaming_mode: str, load_balancing: str, standby_adapter: str | None,
                 lacp_timer: str | None, members: Sequence[str]) -> dict[str, Any]:
    """The bond options (kernel names, ``mode`` among them) of a Windows team; a
    combination Windows does not offer is a ConfigError naming why."""
    if teaming_mode not in TEAMING_MODES:
        raise ConfigError(f"unknown teaming_mode {teaming_mode!r}",
                          f"use one of {', '.join(TEAMING_MODES)}")
    if load_balancing not in LOAD_BALANCING:
        raise ConfigError(f"unknown load_balancing {load_balancing!r}",
                          f"use one of {', '.join(LOAD_BALANCING)}")
    if lacp_timer is not None and teaming_mode != "lacp":
        raise ConfigError(f"lacp_timer is an LACP team's setting, not {teaming_mode}'s",
                          "drop lacp_timer, or use teaming_mode=lacp")
    layer = "layer2" if load_balancing == "hyperv_port" else "layer3+4"
    if standby_adapter is not None:
        if teaming_mode != "switch_independent":
            raise ConfigError(f"a standby adapter in a {teaming_mode} team",
                              "Windows offers a standby adapter in switch_independent"
                              " teams only: use teaming_mode=switch_independent")
        if standby_adapter not in members:
            raise ConfigError(f"standby_adapter {standby_adapter!r} is not a member",
                              f"name one of {', '.join(members)}")
        active = next(m for m in members if m != standby_adapter)
        return {"mode": "active-backup", "primary": active, "primary_reselect": "always"}
    if teaming_mode == "switch_independent":
        return {"mode": "balance-tlb", "tlb_dynamic_lb": int(load_balancing == "dynamic"),
                **({} if load_balancing == "dynamic" else {"xmit_hash_policy": layer})}
    if teaming_mode == "static":
        return {"mode": "balance-xor", "xmit_hash_policy": layer}
    return {"mode": "802.3ad", "lacp_rate": lacp_timer or "fast", "xmit_hash_policy": layer}


class WindowsTeamParams(BondParams):
    """A bond topology's parameters plus a Windows team profile: with ``teaming_mode``
    set, the bond's mode and hashing come from the profile (team_options); kernel
    options given beside it must agree with it."""

    teaming_mode: TeamingMode | None = None
    load_balancing: LoadBalancing | None = None
    standby_adapter: str | None = None
    lacp_timer: Literal["fast", "slow"] | None = None

    def bond_options(self, members: Sequence[str] = ()) -> dict[str, Any]:
        profile = {"teaming_mode", "load_balancing", "standby_adapter", "lacp_timer"}
        given = profile & self.model_fields_set
        if self.teaming_mode is None:
            if given:
                raise ConfigError(f"{', '.join(sorted(given))} without teaming_mode",
                                  "a Windows team profile starts with teaming_mode:"
                                  f" {', '.join(TEAMING_MODES)}")
            return super().bond_options(members)
        team = team_options(self.teaming_mode, self.load_balancing or "address_hash",
                            self.standby_adapter, self.lacp_timer, members)
        if team["mode"] not in self.supported_modes:
            raise ConfigError(f"teaming_mode={self.teaming_mode} is a {team['mode']} bond,"
                              " which this topology's cabling does not suit",
                              f"use a profile that maps to {', '.join(self.supported_modes)}"
                              " (teaming_mode=lacp for an 802.3ad bond)")
        # Kernel options given beside the profile stand where they agree with it (a
        # scenario's bond_mode: 802.3ad under teaming_mode=lacp) and are an error where
        # they contradict it.
        given = {("mode" if k == "bond_mode" else k): getattr(self, k)
                 for k in self.model_fields_set if k == "bond_mode" or k in OPTIONS}
        clash = sorted(k for k, v in given.items() if k in team and team[k] != v)
        if clash:
            made = ", ".join(f"{k} {v}" for k, v in team.items() if k != "mode")
            asked = ", ".join(f"{'bond_mode' if k == 'mode' else k} {given[k]}"
                              for k in clash)
            raise ConfigError(f"teaming_mode={self.teaming_mode} makes a {team['mode']} bond"
                              f" ({made}), but {asked} is asked too",
                              "give either the profile or the kernel options it sets")
        kernel = super().bond_options(members)
        if team["mode"] != kernel.get("mode"):  # options of the other mode do not apply
            kernel = {k: v for k, v in kernel.items() if k in ("miimon", "updelay",
                                                               "downdelay", "min_links")}
        return {**kernel, **team}
