"""Streaming a CTR dataset (`schema.json` + `train/` + `eval/` Parquet) into model batches.

A `Batch` holds plain tensors: categorical ids (hashed into each feature's bucket count by
the front end), numerics, padded multi-hot ids (0 = padding, ids shifted by one), the
scenario, the user (for GAUC) and the labels. Batches are cut to an exact size from the
stream of Parquet record batches, so memory stays bounded whatever the dataset size.
Bad data (schema mismatch, NaN/inf numerics, non-0/1 labels, unknown scenario ids, empty
shards) raises `UserError` with one line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch

from tetrad.core.errors import UserError
from tetrad.data.ctr_synthetic import CTRSchema, FeatureSpec
from tetrad.data.parquet import open_dataset

LABELS = ("click", "conversion")
TRUE_PROBS = ("p_click", "p_ctcvr", "p_click_additive", "p_ctcvr_additive")  # oracle, additive oracle


@dataclass
class Batch:
    categorical: torch.Tensor  # [B, n_cat] int64
    numeric: torch.Tensor  # [B, n_num] float32
    multihot: list[torch.Tensor]  # one [B, max_len] int64 per multi-hot feature, 0 = padding
    scenario: torch.Tensor  # [B] int64
    user: torch.Tensor  # [B] int64
    click: torch.Tensor  # [B] float32
    conversion: torch.Tensor  # [B] float32, 0 unless clicked
    p_click: torch.Tensor | None = None
    p_ctcvr: torch.Tensor | None = None
    p_click_additive: torch.Tensor | None = None  # the teacher without its interaction terms
    p_ctcvr_additive: torch.Tensor | None = None

    def __len__(self) -> int:
        return len(self.scenario)

    def slice(self, s: slice) -> "Batch":
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = [t[s] for t in v] if isinstance(v, list) else (None if v is None else v[s])
        return Batch(**out)

    def inputs(self) -> tuple:
        """The model's positional inputs."""
        return self.categorical, self.numeric, self.multihot, self.scenario


@dataclass
class FeatureSet:
    """The features a run uses, split by kind in the order the model sees them."""

    categorical: list[FeatureSpec]
    numeric: list[FeatureSpec]
    multihot: list[FeatureSpec]
    n_scenarios: int
    main_scenario: int = 0  # stored id of the main scenario; batches swap it with id 0

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.categorical + self.numeric + self.multihot]

    @property
    def n_features(self) -> int:
        return len(self.categorical) + len(self.numeric) + len(self.multihot)


def select_features(schema: CTRSchema, names: Sequence[str] = (), exclude: Sequence[str] = (),
                    main_scenario: str = "") -> FeatureSet:
    """The schema's features (all, or `names`), minus `exclude`; unknown names are a `UserError`.

    `main_scenario` (a name from schema.json; default: the first) is the one whose heads carry
    no adapter: batches give it id 0.
    """
    if main_scenario and main_scenario not in schema.scenarios:
        raise UserError(f"unknown scenario '{main_scenario}' (the dataset has: {', '.join(schema.scenarios)})")
    main = schema.scenarios.index(main_scenario) if main_scenario else 0
    chosen = [schema.feature(n) for n in names] if names else list(schema.features)
    for n in exclude:
        schema.feature(n)
    chosen = [f for f in chosen if f.name not in set(exclude)]
    if not chosen:
        raise UserError("no features left to train on")
    bad = [f for f in chosen if f.kind not in ("categorical", "numeric", "multihot")]
    if bad:
        raise UserError(f"feature '{bad[0].name}' has unknown kind '{bad[0].kind}'")
    return FeatureSet([f for f in chosen if f.kind == "categorical"], [f for f in chosen if f.kind == "numeric"],
                      [f for f in chosen if f.kind == "multihot"], len(schema.scenarios), main)


def check_dataset(path: str | os.PathLike, features: FeatureSet, with_probs: bool = False) -> None:
    """Fail early, with one line, when the Parquet files do not match the schema and config."""
    ds = open_dataset(path)
    files = sorted(Path(path).glob("*.parquet")) if Path(path).is_dir() else [Path(path)]
    for f in files:
        if pq.ParquetFile(f).metadata.num_rows == 0:
            raise UserError(f"Parquet shard {f} is empty")
    needed = features.names + ["scenario", "user_id", *LABELS] + (list(TRUE_PROBS) if with_probs else [])
    missing = [c for c in needed if c not in ds.schema.names]
    if missing:
        raise UserError(f"schema mismatch: Parquet data {path} has no column '{missing[0]}' "
                        f"that the config or schema.json names")
    for f in features.multihot:
        kind = ds.schema.field(f.name).type
        if not (pa.types.is_list(kind) or pa.types.is_large_list(kind)):
            raise UserError(f"schema mismatch: multi-hot feature '{f.name}' is not a list column in {path}")


