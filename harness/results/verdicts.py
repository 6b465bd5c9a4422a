"""Verdicts: a trial's summary row held against what its scenario (or its suite run)
expects, stated in an ``expect:`` block of figure -> bound::

    expect:
      failover_gap_ms: {max: 150, reason: "one miimon period plus the probe's error"}
      capacity_retained_pct: {min: 45}
      recovered_before_restore: true
      vrrp_new_master: {equals: r2, reason: "the backup takes the gateway"}

A bound is ``min`` and/or ``max`` for a number, or a value to equal for a yes/no or a
text figure (written alone, or as ``equals:`` beside a reason).  A figure that was not
measured (NaN, blank) fails a numeric bound: "not measured" is never a silent pass.

A trial passes when every expectation holds.  A run passes only when every trial does:
a failover that exceeded its bound once in five trials is a failover that can exceed
it, so the verdict says how many trials failed rather than taking a median.

What is wrong with the expectations themselves is bad input (ConfigError, exit 2), not
a failed verdict: a name the summary row does not have, or a bound of the wrong kind
for the figure (``max`` on a yes/no column).  Pure: no file, no lab.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from harness.errors import ConfigError
from harness.validation import config_error

COLUMNS = ("verdict", "verdict_failed")  # what a verdict adds to the summary row
Number = Annotated[float, Field(strict=True)]  # 150 or 150.0; never "150" nor true


class Bound(BaseModel):
    """One expectation on one figure."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min: Number | None = None
    max: Number | None = None
    equals: bool | str | None = None
    reason: str = ""

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        """``recovered_before_restore: true`` is ``{equals: true}``; a number alone is
        ambiguous (at most? at least?), so it is refused."""
        if isinstance(value, bool | str):
            return {"equals": value}
        if isinstance(value, int | float):
            raise ValueError(f"a number alone is not a bound: write {{max: {value}}} or"
                             f" {{min: {value}}}")
        if value is None:
            raise ValueError("no bound given: write {max: N}, {min: N}, true/false or a text")
        if isinstance(value, Mapping):  # as stored in metadata.json: unset bounds are null
            value = {k: v for k, v in value.items() if v is not None}
        if isinstance(value, Mapping) and "equals" in value and not isinstance(
                value["equals"], bool | str):
            raise ValueError(f"equals: {value['equals']!r} is neither true/false nor a text;"
                             " bound a number with min and max")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Bound:
        if self.equals is None and self.min is None and self.max is None:
            raise ValueError("give min, max or equals")
        if self.equals is not None and (self.min is not None or self.max is not None):
            raise ValueError("equals cannot be combined with min or max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min:g} is above max {self.max:g}")
        return self

    def describe(self) -> str:
        if self.equals is not None:
            return f"expected {_shown(self.equals)}"
        if self.min is not None and self.max is not None:
            return f"expected {self.min:g} to {self.max:g}"
        return f"max {self.max:g}" if self.max is not None else f"min {self.min:g}"

    def to_doc(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True, exclude_defaults=True)


def _not_a_verdict(expect: dict[str, Bound]) -> dict[str, Bound]:
    taken = [name for name in expect if name in COLUMNS]
    if taken:
        raise ValueError(f"{', '.join(taken)} is the verdict itself, not a figure to expect")
    return expect


# the type of a scenario's or a suite run's ``expect:`` field
Expect = Annotated[dict[str, Bound], AfterValidator(_not_a_verdict)]
_ADAPTER: TypeAdapter[dict[str, Bound]] = TypeAdapter(Expect)


def parse(doc: Any, where: str, fix: str) -> dict[str, Bound]:
    """An ``expect:`` mapping (a scenario's, a suite run's, a file's, metadata.json's)."""
    try:
        return _ADAPTER.validate_python({} if doc is None else doc)
    except ValidationError as exc:
        raise config_error(where, exc, fix) from exc


def to_doc(expect: Mapping[str, Bound]) -> dict[str, dict[str, Any]]:
    return {name: bound.to_doc() for name, bound in expect.items()}


def close_matches(name: str, names: Iterable[str], cutoff: float = 0.6) -> list[str]:
    return difflib.get_close_matches(name, sorted(set(names)), n=3, cutoff=cutoff)


def known_before_run(params: Iterable[str]) -> set[str]:
    """Figures every trial's row has, whatever its technologies: summary.csv's fixed head
    and the rest of harness.results.summary.base_columns, the prediction's columns, and
    the parameters."""
    from harness.results.prediction import COLUMNS as PREDICTION
    from harness.results.store import SUMMARY_COLUMNS

    return {*SUMMARY_COLUMNS, "capacity_retained_pct", "traffic", "iperf3_complete",
            "host", "lost_workers",  # summary.placement_columns: where the trial ran
            *PREDICTION, *params}


def check_before_run(expect: Mapping[str, Bound], known: Iterable[str], where: str) -> None:
    """Before any lab: a name that is not a known figure but nearly one is a typo.  A name
    far from every known one may be a technology's column (its row is only known once a
    trial ran), and so may a known name with more around it (``mclag_within_prediction``
    beside ``within_prediction``): :func:`judge` checks those against the first row."""
    known = set(known)
    typos = {name: [k for k in close_matches(name, known, cutoff=0.8) if k not in name]
             for name in expect if name not in known}
    typos = {name: near for name, near in typos.items() if near}
    if typos:
        raise ConfigError(
            f"{where}: expect: names figures a summary row does not have: "
            + "; ".join(f"{name} (did you mean {' or '.join(near)}?)"
                        for name, near in typos.items()),
            "correct the names in expect: (results/README.md lists the summary columns)")


