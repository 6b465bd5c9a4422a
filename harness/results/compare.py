"""Two sets of runs compared figure by figure: regression, improvement, no change or
inconclusive (``redlab compare BASELINE CANDIDATE``).

A folder is a run folder (metadata.json + summary.csv) or a suite folder (one run folder
per configuration); runs are paired by folder name. Each key figure gets both medians,
the difference of medians with a bootstrap 95 % interval, and a one-sided Mann-Whitney
U test in the direction that is worse for that figure (a longer gap, less capacity).

A verdict needs two things. The difference of medians must exceed a threshold that is
both relative (20 % of the baseline median) and absolute (10 ms, or the probe's error
if larger): a smaller difference is "no change" however significant. And the test must
say the candidate is worse (or better) by more than that threshold, significantly at
alpha after Holm's correction over every figure compared: a suite has tens of
figures, and phase-sampled gaps of five trials differ by more than 20 % all the time,
so a test against zero would call two runs of one configuration a regression now and
then. Too few trials for the exact test ever to get there is "inconclusive", with the
number of trials per side that would do.
"""

from __future__ import annotations

import json
import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from harness.errors import ConfigError
from harness.results.recheck import runs_in
from harness.scenario.suite import KEY_FIGURES

FIGURES = (*KEY_FIGURES, "lost_packets")
SEED = 20_240_611  # the bootstrap and permutation tests: the same folders, the same output
ALPHA = 0.05
# Absolute floors for figures not in ms: capacity moves by a few points between trials
# (iperf3's 0.1 s intervals), throughput only relatively.
ABSOLUTE_PCT = 5.0
VERDICTS = ("regression", "improvement", "no change", "inconclusive")


@dataclass(frozen=True)
class Run:
    name: str
    path: Path
    meta: dict[str, Any]
    summary: pd.DataFrame

    @property
    def scenario(self) -> str:
        scenario = self.meta.get("scenario")
        return str(scenario.get("name") if isinstance(scenario, dict) else scenario)

    def values(self, figure: str) -> np.ndarray:
        if figure not in self.summary.columns:
            return np.array([])
        column = pd.to_numeric(self.summary[figure], errors="coerce")
        return column.dropna().to_numpy(dtype=float)


@dataclass(frozen=True)
class Thresholds:
    relative: float = 0.20
    absolute_ms: float = 10.0
    probe_error_ms: float | None = None  # calibrated; None: the runs' probe interval
    probe_error_source: str = ""
    alpha: float = ALPHA


@dataclass
class FigureComparison:
    run: str
    figure: str
    unit: str
    baseline_trials: int
    candidate_trials: int
    baseline_median: float
    candidate_median: float
    difference: float
    ci_low: float
    ci_high: float
    p_worse: float          # one-sided Mann-Whitney: worse by more than the threshold
    p_worse_adjusted: float  # after Holm's correction over every figure compared
    p_better: float         # the other side: better by more than the threshold
    threshold: float
    verdict: str = "inconclusive"
    note: str = ""


@dataclass
class Comparison:
    baseline: Path
    candidate: Path
    figures: list[FigureComparison] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def regression(self) -> bool:
        return any(f.verdict == "regression" for f in self.figures)


# -- loading --------------------------------------------------------------------------

def load_runs(folder: Path) -> dict[str, Run]:
    """The runs of a run folder (one) or a suite folder (each sub-folder with metadata)."""
    return {path.name: _load_run(path) for path in runs_in(folder)}


