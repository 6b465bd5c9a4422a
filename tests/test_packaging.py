"""What a newcomer runs first: the Vagrantfile and the bootstrap script are valid."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from .conftest import REPO


def test_vagrantfile_validates(tmp_path):
    if shutil.which("vagrant") is None:
        if os.environ.get("CI"):
            pytest.fail("vagrant is missing: scripts/bootstrap test should have installed it")
        pytest.skip("vagrant is not installed (scripts/bootstrap test installs it)")
    # The VM cannot boot here (no hypervisor); validate checks the file itself. Its state
    # folder goes to tmp_path, not into the repository.
    done = subprocess.run(["vagrant", "validate", "--ignore-provider"], cwd=REPO, text=True,
                          capture_output=True, timeout=120, check=False,
                          env={**os.environ, "VAGRANT_DOTFILE_PATH": str(tmp_path)})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "validated successfully" in done.stdout


def test_bootstrap_script_parses_and_rejects_an_unknown_action():
    assert subprocess.run(["bash", "-n", str(REPO / "scripts" / "bootstrap")],
                          check=False).returncode == 0
    text = (REPO / "scripts" / "bootstrap").read_text()
    # The README's two commands are the script's demo and test actions.
    readme = (REPO / "README.md").read_text()
    assert "scripts/bootstrap demo" in readme and "scripts/bootstrap test" in readme
    assert "demo)" in text and "test)" in text
