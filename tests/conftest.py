"""Shared fixtures for tests/unit and tests/lab: where the repository is, how to call the
redlab command, and the C gap probe both test files of redlab-probe use."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from harness import timeouts
from harness.measure import gapprobe

REPO = Path(__file__).resolve().parents[1]
SCENARIOS = REPO / "scenarios"


# Where the real-lab runs happened, printed at the end of the session so the CI log says
# which kernel the bond tests ran on.
LAB_REPORT: list[str] = []


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Under pytest-xdist a worker's lines go to the controller, which prints them."""
    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput["lab_report"] = list(LAB_REPORT)


@pytest.hookimpl(optionalhook=True)  # a pytest-xdist hook: absent without xdist
def pytest_testnodedown(node, error) -> None:
    LAB_REPORT.extend(getattr(node, "workeroutput", {}).get("lab_report", []))


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    """Under ``pytest -n N``: each lab stream whole to one worker (tests/lab/streams.py),
    every other test on its own to whichever worker is free."""
    from xdist.scheduler import LoadScopeScheduling

    from .lab.streams import stream

    if config.getvalue("dist") not in ("load", "loadgroup"):
        return None  # the user asked for another distribution

    class StreamScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return stream(nodeid) or nodeid

    return StreamScheduling(config, log)


def pytest_terminal_summary(terminalreporter) -> None:
    if LAB_REPORT:
        terminalreporter.section("where the labs ran")
        for line in LAB_REPORT:
            terminalreporter.write_line(line)


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# A readiness wait that ran out says nothing of the mechanism when the host was starved
# (seen in CI: a one-CPU guest waited 22 s for LACPDUs its Open vSwitch never got to
# read, on a host whose other tenants took the CPU): such a run gets one more try, and
# the terminal summary names it with the host's load.  A run that fails twice fails.
# So does a run whose trial was not steady before its failure, twice (the runner's own
# second try included).
UNSTEADY = "the lab's path was not steady before the failure"
RETRY_ON = ("timed out after", "did not negotiate within", UNSTEADY)


def host_cpu() -> tuple[int, int]:
    """(steal, total) jiffies of the host's CPUs so far (/proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    return (fields[7] if len(fields) > 7 else 0), sum(fields)


def host_load(since: tuple[int, int]) -> str:
    steal, total = (a - b for a, b in zip(host_cpu(), since, strict=True))
    return (f"host load average {os.getloadavg()[0]:.2f}, CPU stolen by other tenants"
            f" {100 * steal / max(total, 1):.1f} % during the run")


def run_scenario(tmp_path_factory, scenario: str, *params: str,
                 timeout: float = 300, lab: str | None = None) -> Path:
    """``redlab run scenarios/<scenario>.yaml --param p ... [--lab LAB]`` into a fresh
    folder, as a user would; the run must succeed (a second try if a readiness wait ran
    out: RETRY_ON).  Returns the run folder."""
    args = [a for p in params for a in ("--param", p)] + (["--lab", lab] if lab else [])
    for attempt in (1, 2):
        out, since = tmp_path_factory.mktemp(scenario) / "run", host_cpu()
        done = redlab("run", f"scenarios/{scenario}.yaml", *args, "--out", str(out),
                      timeout=timeout)
        print(done.stdout[-3000:], done.stderr[-3000:])
        error = next((line for line in done.stderr.splitlines() if "error:" in line), "")
        if done.returncode == 0:
            error = unsteady(out)
        if not error or attempt == 2 or not any(m in error for m in RETRY_ON):
            break
        LAB_REPORT.append(f"RETRIED {scenario} {' '.join(params)}: {error.strip()}"
                          f" ({host_load(since)}); the first try is kept in {out}")
    assert done.returncode == 0, f"{done.stderr[-3000:]}\n({host_load(since)})"
    assert not error, f"{error} ({host_load(since)}); the run is in {out}"
    return out


def unsteady(out: Path) -> str:
    """What the run's summary says of a trial whose path was not steady before its
    failure (the runner ran it twice already), or ""."""
    for row in read_rows(out / "summary.csv"):
        if row.get("steady_before_failure") == "False":
            return (f"{UNSTEADY}: trial {row['trial']}, baseline round trip"
                    f" {row['baseline_rtt_ms'] or '-'} ms, {row['baseline_loss_pct']} % lost")
    return ""


def trial_events(out: Path, kind: str, trial: int = 1) -> list[dict[str, str]]:
    """The events of one kind in a trial's events.csv, in file order."""
    return [e for e in read_rows(out / f"trial-{trial:03d}" / "events.csv")
            if e["kind"] == kind]


