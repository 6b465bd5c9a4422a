"""Benchmark: one sweep run three ways, to show what Dask workers buy on this machine.

The sweep is the active-backup bond against miimon (4 values x 5 trials = 20 trials, in
User-mode Linux where the kernel lacks bonding):

- ``local``: ``redlab suite`` on this machine, a run's trials one after another;
- ``cluster local://1``: the same suite on one Dask worker, a trial per task (so a guest
  booted per trial);
- ``cluster local://2``: on two Dask workers at once (each guest held on a CPU of its own).

Prints the suite's wall time, seconds per trial, the speed-up of two workers against one
(and against the local suite), and each miimon's median failover gap the three ways (the
figures must agree within noise); writes a CSV.

    .venv/bin/python scripts/bench_cluster.py [WAYS] [CSV]

WAYS is a comma-separated subset of local,1,2 (default all); CSV defaults to
results/bench-cluster.csv.  It takes about 20 minutes on 2 cores.
"""

from __future__ import annotations

import csv
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
SUITE = """\
name: bench-cluster
intent: the active-backup failover gap against miimon, 20 trials
runs:
  - scenario: {repo}/scenarios/bond-active-backup.yaml
    repeat: 5
    sweep: {{miimon: [50, 100, 200, 500]}}
    expect:  # the scenario's own bound is for miimon 100: the suite exited 1 on it
      failover_gap_ms:
        max: 600
        reason: one MII check at the longest period swept (500 ms), plus 100 ms late
"""


def once(way: str, folder: Path) -> dict[str, object]:
    suite = folder / "suite.yaml"
    suite.write_text(SUITE.format(repo=REPO))
    out = folder / f"suite-{way}"
    argv = [sys.executable, "-m", "harness", "suite", str(suite), "--out", str(out)]
    if way != "local":
        argv += ["--cluster", f"local://{way}"]
    started = time.monotonic()
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    with open(out / "suite.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    gaps: dict[str, list[float]] = {}
    for row in rows:
        gaps.setdefault(row["miimon"], []).append(float(row["failover_gap_ms"]))
    result: dict[str, object] = {
        "way": "local suite" if way == "local" else f"cluster local://{way}",
        "exit": done.returncode, "trials": len(rows), "wall_s": round(wall, 1),
        "per_trial_s": round(wall / max(len(rows), 1), 1),
        "hosts": len({row.get("host") for row in rows})}
    for miimon, values in sorted(gaps.items(), key=lambda kv: int(kv[0])):
        result[f"gap_ms_miimon{miimon}"] = round(statistics.median(values), 1)
    if done.returncode:
        print(done.stderr[-3000:], file=sys.stderr)
    return result


def main() -> None:
    ways = (sys.argv[1] if len(sys.argv) > 1 else "local,1,2").split(",")
    path = Path(sys.argv[2] if len(sys.argv) > 2 else REPO / "results" / "bench-cluster.csv")
    results = []
    with tempfile.TemporaryDirectory(prefix="redlab-bench-cluster-") as tmp:
        for way in ways:
            results.append(once(way, Path(tmp)))
            print(results[-1], flush=True)
    by_way = {r["way"]: float(r["wall_s"]) for r in results}  # type: ignore[arg-type]
    two = by_way.get("cluster local://2")
    for base in ("cluster local://1", "local suite"):
        if two and base in by_way:
            print(f"speed-up of 2 workers against {base}: {by_way[base] / two:.2f}x")
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(results).to_csv(path, index=False)
    print(f"rows in {path}")


if __name__ == "__main__":
    main()
