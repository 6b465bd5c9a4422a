"""One trial on a Dask worker: ``redlab run`` in a subprocess, its run folder sent back.

The worker runs the very command a user runs (``python -m harness run SCENARIO --repeat
1``), natively or in User-mode Linux as its kernel asks, so a trial on a worker is a
trial like any other and its results are files.  The scenario travels as text (the
worker has RedLab, not this suite's files); its topology is found by name there.

The subprocess is started under ``setpriv --pdeathsig TERM``: if the worker dies in the
middle of the trial (killed, the OOM killer), the trial gets SIGTERM, rolls its lab back
and stops at once, rather than measuring on beside the trial Dask reruns elsewhere.
Where trials need User-mode Linux, the worker's trials share one booted guest
(worker_guest.py).
"""

from __future__ import annotations

import io
import json
import platform
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.cluster import worker_guest

EVENT_TOPIC = "redlab-trial"  # a worker's record that it started a trial
FOLDER_PREFIX = "redlab-trial-"  # the worker's temporary folder of a trial


@dataclass(frozen=True)
class TrialTask:
    key: str             # the Dask key, unique in the suite
    label: str           # the run's label (its folder)
    trial: int           # the trial's number in its run
    scenario_name: str   # the scenario file's name (the subprocess's copy has it)
    scenario_text: str
    params: dict[str, str]
    expect: dict[str, Any]  # the suite run's expectations, as a document
    lab: str
    deadline_s: float


@dataclass(frozen=True)
class TrialResult:
    key: str
    host: str
    worker: str
    returncode: int
    stderr_tail: str
    seconds: float
    archive: bytes  # the run folder of the one trial, a gzipped tar


def command(task: TrialTask, scenario: Path, out: Path) -> list[str]:
    argv = ["setpriv", "--pdeathsig", "TERM", "--", sys.executable, "-m", "harness", "run",
            str(scenario), "--repeat", "1", "--out", str(out), "--lab", task.lab,
            "--deadline", str(task.deadline_s)]
    for key, value in task.params.items():
        argv += ["--param", f"{key}={value}"]
    if task.expect:
        argv += ["--expect-json", json.dumps(task.expect)]
    return argv


def run_trial(task: TrialTask) -> TrialResult:
    """Run on a worker by Dask: the trial, and its folder as an archive (whatever the
    exit code: what was measured before a failure comes back too)."""
    from distributed import get_worker

    worker = get_worker()
    host = platform.node()
    worker.log_event(EVENT_TOPIC, {"key": task.key, "host": host, "worker": worker.address})
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=FOLDER_PREFIX, dir=worker_guest.folder()) as tmp:
        scenario = Path(tmp) / task.scenario_name
        scenario.write_text(task.scenario_text)
        out = Path(tmp) / "run"
        worker_guest.ensure(scenario, task.params, task.lab)  # once per worker process
        done = subprocess.run(command(task, scenario, out), stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              errors="replace", check=False)
        return TrialResult(task.key, host, worker.address, done.returncode,
                           done.stderr[-4000:], time.monotonic() - started, pack(out))


def pack(folder: Path) -> bytes:
    """``folder`` as a gzipped tar of its contents (empty when it was never written)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        if folder.is_dir():
            for path in sorted(folder.iterdir()):
                tar.add(path, arcname=path.name)
    return buffer.getvalue()


def unpack(archive: bytes, into: Path) -> None:
    """Files and folders only, none outside ``into`` (what tarfile's "data" filter does,
    which Debian 12's Python 3.11.2 does not have)."""
    into.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        members = [m for m in tar.getmembers() if (m.isfile() or m.isdir())
                   and not Path(m.name).is_absolute() and ".." not in Path(m.name).parts]
        tar.extractall(into, members=members)