def call_start_s(out: Path, kind: str) -> float:
    """When the call of the first ``kind`` step began: its event is stamped at the call's
    middle, and what it caused (a notice, say) may come anywhere in the call."""
    event = trial_events(out, kind)[0]
    call_ms = float(re.search(r"call ([\d.]+) ms", event["detail"])[1])
    return float(event["t_s"]) - call_ms / 2000 - 1e-4  # printed to 0.1 ms


def redlab(*args: str, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess[str]:
    """Run the real command line, as a user would, from the repository root."""
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=REPO, text=True,
                          capture_output=True, timeout=timeout, check=False, **kwargs)


@pytest.fixture
def repo() -> Path:
    return REPO


def guest_json_lines(module: str, features: list[str], deadline_s: float,
                     start_ovs: bool = False) -> list[dict[str, Any]]:
    """Run ``python -m <module>`` (a test module's guest side) in one User-mode Linux
    guest and return the JSON lines it printed; skip where UML is not installed."""
    from harness.journal import Journal
    from harness.lab import guest_modules, uml
    from harness.naming import new_run_id

    if not uml.uml_available():
        pytest.skip("user-mode-linux (linux.uml + modules) not installed")
    with Journal(new_run_id()) as journal:
        result = uml.run_in_uml(
            uml.GuestSpec(argv=[sys.executable, "-m", module], cwd=REPO,
                          env={"PYTHONPATH": str(REPO)}, modules=guest_modules(features),
                          start_ovs=start_ovs),
            deadline_s=deadline_s, journal=journal, stream=False)
    assert result.returncode == 0, result.stderr[-3000:]
    print(f"UML boot {result.boot_s:.1f} s, run {result.run_s:.1f} s")
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root")


def wait_until(what: str, done: Callable[[], bool], timeout: float) -> float:
    """Poll ``done`` until true; seconds it took.  Fails naming ``what`` at the deadline."""
    started = time.monotonic()
    while not done():
        assert time.monotonic() - started < timeout, f"{what} after {timeout:g} s"
        time.sleep(0.005)
    return time.monotonic() - started


# -- redlab-probe, the C gap probe (tests/unit and tests/lab test_gapprobe.py) ----------

@pytest.fixture(scope="module")
def binary(tmp_path_factory) -> Path:
    """redlab-probe built from source, once per test module."""
    if shutil.which("cc") is None:
        pytest.skip("no C compiler: apt-get install gcc libc6-dev")
    return gapprobe.build(tmp_path_factory.mktemp("probe"))


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the server writes its log then), SIGKILL if it does not go."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeouts.PROCESS_EXIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def assert_summarize_reproduces(run: Path, scratch: Path) -> subprocess.CompletedProcess[str]:
    """`redlab summarize` on a copy of ``run`` writes the very summary.csv the run wrote:
    every figure comes from the run folder alone."""
    copy = scratch / "copy"
    shutil.copytree(run, copy)
    (copy / "summary.csv").unlink()
    done = redlab("summarize", str(copy))
    assert done.returncode == 0, done.stderr
    assert (copy / "summary.csv").read_text() == (run / "summary.csv").read_text()
    return done
