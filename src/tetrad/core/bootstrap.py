"""Confidence intervals for paired comparisons: the one place every compare takes them from.

`paired_t_interval` is for a few paired runs (seeds): the mean difference and the half-width of
its 95% Student-t interval. `paired_bootstrap` is for many paired units (problems, users): a
percentile interval of the mean difference over resamples of the units.

For ranking metrics, a cluster bootstrap over groups (users): replicate r gives every group a Poisson(1) weight
(the Poisson bootstrap, which needs no resampled index arrays), and the metric is recomputed
with those weights. The weights are a function of the group ids and the seed alone, so two
models scored on the same rows get the same replicates: `auc_replicates(model A) -
auc_replicates(model B)` is the paired difference under each resample, and runs made in
different sessions can be compared from their stored replicates.

`paired_interval` combines that with the spread over training seeds: each replicate also draws
the seeds with replacement, so the interval covers both evaluation sampling and training noise.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

from tetrad.core.metrics import _binary_labels, _np, group_aucs

CHUNK = 16  # replicates scored at once: [CHUNK, n] float64 arrays bound the memory


def group_weights(groups: Any, replicates: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(sorted group ids [G], Poisson(1) weights [replicates, G]): one weight per group per replicate."""
    ids = np.unique(_np(groups).ravel())
    return ids, np.random.default_rng(seed).poisson(1.0, (replicates, len(ids))).astype(np.float64)


def row_weights(groups: Any, ids: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """[replicates, n]: each row takes its group's weight (`ids` from `group_weights`)."""
    return weights[:, np.searchsorted(ids, _np(groups).ravel())]


def auc_replicates(labels: Any, scores: Any, weights: np.ndarray) -> np.ndarray:
    """Weighted AUC under each row of `weights` [R, n]: the weighted share of (positive, negative)
    pairs ranked correctly, ties counting one half."""
    y = _binary_labels(labels)
    s = _np(scores).astype(np.float64).ravel()
    order = np.argsort(s, kind="stable")
    s, y = s[order], y[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # one block per distinct score
    out = []
    for lo in range(0, len(weights), CHUNK):
        w = weights[lo:lo + CHUNK][:, order]
        pos = np.add.reduceat(w * y, starts, axis=1)
        neg = np.add.reduceat(w * (1 - y), starts, axis=1)
        below = np.cumsum(neg, axis=1) - neg
        with np.errstate(invalid="ignore", divide="ignore"):
            out.append((pos * (below + 0.5 * neg)).sum(1) / (pos.sum(1) * neg.sum(1)))
    return np.concatenate(out)


def gauc_replicates(labels: Any, scores: Any, groups: Any, ids: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """GAUC under each replicate's group weights [R, G]: a group's own AUC does not change when
    all its rows share one weight, so only the groups' weights in the average do."""
    kept, group_auc, size = group_aucs(labels, scores, groups)
    w = weights[:, np.searchsorted(ids, kept)] * size
    with np.errstate(invalid="ignore", divide="ignore"):
        return (w * group_auc).sum(1) / w.sum(1)


def paired_interval(differences: np.ndarray, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile interval of a mean paired difference. `differences` [S, R]: per training seed
    (rows) the difference of two models' metric under each bootstrap replicate (columns, the same
    resample for both models). Replicate r averages the rows of S seeds drawn with replacement."""
    d = np.asarray(differences, dtype=np.float64)
    seeds = np.random.default_rng(seed).integers(0, d.shape[0], (d.shape[1], d.shape[0]))  # [R, S]
    means = np.nanmean(d[seeds, np.arange(d.shape[1])[:, None]], axis=1)
    tail = (1 - level) / 2 * 100
    return float(np.nanpercentile(means, tail)), float(np.nanpercentile(means, 100 - tail))


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
