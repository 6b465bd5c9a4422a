"""One error type that names the problem and the fix."""

from __future__ import annotations


class RedLabError(Exception):
    """A failure the user can act on: ``problem`` says what went wrong, ``fix`` what to do."""

    def __init__(self, problem: str, fix: str = "") -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(f"{problem}\n  fix: {fix}" if fix else problem)


class ConfigError(RedLabError):
    """Bad input: a scenario, topology or parameter that cannot be run as written."""


class LabError(RedLabError):
    """The lab could not be brought up, measured or torn down."""
