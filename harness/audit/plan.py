"""The audit's trials: one short scenario per unit set, written beside its run folder.

Each trial runs the traffic a user's run would (iperf3 plus the gap probe between the
endpoints), fails its units 2 s in, and repairs them at 5 s: the service must be back
before the repair for the units to be redundant. The scenario files stay in the audit
folder, so any trial can be run again by hand with ``redlab run``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.audit.units import Unit
from harness.tech.registry import kernel_features
from harness.topology.model import Topology

FAIL_AT_S = 2.0     # traffic settles first (TCP slow start, ARP)
# How long the units stay failed (redlab audit --hold): it must outlast the slowest
# protocol timer that recovers the path, or a redundant unit reads as a SPoF. 3 s covers
# a bond's MII check, LACP's fast timeout and VRRP at advert_int 0.1 s (0.36 s), but not
# VRRP at 1 s, whose backup waits 3.6 s for a master that cannot say it left.
HOLD_S = 3.0
AFTER_S = 2.0       # traffic after the repair: the fail-back is seen too


@dataclass(frozen=True)
class Trial:
    number: int
    units: tuple[Unit, ...]

    @property
    def label(self) -> str:
        return f"{self.number:03d}-" + "+".join(u.key for u in self.units)

    @property
    def names(self) -> str:
        return " + ".join(u.label for u in self.units)


def scenario_doc(topo: Topology, params: dict[str, Any], trial: Trial,
                 endpoints: tuple[str, str], hold_s: float = HOLD_S) -> dict[str, Any]:
    """The scenario that fails ``trial``'s units for ``hold_s`` while traffic flows from
    the server (endpoints[0]) to the client (endpoints[1])."""
    repair_at = FAIL_AT_S + hold_s
    steps = [u.step(FAIL_AT_S) for u in trial.units]
    steps += [{"at_s": repair_at, "action": "restore"} for _ in trial.units]
    return {
        "name": f"audit-{trial.label}",
        "intent": f"Does losing {trial.names} stop the service until the repair?",
        "topology": topo.name,
        "requires": kernel_features(topo),
        "params": params,
        "traffic": {"server": endpoints[0], "client": endpoints[1],
                    "duration_s": math.ceil(repair_at + AFTER_S), "protocol": "tcp",
                    "rate": "10M",
                    "probe_interval_ms": 1},
        "steps": steps,
    }


def write_scenario(root: Path, doc: dict[str, Any], trial: Trial) -> Path:
    path = root / f"{trial.label}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path
