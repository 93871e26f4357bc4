"""Synthetic item catalogues with users, long-tailed or uniform, for the semantic-ID study.

Items sit in a two-level hierarchy of clusters in embedding space: `top_clusters` centres
drawn around the origin, `sub_clusters` centres around each, items around their sub-cluster
centre. In the long-tailed catalogue the cluster sizes at both levels follow Zipf's law
(size of the r-th cluster proportional to r^-zipf); its uniform twin (`zipf=0`) has the same
geometry with equal sizes. Users browse the hierarchy: each has a preferred top cluster set
(Dirichlet weights), and each next item stays in the current sub-cluster with probability
`stay`, else moves to a new sub-cluster drawn from the user's preferences and the sizes, so
history predicts the next item's region of the space.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tetrad.core.errors import UserError


@dataclass(frozen=True)
class Catalogue:
    embeddings: np.ndarray  # items x dim, float32
    top_cluster: np.ndarray  # items
    sub_cluster: np.ndarray  # items (global sub-cluster index)
    sequences: dict[int, list[int]]  # user -> items in order


def zipf_sizes(total: int, parts: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """`parts` positive integer sizes summing to `total`, proportional to rank^-exponent (shuffled)."""
    if total < parts:
        raise UserError(f"cannot split {total} items into {parts} non-empty clusters")
    weights = np.arange(1, parts + 1, dtype=np.float64) ** -exponent
    sizes = 1 + np.floor(weights / weights.sum() * (total - parts)).astype(np.int64)
    sizes[: total - sizes.sum()] += 1  # hand out the rounding remainder to the largest
    return rng.permutation(sizes)


def make_catalogue(items: int = 100_000, dim: int = 384, top_clusters: int = 64, sub_clusters: int = 32,
                   zipf: float = 1.2, users: int = 2000, min_len: int = 5, max_len: int = 30, stay: float = 0.7,
                   spread: tuple[float, float, float] = (1.0, 0.5, 0.25), seed: int = 0) -> Catalogue:
    """A catalogue of `items` embeddings and `users` sequences; `zipf=0` gives the uniform twin.

    `spread` is the standard deviation (per dimension, scaled by 1/sqrt(dim)) of top centres,
    sub centres around them, and items around those.
    """
    if items < top_clusters * sub_clusters:
        raise UserError(f"{items} items are fewer than the {top_clusters * sub_clusters} sub-clusters")
    if not 2 <= min_len <= max_len:
        raise UserError("user sequences need 2 <= min_len <= max_len")
    rng = np.random.default_rng(seed)
    scale = 1 / np.sqrt(dim)
    top_sizes = zipf_sizes(items, top_clusters, zipf, rng)
    sub_sizes = np.concatenate([zipf_sizes(max(int(s), sub_clusters), sub_clusters, zipf, rng)
                                for s in top_sizes])
    # clusters smaller than sub_clusters were padded up; trim the excess from the biggest sub-clusters
    excess = sub_sizes.sum() - items
    while excess > 0:
        big = np.argmax(sub_sizes)
        cut = min(excess, sub_sizes[big] - 1)
        sub_sizes[big] -= cut
        excess -= cut
    top_of_sub = np.repeat(np.arange(top_clusters), sub_clusters)
    top_centres = rng.normal(0, spread[0] * scale, (top_clusters, dim))
    sub_centres = top_centres[top_of_sub] + rng.normal(0, spread[1] * scale, (len(sub_sizes), dim))
    sub_of_item = np.repeat(np.arange(len(sub_sizes)), sub_sizes)
    emb = np.empty((items, dim), dtype=np.float32)
    for start in range(0, items, 65536):  # in chunks, so 10^6 x 384 stays within memory
        idx = sub_of_item[start:start + 65536]
        emb[start:start + len(idx)] = sub_centres[idx] + rng.normal(0, spread[2] * scale, (len(idx), dim))
    first_item = np.r_[0, np.cumsum(sub_sizes)[:-1]]
    sequences = _browse(rng, users, sub_sizes, first_item, top_of_sub, top_clusters, min_len, max_len, stay)
    return Catalogue(emb, top_of_sub[sub_of_item], sub_of_item, sequences)


def _browse(rng, users, sub_sizes, first_item, top_of_sub, top_clusters, min_len, max_len, stay):
    """Users' sequences: a Markov walk over sub-clusters, items uniform within a sub-cluster."""
    lengths = rng.integers(min_len, max_len + 1, users)
    prefs = rng.dirichlet(np.full(top_clusters, 0.3), users)  # few favourite top clusters per user
    sub_weight = sub_sizes / np.bincount(top_of_sub, weights=sub_sizes)[top_of_sub]  # within its top
    sequences = {}
    for u in range(users):
        p_sub = prefs[u][top_of_sub] * sub_weight
        p_sub /= p_sub.sum()
        moves = rng.random(lengths[u]) >= stay
        moves[0] = True
        draws = rng.choice(len(sub_sizes), int(moves.sum()), p=p_sub)
        subs = draws[np.cumsum(moves) - 1]  # each step repeats the last drawn sub-cluster
        items = first_item[subs] + (rng.random(lengths[u]) * sub_sizes[subs]).astype(np.int64)
        sequences[u + 1] = items.tolist()
    return sequences