def _load_run(path: Path) -> Run:
    try:
        meta = json.loads((path / "metadata.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path / 'metadata.json'} cannot be read: {exc}",
                          "give a run folder written by redlab run") from exc
    summary_path = path / "summary.csv"
    if not summary_path.is_file():
        raise ConfigError(f"run {path} has no summary.csv",
                          f"recompute it from the trials with `redlab summarize {path}`; a"
                          " run that stopped before its first trial has none: rerun it")
    try:
        summary = pd.read_csv(summary_path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{summary_path} is not a readable CSV: {exc}",
                          f"recompute it with `redlab summarize {path}`") from exc
    if summary.empty:
        raise ConfigError(f"run {path} has no trial in its summary.csv",
                          "rerun it: a run needs at least one finished trial to compare")
    return Run(path.name, path, meta, summary)


def calibrated_error_ms(path: Path) -> float:
    """The largest absolute error a calibration (``redlab calibrate``) measured."""
    csv = path / "calibration.csv" if path.is_dir() else path
    if not csv.is_file():
        raise ConfigError(f"{path} holds no calibration.csv",
                          "give a folder written by redlab calibrate")
    errors = pd.to_numeric(pd.read_csv(csv).get("error_ms"), errors="coerce").abs().dropna()
    if errors.empty:
        raise ConfigError(f"{csv} has no measured error_ms", "rerun redlab calibrate")
    return float(errors.max())


# -- pairing and environment --------------------------------------------------------------

def _config_key(name: str) -> str:
    """A suite run's name without its number: a reordered suite renumbers its runs."""
    return re.sub(r"^\d+-", "", name)


def pair_runs(baseline: dict[str, Run], candidate: dict[str, Run]
              ) -> tuple[list[tuple[str, Run, Run]], list[str]]:
    """(label, baseline run, candidate run) per configuration, and warnings for runs
    found on one side only. Two single runs pair whatever their folder names."""
    if len(baseline) == 1 and len(candidate) == 1:
        (b,), (c,) = baseline.values(), candidate.values()
        return [(b.name if b.name == c.name else f"{b.name} / {c.name}", b, c)], []
    pairs = [(name, baseline[name], candidate[name]) for name in baseline if name in candidate]
    left_b = {_config_key(n): r for n, r in baseline.items() if n not in candidate}
    left_c = {_config_key(n): r for n, r in candidate.items() if n not in baseline}
    for key in [k for k in left_b if k in left_c]:
        pairs.append((key, left_b.pop(key), left_c.pop(key)))
    notes = [f"run {r.name} is only in the baseline" for r in left_b.values()]
    notes += [f"run {r.name} is only in the candidate" for r in left_c.values()]
    return pairs, notes


def environment_warnings(pairs: list[tuple[str, Run, Run]]) -> list[str]:
    """What differs between the two sides' machines: warned, never refused (comparing
    before and after an upgrade is the point)."""
    found: dict[str, None] = {}
    for label, b, c in pairs:
        for key, name in (("lab", "lab kind"), ("kernel", "kernel"), ("host", "host"),
                          ("cpu_count", "CPU count"), ("cpus", "CPU count")):
            if key in b.meta or key in c.meta:
                before, after = b.meta.get(key), c.meta.get(key)
                if before != after:
                    found[f"{name} differs: {before} -> {after}"] = None
        versions_b, versions_c = b.meta.get("versions") or {}, c.meta.get("versions") or {}
        for tool in dict.fromkeys([*versions_b, *versions_c]):
            if versions_b.get(tool) != versions_c.get(tool):
                found[f"{tool} differs: {versions_b.get(tool)} -> {versions_c.get(tool)}"] = None
        params_b, params_c = b.meta.get("params") or {}, c.meta.get("params") or {}
        changed = [f"{k} {params_b.get(k)} -> {params_c.get(k)}"
                   for k in dict.fromkeys([*params_b, *params_c])
                   if params_b.get(k) != params_c.get(k)]
        if changed:
            found[f"{label}: parameters differ: {', '.join(changed)}"] = None
        for side, run in (("baseline", b), ("candidate", c)):
            if run.meta.get("status", "complete") != "complete":
                found[f"{label}: the {side} run is {run.meta['status']}"] = None
    return list(found)


# -- statistics -------------------------------------------------------------------------

def larger_is_worse(figure: str) -> bool:
    """Gaps, detection times and lost packets: larger is worse. Capacity, throughput: smaller."""
    return not figure.endswith(("_mbps", "_pct"))


def unit(figure: str) -> str:
    for suffix, name in (("_ms", "ms"), ("_mbps", "Mbit/s"), ("_pct", "%"),
                         ("_packets", "packets")):
        if figure.endswith(suffix):
            return name
    return ""


def min_p_value(n1: int, n2: int) -> float:
    """The smallest p the exact one-sided Mann-Whitney test can give for n1 vs n2 trials:
    every candidate trial beyond every baseline trial, one ordering among C(n1+n2, n1)."""
    return 1 / math.comb(n1 + n2, n1)


def trials_needed(alpha: float, tests: int = 1) -> int:
    """Trials per side for which the exact test, Holm-corrected over ``tests``, can reach
    p < alpha."""
    n = 1
    while tests * min_p_value(n, n) >= alpha:
        n += 1
    return n


def _median_difference(candidate: np.ndarray, baseline: np.ndarray, axis: int = -1) -> Any:
    return np.median(candidate, axis=axis) - np.median(baseline, axis=axis)


def bootstrap_interval(baseline: np.ndarray, candidate: np.ndarray) -> tuple[float, float]:
    """95 % percentile-bootstrap interval of median(candidate) - median(baseline)."""
    if len(baseline) < 2 or len(candidate) < 2:
        return math.nan, math.nan
    from scipy import stats  # half a second to load: not for a command given bad input

    with warnings.catch_warnings():  # identical trials: a degenerate, yet right, interval
        warnings.simplefilter("ignore")
        result = stats.bootstrap((candidate, baseline), _median_difference, vectorized=True,
                                 method="percentile", rng=np.random.default_rng(SEED))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def p_worse(baseline: np.ndarray, candidate: np.ndarray, larger_worse: bool,
            margin: float = 0.0) -> float:
    """One-sided Mann-Whitney U: is the candidate worse by more than ``margin`` (larger,
    or smaller when ``larger_worse`` is False; pass it negated for "better")?

    Testing against the margin, not against zero, is what keeps two runs of one
    configuration from being called a regression: their true difference is zero, well
    inside the margin, so the test almost never crosses alpha however the medians fall.
    With tied values the exact distribution comes from a permutation test (scipy's
    normal approximation would claim significance that 3 vs 3 trials cannot give)."""
    from scipy import stats

    shifted = candidate - margin if larger_worse else candidate + margin
    ties = len(np.unique(np.concatenate([baseline, shifted]))) < len(baseline) + len(shifted)
    method: Any = stats.PermutationMethod(rng=np.random.default_rng(SEED)) if ties else "auto"
    return float(stats.mannwhitneyu(shifted, baseline, method=method,
                                    alternative="greater" if larger_worse else "less").pvalue)


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values: family-wise error at most alpha."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted, running = [1.0] * len(p_values), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def _absolute_floor(figure: str, limits: Thresholds, error_ms: float,
                    interval_ms: float) -> float:
    floor_ms = max(limits.absolute_ms, error_ms)
    if figure.endswith("_ms"):
        return floor_ms
    if figure == "lost_packets":  # the same floor in probe packets
        return floor_ms / interval_ms if interval_ms > 0 else floor_ms
    return ABSOLUTE_PCT if figure.endswith("_pct") else 0.0


