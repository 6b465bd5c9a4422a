"""One User-mode Linux guest for the runs of a local suite (or audit) that need one.

Each ``redlab run`` that needs a kernel feature the host lacks boots a guest of its own:
the boot, the harness's imports inside and, with Open vSwitch, the 10.5 s uptime wait,
once per run.  A suite (or ``redlab audit``, a run per failure) instead boots one shared
guest (harness/lab/shared_guest.py, the one the lab tests share and a Dask worker keeps)
with the modules its guest runs need together, Open vSwitch only if one of them needs it,
able to write under the suite's folder, and names it in ``REDLAB_GUEST`` while its runs
go.  Each run is still its own ``redlab run`` process on a real kernel, with its own
namespaces, journal and reaper; a run the guest cannot serve boots a guest of its own, as
it would anyway.

Nothing is booted when no run needs a guest, when a shared guest is already named (a
test session's), or with ``REDLAB_SUITE_GUEST=0``.  The guest stops when the suite
ends, however it ends; a suite killed outright takes it along (its journal's reaper).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from harness.errors import ConfigError, RedLabError
from harness.lab import boot_modules, choose_lab
from harness.lab.shared_guest import ENV_VAR, SharedGuest
from harness.scenario.resolve import boot_extras, lab_needs, resolve

log = logging.getLogger(__name__)

OFF_ENV = "REDLAB_SUITE_GUEST"
# A run as redlab run is given it: scenario file, --param overrides, added expectations.
Run = tuple[Path, dict[str, str], dict[str, Any]]


def guest_needs(runs: Sequence[Run], lab: str) -> tuple[list[str], bool] | None:
    """The modules a guest serving every run of ``runs`` that runs in User-mode Linux
    here must load, and whether it must run Open vSwitch; None if no run needs a guest.
    A run whose input is bad is left out: it fails on its own, with its own error."""
    modules: dict[str, None] = {}
    ovs, any_guest = False, False
    for path, params, expect in runs:
        try:
            scenario, topology, _ = resolve(path, params, expect)
            needs = lab_needs(scenario, topology)
            if choose_lab(lab, needs) != "uml":
                continue
        except ConfigError:
            continue
        any_guest = True
        modules.update(dict.fromkeys(boot_modules(needs, boot_extras(scenario))))
        ovs = ovs or "openvswitch" in needs
    return (list(modules), ovs) if any_guest else None


@contextlib.contextmanager
def shared_for(runs: Sequence[Run], lab: str, root: Path) -> Iterator[None]:
    """While ``runs`` go, one guest for those that need one, writing under ``root``."""
    wanted = (None if os.environ.get(ENV_VAR) or os.environ.get(OFF_ENV) == "0"
              else guest_needs(runs, lab))
    if wanted is None:
        yield
        return
    modules, start_ovs = wanted
    root.mkdir(parents=True, exist_ok=True)
    try:
        guest = SharedGuest.boot(modules, [root], start_ovs=start_ovs)
    except RedLabError as exc:
        log.warning("no shared guest for the suite (%s): each run boots its own",
                    exc.problem)
        yield
        return
    os.environ[ENV_VAR] = str(guest.spool)
    try:
        yield
    finally:
        os.environ.pop(ENV_VAR, None)
        guest.close()
