"""Confidence intervals for paired comparisons, the one place every compare takes them from.

`paired_t_interval` is for a few paired runs (seeds): the mean difference and the half-width of
its 95% Student-t interval. `paired_bootstrap` is for many paired units (problems, users,
evaluation rows): a percentile interval of the mean difference over resamples of the units.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats as scipy_stats


def paired_t_interval(diffs: list[float]) -> tuple[float, float]:
    """Mean of paired differences and the half-width of its 95% t interval (nan for one pair)."""
    n = len(diffs)
    if n == 0:
        raise ValueError("paired_t_interval needs at least one difference")
    mean = sum(diffs) / n
    if n < 2:
        return mean, float("nan")
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1))
    return mean, float(scipy_stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)


def paired_bootstrap(a, b, n_resamples: int = 2000, seed: int = 0, level: float = 0.95
                     ) -> tuple[float, float, float]:
    """Mean of `a - b` over paired units and its bootstrap percentile interval `(mean, low, high)`;
    `a[i]` and `b[i]` are the same unit (problem, user) under two methods."""
    diffs = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if diffs.ndim != 1 or diffs.size == 0:
        raise ValueError("paired_bootstrap needs two equally long, non-empty 1-d sequences")
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, diffs.size, size=(n_resamples, diffs.size))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(diffs.mean()), float(low), float(high)
