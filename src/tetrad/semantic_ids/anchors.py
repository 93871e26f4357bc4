"""Reference rankers for the retrievers, and the one way every ranker's top-k is scored.

- `popularity_ranking`: the k items seen most often in the given histories, the same for
  every user (seen items are not excluded, as for every method here: full ranking).
- `subcluster_ranking`: k random items of the last history item's group (the catalogue's
  sub-cluster). On the synthetic catalogue, which moves within a sub-cluster with
  probability `stay` and draws items uniformly inside it, this is close to the best any
  method can do; only `item_zipf` / `user_pull` leave something below it to learn.
- `score_ranking`: Recall@k and NDCG@k for each k, and optionally each user's values at the
  largest k, which paired comparisons (`tetrad.core.bootstrap.paired_bootstrap`) resample.
"""

from __future__ import annotations

import numpy as np

from tetrad.core.metrics import ndcg_rows, recall_rows


def score_ranking(ranked: np.ndarray, targets, ks, per_user: bool = False) -> dict:
    t = np.asarray(targets)
    out: dict = {}
    for k in ks:
        out[f"recall@{k}"] = float(recall_rows(ranked, t, k).mean())
        out[f"ndcg@{k}"] = float(ndcg_rows(ranked, t, k).mean())
    if per_user:
        k = max(ks)
        # 5 decimals: the committed study rows hold these for every test user (a third of the size)
        out["per_user"] = {f"recall@{k}": recall_rows(ranked, t, k).tolist(),
                           f"ndcg@{k}": np.round(ndcg_rows(ranked, t, k), 5).tolist()}
    return out


def popularity_ranking(histories: list[list[int]], n_items: int, k: int) -> np.ndarray:
    """Users x k: the most frequent items of all `histories` (ties in item order), for every user."""
    counts = np.bincount([i for h in histories for i in h], minlength=n_items)
    top = np.argsort(-counts, kind="stable")[:k]
    return np.tile(top, (len(histories), 1))


def subcluster_ranking(histories: list[list[int]], groups: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Users x k: k random items of the group of each history's last item (-1 pads a smaller group)."""
    rng = np.random.default_rng(seed)
    groups = np.asarray(groups)
    order = np.argsort(groups, kind="stable")
    bounds = np.r_[0, np.cumsum(np.bincount(groups))]
    out = np.full((len(histories), k), -1, dtype=np.int64)
    for row, h in enumerate(histories):
        g = groups[h[-1]]
        members = order[bounds[g]:bounds[g + 1]]
        pick = rng.choice(members, min(k, len(members)), replace=False)
        out[row, : len(pick)] = pick
    return out
