"""The split horizon's start-up batch: one tc process for every bond, and only a missing
filter forgiven (the real filters are exercised by tests/lab/test_mclag.py)."""

from __future__ import annotations

import os
import stat

import pytest

from harness.tech.mclag import splithorizon
from harness.tech.mclag.splithorizon import TcError, batch_errors

MISSING = "Error: Cannot find specified filter chain."


def test_batch_errors_are_attributed_to_the_line_that_failed():
    stderr = f"{MISSING}\nCommand failed -:2\nCannot find device \"po9\"\nCommand failed -:5\n"
    assert batch_errors(stderr) == {2: MISSING, 5: 'Cannot find device "po9"'}
    assert batch_errors("") == {}


@pytest.fixture
def fake_tc(tmp_path, monkeypatch):
    """A `tc` on PATH that records its stdin and answers with the stderr and exit code
    the test gives it."""
    def install(stderr: str, code: int) -> os.PathLike:
        script = tmp_path / "tc"
        (tmp_path / "said").write_text(stderr)
        script.write_text(f"#!/bin/sh\ncat > {tmp_path}/stdin\ncat {tmp_path}/said >&2\n"
                          f"exit {code}\n")
        script.chmod(script.stat().st_mode | stat.S_IEXEC)
        monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
        return tmp_path / "stdin"
    return install


def test_one_process_takes_every_bond_and_a_missing_filter_is_no_error(fake_tc):
    stdin = fake_tc(f"{MISSING}\nCommand failed -:2\n{MISSING}\nCommand failed -:4\n", 1)
    splithorizon.prepare(["po1", "po2"])
    assert stdin.read_text().splitlines() == [
        "qdisc replace dev po1 clsact", "filter del dev po1 egress pref 10",
        "qdisc replace dev po2 clsact", "filter del dev po2 egress pref 10"]


def test_a_qdisc_that_cannot_be_made_is_an_error_naming_its_bond(fake_tc):
    fake_tc('Cannot find device "po2"\nCommand failed -:3\n', 1)
    with pytest.raises(TcError, match="qdisc replace dev po2 clsact: Cannot find device"):
        splithorizon.prepare(["po1", "po2"])


def test_a_failure_tc_does_not_attribute_is_still_an_error(fake_tc):
    fake_tc("Segmentation fault\n", 139)
    with pytest.raises(TcError, match="exited with 139"):
        splithorizon.prepare(["po1"])