@dataclass(frozen=True)
class Check:
    """One expectation held against one trial's figure."""

    figure: str
    bound: Bound
    measured: Any
    passed: bool
    note: str = ""  # why it failed: what the verdict_failed column says

    def describe(self, reason: bool = True) -> str:
        text = self.note or f"{self.figure} {_shown(self.measured)} ({self.bound.describe()})"
        return f"{text} - {self.bound.reason}" if reason and self.bound.reason else text


@dataclass(frozen=True)
class TrialVerdict:
    checks: tuple[Check, ...]
    unsteady: str = ""  # why the trial does not measure its failure (summary.unsteady_note)

    @property
    def verdict(self) -> str:
        """pass, fail, or "" when nothing was expected.  A trial whose lab was not steady
        before the failure fails whatever its figures say: they are not a measurement."""
        if not self.checks:
            return ""
        return "pass" if all(c.passed for c in self.checks) and not self.unsteady else "fail"

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def columns(self) -> dict[str, str]:
        notes = ([self.unsteady] if self.unsteady and self.checks else []) + [
            c.note for c in self.failed]
        return {"verdict": self.verdict, "verdict_failed": "; ".join(notes)}


def judge(row: Mapping[str, Any], expect: Mapping[str, Bound], where: str = "this trial",
          fix: str = "correct expect: in the scenario or the suite",
          unsteady: str = "") -> TrialVerdict:
    """Hold ``row`` against ``expect``.  ConfigError when a name is not in the row or a
    bound does not fit its figure's kind: every such problem at once.  ``unsteady`` says
    why the row measures no failure (it then fails)."""
    problems, checks = [], []
    for figure, bound in expect.items():
        if figure not in row:
            near = close_matches(figure, (c for c in row if c not in COLUMNS))
            problems.append(f"{figure} is not a figure of {where}"
                            + (f" (did you mean {' or '.join(near)}?)" if near else ""))
            continue
        try:
            checks.append(_check(figure, bound, _plain(row[figure])))
        except TypeError as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigError("expect: does not fit the summary row:\n  - "
                          + "\n  - ".join(problems), fix)
    return TrialVerdict(tuple(checks), unsteady)


def _check(figure: str, bound: Bound, measured: Any) -> Check:
    if bound.equals is not None:
        return _check_value(figure, bound, measured)
    if _missing(measured) or measured == "":
        return Check(figure, bound, measured, False, f"{figure} not measured ({bound.describe()})")
    if isinstance(measured, bool):
        raise TypeError(f"{figure} is yes/no ({measured}): expect true or false, not"
                        f" {bound.describe()}")
    try:
        value = float(measured)
    except (TypeError, ValueError):
        raise TypeError(f"{figure} is a text ({measured!r}), not a number: expect a text,"
                        f" not {bound.describe()}") from None
    if bound.min is not None and value < bound.min:
        return Check(figure, bound, value, False, f"{figure} {value:g} below min {bound.min:g}")
    if bound.max is not None and value > bound.max:
        return Check(figure, bound, value, False, f"{figure} {value:g} above max {bound.max:g}")
    return Check(figure, bound, value, True)


YES_NO = {"true": True, "false": False}


def _check_value(figure: str, bound: Bound, measured: Any) -> Check:
    wanted = bound.equals
    if _missing(measured):
        return Check(figure, bound, measured, False,
                     f"{figure} not measured ({bound.describe()})")
    if isinstance(wanted, bool):
        if isinstance(measured, str) and measured.lower() in YES_NO:
            measured = YES_NO[measured.lower()]
        if measured == "":
            return Check(figure, bound, measured, False,
                         f"{figure} not measured ({bound.describe()})")
        if not isinstance(measured, bool):
            raise TypeError(f"{figure} is {measured!r}, not yes/no: expect"
                            f" {'min/max' if _is_number(measured) else 'a text'},"
                            f" not {_shown(wanted)}")
    elif not isinstance(measured, str):
        raise TypeError(f"{figure} is {_shown(measured)}, not a text: expect"
                        f" {'true/false' if isinstance(measured, bool) else 'min/max'},"
                        f" not {wanted!r}")
    if measured == wanted:
        return Check(figure, bound, measured, True)
    return Check(figure, bound, measured, False,
                 f"{figure} {_shown(measured)}, {bound.describe()}")


def _plain(value: Any) -> Any:
    """numpy's scalars as Python's (a row read back with pandas holds them)."""
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        try:
            return value.item()
        except (TypeError, ValueError):
            return value
    return value


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if _is_number(value):
        return "not measured" if math.isnan(value) else f"{value:g}"
    if value is None:
        return "not measured"
    return repr(value) if value == "" else str(value)


def run_verdict(verdicts: Sequence[str]) -> str:
    """pass only when every trial passed; fail when one failed; "" with nothing expected."""
    judged = [v for v in verdicts if v]
    if not judged:
        return ""
    return "fail" if "fail" in judged else "pass"


def exit_code(verdicts: Sequence[str]) -> int:
    """1 when a trial failed an expectation (2 stays bad input): 0 otherwise."""
    return 1 if run_verdict(verdicts) == "fail" else 0
