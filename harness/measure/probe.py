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
from typing import TYPE_CHECKING, Any

from harness import timeouts
from harness.errors import LabError
from harness.measure.sockets import listening

if TYPE_CHECKING:
    from harness.lab.running import Lab

PORT = 2112


@dataclass(frozen=True)
class ProbeSettings:
    interval_ms: float = 1.0
    duration_s: float = 10.0


# irtt's per-packet loss verdicts.  "true" means lost with the direction unknown: irtt
# tells up from down only through the server's window of the last 64 seqnos it received,
# carried in a later reply, so in an outage longer than that window (or one at the end of the
# trace) the early losses stay "true".
LOST_VERDICTS = frozenset({"false", "true", "true_up", "true_down"})


@dataclass(frozen=True)
class Packet:
    """One irtt round trip, every timestamp on the wall clock (ns, CLOCK_REALTIME).

    Client and server run on one kernel, so their wall clocks are one clock and the server
    stamps give one-way times.  The first four fields keep their historical order.
    """

    seqno: int
    sent_ns: int                          # client send
    received_ns: int | None               # client receive of the echo; None if lost
    lost: str                             # irtt's verdict: false, true, true_up, true_down
    server_received_ns: int | None = None  # only known when the echo came back
    server_sent_ns: int | None = None


@dataclass(frozen=True)
class ProbeRecord:
    """A whole irtt run: the packets plus the counts irtt keeps only in its summary.

    ``duplicates`` and ``late_packets`` are counted by the client on the echoes, so they
    mix both legs.  irtt's ``late_packets`` counts echoes whose seqno is lower than the
    previous echo's (not the highest so far, as RFC 4737 would).
    """

    packets: list[Packet]
    duplicates: int = 0
    late_packets: int = 0
    packets_sent: int = 0
    packets_received: int = 0            # irtt counts duplicates in here
    server_packets_received: int = 0     # also counts duplicates
    timer_misses: int = 0                # send slots irtt skipped because its timer was late
    asked_interval_ns: int | None = None
    # sends follow t0 + seq x asked_interval_ns, late ones at once (redlab-probe): the
    # send interval is the asked one, whatever a starved sender's spacing looked like
    scheduled: bool = False


class ProbeRun:
    """irtt server on ``server``, client on ``client``; round trips cross the path twice."""

    ENDS_ON_REQUEST = False  # irtt runs for settings.duration_s, counted from its start

    def end_sending(self) -> None:
        """irtt has no way to end early and keep its results: it runs its duration."""

    def __init__(self, lab: Lab, server: str, client: str, settings: ProbeSettings,
                 out_json: Path) -> None:
        self.lab, self.server, self.client = lab, server, client
        self.settings = settings
        self.out_json = out_json
        self._server_proc: subprocess.Popen[bytes] | None = None
        self._client_proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.start_server()
        self.start_client()

    def start_server(self) -> None:
        """Launch the server without waiting: start_client() waits until it listens."""
        addr = self.lab.topo.address(self.server)
        self._server_proc = self.lab.popen(
            self.server, ["irtt", "server", "-b", f"{addr}:{PORT}", "-i", "0", "-d", "0"],
            stdout=subprocess.DEVNULL)

    def start_client(self) -> None:
        server, addr = self._server_proc, self.lab.topo.address(self.server)
        assert server is not None
        timeouts.wait_for("irtt server listening",
                          lambda: listening(server.pid, PORT, "udp"),
                          timeouts.IPERF_SERVER_READY)
        s = self.settings
        self._client_proc = self.lab.popen(self.client, [
            "irtt", "client", "-Q", "-i", f"{s.interval_ms:g}ms", "-d", f"{s.duration_s:g}s",
            "-o", str(self.out_json), f"{addr}:{PORT}"], stdout=subprocess.DEVNULL)

    def finish_record(self) -> ProbeRecord:
        self.finish()
        return parse_doc(self.out_json.read_text())

    def finish(self) -> None:
        """Wait for the client's log, for the analysis to read."""
        assert self._client_proc is not None
        try:
            _, err = self._client_proc.communicate(
                timeout=self.settings.duration_s + timeouts.TRAFFIC_DRAIN)
        except subprocess.TimeoutExpired as exc:
            raise LabError("irtt client did not finish", "the path may have stayed down;"
                           " read the trial folder") from exc
        if self._client_proc.returncode != 0 or not self.out_json.exists():
            raise LabError(f"irtt client failed: {err.decode(errors='replace').strip()}",
                           "check that irtt is installed (scripts/bootstrap setup) and the path")


def parse(text: str) -> list[Packet]:
    return parse_doc(text).packets


def parse_doc(text: str) -> ProbeRecord:
    doc = json.loads(text)
    packets = [_packet(rt) for rt in doc.get("round_trips") or []]
    st = doc.get("stats") or {}
    interval = ((doc.get("config") or {}).get("params") or {}).get("interval")
    return ProbeRecord(
        packets=packets,
        duplicates=int(st.get("duplicates", 0)),
        late_packets=int(st.get("late_packets", 0)),
        packets_sent=int(st.get("packets_sent", len(packets))),
        packets_received=int(st.get("packets_received", 0)),
        server_packets_received=int(st.get("server_packets_received", 0)),
        timer_misses=int(st.get("timer_misses", 0)),
        asked_interval_ns=int(interval) if interval is not None else None,
    )


def _packet(rt: dict[str, Any]) -> Packet:
    lost = rt["lost"]
    if isinstance(lost, bool):  # irtt before 0.9 wrote a bare boolean
        lost = "true" if lost else "false"
    if lost not in LOST_VERDICTS:
        raise LabError(f"irtt seqno {rt.get('seqno')}: unknown lost verdict {lost!r}",
                       "a newer irtt JSON format? harness/measure/probe.py knows "
                       + ", ".join(sorted(LOST_VERDICTS)))
    ts = rt.get("timestamps") or {}
    client, server = ts.get("client") or {}, ts.get("server") or {}
    # Absent stamps are written as {} (irtt's zero time means absent too); the client's
    # receive stamp only counts if irtt itself calls the echo received.
    received = _wall(client, "receive") if lost == "false" else None
    return Packet(rt["seqno"], client["send"]["wall"], received, lost,
                  _wall(server, "receive"), _wall(server, "send"))


def _wall(side: dict[str, Any], which: str) -> int | None:
    wall = (side.get(which) or {}).get("wall")
    return int(wall) if wall else None
