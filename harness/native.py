"""The programs scripts/bootstrap compiles from C (harness/*/native/) and where they are:
beside the environment's Python, else on PATH."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from harness.errors import RedLabError


def built(name: str) -> Path:
    """The program ``name`` that scripts/bootstrap built; one clear error when it is not."""
    beside = Path(sys.executable).parent / name
    found = beside if beside.is_file() else shutil.which(name)
    if not found:
        raise RedLabError(f"{name} is not built",
                          "run scripts/bootstrap setup (it compiles it with gcc)")
    return Path(found)
