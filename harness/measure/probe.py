"""The failover-gap probe: irtt sending at a constant rate and recording every packet.

irtt keeps sending on schedule whatever comes back (ping paces itself while replies are
missing) and writes each round trip's send and receive timestamps, on the wall clock of
the kernel it runs on: the same clock the harness stamps its events with.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness import timeouts
from harness.errors import LabError
from harness.measure.sockets import listening
from harness.topology.build import Lab

PORT = 2112


@dataclass(frozen=True)
class ProbeSettings:
    interval_ms: float = 1.0
    duration_s: float = 10.0


@dataclass(frozen=True)
class Packet:
    seqno: int
    sent_ns: int                 # client send, wall clock
    received_ns: int | None      # client receive of the echo; None if lost
    lost: str                    # irtt's verdict: false, true, true_up, true_down


class ProbeRun:
    """irtt server on ``server``, client on ``client``; round trips cross the path twice."""

    def __init__(self, lab: Lab, server: str, client: str, settings: ProbeSettings,
                 out_json: Path) -> None:
        self.lab, self.server, self.client = lab, server, client
        self.settings = settings
        self.out_json = out_json
        self._client_proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        addr = self.lab.topo.address(self.server)
        server = self.lab.popen(self.server, ["irtt", "server", "-b", f"{addr}:{PORT}",
                                              "-i", "0", "-d", "0"],
                                stdout=subprocess.DEVNULL)
        timeouts.wait_for("irtt server listening",
                          lambda: listening(server.pid, PORT, "udp"),
                          timeouts.IPERF_SERVER_READY)
        s = self.settings
        self._client_proc = self.lab.popen(self.client, [
            "irtt", "client", "-Q", "-i", f"{s.interval_ms:g}ms", "-d", f"{s.duration_s:g}s",
            "-o", str(self.out_json), f"{addr}:{PORT}"], stdout=subprocess.DEVNULL)

    def finish(self) -> list[Packet]:
        assert self._client_proc is not None
        try:
            _, err = self._client_proc.communicate(
                timeout=self.settings.duration_s + timeouts.TRAFFIC_DRAIN)
        except subprocess.TimeoutExpired as exc:
            raise LabError("irtt client did not finish", "the path may have stayed down;"
                           " read the trial folder") from exc
        if self._client_proc.returncode != 0 or not self.out_json.exists():
            raise LabError(f"irtt client failed: {err.decode(errors='replace').strip()}",
                           "check that irtt is installed (scripts/setup.sh) and the path")
        return parse(self.out_json.read_text())


def parse(text: str) -> list[Packet]:
    doc = json.loads(text)
    packets = []
    for rt in doc.get("round_trips") or []:
        client = rt["timestamps"]["client"]
        received = client.get("receive", {}).get("wall")
        packets.append(Packet(rt["seqno"], client["send"]["wall"],
                              received if rt["lost"] == "false" else None, rt["lost"]))
    return packets
