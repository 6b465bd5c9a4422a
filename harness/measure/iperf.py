"""iperf3 throughput, measured at the receiver in 0.1 s intervals.

The client runs with ``-R`` so that the side writing the JSON is the receiver: sender-side
intervals show socket buffering, not delivery.
"""

from __future__ import annotations

import json
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness import timeouts
from harness.errors import LabError
from harness.measure.sockets import established, listening

if TYPE_CHECKING:
    from harness.lab.running import Lab

PORT = 5201
INTERVAL_S = 0.1  # iperf3's shortest reporting interval
TCP_WRITE = "16K"


@dataclass(frozen=True)
class IperfSettings:
    protocol: str = "tcp"
    rate: str = "100M"
    parallel: int = 1
    duration_s: float = 10.0


@dataclass(frozen=True)
class Interval:
    start_ns: int  # wall clock, same clock as events and probe packets
    end_ns: int
    bits_per_second: float


class IperfRun:
    """``server`` sends to ``client``; the client records what it received."""

    def __init__(self, lab: Lab, server: str, client: str, settings: IperfSettings,
                 out_json: Path) -> None:
        self.lab, self.server, self.client = lab, server, client
        self.settings = settings
        self.out_json = out_json
        self._server_proc: subprocess.Popen[bytes] | None = None
        self._client_proc: subprocess.Popen[bytes] | None = None
        self.started_ns = 0

    def start(self) -> None:
        addr = self.lab.topo.address(self.server)
        self._server_proc = self.lab.popen(
            self.server, ["iperf3", "-s", "-1", "-B", addr, "-p", str(PORT)],
            stdout=subprocess.DEVNULL)
        pid = self._server_proc.pid
        timeouts.wait_for("iperf3 server listening", lambda: listening(pid, PORT, "tcp"),
                          timeouts.IPERF_SERVER_READY)
        s = self.settings
        argv = ["iperf3", "-c", addr, "-p", str(PORT), "-R", "--json",
                "-t", f"{s.duration_s:g}", "-i", f"{INTERVAL_S:g}", "-b", s.rate,
                "-P", str(s.parallel)]
        if s.protocol == "udp":
            argv.append("-u")
        else:
            # iperf3's default 128 KiB writes at a paced 10 Mbit/s land about one per
            # 0.1 s interval, leaving intervals empty: small writes keep the series smooth.
            argv += ["-l", TCP_WRITE]
        self._out = open(self.out_json, "wb")  # noqa: SIM115 - closed in finish()
        self._client_proc = self.lab.popen(self.client, argv, stdout=self._out)
        # iperf3 reports intervals as offsets from its own test start, which comes once the
        # control connection and every data stream are up: hundreds of ms after launch
        # inside UML. That moment, seen from /proc, anchors the intervals on our clock.
        pid, proto = self._client_proc.pid, s.protocol

        def connected() -> bool:  # the TCP control connection, then every data stream
            data = established(pid, PORT, proto) - (1 if proto == "tcp" else 0)
            return established(pid, PORT, "tcp") >= 1 and data >= s.parallel

        timeouts.wait_for("iperf3 data connections", connected,
                          timeouts.IPERF_SERVER_READY, interval=0.001)
        self.started_ns = time.time_ns()

    def finish(self) -> list[Interval]:
        assert self._client_proc is not None
        try:
            self._client_proc.wait(timeout=self.settings.duration_s + timeouts.TRAFFIC_DRAIN)
        except subprocess.TimeoutExpired as exc:
            raise LabError("iperf3 client did not finish", "see iperf3.json in the trial "
                           "folder; the path may have stayed down") from exc
        finally:
            self._out.close()
        return parse(self.out_json.read_text(), self.started_ns)


def parse(text: str, started_ns: int) -> list[Interval]:
    """Receiver intervals from iperf3 JSON, placed on the wall clock at ``started_ns``."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LabError("iperf3 wrote no valid JSON", "read iperf3.json in the trial "
                       "folder") from exc
    if doc.get("error"):
        raise LabError(f"iperf3 reported an error: {doc['error']}",
                       "read iperf3.json in the trial folder")
    out = []
    for item in doc.get("intervals", []):
        total = item["sum"]
        out.append(Interval(started_ns + int(total["start"] * 1e9),
                            started_ns + int(total["end"] * 1e9),
                            float(total["bits_per_second"])))
    return out
