"""A user's own test file on the redlab fixture, under plain pytest (the pytest11 plugin
an install registers), writing JUnit XML that carries each trial's figures."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from .test_run_lifecycle import short_vrrp_scenario

pytestmark = pytest.mark.lab

USER_FILE = '''
def test_the_backup_takes_over(redlab):
    summary = redlab.run(r"{scenario}", repeat=1,
                         expect={{"failover_gap_ms": {{"max": 3000}}}})
    assert summary.verdict == "pass", summary.failed
    assert (summary["vrrp_new_master"] == "r2").all()
    assert summary["failover_gap_ms"].iloc[0] > 0
'''


def test_a_users_test_file_runs_under_plain_pytest_and_writes_the_figures(tmp_path):
    scenario = short_vrrp_scenario(tmp_path, {})
    user = tmp_path / "test_mine.py"
    user.write_text(USER_FILE.format(scenario=scenario))
    xml = tmp_path / "junit.xml"
    done = subprocess.run([sys.executable, "-m", "pytest", str(user), "-p", "no:cacheprovider",
                           f"--junitxml={xml}", "-o", "junit_family=xunit1",
                           "--redlab-lab", "native",
                           "--redlab-results", str(tmp_path / "results")],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "warning" not in done.stdout.lower(), done.stdout[-4000:]
    case = ET.parse(xml).getroot().find(".//testcase")
    assert case is not None and case.get("name") == "test_the_backup_takes_over"
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["01-vrrp-short.verdict"] == "pass"
    assert float(props["01-vrrp-short.trial1.failover_gap_ms"]) > 0
    assert float(props["01-vrrp-short.trial1.vrrp_takeover_ms"]) > 0
    assert props["01-vrrp-short.trial1.lost_packets"].isdigit()
    folder = tmp_path / "results" / "test_mine.py_test_the_backup_takes_over" / "01-vrrp-short"
    assert props["01-vrrp-short.folder"] == str(folder)
    assert (folder / "summary.csv").is_file()
