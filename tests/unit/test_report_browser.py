"""A report opened as its reader opens it: in a real browser (Debian's chromium, headless),
whose DOM after the page's scripts ran says whether every image decoded and holds the
verdict tables. A report with one corrupted image shows that the check can fail."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from harness.results.report import write_report

from .report_folders import make_suite, read_page

BROWSER_TIMEOUT_S = 60  # a cold start takes about 1 s here; a loaded CI machine, more


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: scripts/bootstrap test should have installed it")
        pytest.skip("chromium is not installed (scripts/bootstrap test installs it)")
    return found


def dumped_dom(page: Path, profile: Path) -> str:
    """The DOM chromium holds once the page has loaded (its load handlers have run).
    --no-sandbox: tests run as root here; a profile of its own keeps $HOME untouched."""
    done = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-extensions",
         f"--user-data-dir={profile}", "--dump-dom", page.resolve().as_uri()],
        capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_chromium_decodes_every_image_and_shows_the_verdict_tables(tmp_path):
    path = write_report(make_suite(tmp_path / "suite"))
    dom = read_page(dumped_dom(path, tmp_path / "profile"))
    body = dom.ids["body"]
    assert body.get("data-images") == "decoded", body
    assert body["data-images-decoded"] == str(len(dom.images)) == "12"
    assert len(dom.rows["trial-verdicts"]) == 8
    assert [r["data-verdict"] for r in dom.rows["run-verdicts"]] == ["pass", "fail", "none",
                                                                     "none"]
    assert "failover_gap_ms 480 above max 400" in dom.text


def test_a_corrupted_image_is_caught_in_the_browser(tmp_path):
    path = write_report(make_suite(tmp_path / "suite"))
    html = path.read_text()
    # the CDF's PNG replaced by bytes that are base64 but no image
    broken = re.sub(r'src="data:image/png;base64,[^"]+"(?= alt="CDF)',
                    'src="data:image/png;base64,bm90IGEgcG5n"', html, count=1)
    assert broken != html
    path.write_text(broken)
    dom = read_page(dumped_dom(path, tmp_path / "profile"))
    assert dom.ids["body"].get("data-images") == "broken"
    assert dom.ids["body"]["data-images-decoded"] == "11"
    assert "CDF of failover gaps" in dom.text  # named on the page for the reader
