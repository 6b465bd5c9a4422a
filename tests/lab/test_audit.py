"""`redlab audit bond_server` on a real kernel: every unit failed in turn, with traffic.

On a kernel without bonding the trials run inside User-mode Linux (the session's shared
guest). The graph says the switch and the client's only cable are single points of
failure and each of the bond's members is not; the lab must say the same.
"""

from __future__ import annotations

import html
import time
from pathlib import Path

import pandas as pd
import pytest

from ..conftest import LAB_REPORT, redlab

pytestmark = [pytest.mark.lab, pytest.mark.slow]  # six trials: about 3 minutes
MIIMON = 100


@pytest.fixture(scope="module")
def audit(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    out = tmp_path_factory.mktemp("audit") / "bond_server"
    started = time.monotonic()
    done = redlab("audit", "bond_server", "--param", f"miimon={MIIMON}", "--out", str(out),
                  timeout=900)
    print(done.stdout[-4000:], done.stderr[-3000:])
    assert done.returncode == 0, done.stderr[-3000:]
    table = pd.read_csv(out / "audit.csv")
    LAB_REPORT.append(f"audit of bond_server in {time.monotonic() - started:.0f} s:")
    LAB_REPORT.extend(f"  {r.units}: predicted {r.predicted}, measured {r.measured},"
                      f" gap {r.gap_ms} ms, capacity {r.capacity_pct} %, {r.verdict}"
                      for r in table.itertuples())
    return out, table


def verdicts(table: pd.DataFrame) -> dict[str, str]:
    return dict(zip(table["units"], table["verdict"], strict=True))


def test_the_switch_is_a_spof_and_each_member_is_redundant(audit):
    _, table = audit
    assert verdicts(table) == {
        "cli:eth0 <-> sw:p0": "spof",
        "srv:eth0 <-> sw:p1": "redundant", "srv:eth1 <-> sw:p2": "redundant",
        "srv:eth0": "redundant", "srv:eth1": "redundant",
        "sw": "spof",
    }
    assert table["agrees"].all(), table[["units", "note"]]


def test_a_redundant_member_costs_at_most_one_mii_check(audit):
    """Losing the active member's cable or NIC stops traffic for one MII check at most
    (plus a busy lab's late timer); losing the backup's costs nothing: 0, not blank."""
    _, table = audit
    members = table[table["kind"].isin(["cable", "nic"]) & table["units"].str.startswith("srv")]
    assert len(members) == 4
    assert members["gap_ms"].notna().all() and (members["gap_ms"] >= 0).all()
    assert (members["gap_ms"] < MIIMON + 150).all(), members[["units", "gap_ms"]]
    assert (members["gap_ms"] == 0).any(), "the backup member's loss cost something"
    assert (members["capacity_pct"] > 50).all()


def test_each_trial_is_a_run_folder_and_its_scenario_beside_it(audit):
    out, table = audit
    for run in table["run"]:
        folder = Path(run)
        assert (folder / "summary.csv").is_file() and (folder / "trial-001").is_dir()
        assert (out / "scenarios" / f"{folder.name}.yaml").is_file()
    assert (out / "audit.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the report: every trial's run, and the audit's table and drawing
    page = (out / "report.html").read_text()
    assert 'id="audit-table"' in page and 'data-figure="audit"' in page
    assert all(html.escape(unit) in page for unit in table["units"])


def test_resume_keeps_the_finished_trials(audit, tmp_path):
    """--resume on a finished audit runs nothing again: every trial's folder is complete,
    and the table it writes is the same."""
    out, table = audit
    written = {run: (Path(run) / "metadata.json").read_text() for run in table["run"]}
    done = redlab("audit", "bond_server", "--param", f"miimon={MIIMON}", "--out", str(out),
                  "--resume", timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert {run: (Path(run) / "metadata.json").read_text() for run in table["run"]} \
        == written, "a finished trial ran again"
    again = pd.read_csv(out / "audit.csv")
    pd.testing.assert_frame_equal(again, table)