def _probe_interval_ms(b: Run, c: Run) -> float:
    medians = [float(np.median(v)) for v in (b.values("probe_interval_ms"),
                                               c.values("probe_interval_ms")) if len(v)]
    return max(medians, default=math.nan)


def compare_folders(baseline: Path, candidate: Path, limits: Thresholds | None = None,
                    allow_different: bool = False) -> Comparison:
    """Everything checked and computed; nothing written."""
    limits = limits or Thresholds()
    pairs, unpaired = pair_runs(load_runs(baseline), load_runs(candidate))
    if not pairs:
        raise ConfigError(f"no run of {baseline} has a counterpart in {candidate}"
                          f" ({', '.join(unpaired)})",
                          "compare two runs, or two suites that share run names")
    different = [f"{label} ({b.scenario} vs {c.scenario})" for label, b, c in pairs
                 if b.scenario != c.scenario]
    if different and not allow_different:
        raise ConfigError(f"the runs are of different scenarios: {'; '.join(different)}",
                          "compare runs of one scenario, or pass --allow-different")
    result = Comparison(baseline, candidate, warnings=[
        *[f"different scenarios, compared as asked: {d}" for d in different],
        *unpaired, *environment_warnings(pairs)])
    intervals = []
    for label, b, c in pairs:
        interval = _probe_interval_ms(b, c)
        intervals.append(interval)
        error = limits.probe_error_ms if limits.probe_error_ms is not None else interval
        for figure in FIGURES:
            base, cand = b.values(figure), c.values(figure)
            if len(base) and len(cand):
                floor = _absolute_floor(figure, limits,
                                        0.0 if math.isnan(error) else error, interval)
                result.figures.append(_measure(label, figure, base, cand, limits, floor))
    result.notes.append(_error_note(limits, [i for i in intervals if not math.isnan(i)]))
    if not result.figures:
        raise ConfigError(f"{baseline} and {candidate} share no key figure"
                          f" ({', '.join(FIGURES)})", "compare runs of one scenario")
    _decide(result.figures, limits.alpha)
    return result


