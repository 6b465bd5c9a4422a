"""Benchmark: how a lab's bring-up grows with the number of dual-homed servers.

``dc_edge`` with ``servers=N``: N servers, each an 802.3ad bond with one member to each
leaf of the MC-LAG pair (a bond per server on each leaf), the VRRP router pair on the
same leaves, the upstream pair and the client. For each N a real trial runs (3 s of
light traffic, nothing failing) and its ``bring_up_s`` is read back: from the first
namespace to every bond negotiated, the MC-LAG agents up and the VRRP master elected.
Also printed: the phases of the bring-up (timing.json) and the whole run's wall time,
guest boot included. Writes a CSV.

    .venv/bin/python scripts/bench_scale.py [SERVERS] [REPEAT] [CSV]

SERVERS is comma-separated (default 8,16,32,64), REPEAT trials each (default 1), CSV
defaults to results/bench-scale.csv.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
SCENARIO = """\
name: scale-bring-up
intent: bring up {servers} dual-homed servers on the MC-LAG pair beside the VRRP pair
topology: dc_edge
requires: [bonding, flower]
params: {{servers: {servers}}}
traffic: {{server: srv, client: cli, duration_s: 3, protocol: udp, rate: 1M,
          probe_interval_ms: 10}}
"""
BRING_UP_PHASES = ("wiring", "addressing", "netlink sockets")  # and the technologies'


def once(servers: int, folder: Path) -> dict[str, object]:
    scenario = folder / f"scale-{servers}.yaml"
    scenario.write_text(SCENARIO.format(servers=servers))
    out = folder / f"run-{servers}-{time.monotonic_ns()}"
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "harness", "run", str(scenario), "--out",
                           str(out)], cwd=REPO, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        return {"servers": servers, "exit": done.returncode, "wall_s": round(wall, 1)}
    with open(out / "summary.csv", newline="") as fh:
        row = next(csv.DictReader(fh))
    timing = json.loads((out / "trial-001" / "timing.json").read_text())["phases_s"]
    traffic = ("before traffic", "traffic start (probe, iperf3 connect)", "traffic",
               "probe tail, state read back", "teardown", "analysis", "plot")
    result: dict[str, object] = {
        "servers": servers, "exit": 0, "lab": row["lab"],
        "bring_up_s": round(float(row["bring_up_s"]), 2), "wall_s": round(wall, 1),
        "teardown_s": timing.get("teardown", float("nan"))}
    for name, seconds in timing.items():  # the bring-up's own phases, as they ran
        if name not in traffic:
            result[f"phase {name}"] = seconds
    return result


def main() -> None:
    sizes = [int(n) for n in (sys.argv[1] if len(sys.argv) > 1 else "8,16,32,64").split(",")]
    repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 1
    path = Path(sys.argv[3] if len(sys.argv) > 3 else REPO / "results" / "bench-scale.csv")
    results = []
    with tempfile.TemporaryDirectory(prefix="redlab-bench-scale-") as tmp:
        for _ in range(repeat):
            for servers in sizes:
                results.append(once(servers, Path(tmp)))
                print(results[-1], flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(results).to_csv(path, index=False)
    ok = [r for r in results if r.get("exit") == 0]
    if len({r["servers"] for r in ok}) > 1:
        first, last = min(ok, key=lambda r: r["servers"]), max(ok, key=lambda r: r["servers"])
        growth = float(last["bring_up_s"]) / float(first["bring_up_s"])
        print(f"bring-up {first['bring_up_s']} s at {first['servers']} servers, "
              f"{last['bring_up_s']} s at {last['servers']}: x{growth:.1f} for"
              f" x{int(last['servers']) / int(first['servers']):.0f} servers")
    print(f"rows in {path}")


if __name__ == "__main__":
    main()
