"""Item embeddings and user sequences for the semantic-ID recipes, and the leave-one-out split.

Sources: `movielens` (MovieLens-100k, item text -> all-MiniLM-L6-v2), `long_tail` and `uniform`
(the synthetic catalogue and its twin, `tetrad.data.catalogue`), `amazon` (a folder in the
P5 layout, item text -> MiniLM, or `embeddings` given), `embeddings` (a `.npy`/Parquet file,
with sequences from a `sequential_data.txt`-style file of 0-based item indices, needed only
to train a retriever). Items are indexed 0..n-1 everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, model_validator

from tetrad.core.config import Config, NonNegativeFloat, PositiveInt, Share
from tetrad.core.errors import UserError


class DataConfig(Config):
    source: Literal["movielens", "long_tail", "uniform", "amazon", "embeddings"] = "movielens"
    path: str = ""  # amazon: the category folder; embeddings: the .npy / Parquet file
    embeddings: str = ""  # amazon: precomputed item embeddings instead of MiniLM on item text
    sequences: str = ""  # embeddings: "user item item ..." lines of 0-based item indices
    model_dir: str = ""  # text encoder folder; empty: the bundled all-MiniLM-L6-v2
    # synthetic catalogue (long_tail; uniform is the same with zipf = 0)
    items: PositiveInt = 20_000
    dim: PositiveInt = 64
    top_clusters: PositiveInt = 32
    sub_clusters: PositiveInt = 16
    zipf: NonNegativeFloat = 1.2
    users: PositiveInt = 2000
    min_len: Annotated[int, Field(ge=3)] = 5  # leave-one-out needs three interactions
    max_len: PositiveInt = 30
    stay: Share = 0.7
    item_zipf: NonNegativeFloat = 0.0  # popularity within a sub-cluster (0: uniform; makes the fine codes matter)
    user_pull: NonNegativeFloat = 0.0  # strength of each user's taste within a sub-cluster (0: none)

    @model_validator(mode="after")
    def _lengths(self):
        if self.min_len > self.max_len:
            raise ValueError(f"min_len ({self.min_len}) is above max_len ({self.max_len})")
        return self


@dataclass
class ItemData:
    embeddings: np.ndarray  # items x dim
    sequences: dict[int, list[int]]  # user -> 0-based item indices in time order (may be empty)
    sub_cluster: np.ndarray | None = None  # items: the synthetic catalogue's sub-cluster (the heuristic's groups)


def _read_index_sequences(path: str, n_items: int) -> dict[int, list[int]]:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"sequence file not found: {p}")
    sequences = {}
    for lineno, line in enumerate(p.read_text().splitlines(), 1):
        fields = line.split()
        if fields:
            try:
                sequences[int(fields[0])] = [int(f) for f in fields[1:]]
            except ValueError:
                raise UserError(f"{p}:{lineno}: sequence lines hold integers only") from None
    return sequences


def check_sequences(sequences: dict[int, list[int]], n_items: int, min_len: int = 3) -> None:
    """Every item index known, every user with at least `min_len` interactions (leave-one-out needs 3)."""
    if not sequences:
        raise UserError("no user sequences")
    for user, items in sequences.items():
        if len(items) < min_len:
            raise UserError(f"user {user} has {len(items)} interactions; leave-one-out needs at least {min_len}")
        bad = [i for i in items if not 0 <= i < n_items]
        if bad:
            raise UserError(f"user {user} has unknown item id {bad[0]} (the catalogue has {n_items} items)")


def load_item_data(cfg: DataConfig, seed: int, cache_dir: str | Path | None = None) -> ItemData:
    from tetrad.semantic_ids.embeddings import embed_texts, load_embedding_file, movielens_texts

    model_dir = cfg.model_dir or None
    if cfg.source == "movielens":
        from tetrad.data.movielens import load_movielens_100k, user_sequences

        ml = load_movielens_100k(cfg.path or None)
        items = ml.items.sort_values("item_id")
        if not (items["item_id"].to_numpy() == np.arange(1, len(items) + 1)).all():
            raise UserError("MovieLens item ids must run 1..n")
        emb = embed_texts(movielens_texts(items), model_dir, cache_dir=cache_dir)
        seqs = {u: [i - 1 for i in s] for u, s in user_sequences(ml.ratings).items()}
        return ItemData(emb, seqs)
    if cfg.source in ("long_tail", "uniform"):
        from tetrad.data.catalogue import make_catalogue

        cat = make_catalogue(items=cfg.items, dim=cfg.dim, top_clusters=cfg.top_clusters,
                             sub_clusters=cfg.sub_clusters, zipf=cfg.zipf if cfg.source == "long_tail" else 0.0,
                             users=cfg.users, min_len=cfg.min_len, max_len=cfg.max_len, stay=cfg.stay,
                             item_zipf=cfg.item_zipf, user_pull=cfg.user_pull, seed=seed)
        return ItemData(cat.embeddings, cat.sequences, cat.sub_cluster)
    if cfg.source == "amazon":
        from tetrad.data.amazon import load_amazon

        if not cfg.path:
            raise UserError("data.path must name the Amazon category folder")
        ds = load_amazon(cfg.path)
        if cfg.embeddings:
            emb = load_embedding_file(cfg.embeddings)
            if len(emb) != len(ds.item_ids):
                raise UserError(f"{cfg.embeddings} has {len(emb)} rows but the dataset has {len(ds.item_ids)} items")
        else:
            if not any(ds.item_text):
                raise UserError(f"{cfg.path} has no item metadata to embed: add meta.json or set data.embeddings")
            emb = embed_texts([t or "unknown item" for t in ds.item_text], model_dir, cache_dir=cache_dir)
        return ItemData(emb, ds.sequences)
    if not cfg.path:
        raise UserError("data.path must name the embedding file (.npy or .parquet)")
    emb = load_embedding_file(cfg.path)
    seqs = _read_index_sequences(cfg.sequences, len(emb)) if cfg.sequences else {}
    return ItemData(emb, seqs)


@dataclass
class Split:
    train: list[list[int]]  # per user: items[:-2]
    valid: tuple[list[list[int]], list[int]]  # (history items[:-2], target items[-2])
    test: tuple[list[list[int]], list[int]]  # (history items[:-1], target items[-1])


def leave_one_out(sequences: dict[int, list[int]], n_items: int) -> Split:
    check_sequences(sequences, n_items)
    users = sorted(sequences)
    seqs = [sequences[u] for u in users]
    return Split([s[:-2] for s in seqs], ([s[:-2] for s in seqs], [s[-2] for s in seqs]),
                 ([s[:-1] for s in seqs], [s[-1] for s in seqs]))


def training_pairs(train: list[list[int]], max_history: int) -> tuple[list[list[int]], list[int]]:
    """Every (last `max_history` items before position i, item i) pair of the training sequences."""
    hist, target = [], []
    for s in train:
        for i in range(1, len(s)):
            hist.append(s[max(0, i - max_history):i])
            target.append(s[i])
    if not target:
        raise UserError("no training pairs: users need at least 4 interactions for a history and a target")
    return hist, target
