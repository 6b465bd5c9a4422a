"""redlab-probe: the C gap probe that replaces irtt, built from source and parsed into Packets.

irtt's timer drifts (asked for 1 ms it sends every ~1.13 ms), it skips late send slots, dies
on a send error and stalls or spins inside User-mode Linux.  redlab-probe (native/redlab_probe.c)
sends seq 0..N-1 on an absolute schedule, never skips one, and logs every packet on both ends,
so each loss is placed on its leg from the server's own log rather than guessed.

All timestamps are CLOCK_REALTIME ns, the clock the harness stamps its events with.
"""

from __future__ import annotations

import csv
import shutil
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from harness import timeouts
from harness.errors import LabError, RedLabError
from harness.measure.probe import Packet, ProbeRecord, ProbeSettings
from harness.measure.sockets import listening
from harness.native import built

if TYPE_CHECKING:
    from harness.lab.running import Lab

SOURCE = Path(__file__).resolve().parent / "native" / "redlab_probe.c"
BINARY_NAME = "redlab-probe"
CFLAGS = ("-O2", "-Wall", "-Wextra")


def build(dest_dir: Path) -> Path:
    """Compile redlab-probe into ``dest_dir``; returns the binary's path."""
    cc = shutil.which("cc")
    if cc is None:
        raise RedLabError("cannot build redlab-probe: no C compiler (cc) on PATH",
                          "apt-get install gcc libc6-dev")
    if not SOURCE.is_file():
        raise RedLabError(f"redlab-probe source is missing: {SOURCE}",
                          "reinstall RedLab from a complete checkout")
    dest_dir.mkdir(parents=True, exist_ok=True)
    out = dest_dir / BINARY_NAME
    done = subprocess.run([cc, *CFLAGS, "-o", str(out), str(SOURCE), "-lpthread"],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RedLabError(f"compiling redlab-probe failed:\n{done.stderr.strip()}",
                          "apt-get install gcc libc6-dev (the libc headers may be missing)")
    return out


TAIL_NS = 500_000_000  # SIGUSR1 to the end of the sending, when the path stays down


def server_argv(binary: Path | str, bind_addr: str, port: int, logfile: Path | str,
                rt: bool = False) -> list[str]:
    return [str(binary), *(["--rt"] if rt else []), "server", bind_addr, str(port),
            str(logfile)]


def client_argv(binary: Path | str, server_addr: str, port: int, interval_ns: int,
                duration_ns: int, logfile: Path | str, rt: bool = False,
                tail_ns: int = TAIL_NS) -> list[str]:
    """The client sends duration_ns // interval_ns packets, then drains for the echoes;
    SIGUSR1 ends the sending once the path has carried 10 packets in a row sent after
    it, or ``tail_ns`` after it (see native/README.md)."""
    if not 0 < interval_ns <= duration_ns:
        raise ValueError("need 0 < interval_ns <= duration_ns")
    return [str(binary), *(["--rt"] if rt else []), "client", server_addr, str(port),
            str(interval_ns), str(duration_ns), str(tail_ns), str(logfile)]


def _int(value: str) -> int | None:
    return int(value) if value else None


def read_server(server_csv: Path) -> dict[int, tuple[int, int]]:
    """seq -> (server receive ns, server send ns) of its first copy at the server."""
    seen: dict[int, tuple[int, int]] = {}
    with open(server_csv, newline="") as fh:
        for row in csv.DictReader(fh):
            seen.setdefault(int(row["seq"]),
                            (int(row["server_recv_ns"]), int(row["server_send_ns"])))
    return seen


def parse(client_csv: Path, server_csv: Path | None) -> list[Packet]:
    """One Packet per seq the client sent, with its loss placed on a leg.

    "false": the echo came back; "true_down": the server logged it but no echo came back;
    "true_up": the server never logged it (including sends that failed locally, whose
    errno is in the client log).  The server's stamps come from the echo when there is
    one, else from the server's log, so a down loss still shows when the server got it.
    Without a server log a loss is "true" (leg unknown), as irtt reports it.
    """
    server = read_server(server_csv) if server_csv is not None else None
    packets: list[Packet] = []
    with open(client_csv, newline="") as fh:
        for row in csv.DictReader(fh):
            seq = int(row["seq"])
            received = _int(row["client_recv_ns"])
            srv_rx, srv_tx = _int(row["server_recv_ns"]), _int(row["server_send_ns"])
            if received is not None:
                lost = "false"
            elif server is None:
                lost = "true"
            elif seq in server:
                lost = "true_down"
                srv_rx, srv_tx = server[seq]
            else:
                lost = "true_up"
            packets.append(Packet(seqno=seq, sent_ns=int(row["sent_ns"]), received_ns=received,
                                  lost=lost, server_received_ns=srv_rx, server_sent_ns=srv_tx))
    return packets


def send_errors(client_csv: Path) -> dict[int, int]:
    """seq -> errno of the sends that failed locally (those packets never left)."""
    with open(client_csv, newline="") as fh:
        return {int(r["seq"]): int(r["send_errno"]) for r in csv.DictReader(fh)
                if r["send_errno"] not in ("", "0")}


def lateness_ns(client_csv: Path) -> list[int]:
    """Per seq, how late the sender was on its schedule (ns, monotonic clock)."""
    with open(client_csv, newline="") as fh:
        return [int(r["late_ns"]) for r in csv.DictReader(fh)]


def duplicates(client_csv: Path) -> int:
    with open(client_csv, newline="") as fh:
        return sum(int(r["dup_count"]) for r in csv.DictReader(fh))


__all__: Sequence[str] = ("build", "client_argv", "duplicates", "lateness_ns", "load_record",
                          "parse", "read_server", "send_errors", "server_argv")


def load_record(client_csv: Path, server_csv: Path, interval_ns: int) -> ProbeRecord:
    """The whole run from both ends' logs, as stored in a trial folder."""
    packets = parse(client_csv, server_csv if server_csv.exists() else None)
    return ProbeRecord(
        packets=packets,
        duplicates=duplicates(client_csv),
        packets_sent=len(packets),
        packets_received=sum(1 for p in packets if p.received_ns is not None),
        server_packets_received=len(read_server(server_csv)) if server_csv.exists() else 0,
        # no slot is ever skipped; count sends more than one interval late instead
        timer_misses=sum(1 for late in lateness_ns(client_csv) if late > interval_ns),
        asked_interval_ns=interval_ns,
        scheduled=True,
    )


def binary() -> Path:
    """The redlab-probe that scripts/bootstrap built beside the environment's Python."""
    return built(BINARY_NAME)


class GapProbeRun:
    """redlab-probe server on ``server``, client on ``client``, logs in ``out_dir``.

    Real-time priority is safe here (the probe sleeps until each send, it never spins) and
    is what keeps its schedule while iperf3, the harness and the kernel's failover work
    compete for the CPU: inside User-mode Linux there is only one.
    """

    PORT = 2113
    ENDS_ON_REQUEST = True  # settings.duration_s is a ceiling; end_sending() ends it

    def __init__(self, lab: Lab, server: str, client: str, settings: ProbeSettings,
                 out_dir: Path) -> None:
        self.lab, self.server, self.client = lab, server, client
        self.settings = settings
        self.client_csv = out_dir / "probe-client.csv"
        self.server_csv = out_dir / "probe-server.csv"
        self._server: subprocess.Popen[bytes] | None = None
        self._client: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.start_server()
        self.start_client()

    def start_server(self) -> None:
        """Launch the server without waiting: start_client() waits until it listens."""
        self._server = self.lab.popen(self.server, server_argv(
            binary(), self.lab.topo.address(self.server), self.PORT, self.server_csv,
            rt=True), stdout=subprocess.DEVNULL)

    def start_client(self) -> None:
        assert self._server is not None
        exe, addr, pid = binary(), self.lab.topo.address(self.server), self._server.pid
        timeouts.wait_for("redlab-probe server listening",
                          lambda: listening(pid, self.PORT, "udp"),
                          timeouts.IPERF_SERVER_READY)
        interval_ns = int(self.settings.interval_ms * 1e6)
        self._client = self.lab.popen(self.client, client_argv(
            exe, addr, self.PORT, interval_ns, int(self.settings.duration_s * 1e9),
            self.client_csv, rt=True), stdout=subprocess.DEVNULL)

    def end_sending(self) -> None:
        """The traffic it watches is over (SIGUSR1): send until the path has carried the
        probe since, TAIL_NS at most, drain the echoes, write the log; so the probe's end
        follows the traffic's, however late that came."""
        assert self._client is not None
        if self._client.poll() is None:
            self._client.send_signal(signal.SIGUSR1)

    def finish_record(self) -> ProbeRecord:
        self.finish()
        return load_record(self.client_csv, self.server_csv,
                           int(self.settings.interval_ms * 1e6))

    def finish(self) -> None:
        """Wait for both ends to write their logs, for the analysis to read (parsing them
        here too cost 0.2-0.35 s per trial inside User-mode Linux)."""
        assert self._client is not None and self._server is not None
        try:
            _, err = self._client.communicate(
                timeout=self.settings.duration_s + timeouts.TRAFFIC_DRAIN)
        except subprocess.TimeoutExpired as exc:
            raise LabError("redlab-probe client did not finish",
                           "read probe-client.csv in the trial folder") from exc
        # The server writes its log when told to stop: SIGTERM, never SIGKILL.
        self._server.terminate()
        try:
            self._server.wait(timeout=timeouts.PROCESS_EXIT)
        except subprocess.TimeoutExpired as exc:
            raise LabError("redlab-probe server did not stop on SIGTERM",
                           "read the trial folder; the server log may be missing") from exc
        if self._client.returncode != 0 or not self.client_csv.exists():
            raise LabError(f"redlab-probe client failed: {err.decode(errors='replace')}",
                           "run scripts/bootstrap setup to rebuild it")
