"""One team's teamd, run in the foreground for the length of a lab, and ``teamdctl``.

teamd keeps its control socket and pid file in /var/run/teamd, named after the team
device: two nodes with a ``team0`` each, or two runs at once, would take each other's
socket.  So each teamd runs in a mount namespace of its own (``unshare --mount``) with a
private tmpfs on /run, and ``teamdctl`` joins that namespace (``nsenter --mount``) to
reach it; the team device keeps the name the topology gives it.  teamd runs with ``-o``
(take the device over if it exists): after a device death it was killed without a word
and left its team device behind, with the address on it, as a real box would keep its
configuration across a reboot.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness import timeouts
from harness.errors import LabError
from harness.tech.team.config import Team, teamd_config

# spawn(argv, stdout=..., stderr=...) starts argv in the node's namespace and journals it,
# e.g. functools.partial(lab.popen, "srv").
Spawn = Callable[..., "subprocess.Popen[bytes]"]
PRIVATE_RUN = ('mount -t tmpfs redlab-teamd /run && mkdir /run/teamd'
               ' && exec teamd -o -U -f "$0"')
FIX_INSTALL = "apt-get install libteam-utils (scripts/bootstrap setup does it)"


class Teamd:
    """``Teamd(team, folder, spawn).start()``: the daemon is up once teamdctl answers."""

    def __init__(self, team: Team, folder: Path, spawn: Spawn) -> None:
        self.team, self.spawn = team, spawn
        self.folder = folder.resolve()
        self.conf = self.folder / f"{team.name}.json"
        self.log = self.folder / f"{team.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> subprocess.Popen[bytes]:
        """Write the configuration, start teamd, return once teamdctl answers."""
        if self.running():
            raise LabError(f"teamd of {self.where} is already running",
                           "stop it (or crash it) before starting it again")
        if missing := [b for b in ("teamd", "teamdctl", "unshare", "nsenter")
                       if shutil.which(b) is None]:
            raise LabError(f"{', '.join(missing)} not installed: the team {self.where} needs"
                           " teamd", FIX_INSTALL + "; unshare and nsenter: util-linux")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(json.dumps(teamd_config(self.team), indent=2))
        with open(self.log, "ab") as log_file:
            self.proc = self.spawn(["unshare", "--mount", "--propagation", "private",
                                    "sh", "-c", PRIVATE_RUN, str(self.conf)],
                                   stdout=log_file, stderr=subprocess.STDOUT)
        timeouts.wait_for(f"teamd of {self.where} to answer", self._answering,
                          timeouts.TEAMD_START, 0.1)
        return self.proc

    @property
    def where(self) -> str:
        return f"{self.team.node}:{self.team.name}"

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _answering(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace").strip().splitlines()[-5:]
            raise LabError(f"teamd of {self.where} exited with {self.proc.returncode} at"
                           f" start: {' / '.join(tail)}",
                           f"read {self.log}; is the team module there? {FIX_INSTALL}")
        return self.state() is not None

    def state(self) -> dict[str, Any] | None:
        """``teamdctl TEAM state dump`` as JSON; None while teamd does not answer."""
        if not self.running():
            return None
        assert self.proc is not None
        ctl = self.spawn(["nsenter", "--target", str(self.proc.pid), "--mount",
                          "teamdctl", self.team.name, "state", "dump"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, _ = ctl.communicate(timeout=timeouts.TEAMD_START)
        except subprocess.TimeoutExpired:
            ctl.kill()
            ctl.communicate()
            return None
        try:
            return json.loads(out) if ctl.returncode == 0 else None
        except ValueError:
            return None

    def pids(self) -> list[int]:
        return [self.proc.pid] if self.proc is not None and self.running() else []

    def stop(self, timeout: float = timeouts.PROCESS_EXIT) -> None:
        """SIGTERM (teamd removes its team device), SIGKILL after ``timeout``."""
        if not self.running():
            return
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=timeout)
