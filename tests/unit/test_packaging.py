"""What a newcomer runs first: the Vagrantfile and the bootstrap script are valid."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from ..conftest import REPO


@pytest.mark.parametrize("vms", ["1", "3"])  # one VM; a scheduler VM and two workers
def test_vagrantfile_validates(tmp_path, vms):
    if shutil.which("vagrant") is None:
        if os.environ.get("CI"):
            pytest.fail("vagrant is missing: scripts/bootstrap test should have installed it")
        pytest.skip("vagrant is not installed (scripts/bootstrap test installs it)")
    # The VM cannot boot here (no hypervisor); validate checks the file itself. Its state
    # folder goes to tmp_path, not into the repository.
    done = subprocess.run(["vagrant", "validate", "--ignore-provider"], cwd=REPO, text=True,
                          capture_output=True, timeout=120, check=False,
                          env={**os.environ, "VAGRANT_DOTFILE_PATH": str(tmp_path),
                               "REDLAB_VMS": vms})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "validated successfully" in done.stdout
    assert done.stdout.count("==> redlab") == int(vms)
    # fit for measurement: a pinned box, no clock steps from VirtualBox, virtiofs's memfd
    text = (REPO / "Vagrantfile").read_text()
    for needed in ("config.vm.box_version = BOX_VERSION", "GetHostTimeDisabled",
                   'memorybacking :source, type: "memfd"'):
        assert needed in text


def test_bootstrap_script_parses_and_rejects_an_unknown_action(tmp_path):
    script = REPO / "scripts" / "bootstrap"
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    # Run it with a wrong action, where every command that could install or escalate is
    # a stub that records its call and fails, and its environment would go to tmp_path:
    # even a script that forgot to check its action first could change nothing here.
    stubs, calls, venv = tmp_path / "bin", tmp_path / "calls.log", tmp_path / "venv"
    stubs.mkdir()
    for name in ("sudo", "apt-get", "apt-cache", "dpkg-query", "pip", "cc"):
        (stubs / name).write_text(f'#!/bin/sh\necho {name} >> "{calls}"\nexit 1\n')
        (stubs / name).chmod(0o755)
    done = subprocess.run(["bash", str(script), "instal"], text=True, capture_output=True,
                          timeout=30, check=False,
                          env={**os.environ, "PATH": f"{stubs}:{os.environ['PATH']}",
                               "REDLAB_VENV": str(venv)})
    assert done.returncode == 2, done.stdout + done.stderr
    assert "unknown action 'instal'" in done.stderr
    assert "usage: scripts/bootstrap setup|demo|test" in done.stderr
    assert not calls.exists(), calls.read_text()
    assert not venv.exists()
    text = script.read_text()
    # The README's two commands are the script's demo and test actions.
    readme = (REPO / "README.md").read_text()
    assert "scripts/bootstrap demo" in readme and "scripts/bootstrap test" in readme
    assert "demo)" in text and "test)" in text
