"""The kernel a lab runs on: this machine's own ("native") or a User-mode Linux guest.

``choose_lab`` turns ``--lab auto|native|uml`` and the kernel features a scenario needs
into a decision, or into a ConfigError that says what to install.
"""

from __future__ import annotations

from collections.abc import Iterable

from harness.errors import ConfigError
from harness.lab import capabilities, uml

LABS = ("auto", "native", "uml")


def guest_modules(needs: Iterable[str]) -> tuple[str, ...]:
    """Kernel modules to load in a UML guest for the features ``needs``."""
    return tuple(dict.fromkeys(module for name in needs
                               for module in (capabilities.feature(name).module,
                                              *capabilities.feature(name).also)))


def boot_modules(needs: Iterable[str], extra: Iterable[str] = ()) -> tuple[str, ...]:
    """What a guest running a lab that needs ``needs`` loads at boot: every lab's base
    features' modules, those of ``needs``, and ``extra`` (modules the kernel would load on
    first use, at a cost of hundreds of ms inside UML that must not land in a failure)."""
    return tuple(dict.fromkeys((*guest_modules([*capabilities.LAB_BASE_FEATURES, *needs]),
                                *extra)))


def choose_lab(requested: str, needs: Iterable[str]) -> str:
    """``"native"`` or ``"uml"`` for ``requested`` in LABS, or ConfigError saying why not."""
    if requested not in LABS:
        raise ConfigError(f"unknown lab {requested!r}", f"use one of: {', '.join(LABS)}")
    needs = list(dict.fromkeys(needs))
    if requested == "uml":
        _require_uml(needs, why="--lab uml was asked for")
        return "uml"
    absent = capabilities.missing(needs)
    if not absent:
        return "native"
    if requested == "native":
        raise ConfigError(f"this kernel cannot provide {_describe(absent)}",
                          f"{_install_hint(absent)}; or use --lab uml")
    _require_uml(needs, why=f"this kernel cannot provide {_describe(absent)}",
                 native_fix=_install_hint(absent))
    return "uml"


def _require_uml(needs: list[str], why: str, native_fix: str = "") -> None:
    if not uml.uml_available():
        fix = "apt-get install user-mode-linux"
        raise ConfigError(f"{why}, and User-mode Linux is not installed",
                          f"{fix}, or {native_fix}" if native_fix else fix)
    absent = uml.missing_modules(guest_modules(needs))
    if absent:
        raise ConfigError(f"{why}, and the UML kernel lacks module(s) {', '.join(absent)}"
                          f" under {uml.module_tree()}",
                          "upgrade user-mode-linux, or run natively on a kernel that has them")


def _describe(names: list[str]) -> str:
    return ", ".join(f"{name} (module {capabilities.feature(name).module})" for name in names)


def _install_hint(names: list[str]) -> str:
    parts = [f"load module {f.module} (package: {f.package})"
             for f in map(capabilities.feature, names)]
    return "; ".join(parts)
