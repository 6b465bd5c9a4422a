"""ovs-vswitchd's log as a source of LAG member events (harness.tech.ovs.log).

The lines are as ovs-vswitchd 3.1 wrote them inside a UML guest during the
lag-member-failure scenario (instantiated names: run lagdbg, switch sw)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from harness.tech.ovs.log import LogMark, MemberChange, log_file, member_changes

LINES = """\
2026-11-26T07:40:39.046Z|00055|bond|INFO|member rlagdbgsw-p1: link state up
2026-11-26T07:40:39.046Z|00056|bond|INFO|member rlagdbgsw-p1: enabled
2026-11-26T07:40:42.929Z|00060|bond|INFO|member rlagdbgsw-p1: disabled
2026-11-26T07:40:43.001Z|00061|bond|INFO|member rotherrunsw-p1: enabled
2026-11-26T07:40:44.512Z|00062|bond|INFO|bond rlagdbgsw-lag0: active member is now rlagdbgsw-p2
2026-11-26T07:40:45.998Z|00107|bond|INFO|member rlagdbgsw-p2: enabled
""".splitlines()
PORTS = {"rlagdbgsw-p1": ("sw", "p1"), "rlagdbgsw-p2": ("sw", "p2")}


def test_member_changes_are_read_with_their_millisecond_stamps() -> None:
    # 2026-11-26T07:40:39Z is 1795678839 s after the epoch
    assert member_changes(LINES, PORTS) == [
        MemberChange(1_795_678_839_046_000_000, "sw", "p1", "enabled"),
        MemberChange(1_795_678_842_929_000_000, "sw", "p1", "disabled"),
        MemberChange(1_795_678_845_998_000_000, "sw", "p2", "enabled"),
    ]


def test_a_mark_reads_only_what_was_written_after_it(tmp_path: Path) -> None:
    path = tmp_path / "ovs-vswitchd.log"
    path.write_text("\n".join(LINES[:3]) + "\n")
    mark = LogMark.now(path)
    assert mark.lines_since() == []
    with open(path, "a") as fh:
        fh.write(LINES[5] + "\n")
    assert mark.lines_since() == [LINES[5]]
    path.write_text(LINES[1] + "\n")  # rotated: the new file is shorter than the mark
    assert mark.lines_since() == [LINES[1]]
    assert LogMark.now(tmp_path / "none.log").lines_since() == []


def test_the_log_file_comes_from_the_daemons_command_line(tmp_path: Path) -> None:
    pidfile = tmp_path / "ovs-vswitchd.pid"
    assert log_file(pidfile) is None  # not running
    for args, expected in ((["--log-file=/x/vswitchd.log"], Path("/x/vswitchd.log")),
                           (["--log-file"], Path("/var/log/openvswitch/ovs-vswitchd.log")),
                           (["--detach"], None)):
        with subprocess.Popen([sys.executable, "-c",
                               "import time; print('up', flush=True); time.sleep(30)",
                               *args], stdout=subprocess.PIPE, text=True) as daemon:
            try:
                # its command line is pytest's own until it has started
                assert daemon.stdout is not None and daemon.stdout.readline() == "up\n"
                pidfile.write_text(f"{daemon.pid}\n")
                assert log_file(pidfile) == expected, args
            finally:
                daemon.kill()
