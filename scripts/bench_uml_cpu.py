"""Benchmark: a User-mode Linux guest held on one host CPU against one left to roam.

Boots REPEAT guests each way, alternating, and in each times 20000 system calls
(``os.getppid``) and a loop of 200 short process starts (``/bin/true``), the two things a
lab does most; prints the medians and their ratio, and writes a CSV.

    .venv/bin/python scripts/bench_uml_cpu.py [REPEAT] [CSV]

(default 3, results/bench-uml-cpu.csv).  See harness/lab/uml_cpu.py for why.
"""

from __future__ import annotations

import csv
import os
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from harness.journal import Journal  # noqa: E402
from harness.lab import uml  # noqa: E402
from harness.lab.uml_cpu import PIN_ENV  # noqa: E402
from harness.naming import new_run_id  # noqa: E402

GUEST = """
import os, subprocess, time
t = time.perf_counter()
for _ in range(20000):
    os.getppid()
calls = (time.perf_counter() - t) / 20000 * 1e6
t = time.perf_counter()
for _ in range(200):
    subprocess.run(["/bin/true"], check=True)
spawns = (time.perf_counter() - t) / 200 * 1e3
print(f"{calls:.2f} {spawns:.2f}")
"""


def once(pinned: bool) -> dict[str, float]:
    os.environ[PIN_ENV] = "1" if pinned else "0"
    with Journal(new_run_id()) as journal:
        done = uml.run_in_uml(uml.GuestSpec(argv=[sys.executable, "-c", GUEST], cwd=REPO),
                              deadline_s=600, journal=journal, stream=False)
    calls, spawns = (float(v) for v in done.stdout.split())
    return {"pinned": pinned, "boot_s": round(done.boot_s, 3),
            "syscall_us": calls, "spawn_ms": spawns, "run_s": round(done.run_s, 3)}


def main() -> int:
    repeat = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else REPO / "results" / "bench-uml-cpu.csv"
    rows = [once(pinned) for _ in range(repeat) for pinned in (True, False)]
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"{'median of ' + str(repeat):>14} {'pinned':>10} {'unpinned':>10} {'ratio':>7}")
    for key in ("boot_s", "syscall_us", "spawn_ms", "run_s"):
        a = statistics.median(r[key] for r in rows if r["pinned"])
        b = statistics.median(r[key] for r in rows if not r["pinned"])
        print(f"{key:>14} {a:10.2f} {b:10.2f} {b / a:7.1f}")
    print(f"rows in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
