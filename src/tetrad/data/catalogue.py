"""Synthetic item catalogues with users, long-tailed or uniform, for the semantic-ID study.

Items sit in a two-level hierarchy of clusters in embedding space: `top_clusters` centres
drawn around the origin, `sub_clusters` centres around each, items around their sub-cluster
centre. In the long-tailed catalogue the cluster sizes at both levels follow Zipf's law
(size of the r-th cluster proportional to r^-zipf); its uniform twin (`zipf=0`) has the same
geometry with equal sizes. Users browse the hierarchy: each has a preferred top cluster set
(Dirichlet weights), and each next item stays in the current sub-cluster with probability
`stay`, else moves to a new sub-cluster drawn from the user's preferences and the sizes, so
history predicts the next item's region of the space.

Within the sub-cluster the item is uniform by default, so nothing below the sub-cluster can
be predicted and the codes under it carry no signal. Two knobs make those fine codes matter,
both tied to where an item sits inside its sub-cluster (its offset from the centre), so that
codes which encode that position can carry them:

- `item_zipf`: popularity within the sub-cluster. Items are ranked by their offset's
  projection on one random direction; the r-th is drawn with weight r^-item_zipf.
- `user_pull`: a user-specific taste. Each user has a random mix of `TASTE_DIRECTIONS`
  directions; an item's weight is multiplied by exp(user_pull * s), s ~ N(0, 1) the
  projection of its standardised offset on the user's mix, so past items tell which part of
  a sub-cluster a user picks from.

With both at 0 the catalogue is exactly the one made before they existed (same draws).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tetrad.core.errors import UserError


TASTE_DIRECTIONS = 8  # directions a user's taste mixes (few, so that users overlap and the taste is learnable)


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
                   spread: tuple[float, float, float] = (1.0, 0.5, 0.25), item_zipf: float = 0.0,
                   user_pull: float = 0.0, seed: int = 0) -> Catalogue:
    """A catalogue of `items` embeddings and `users` sequences; `zipf=0` gives the uniform twin.

    `spread` is the standard deviation (per dimension, scaled by 1/sqrt(dim)) of top centres,
    sub centres around them, and items around those. `item_zipf` and `user_pull` (module
    docstring) make the item within a sub-cluster depend on its position there.
    """
    if item_zipf < 0 or user_pull < 0:
        raise UserError("item_zipf and user_pull must be non-negative")
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
    fine = None
    if item_zipf > 0 or user_pull > 0:
        # directions drawn after the embeddings, so the geometry matches the catalogue without them
        dirs = rng.normal(size=(dim, 1 + TASTE_DIRECTIONS))
        dirs /= np.linalg.norm(dirs, axis=0)
        proj = np.empty((items, 1 + TASTE_DIRECTIONS))
        for start in range(0, items, 65536):
            end = min(start + 65536, items)
            offset = emb[start:end] - sub_centres[sub_of_item[start:end]]
            proj[start:end] = offset @ dirs / (spread[2] * scale)  # ~ N(0, 1) per direction
        order = np.lexsort((-proj[:, 0], sub_of_item))  # by sub-cluster, then by popularity projection
        rank = np.empty(items, dtype=np.int64)
        rank[order] = np.arange(items) - first_item[sub_of_item[order]] + 1
        fine = (-item_zipf * np.log(rank), user_pull * proj[:, 1:])
    sequences = _browse(rng, users, sub_sizes, first_item, top_of_sub, top_clusters, min_len, max_len, stay, fine)
    return Catalogue(emb, top_of_sub[sub_of_item], sub_of_item, sequences)


def _browse(rng, users, sub_sizes, first_item, top_of_sub, top_clusters, min_len, max_len, stay, fine=None):
    """Users' sequences: a Markov walk over sub-clusters, items uniform within a sub-cluster, or
    with `fine` = (popularity log-weight per item, items x TASTE_DIRECTIONS taste scores scaled
    by user_pull) drawn from their softmax with a per-user mix of the taste scores."""
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
        if fine is None:
            items = first_item[subs] + (rng.random(lengths[u]) * sub_sizes[subs]).astype(np.int64)
        else:
            popularity, taste = fine
            mix = rng.normal(size=taste.shape[1]) / np.sqrt(taste.shape[1])  # unit variance of taste @ mix
            items = np.empty(lengths[u], dtype=np.int64)
            for sub in np.unique(subs):
                at = np.flatnonzero(subs == sub)
                idx = slice(first_item[sub], first_item[sub] + sub_sizes[sub])
                logit = popularity[idx] + taste[idx] @ mix
                p = np.exp(logit - logit.max())
                items[at] = first_item[sub] + rng.choice(sub_sizes[sub], len(at), p=p / p.sum())
        sequences[u + 1] = items.tolist()
    return sequences
