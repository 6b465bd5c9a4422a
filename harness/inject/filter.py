"""A silent failure: one control protocol's frames are lost, the link stays up.

With carrier kept, LACP and VRRP notice only through their own timers (3 missed LACPDUs,
the VRRP master-down interval), which is the case worth measuring. User traffic keeps
flowing, so what breaks is the protocol, not the path.

Two ways to drop, chosen per kernel (``backend="auto"`` tries them in this order):

- ``nft``: a netdev-family table with an ingress and/or egress chain on the interface,
  named after the run, interface and protocol; restore deletes exactly that table. Needs
  CONFIG_NF_TABLES_NETDEV and, for "out", CONFIG_NETFILTER_EGRESS (Linux 5.16+).
- ``tc``: u32 filters with a gact drop action on a clsact qdisc, at priorities of our
  own; restore deletes those filters (and the qdisc if we added it). Needs sch_ingress,
  cls_u32 and act_gact. Debian's UML kernel has these but not the nft netdev family.

Both act after the kernel's packet taps on ingress: a socket bound to ETH_P_ALL (tcpdump,
Open vSwitch's userspace datapath) still sees frames dropped "in". To hide frames from
such a receiver, drop them "out" at the far end of its cable instead. A frame dropped
"out" fails its sender's send() with ENOBUFS, unlike a loss on the wire: the kernel bond
ignores that, keepalived logs "Can't send advert" and carries on.

A table on a switch port lives in the root namespace and, unlike a qdisc, outlives the
port (a netdev chain loses its hook, the table stays). The journal records it before it
is made, so lab teardown and `redlab clean` remove it even when restore() never ran.
"""

from __future__ import annotations

import errno
import json
import logging
import os
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Literal

from pyroute2.netlink.exceptions import NetlinkError

from harness.errors import ConfigError, LabError
from harness.inject.base import Reversible, bracket, lab_netns, run_in_netns

if TYPE_CHECKING:
    from harness.lab.running import Lab

log = logging.getLogger(__name__)

ControlProtocol = Literal["lacp", "vrrp"]
Direction = Literal["both", "in", "out"]
Backend = Literal["auto", "nft", "tc"]
# What the tc backend needs from the kernel (loaded ahead inside UML by the CLI).
TC_MODULES = ("sch_ingress", "cls_u32", "act_gact")

ETH_P_SLOW = 0x8809  # IEEE 802.3 slow protocols: LACP and its marker protocol
IPPROTO_VRRP = 112

# Match on the protocol alone, not the destination: LACPDUs go to 01:80:c2:00:00:02 but
# VRRP may be unicast (keepalived unicast_peer), and IPv6 VRRPv3 goes to ff02::12.
NFT_MATCH: dict[str, str] = {"lacp": f"ether type {ETH_P_SLOW:#06x}",
                             "vrrp": f"meta l4proto {IPPROTO_VRRP}"}
# (ethertype, u32 keys "value/mask+offset" from the network header, tc priority)
TC_MATCH: dict[str, list[tuple[int, list[str], int]]] = {
    "lacp": [(ETH_P_SLOW, ["0x0/0x0+0"], 0xC801)],
    "vrrp": [(0x0800, [f"{IPPROTO_VRRP:#x}/0xff+9"], 0xC802),    # IPv4 protocol byte
             (0x86DD, [f"{IPPROTO_VRRP:#x}/0xff+6"], 0xC803)],   # IPv6 next header
}
TC_PARENT = {"in": 0xFFFFFFF2, "out": 0xFFFFFFF3}  # clsact's ingress and egress hooks
# u32 keeps one set of hash tables per qdisc, shared by clsact's ingress and egress, and
# a dump lists every table of the filter's priority: each direction needs its own
# priority, or each would report (and count) the other's filters too.
TC_PRIO_OUT = 0x10
NFT_HOOK = {"in": "ingress", "out": "egress"}
NFT_CHAIN = {"in": "rx", "out": "tx"}
NFT_PRIORITY = -500  # before anything else a lab may hook on the device

# Whether nft's netdev family worked in this process (the kernel does not change under
# us); None until first tried.  Spares a failing nft call per injection under UML.
_nft_works: bool | None = None


