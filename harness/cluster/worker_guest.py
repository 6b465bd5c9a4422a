"""One User-mode Linux guest per Dask worker, booted at its first trial that needs one.

On a worker whose kernel lacks what a trial needs (bonding, the OVS datapath), each
trial would boot a guest of its own: 2-3 s of boot, the harness's imports inside and
the 10.5 s Open vSwitch wait, per trial.  Instead the worker boots one shared guest
(harness/lab/shared_guest.py, the one the lab tests share) with every module a lab
can need, and names it in ``REDLAB_GUEST`` for the trials it runs next, whose folders
live under the worker's own folder, which the guest can write.  Each trial is still its
own ``redlab run`` process on a real kernel, with its own namespaces, journal and reaper,
exactly as under pytest; a trial the guest cannot serve (its kernel died, the code
changed) boots a guest of its own, as any run does.

The suite closes the workers' guests when it ends (``close``); a worker killed outright
takes its guest along (its journal's reaper).  ``REDLAB_WORKER_GUEST=0`` turns it off.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

OFF_ENV = "REDLAB_WORKER_GUEST"
_lock = threading.Lock()
_booted: dict[str, Any] = {}  # this worker process's guest, once booted


def folder() -> Path:
    """The worker process's folder for its trials (the guest writes under it)."""
    path = _folder()
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def _folder() -> Path:
    return Path(tempfile.gettempdir()) / f"redlab-worker-{os.getpid()}"


def needs_guest(scenario: Path, params: dict[str, str], lab: str) -> bool:
    """Whether ``redlab run`` of this scenario would run in User-mode Linux here."""
    from harness.scenario.suite_guest import guest_needs

    return guest_needs([(scenario, params, {})], lab) is not None


def ensure(scenario: Path, params: dict[str, str], lab: str) -> None:
    """Boot the worker's guest if this trial needs one and there is none yet; a guest
    that cannot be booted leaves the trial to boot its own."""
    from harness.errors import RedLabError
    from harness.lab.shared_guest import ENV_VAR, SharedGuest

    # resolved once per trial only until the worker has a guest (or failed to boot one)
    if ("guest" in _booted or os.environ.get(OFF_ENV) == "0"
            or not needs_guest(scenario, params, lab)):
        return
    with _lock:
        if "guest" in _booted:
            return
        try:
            guest = SharedGuest.boot_for_any_lab([folder()])
        except RedLabError as exc:
            log.warning("no shared guest on this worker (%s): each trial boots its own",
                        exc.problem)
            _booted["guest"] = None
            return
        _booted["guest"] = guest
        os.environ[ENV_VAR] = str(guest.spool)


def close() -> bool:
    """Run on each worker when a suite ends: its guest stopped, its folder removed;
    whether there was a guest."""
    from harness.lab.shared_guest import ENV_VAR

    with _lock:
        guest = _booted.pop("guest", None)
        if guest is not None:
            os.environ.pop(ENV_VAR, None)
            guest.close()
        with contextlib.suppress(OSError):  # empty once the suite's trials are done
            _folder().rmdir()
        return guest is not None
