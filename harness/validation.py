"""Turn pydantic's validation errors into one RedLab error that names each bad field."""

from __future__ import annotations

from pydantic import ValidationError

from harness.errors import ConfigError


def config_error(where: str, exc: ValidationError, fix: str) -> ConfigError:
    lines = []
    for err in exc.errors():
        loc = ".".join(str(part) for part in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            lines.append(f"{loc}: unknown key (a typo?)")
        else:
            lines.append(f"{loc}: {err['msg']}")
    return ConfigError(f"{where} is not valid:\n  - " + "\n  - ".join(lines), fix)
