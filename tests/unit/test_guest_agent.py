"""The shared guest's spool protocol, with its agent on this host instead of in a guest:
a command submitted there answers as `python -m harness` run directly does."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from harness.errors import LabError
from harness.journal import Journal, process_start_time
from harness.lab import shared_guest, uml
from harness.lab.shared_guest import GuestInfo, SharedGuest
from harness.naming import new_run_id

from ..conftest import REPO


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[tuple[SharedGuest, subprocess.Popen[bytes]]]:
    spool = tmp_path / "spool"
    spool.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "harness.lab.guest_agent", str(spool)],
                            cwd=REPO, stderr=subprocess.DEVNULL)
    info = GuestInfo(str(spool), str(tmp_path / "ctl"), proc.pid, process_start_time(proc.pid),
                     ["bonding", "veth"], False, [str(tmp_path)], sys.executable,
                     shared_guest._harness_folder(), shared_guest._code_stamp())
    try:
        yield SharedGuest(info), proc
    finally:
        proc.kill()
        proc.wait()


@pytest.fixture
def journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Journal]:
    monkeypatch.setattr("harness.journal.JOURNAL_DIR", tmp_path / "journals")
    (tmp_path / "journals").mkdir()
    with Journal(new_run_id()) as opened:
        yield opened


@pytest.mark.parametrize("args", [["--help"], ["run", "scenarios/no-such.yaml"],
                                  ["run", "--repeat", "0", "scenarios/path-cut.yaml"]],
                         ids=["help", "missing-scenario", "bad-option"])
def test_a_submitted_command_answers_as_the_command_itself(agent, journal, args):
    guest, _ = agent
    argv = [sys.executable, "-m", "harness", *args]
    got = guest.submit(argv, REPO, {}, 60, journal, stream=False)
    direct = subprocess.run(argv, cwd=REPO, env=uml.guest_env({}), capture_output=True,
                            text=True, check=False)
    assert (got.returncode, got.stdout, got.stderr) == (
        direct.returncode, direct.stdout, direct.stderr)


def test_requests_are_answered_in_turn_and_leave_nothing_in_the_spool(agent, journal):
    guest, _ = agent
    argv = [sys.executable, "-m", "harness", "run", "scenarios/no-such.yaml"]
    codes = [guest.submit(argv, REPO, {}, 60, journal, stream=False).returncode
             for _ in range(3)]
    assert codes == [2, 2, 2]
    assert sorted(p.name for p in guest.spool.iterdir()) == []


def test_only_the_harness_command_runs(agent, journal):
    guest, _ = agent
    with pytest.raises(LabError, match="only `python -m harness"):
        guest.submit([sys.executable, "-c", "print(1)"], REPO, {}, 60, journal, stream=False)


def test_stop_ends_the_agent(agent):
    guest, proc = agent
    assert guest.ping(30) > 0
    (guest.spool / "stop").touch()
    assert proc.wait(timeout=10) == 0


def test_a_vanished_agent_is_an_error_not_a_hang(agent, journal):
    guest, proc = agent
    proc.kill()
    proc.wait()
    started = time.monotonic()
    with pytest.raises(LabError, match="shared UML guest ended"):
        guest.submit([sys.executable, "-m", "harness", "--help"], REPO, {}, 60, journal,
                     stream=False)
    assert time.monotonic() - started < 5


def test_a_run_goes_to_the_shared_guest_only_if_it_can_serve_it(agent, tmp_path, monkeypatch):
    guest, _ = agent
    info = guest.info
    (guest.spool / shared_guest.INFO).write_text(json.dumps(asdict(info)))
    out = tmp_path / "run"

    # The working directory is one the guest can see: a checkout under /tmp (as CI's
    # fresh clone may be) is hidden behind the guest's tmpfs unless mounted.
    cwd = tmp_path

    def serving(modules=("bonding",), start_ovs=False, out=out, python=sys.executable):
        return shared_guest.serving(modules, start_ovs, out, cwd, python)

    monkeypatch.delenv(shared_guest.ENV_VAR, raising=False)
    assert serving() is None, "without REDLAB_GUEST nothing changes"
    monkeypatch.setenv(shared_guest.ENV_VAR, str(guest.spool))
    assert serving() is not None
    assert serving(modules=("bonding", "team")) is None
    assert serving(start_ovs=True) is None
    assert serving(out=Path("/var/tmp/elsewhere")) is None
    assert serving(python="/usr/bin/python3.11") is None
    assert replace(info, kernel_pid=1).covers(["bonding"], False, out, cwd, sys.executable)
    # A checkout under /tmp (a CI clone) is mounted for the agent: runs from it may come.
    clone = replace(info, harness="/tmp/clone-x/harness")
    said = clone.covers(["bonding"], False, out, Path("/tmp/clone-x/sub"), sys.executable)
    assert said and "hidden" not in said and "clone-x" in said  # refused: not our checkout
    assert "/tmp/elsewhere is hidden" in clone.covers(["bonding"], False, out,
                                                      Path("/tmp/elsewhere"), sys.executable)
    assert "code changed" in replace(info, code_stamp=1).covers(["bonding"], False, out, cwd,
                                                               sys.executable)
