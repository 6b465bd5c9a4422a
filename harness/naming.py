"""Names that are unique per run and fit the kernel's 15-character interface limit."""

from __future__ import annotations

import secrets
import string

IFNAMSIZ = 15
_ALPHABET = string.ascii_lowercase + string.digits
RUN_ID_LEN = 4


def new_run_id() -> str:
    """Four base-36 characters: 1.7 million ids, short enough to prefix interface names."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(RUN_ID_LEN))


def prefixed(run_id: str, name: str) -> str:
    """Root-namespace object name for ``name`` in run ``run_id`` (``r`` + id + name)."""
    return f"r{run_id}{name}"


def check_ifname(name: str) -> str:
    if len(name) > IFNAMSIZ:
        raise ValueError(f"interface name {name!r} is longer than {IFNAMSIZ} characters")
    return name
