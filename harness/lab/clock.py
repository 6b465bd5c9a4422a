"""The machine's clock as a run records it: a step of the clock in the middle of a trial
corrupts a gap, so metadata.json says what could have stepped it.

- ``source``: the kernel's clock source (tsc, kvm-clock, hpet, ...; ``timer`` in a
  User-mode Linux guest, which reads its host's clock);
- ``synchronized``: whether the kernel's clock is marked synchronized (adjtimex(2) with
  no change: TIME_ERROR means not synchronized), None where it cannot be asked;
- ``sync_daemons``: the time daemons running (chronyd, ntpd, systemd-timesyncd, and
  VirtualBox's VBoxService, whose host time sync steps the clock unless the Vagrantfile's
  GetHostTimeDisabled turns it off).

Inside a guest, the run records its host's clock, which the guest is told
(``CLOCK_ENV``), as it is told the host's name.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
from pathlib import Path
from typing import Any

CLOCK_ENV = "REDLAB_HOST_CLOCK"
SOURCE = Path("/sys/devices/system/clocksource/clocksource0/current_clocksource")
DAEMONS = ("chronyd", "ntpd", "systemd-timesyn", "VBoxService", "ptp4l", "phc2sys")
TIME_ERROR = 5  # adjtimex's return: the clock is not synchronized


def facts() -> dict[str, Any]:
    """This machine's clock, or the host's when a guest was told it."""
    told = os.environ.get(CLOCK_ENV)
    if told:
        try:
            return json.loads(told)
        except ValueError:
            pass
    return {"source": _source(), "synchronized": _synchronized(),
            "sync_daemons": _daemons()}


def _source() -> str:
    try:
        return SOURCE.read_text().strip()
    except OSError:
        return ""


def _synchronized() -> bool | None:
    """adjtimex(2) with modes 0 only reads; a struct timex is 208 bytes on 64-bit Linux."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    buffer = ctypes.create_string_buffer(256)  # room for struct timex, modes = 0
    try:
        state = ctypes.CDLL(name, use_errno=True).adjtimex(buffer)
    except (OSError, AttributeError):
        return None
    return None if state < 0 else state != TIME_ERROR


def _daemons() -> list[str]:
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            comm = (proc / "comm").read_text().strip()
        except OSError:
            continue
        if comm in DAEMONS:
            found.add(comm)
    return sorted(found)
