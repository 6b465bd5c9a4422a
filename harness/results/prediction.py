"""What the mechanisms predict for a trial's first failure, beside what was measured.

Every technology speaks one type, :class:`Prediction`: the summary column the failure
puts to the test (``figure``), the window its timers give that figure and why
(``basis``), or no window and the reason (:meth:`Prediction.unknown`).  Each technology
answers through ``Technology.prediction(trial, row)`` (harness/tech/base.py): ``None``
where the failure is none of its business.  :func:`columns` asks every technology and
writes the trial's generic columns, ``predicted_figure``, ``predicted_min_ms``,
``predicted_max_ms``, ``prediction`` and ``within_prediction``, present in every row
(empty where nothing predicts, and ``prediction`` says why).

Which answer stands, when several technologies speak: the one latest in registry order
that gives a window, else the latest reason.  The registry is in build order, each
technology built on those before it (an MC-LAG pair on its bonds, LACP on bonds and
Open vSwitch LAGs), so the later one knows more about the failure: a bond on a server
facing an Open vSwitch LAG is the slower end of that cable, an MC-LAG pair knows its
inter-leaf links, LACP knows when a silent member times out.

``within_prediction`` is strict: the measured figure inside [min, max] as stored.  A
window is what the protocol's timers allow; the implementation's own reaction is not
in it unless its basis says so, so a trial whose failure lands at the very end of a
period may read just outside (a few ms past a miimon).  Judge with a bound beside it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.results.summary import TrialRecord
    from harness.tech.base import Technology

COLUMNS = ("predicted_figure", "predicted_min_ms", "predicted_max_ms", "prediction",
           "within_prediction")
# "node:interface" as the failures describe a cable end or a filtered interface
_END = re.compile(r"[\w.-]+:[\w.-]+")


@dataclass(frozen=True)
class Prediction:
    figure: str       # the summary column the window is about ("" without a window)
    min_ms: float
    max_ms: float
    basis: str        # the mechanism and its settings; or why there is no window

    @classmethod
    def unknown(cls, reason: str) -> Prediction:
        """No window: ``reason`` says why (no model for this failure, nothing to fail
        over to, ...); the columns stay empty."""
        return cls("", math.nan, math.nan, reason)

    @property
    def has_window(self) -> bool:
        return bool(self.figure) and not math.isnan(self.min_ms)

    def within(self, row: Mapping[str, Any]) -> bool | None:
        """Whether ``row``'s measured figure lies in the window; None without a window or
        without a measurement (NaN, empty, absent)."""
        if not self.has_window:
            return None
        try:
            measured = float(row.get(self.figure, math.nan))
        except (TypeError, ValueError):
            return None
        return None if math.isnan(measured) else self.min_ms <= measured <= self.max_ms

    def columns(self, row: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
        """The prediction's summary columns, named ``prefix`` + COLUMNS (MC-LAG keeps its
        own as ``mclag_*``)."""
        return {f"{prefix}predicted_figure": self.figure,
                f"{prefix}predicted_min_ms": self.min_ms,
                f"{prefix}predicted_max_ms": self.max_ms,
                f"{prefix}prediction": self.basis,
                f"{prefix}within_prediction": self.within(row)}


@dataclass(frozen=True)
class Failure:
    """The trial's first failure (trial.json), as the predictions read it."""

    action: str
    node: str                    # where it was made: a device_down's dead node
    describe: str
    ends: tuple[str, ...]        # "node:interface" it names: a cut's two cable ends,
    #                              a drop's or a degrade's interface
    protocol: str | None         # drop_control: lacp or vrrp
    directions: tuple[str, ...]  # drop_control: ("in",), ("out",) or ("in", "out")

    def names(self, node: str, intf: str) -> bool:
        return f"{node}:{intf}" in self.ends


def first_failure(trial: TrialRecord) -> Failure | None:
    """The first failure's facts, None in a baseline.  The interfaces come from its
    description, where the harness wrote them resolved (``interface: active`` is named
    there as the member it was)."""
    failures = trial.facts.get("failures") or []
    if not failures or trial.failure is None:
        return None
    first = failures[0]
    describe = str(first.get("describe", ""))
    protocol = re.match(r"control_plane_drop (\w+) at", describe)
    directions = re.search(r"\(([a-z+]+)[ ;)]", describe) if protocol else None
    return Failure(action=str(first.get("action", "")), node=str(first.get("node", "")),
                   describe=describe, ends=tuple(_END.findall(describe.split(";")[0])),
                   protocol=protocol.group(1) if protocol else None,
                   directions=tuple(directions.group(1).split("+")) if directions else ())


def choose(trial: TrialRecord, row: Mapping[str, Any],
           technologies: Iterable[type[Technology]]) -> Prediction:
    """The prediction that stands for the trial (see the module's docstring)."""
    failure = first_failure(trial)
    if failure is None:
        return Prediction.unknown("no failure: a baseline, nothing to predict")
    said = [p for tech in technologies if (p := tech.prediction(trial, row)) is not None]
    windows = [p for p in said if p.has_window]
    if windows:
        return windows[-1]
    if said:
        return said[-1]
    if failure.action == "degrade":
        return Prediction.unknown("no model for a degrade step: loss, delay or a rate limit"
                                  " slows the path, nothing detects it or fails over")
    return Prediction.unknown(f"no model: no redundancy mechanism of this topology"
                              f" predicts a {failure.action} ({failure.describe})")


def columns(trial: TrialRecord, row: Mapping[str, Any],
            technologies: Iterable[type[Technology]]) -> dict[str, Any]:
    """The generic prediction columns of a trial's summary row; ``row``: every column
    the technologies computed (the measured figure is among them)."""
    return choose(trial, row, technologies).columns(row)