def _error_note(limits: Thresholds, intervals: list[float]) -> str:
    if limits.probe_error_ms is not None:
        error = f"probe error {limits.probe_error_ms:.3g} ms ({limits.probe_error_source})"
    elif intervals:
        low, high = min(intervals), max(intervals)
        span = f"{low:.3g} ms" if f"{low:.3g}" == f"{high:.3g}" else f"{low:.3g} to {high:.3g} ms"
        error = (f"no calibrated probe error is recorded in these runs (--calibration gives"
                 f" one): the probe interval ({span}) stands for it")
    else:
        error = "no calibrated probe error and no probe interval in these runs"
    return f"{error}; the absolute threshold of ms figures is the larger of it and" \
        f" {limits.absolute_ms:g} ms"


def _measure(label: str, figure: str, base: np.ndarray, cand: np.ndarray,
             limits: Thresholds, floor: float) -> FigureComparison:
    b_med, c_med = float(np.median(base)), float(np.median(cand))
    low, high = bootstrap_interval(base, cand)
    larger_worse = larger_is_worse(figure)
    threshold = max(limits.relative * abs(b_med), floor)
    p = p_worse(base, cand, larger_worse, threshold)
    return FigureComparison(label, figure, unit(figure), len(base), len(cand), b_med, c_med,
                            c_med - b_med, low, high, p, p,
                            p_worse(base, cand, not larger_worse, threshold), threshold)


def _decide(figures: list[FigureComparison], alpha: float) -> None:
    tests = len(figures)
    corrected = f" (Holm-corrected over {tests} figures)" if tests > 1 else ""
    worse_p = holm([f.p_worse for f in figures])
    better_p = holm([f.p_better for f in figures])
    for fig, adjusted, better in zip(figures, worse_p, better_p, strict=True):
        fig.p_worse_adjusted = adjusted
        worse = fig.difference if larger_is_worse(fig.figure) else -fig.difference
        n1, n2 = fig.baseline_trials, fig.candidate_trials
        if tests * min_p_value(n1, n2) >= alpha:
            fig.verdict = "inconclusive"
            fig.note = (f"{n1} vs {n2} trials: the exact one-sided Mann-Whitney test cannot"
                        f" reach p < {alpha:g}{corrected}; run at least"
                        f" {trials_needed(alpha, tests)} trials per side")
        elif abs(fig.difference) <= fig.threshold:
            fig.verdict = "no change"
        elif worse > 0:
            fig.verdict = "regression" if adjusted < alpha else "inconclusive"
        else:
            fig.verdict = "improvement" if better < alpha else "inconclusive"
            adjusted = better
        if fig.verdict == "inconclusive" and not fig.note:
            fig.note = (f"beyond the threshold, but p = {adjusted:.3g}{corrected}:"
                        " more trials would tell")