def iter_batches(path: str | os.PathLike, features: FeatureSet, batch_size: int, *,
                 drop_last: bool = True, with_probs: bool = False, skip: int = 0,
                 skip_rows: int = 0) -> Iterator[Batch]:
    """Exact-size batches streamed in file order; the first `skip_rows` rows, then `skip` batches,
    are passed over without decoding."""
    columns = list(dict.fromkeys(features.names + ["scenario", "user_id", *LABELS]
                                 + (list(TRUE_PROBS) if with_probs else [])))
    ds = open_dataset(path)
    pending: list[pa.RecordBatch] = []
    rows = 0
    index = 0
    # one file and a few record batches read ahead: memory stays bounded by the shard size
    for rb in ds.to_batches(columns=columns, batch_size=max(batch_size, 8192), fragment_readahead=1,
                            batch_readahead=4):
        if skip_rows:
            dropped = min(skip_rows, rb.num_rows)
            rb, skip_rows = rb.slice(dropped), skip_rows - dropped
        if not rb.num_rows:
            continue
        pending.append(rb)
        rows += rb.num_rows
        while rows >= batch_size:
            table = pa.Table.from_batches(pending)
            head, rest = table.slice(0, batch_size), table.slice(batch_size)
            pending, rows = rest.to_batches(), rest.num_rows
            if index >= skip:
                yield to_batch(head, features, with_probs)
            index += 1
    if rows and not drop_last and index >= skip:
        yield to_batch(pa.Table.from_batches(pending), features, with_probs)


def to_batch(table: pa.Table, features: FeatureSet, with_probs: bool = False) -> Batch:
    n = table.num_rows

    def ints(name: str) -> np.ndarray:
        col = table.column(name)
        if col.null_count:
            raise UserError(f"column '{name}' has missing values")
        return col.to_numpy().astype(np.int64)

    cat = np.stack([ints(f.name) for f in features.categorical], 1) if features.categorical \
        else np.zeros((n, 0), np.int64)
    if (cat < 0).any():
        raise UserError(f"categorical feature '{features.categorical[int(np.where(cat < 0)[1][0])].name}' "
                        f"has a negative id")
    if features.numeric:
        num = np.stack([table.column(f.name).to_numpy(zero_copy_only=False).astype(np.float32)
                        for f in features.numeric], 1)
        bad = ~np.isfinite(num)
        if bad.any():
            raise UserError(f"numeric feature '{features.numeric[int(np.where(bad)[1][0])].name}' "
                            f"holds NaN or inf")
    else:
        num = np.zeros((n, 0), np.float32)
    multihot = [torch.from_numpy(_pad_lists(table.column(f.name), f)) for f in features.multihot]
    scenario = ints("scenario")
    if scenario.min() < 0 or scenario.max() >= features.n_scenarios:
        bad = int(scenario.max() if scenario.max() >= features.n_scenarios else scenario.min())
        raise UserError(f"scenario id {bad} "
                        f"is not one of the {features.n_scenarios} scenarios in schema.json")
    if features.main_scenario:
        swap = np.arange(features.n_scenarios)
        swap[[0, features.main_scenario]] = swap[[features.main_scenario, 0]]
        scenario = swap[scenario]
    labels = {}
    for name in LABELS:
        y = table.column(name).to_numpy(zero_copy_only=False).astype(np.float32)
        if not np.isin(y, (0.0, 1.0)).all():
            raise UserError(f"label column '{name}' holds values other than 0/1")
        labels[name] = torch.from_numpy(y)
    if (labels["conversion"] > labels["click"]).any():
        raise UserError("a conversion without a click: 'conversion' must be 0 where 'click' is 0")
    probs = {p: torch.from_numpy(table.column(p).to_numpy(zero_copy_only=False).astype(np.float32))
             for p in TRUE_PROBS} if with_probs else {}
    return Batch(torch.from_numpy(cat), torch.from_numpy(num), multihot, torch.from_numpy(scenario),
                 torch.from_numpy(ints("user_id")), labels["click"], labels["conversion"], **probs)


def _pad_lists(col: pa.ChunkedArray, spec: FeatureSpec) -> np.ndarray:
    """[B, max_len] ids + 1, 0 where the list is shorter (longer lists are truncated)."""
    arr = col.combine_chunks()
    n = len(arr)
    if arr.null_count:
        arr = pc.fill_null(arr, pa.scalar([], arr.type))
    offsets = arr.offsets.to_numpy()
    offsets = offsets - offsets[0]
    values = pc.list_flatten(arr).to_numpy(zero_copy_only=False).astype(np.int64)
    lengths = np.diff(offsets)
    out = np.zeros((n, spec.max_len), np.int64)
    pos = np.arange(len(values)) - np.repeat(offsets[:-1], lengths)
    keep = pos < spec.max_len
    out[np.repeat(np.arange(n), lengths)[keep], pos[keep]] = values[keep] + 1
    return out
