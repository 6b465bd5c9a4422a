"""iperf3 throughput, measured at the receiver in 0.1 s intervals.

The client runs with ``-R`` so that the side writing the JSON is the receiver: sender-side
intervals show socket buffering, not delivery.
"""

from __future__ import annotations

import json
import signal
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
        self.problem = ""  # why its report is incomplete ("" when it finished)

    def start(self) -> None:
        self.start_server()
        self.start_client()

    def start_server(self) -> None:
        """Launch the server without waiting: start_client() waits until it listens."""
        addr = self.lab.topo.address(self.server)
        self._server_proc = self.lab.popen(
            self.server, ["iperf3", "-s", "-1", "-B", addr, "-p", str(PORT)],
            stdout=subprocess.DEVNULL)

    def start_client(self) -> None:
        """Once the server listens, connect; ``started_ns`` is set when every stream is up."""
        server, addr = self._server_proc, self.lab.topo.address(self.server)
        assert server is not None

        def ready() -> bool:
            if server.poll() is not None:  # it will not listen: say why, at once
                said = server.stderr.read().decode(errors="replace") if server.stderr else ""
                raise LabError(f"iperf3 server in {self.server} exited with"
                               f" {server.returncode} before listening: {said.strip()}",
                               "read the trial folder's lab.json and events.csv")
            return listening(server.pid, PORT, "tcp")

        timeouts.wait_for("iperf3 server listening", ready, timeouts.IPERF_SERVER_READY)
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

        timeouts.wait_for(f"iperf3's control connection and {s.parallel} data stream(s)",
                          connected, timeouts.IPERF_CONNECTED, interval=0.001)
        self.started_ns = time.time_ns()

    def finish(self) -> list[Interval]:
        """The receiver's intervals. A client that does not finish in time (its control
        connection blackholed: a silent failure's member keeps its flows for seconds and
        TCP backs off past the end) is interrupted, and what it reported stands, with
        ``problem`` saying so: the throughput is lost, not the trial and its probe."""
        assert self._client_proc is not None
        limit = self.settings.duration_s + timeouts.TRAFFIC_DRAIN
        try:
            self._client_proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            self.problem = f"iperf3 client did not finish within {limit:g} s: interrupted"
            self._client_proc.send_signal(signal.SIGINT)  # it writes what it has (JSON)
            try:
                self._client_proc.wait(timeout=timeouts.PROCESS_EXIT)
            except subprocess.TimeoutExpired:
                self._client_proc.kill()
                self._client_proc.wait(timeout=timeouts.PROCESS_EXIT)
        finally:
            self._out.close()
        intervals, problem = parse_partial(self.out_json.read_text(), self.started_ns)
        self.problem = "; ".join(p for p in (self.problem, problem) if p)
        return intervals


def parse(text: str, started_ns: int) -> list[Interval]:
    """Receiver intervals from iperf3 JSON, placed on the wall clock at ``started_ns``;
    a LabError if iperf3 wrote no valid JSON or reported an error."""
    intervals, problem = parse_partial(text, started_ns)
    if problem:
        raise LabError(problem, "read iperf3.json in the trial folder")
    return intervals


def parse_partial(text: str, started_ns: int) -> tuple[list[Interval], str]:
    """The intervals iperf3 reported, and what is wrong with its report ("" if nothing):
    an interrupted client reports an error beside the intervals it measured."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        return [], "iperf3 wrote no valid JSON"
    out = []
    for item in doc.get("intervals", []):
        total = item["sum"]
        out.append(Interval(started_ns + int(total["start"] * 1e9),
                            started_ns + int(total["end"] * 1e9),
                            float(total["bits_per_second"])))
    return out, f"iperf3 reported an error: {doc['error']}" if doc.get("error") else ""
