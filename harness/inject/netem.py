"""A degraded link: loss, delay, jitter or a rate cap, with netem, carrier kept.

netem shapes only what leaves an interface, so ``ends`` says whose egress is impaired:
"near" (``node:intf`` sending), "far" (the cable's other end sending towards ``node``) or
"both" (the default: a symmetric fault, like a bad cable). Every figure applies per
direction, so with "both" a ping's round trip grows by twice ``delay_ms`` and each
direction loses ``loss_pct``.

The qdisc is added as the interface's root with a handle of our own and restore deletes
only a netem root with that handle; an interface that already has a root qdisc is
refused rather than overwritten. A qdisc dies with its interface, so a torn-down lab
leaves none behind, not even on a switch port in the root namespace. Jitter is uniformly
distributed: pyroute2 cannot send netem's distribution tables (tc's "distribution").
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyroute2.netlink import NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import RTM_NEWQDISC
from pyroute2.netlink.rtnl.tcmsg import sched_netem, tcmsg
from pyroute2.netlink.rtnl.tcmsg.common import get_rate, tick_in_usec

from harness.errors import ConfigError, LabError
from harness.inject.base import Reversible, bracket
from harness.inject.link import End

if TYPE_CHECKING:
    from harness.lab.running import Lab

HANDLE = 0x7E5D0000  # "7e5d:", unlikely to be picked by hand, so ours to delete
TC_H_ROOT = 0xFFFFFFFF
# "add", never "replace": a root qdisc already there is someone else's.
CREATE_EXCLUSIVE = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
# netem's own default (1000 packets) turns delay into tail drop at ~100 Mbit/s with
# 100 ms: keep enough packets in flight for the lab's rates.
DEFAULT_LIMIT = 10_000


@dataclass
class Degrade(Reversible):
    """Impair ``node:intf``'s cable with netem on the egress of ``ends``.

    ``rate`` is bits per second (int) or a tc string such as ``"10mbit"``.
    """

    lab: Lab
    node: str
    intf: str
    loss_pct: float = 0.0
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    rate: int | str | None = None
    ends: End = "both"
    limit: int = DEFAULT_LIMIT

    def __post_init__(self) -> None:
        problems = []
        if self.ends not in ("near", "far", "both"):
            problems.append(f"ends {self.ends!r} is not near, far or both")
        if not 0 <= self.loss_pct <= 100:
            problems.append(f"loss_pct {self.loss_pct} is not within 0-100")
        if self.delay_ms < 0 or self.jitter_ms < 0:
            problems.append("delay_ms and jitter_ms cannot be negative")
        if self.jitter_ms > self.delay_ms:
            problems.append(f"jitter_ms {self.jitter_ms} exceeds delay_ms {self.delay_ms}"
                            " (netem would clamp negative delays to zero)")
        if self.rate is not None and self._rate_bytes() <= 0:
            problems.append(f"rate {self.rate!r} is not a positive rate")
        if not (self.loss_pct or self.delay_ms or self.rate is not None):
            problems.append("nothing to degrade: give loss_pct, delay_ms or rate")
        if problems:
            raise ConfigError(f"cannot degrade {self.node}:{self.intf}: "
                              + "; ".join(problems), "fix the failure's parameters")

    def _rate_bytes(self) -> int:
        # netem counts bytes per second; tc strings are bits ("10mbit"), like ints here.
        if isinstance(self.rate, str):
            return int(get_rate(self.rate))
        return int((self.rate or 0) // 8)

    def targets(self) -> list[tuple[str, str]]:
        far = self.lab.topo.far_end(self.node, self.intf)
        return {"near": [(self.node, self.intf)], "far": [far],
                "both": [(self.node, self.intf), far]}[self.ends]

    def describe(self) -> str:
        parts = [f"loss {self.loss_pct:g}%" if self.loss_pct else "",
                 f"delay {self.delay_ms:g}ms" if self.delay_ms else "",
                 f"jitter {self.jitter_ms:g}ms" if self.jitter_ms else "",
                 f"rate {self.rate}" if self.rate is not None else ""]
        far_node, far_intf = self.lab.topo.far_end(self.node, self.intf)
        return (f"degrade {self.node}:{self.intf} <-> {far_node}:{far_intf}:"
                f" {' '.join(p for p in parts if p)} per direction (egress of {self.ends})")

    def apply(self) -> int:
        """Returns when the first qdisc took effect (middle of its netlink call)."""
        calls: list[tuple[int, int]] = []
        done: list[tuple[str, str]] = []
        try:
            for node, intf in self.targets():
                calls.append(self._add(node, intf))
                done.append((node, intf))
        except BaseException:
            for node, intf in done:  # all ends or none
                self._remove(node, intf)
            raise
        return self._event(calls)

    def restore(self) -> int:
        """Delete our qdiscs; returns when the first removal took effect."""
        if self.lab.net is None:
            return self._event([])  # the interfaces, and their qdiscs, went with the lab
        calls = [self._remove(node, intf) for node, intf in self.targets()]
        return self._event([c for c in calls if c is not None])

    def _index(self, node: str, intf: str) -> int | None:
        found = self.lab.ipr(node).link_lookup(ifname=self.lab.ifname(node, intf))
        return found[0] if found else None

    def _add(self, node: str, intf: str) -> tuple[int, int]:
        index = self._index(node, intf)
        if index is None:
            raise LabError(f"cannot degrade {node}:{intf}: no such interface",
                           "check the scenario's node and interface names")
        options: dict[str, object] = {"limit": self.limit}
        if self.delay_ms:
            options["delay"] = int(self.delay_ms * 1000)      # pyroute2 takes microseconds
        if self.jitter_ms:
            options["jitter"] = int(self.jitter_ms * 1000)
        if self.loss_pct:
            options["loss"] = self.loss_pct                    # percent
        if self.rate is not None:
            options["rate"] = self._rate_bytes()               # bytes per second
        # Not ipr.tc("add", "netem", ..., rate=...): pyroute2 0.9 also takes a "rate"
        # keyword for the qdisc's TCA_RATE attribute and fails to encode it. So the
        # message is built here, its options by pyroute2's own netem plugin (same keywords),
        # and sent through nlm_request_batch (0.9's sync nlm_request raises KeyError).
        msg = tcmsg()
        msg["header"]["type"], msg["header"]["flags"] = RTM_NEWQDISC, CREATE_EXCLUSIVE
        msg["index"], msg["handle"], msg["parent"] = index, HANDLE, TC_H_ROOT
        msg["attrs"] = [["TCA_KIND", "netem"],
                        ["TCA_OPTIONS", sched_netem.get_parameters(options)]]
        ipr = self.lab.ipr(node)
        try:
            return bracket(lambda: ipr.nlm_request_batch([msg]))
        except NetlinkError as exc:
            if exc.code in (errno.ENOENT, errno.EOPNOTSUPP):
                raise ConfigError("this kernel has no netem (module sch_netem), needed to"
                                  f" degrade {node}:{intf}",
                                  "run with --lab uml, or load sch_netem (package:"
                                  " linux-modules-extra-$(uname -r) on Ubuntu)") from exc
            if exc.code == errno.EEXIST:
                raise LabError(f"{node}:{intf} already has a root qdisc; refusing to replace"
                               " it", "restore the other failure on this cable first") from exc
            raise

    def _remove(self, node: str, intf: str) -> tuple[int, int] | None:
        index = self._index(node, intf)
        if index is None:
            return None
        ipr = self.lab.ipr(node)
        ours = [q for q in ipr.get_qdiscs(index=index)
                if q["parent"] == TC_H_ROOT and q["handle"] == HANDLE
                and q.get_attr("TCA_KIND") == "netem"]
        if not ours:
            return None
        return bracket(lambda: ipr.tc("del", "netem", index, handle=HANDLE))

    def qdisc(self, node: str, intf: str) -> dict[str, object] | None:
        """Our netem at ``node:intf`` as the kernel reports it (delay in µs, loss in %)."""
        index = self._index(node, intf)
        if index is None:
            return None
        for q in self.lab.ipr(node).get_qdiscs(index=index):
            if q["handle"] == HANDLE and q.get_attr("TCA_KIND") == "netem":
                opts = q.get_attr("TCA_OPTIONS")
                return {"handle": q["handle"], "delay_us": _ticks_to_us(opts["delay"]),
                        "jitter_us": _ticks_to_us(opts["jitter"]), "limit": opts["limit"],
                        "loss_pct": opts["loss"] * 100 / 0xFFFFFFFF}
        return None


def _ticks_to_us(ticks: int) -> float:
    return ticks / tick_in_usec  # netem reports its times in psched ticks
