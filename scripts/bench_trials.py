"""Benchmark: what a trial costs beyond its traffic, per scenario family.

For each family (a bond in User-mode Linux, an Open vSwitch LAG in User-mode Linux, VRRP
natively) one ``redlab run --repeat N`` runs, as a user would start it, and each trial's
``timing.json`` is read back. Printed per family: the traffic's seconds, the trial's
wall seconds (its ``total_s``), the run's wall time per trial (process start and, in
User-mode Linux, the guest's boot shared out), the ratio of a trial to its traffic, and
the phase beside the traffic that cost most. The issue's target is a trial within the
traffic plus 3 s natively and plus 5 s in User-mode Linux. Writes a CSV.

    .venv/bin/python scripts/bench_trials.py [REPEAT] [CSV] [FAMILY ...]

REPEAT defaults to 3, CSV to results/bench-trials.csv, the families to all three.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
FAMILIES = {  # family -> (scenario, lab)
    "bond": ("scenarios/bond-active-backup.yaml", "uml"),
    "lag": ("scenarios/lag-member-failure.yaml", "uml"),
    "vrrp": ("scenarios/vrrp-master-death.yaml", "native"),
}
TARGET_S = {"uml": 5.0, "native": 3.0}  # beyond the traffic


def run(family: str, repeat: int, folder: Path) -> list[dict[str, object]]:
    scenario, lab = FAMILIES[family]
    out = folder / f"{family}-{time.monotonic_ns()}"
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "harness", "run", scenario, "--lab", lab,
                           "--repeat", str(repeat), "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    if done.returncode not in (0, 1):  # 1: a trial missed an expectation, still measured
        print(done.stderr[-3000:], file=sys.stderr)
        return [{"family": family, "exit": done.returncode}]
    rows = []
    for timing_file in sorted(out.glob("trial-*/timing.json")):
        timing = json.loads(timing_file.read_text())
        phases, total = timing["phases_s"], timing["total_s"]
        traffic = phases.get("traffic", float("nan"))
        others = {k: v for k, v in phases.items() if k != "traffic"}
        top = max(others, key=others.__getitem__)
        rows.append({"family": family, "lab": lab, "exit": done.returncode,
                     "trial": timing_file.parent.name, "traffic_s": traffic,
                     "trial_s": total, "beyond_traffic_s": round(total - traffic, 3),
                     "run_wall_per_trial_s": round(wall / repeat, 2),
                     "dominant_phase": top, "dominant_phase_s": others[top]})
    return rows


def main() -> None:
    repeat = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    path = Path(sys.argv[2] if len(sys.argv) > 2 else REPO / "results" / "bench-trials.csv")
    families = sys.argv[3:] or list(FAMILIES)
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="redlab-bench-trials-") as tmp:
        for family in families:
            rows += run(family, repeat, Path(tmp))
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows)
    table.to_csv(path, index=False)
    print(f"{'family':6} {'lab':6} {'traffic':>8} {'trial':>7} {'beyond':>7} {'target':>7}"
          f" {'run/trial':>9} {'ratio':>6}  dominant phase (median s)")
    for family, group in table.groupby("family", sort=False):
        if "trial_s" not in group or group["trial_s"].isna().all():
            print(f"{family:6} failed (exit {group['exit'].iloc[0]})")
            continue
        lab = group["lab"].iloc[0]
        traffic, trial = group["traffic_s"].median(), group["trial_s"].median()
        top = statistics.mode(group["dominant_phase"])
        top_s = group.loc[group["dominant_phase"] == top, "dominant_phase_s"].median()
        print(f"{family:6} {lab:6} {traffic:8.2f} {trial:7.2f} {trial - traffic:7.2f}"
              f" {TARGET_S[lab]:7.1f} {group['run_wall_per_trial_s'].iloc[0]:9.2f}"
              f" {trial / traffic:6.2f}  {top} ({top_s:.2f})")
    print(f"medians over {repeat} trial(s) each; rows in {path}")


if __name__ == "__main__":
    main()