@dataclass
class ControlPlaneDrop(Reversible):
    """Drop ``protocol`` frames at ``node:intf`` in ``direction``; carrier stays up."""

    lab: Lab
    node: str
    intf: str
    protocol: ControlProtocol
    direction: Direction = "both"
    backend: Backend = "auto"
    _netns: str | None = field(init=False, default=None)
    _used: str | None = field(init=False, default=None)   # backend in place, if applied
    _own_clsact: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        if self.protocol not in NFT_MATCH:
            raise ConfigError(f"cannot drop control protocol {self.protocol!r}",
                              f"use one of: {', '.join(NFT_MATCH)}")
        if self.direction not in ("both", "in", "out"):
            raise ConfigError(f"unknown direction {self.direction!r}", "use both, in or out")
        if self.backend not in ("auto", "nft", "tc"):
            raise ConfigError(f"unknown filter backend {self.backend!r}", "use auto, nft or tc")

    @property
    def ifname(self) -> str:
        return self.lab.ifname(self.node, self.intf)

    @property
    def table(self) -> str:
        """nft table name: unique per run, interface and protocol, so restore hits only it."""
        return f"redlab_{self.lab.run_id}_{self.ifname}_{self.protocol}".replace("-", "_")

    def directions(self) -> list[str]:
        return ["in", "out"] if self.direction == "both" else [self.direction]

    @property
    def active_backend(self) -> str | None:
        """The backend whose filters are in place ("nft" or "tc"); None unless applied."""
        return self._used

    def describe(self) -> str:
        via = f" via {self._used}" if self._used else ""
        return (f"control_plane_drop {self.protocol} at {self.node}:{self.intf}"
                f" ({'+'.join(self.directions())}{via}; carrier kept)")

    # -- apply / restore -----------------------------------------------------------------
    def apply(self) -> int:
        """Returns when the first filter took effect (nft: the whole table at once)."""
        global _nft_works
        if self._used is not None:
            raise LabError(f"{self.describe()} is applied already", "restore it first")
        self._netns = lab_netns(self.lab, self.node)
        ipr = self.lab.ipr(self.node)
        if not ipr.link_lookup(ifname=self.ifname):
            raise LabError(f"cannot filter {self.node}:{self.intf}: no such interface",
                           "check the scenario's node and interface names")
        nft_error = ""
        if self.backend == "nft" or (self.backend == "auto" and _nft_works is not False):
            try:
                call = bracket(self._nft_apply)
            except LabError as exc:
                if self.backend == "nft":
                    raise
                nft_error = exc.problem
                log.info("nft netdev filtering failed, trying tc: %s",
                         " ".join(exc.problem.split()))
                # Only a missing feature is remembered; any other failure is retried.
                if "not supported" in exc.problem or "not installed" in exc.problem:
                    _nft_works = False
            else:
                _nft_works = True
                self._used = "nft"
                return self._event([call])
        try:
            calls = self._tc_apply()
        except NetlinkError as exc:
            self._tc_remove()
            both = f" (nft said: {nft_error})" if nft_error else ""
            raise LabError(f"cannot drop {self.protocol} at {self.node}:{self.intf} with tc:"
                           f" {exc}{both}", "the kernel needs sch_ingress, cls_u32 and"
                           " act_gact, or nf_tables with the netdev family") from exc
        self._used = "tc"
        return self._event(calls)

    def restore(self) -> int:
        """Remove our table or filters; a no-op if they (or the whole namespace) are gone."""
        calls: list[tuple[int, int]] = []
        if self._used == "nft":
            calls = [bracket(self._nft_remove)]
        elif self._used == "tc":
            calls = self._tc_remove()
        self._used = None  # only now: a restore that raised can be retried
        return self._event(calls)

    def counters(self) -> dict[str, int]:
        """Frames dropped so far per direction ("in"/"out"), read back from the kernel."""
        if self._used == "nft":
            return self._nft_counters()
        if self._used == "tc":
            return self._tc_counters()
        return {}

    # -- nft -----------------------------------------------------------------------------
    def _nft(self, *args: str, stdin: str = "") -> str:
        done = run_in_netns(self._netns, ["nft", *args], stdin=stdin)
        if done.returncode != 0:
            raise LabError(f"nft {' '.join(args)} failed in {self.node}: "
                           f"{done.stderr.strip()}",
                           "the kernel needs nf_tables with the netdev family (and the"
                           " egress hook, Linux 5.16+, for direction out); or use tc")
        return done.stdout

    def _nft_apply(self) -> None:
        chains = "".join(
            f"  chain {NFT_CHAIN[d]} {{\n"
            f"    type filter hook {NFT_HOOK[d]} device \"{self.ifname}\""
            f" priority {NFT_PRIORITY}; policy accept;\n"
            f"    {NFT_MATCH[self.protocol]} counter drop\n  }}\n"
            for d in self.directions())
        if self._netns is None:
            # On a switch port, in the root namespace: the table would outlive the lab if
            # this run were killed, so the journal names it before it exists.
            self.lab.journal.record("nft_table", family="netdev", name=self.table)
        # One batch: every chain of the table takes effect in the same commit.
        self._nft("-f", "-", stdin=f"table netdev {self.table} {{\n{chains}}}\n")

    def _nft_remove(self) -> None:
        try:
            self._nft("delete", "table", "netdev", self.table)
        except LabError as exc:
            # Gone with its namespace, or removed already: either way nothing is left.
            if "No such file or directory" not in exc.problem and self._netns_alive():
                raise

    def _nft_counters(self) -> dict[str, int]:
        listing = json.loads(self._nft("-j", "list", "table", "netdev", self.table))
        chain_dir = {v: k for k, v in NFT_CHAIN.items()}
        counts: dict[str, int] = {}
        for item in listing["nftables"]:
            rule = item.get("rule")
            if rule:
                for expr in rule["expr"]:
                    if "counter" in expr:
                        direction = chain_dir[rule["chain"]]
                        counts[direction] = counts.get(direction, 0) + \
                            expr["counter"]["packets"]
        return counts

    def _netns_alive(self) -> bool:
        # A host's namespace is /proc/<shell pid>/ns/net: it vanishes with the lab.
        return self._netns is None or os.path.exists(self._netns)

    # -- tc ------------------------------------------------------------------------------
    def _tc_apply(self) -> list[tuple[int, int]]:
        ipr = self.lab.ipr(self.node)
        index = ipr.link_lookup(ifname=self.ifname)[0]
        try:
            ipr.tc("add", "clsact", index)
            self._own_clsact = True
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:  # someone else's clsact: share it, leave it
                raise
        calls = []
        for direction in self.directions():
            for ethertype, keys, prio in TC_MATCH[self.protocol]:
                calls.append(bracket(partial(
                    ipr.tc, "add-filter", "u32", index, parent=TC_PARENT[direction],
                    prio=_prio(prio, direction), protocol=ethertype, keys=keys, target=0,
                    action="drop")))
        return calls

    def _tc_remove(self) -> list[tuple[int, int]]:
        if not self._netns_alive() or self.lab.net is None:
            return []  # the interface, and its filters, went with the lab
        ipr = self.lab.ipr(self.node)
        found = ipr.link_lookup(ifname=self.ifname)
        if not found:
            return []
        index = found[0]
        calls = []
        for direction in self.directions():
            for ethertype, _keys, prio in TC_MATCH[self.protocol]:
                try:
                    # Without a handle the kernel removes the whole priority: ours.
                    # (pyroute2 builds u32 options even for a delete: target is required.)
                    calls.append(bracket(partial(
                        ipr.tc, "del-filter", "u32", index, parent=TC_PARENT[direction],
                        prio=_prio(prio, direction), protocol=ethertype, target=0)))
                except NetlinkError as exc:
                    if exc.code not in (errno.ENOENT, errno.EINVAL):
                        raise
        if self._own_clsact and not self._tc_filters(index):
            ipr.tc("del", "clsact", index)
            self._own_clsact = False
        return calls

    def _tc_filters(self, index: int) -> list:
        ipr = self.lab.ipr(self.node)
        return [f for parent in TC_PARENT.values()
                for f in ipr.get_filters(index=index, parent=parent)]

    def _tc_counters(self) -> dict[str, int]:
        ipr = self.lab.ipr(self.node)
        index = ipr.link_lookup(ifname=self.ifname)[0]
        counts: dict[str, int] = {}
        for direction in self.directions():
            prios = {_prio(prio, direction) for _e, _k, prio in TC_MATCH[self.protocol]}
            total = 0
            for msg in ipr.get_filters(index=index, parent=TC_PARENT[direction]):
                if (msg["info"] >> 16) not in prios:
                    continue
                options = msg.get_attr("TCA_OPTIONS")
                acts = options.get_attr("TCA_U32_ACT") if options is not None else None
                if acts is None:
                    continue  # the u32 hash-table node; the key node carries the action
                stats = acts.get_attr("TCA_ACT_PRIO_1").get_attr("TCA_ACT_STATS")
                total += stats.get_attr("TCA_STATS_BASIC")["packets"]
            counts[direction] = total
        return counts


def _prio(prio: int, direction: str) -> int:
    return prio + (TC_PRIO_OUT if direction == "out" else 0)
