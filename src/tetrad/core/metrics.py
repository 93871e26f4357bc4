"""Evaluation metrics shared by the systems, as pure functions of arrays.

Ranking (CTR): `auc`, `gauc` (from `group_aucs`), `logloss`. Retrieval: `recall_at_k`, `ndcg_at_k`
(per row: `recall_rows`, `ndcg_rows`).
Concentration of counts: `gini`.
Sampling-based reasoning evaluation: `pass_at_k`, `mean_at_k`, `maj_at_k`.
Inputs may be lists, NumPy arrays or torch tensors.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Hashable, Sequence

import numpy as np
import pandas as pd
from scipy.stats import rankdata


def _np(x: Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _binary_labels(labels: Any) -> np.ndarray:
    y = _np(labels).astype(np.float64).ravel()
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("labels must be 0 or 1")
    return y


def auc(labels: Any, scores: Any) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for tied scores)."""
    y = _binary_labels(labels)
    s = _np(scores).astype(np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"labels and scores differ in length ({y.size} vs {s.size})")
    n_pos = y.sum()
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC is undefined when all labels are of one class")
    ranks = rankdata(s)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def gauc(labels: Any, scores: Any, groups: Any) -> float:
    """Group AUC: per-group AUC weighted by group size; groups with one class are skipped.

    Weight = number of impressions in the group (the usual choice for user-level GAUC).
    """
    _, group_auc, size = group_aucs(labels, scores, groups)
    return float((group_auc * size).sum() / size.sum())


def group_aucs(labels: Any, scores: Any, groups: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(group ids, AUC, impressions) of every group that has both classes; ValueError if none has."""
    y = _binary_labels(labels)
    df = pd.DataFrame({"y": y, "s": _np(scores).astype(np.float64).ravel(), "g": _np(groups).ravel()})
    df["r"] = df.groupby("g", sort=False)["s"].rank(method="average")
    df["rpos"] = df["r"] * df["y"]
    g = df.groupby("g", sort=False).agg(n=("y", "size"), pos=("y", "sum"), rpos=("rpos", "sum"))
    g = g[(g["pos"] > 0) & (g["pos"] < g["n"])]
    if g.empty:
        raise ValueError("GAUC is undefined: no group has both classes")
    neg = g["n"] - g["pos"]
    group_auc = (g["rpos"] - g["pos"] * (g["pos"] + 1) / 2) / (g["pos"] * neg)
    return g.index.to_numpy(), group_auc.to_numpy(), g["n"].to_numpy(dtype=np.float64)


def logloss(labels: Any, probs: Any, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy of probabilities (clipped to [eps, 1 - eps])."""
    y = _binary_labels(labels)
    p = np.clip(_np(probs).astype(np.float64).ravel(), eps, 1 - eps)
    return float(-(y * np.log(p) + (1 - y) * np.log1p(-p)).mean())


def _relevance(ranked: Any, relevant: Any, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Binary hits of the top-k of each ranked list, and the number of relevant items per row.

    `relevant` is one target per row (a 1-D array) or a collection of targets per row.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    top = _np(ranked)[:, :k]
    rel = relevant if isinstance(relevant, (list, tuple)) else _np(relevant)
    if isinstance(rel, np.ndarray) and rel.ndim == 1 and not rel.dtype == object:
        hits = (top == rel[:, None]).astype(np.float64)
        return hits, np.ones(len(rel))
    sets = [set(_np(r).ravel().tolist()) if not isinstance(r, (set, frozenset)) else r for r in rel]
    hits = np.array([[item in s for item in row] for row, s in zip(top.tolist(), sets)], dtype=np.float64)
    return hits.reshape(len(sets), -1), np.array([len(s) for s in sets], dtype=np.float64)


def recall_rows(ranked: Any, relevant: Any, k: int) -> np.ndarray:
    """Per row |top-k ∩ relevant| / |relevant| (a hit, 0 or 1, when one target per row): what
    paired comparisons of two rankers resample."""
    hits, n_rel = _relevance(ranked, relevant, k)
    return hits.sum(1) / np.maximum(n_rel, 1)


def recall_at_k(ranked: Any, relevant: Any, k: int) -> float:
    """Mean over rows of |top-k ∩ relevant| / |relevant| (hit rate when one target per row)."""
    return float(recall_rows(ranked, relevant, k).mean())


def ndcg_rows(ranked: Any, relevant: Any, k: int) -> np.ndarray:
    """Per row NDCG@k with binary relevance: DCG = sum hit_i / log2(i + 2), over the ideal DCG."""
    hits, n_rel = _relevance(ranked, relevant, k)
    discounts = 1.0 / np.log2(np.arange(hits.shape[1]) + 2)
    dcg = (hits * discounts).sum(1)
    ideal = np.array([discounts[: int(min(n, hits.shape[1]))].sum() for n in n_rel])
    return np.where(ideal > 0, dcg / np.where(ideal > 0, ideal, 1), 0.0)


def ndcg_at_k(ranked: Any, relevant: Any, k: int) -> float:
    """Mean NDCG@k with binary relevance (`ndcg_rows` averaged)."""
    return float(ndcg_rows(ranked, relevant, k).mean())


def gini(counts: Any) -> float:
    """Gini coefficient of non-negative counts: 0 when all equal, (n-1)/n when one holds everything."""
    x = np.sort(_np(counts).astype(np.float64).ravel())
    if x.size == 0 or (x < 0).any():
        raise ValueError("Gini needs a non-empty array of non-negative counts")
    total = x.sum()
    if total == 0:
        return 0.0
    n = x.size
    return float((2 * np.arange(1, n + 1) - n - 1) @ x / (n * total))


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct: 1 - C(n-c, k) / C(n, k).

    Computed as a product (Chen et al., 2021) so large n does not overflow.
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (got n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def mean_at_k(correct: Any) -> float:
    """Mean accuracy over k samples per problem (rows = problems): the pass@1 estimate."""
    c = _np(correct).astype(np.float64)
    if c.ndim != 2 or c.size == 0:
        raise ValueError("mean@k needs a non-empty problems x samples array")
    return float(c.mean())


def majority(answers: Sequence[Hashable | None]) -> Hashable | None:
    """Most frequent non-None answer; ties go to the answer seen first; None if there is none."""
    counts = Counter(a for a in answers if a is not None)
    return counts.most_common(1)[0][0] if counts else None


def maj_at_k(answers: Sequence[Sequence[Hashable | None]], truths: Sequence[Hashable],
             equal: Callable[[Any, Any], bool] = lambda a, b: a == b) -> float:
    """Share of problems whose majority answer over their k samples equals the truth.

    `None` stands for a sample with no extractable answer and never wins the vote.
    """
    if len(answers) != len(truths) or not len(answers):
        raise ValueError("maj@k needs one non-empty answer list per truth")
    hits = [(m := majority(a)) is not None and equal(m, t) for a, t in zip(answers, truths)]
    return float(np.mean(hits))
