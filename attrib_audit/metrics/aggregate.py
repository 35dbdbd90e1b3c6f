"""Aggregates over samples (mean, median, bootstrap interval) and the AUC over epsilon."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import integrate, stats


@dataclass(frozen=True)
class Summary:
    """Mean, median and a 95% percentile-bootstrap interval of the mean."""

    mean: float
    median: float
    ci95: tuple[float, float]
    n: int

    def as_dict(self) -> dict:
        return {"mean": self.mean, "median": self.median, "ci95": list(self.ci95)}


def summarize(values: Sequence[float] | np.ndarray, *, resamples: int = 1000, seed: int = 0):
    """Summary of ``values``, NaNs (undefined per-sample values) left out.

    The interval is scipy's percentile bootstrap of the mean, seeded; with fewer than two
    distinct values it collapses to the mean.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[~np.isnan(v)]
    if v.size == 0:
        nan = float("nan")
        return Summary(nan, nan, (nan, nan), 0)
    mean, median = float(v.mean()), float(np.median(v))
    if v.size < 2 or np.all(v == v[0]):
        return Summary(mean, median, (mean, mean), int(v.size))
    res = stats.bootstrap(
        (v,),
        np.mean,
        n_resamples=resamples,
        confidence_level=0.95,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    ci = (float(res.confidence_interval.low), float(res.confidence_interval.high))
    return Summary(mean, median, ci, int(v.size))


def auc_log2(epsilons: Sequence[float], values: Sequence[float]) -> float:
    """Area under a metric-vs-epsilon curve over log2 epsilon, normalised by the range.

    The result is the curve's mean height, in the metric's own units: a constant curve has
    that constant as its AUC (SSR paper, Fig. 2a).
    """
    if len(epsilons) != len(values):
        raise ValueError("epsilons and values differ in length")
    if len(epsilons) < 2:
        raise ValueError("an AUC over epsilon needs at least two epsilons")
    if any(e <= 0 for e in epsilons):
        raise ValueError("an AUC over log2 epsilon needs epsilons > 0")
    order = np.argsort(epsilons)
    x = np.log2(np.asarray(epsilons, dtype=np.float64)[order])
    y = np.asarray(values, dtype=np.float64)[order]
    span = x[-1] - x[0]
    if span == 0 or math.isnan(span):
        raise ValueError("an AUC over epsilon needs at least two distinct epsilons")
    return float(integrate.trapezoid(y, x) / span)
