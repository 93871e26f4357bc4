"""Public data in the multi-task CTR layout the ranking recipe reads (`schema.json`,
`train/`, `eval/` Parquet; see `tetrad.data.ctr_synthetic.CTRSchema`).

- `movielens_multitask`: MovieLens-100k framed as a multi-task log. Impressions are every
  rated movie plus `negatives` sampled unrated movies per rating (shown to the same user
  at the same time); click = the movie was rated; conversion = rated >= 4 (so conversion
  implies click, as in a funnel); scenario = the movie's release era (before 1980,
  1980-1994, 1995 on), an item attribute whose audiences differ. Split by time: the last
  20% of impressions (by timestamp) are eval. No true probabilities (the oracle is unknown).
- `aliexpress_to_ctr`: the AliExpress dataset as distributed (one CSV per split and
  country, columns `search_id, categorical_1..16, numerical_1..63, click, conversion`);
  scenario = the country of the file (the NL/ES/FR/US splits).
- `aliccp_to_ctr`: Ali-CCP in the widely used preprocessed CSV layout (ESMM/PLE repos):
  columns `click, purchase` then categorical fields named by their Ali-CCP field ids
  (`101, 121, ..., 301`) and numeric fields `D109_14, D110_14, D127_14, D150_14,
  D508, D509, D702, D853`; scenario = field 301 (the "scenario" field of Ali-CCP's
  context features); user = field 101 (user id).

Users with the data point these at their copies and train with `data.source=dir`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from tetrad.core.errors import UserError
from tetrad.data.ctr_synthetic import CTRSchema, FeatureSpec
from tetrad.data.parquet import ParquetShardWriter


def _write_split(out: Path, frame: pd.DataFrame, name: str, rows_per_shard: int) -> None:
    with ParquetShardWriter(out / name, rows_per_shard) as w:
        w.write(pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False))


def _check_labels(frame: pd.DataFrame, source: str, click: str = "click", conversion: str = "conversion") -> None:
    for col in (click, conversion):
        vals = pd.to_numeric(frame[col], errors="coerce")
        if vals.isna().any() or not vals.isin((0, 1)).all():
            raise UserError(f"{source}: label column '{col}' holds values other than 0/1")


def movielens_multitask(out_dir: str | os.PathLike, negatives: int = 2, seed: int = 0,
                        directory: str | os.PathLike | None = None, eval_fraction: float = 0.2) -> CTRSchema:
    from tetrad.data.movielens import load_movielens_100k

    ml = load_movielens_100k(directory)
    rng = np.random.default_rng(seed)
    r = ml.ratings
    n_items = int(ml.items["item_id"].max())
    # negatives: unrated movies, same user and timestamp as a rating (resampled if rated)
    rated = set(zip(r["user_id"].to_numpy().tolist(), r["item_id"].to_numpy().tolist()))
    rep = np.repeat(np.arange(len(r)), negatives)
    neg_items = rng.integers(1, n_items + 1, len(rep))
    for _ in range(10):
        clash = np.array([(u, i) in rated for u, i in zip(r["user_id"].to_numpy()[rep], neg_items)])
        if not clash.any():
            break
        neg_items[clash] = rng.integers(1, n_items + 1, int(clash.sum()))
    keep = ~np.array([(u, i) in rated for u, i in zip(r["user_id"].to_numpy()[rep], neg_items)])
    imp = pd.concat([
        pd.DataFrame({"user_id": r["user_id"], "item_id": r["item_id"], "ts": r["timestamp"],
                      "click": 1, "conversion": (r["rating"] >= 4).astype(int)}),
        pd.DataFrame({"user_id": r["user_id"].to_numpy()[rep][keep], "item_id": neg_items[keep],
                      "ts": r["timestamp"].to_numpy()[rep][keep], "click": 0, "conversion": 0}),
    ], ignore_index=True)
    users = ml.users.set_index("user_id")
    items = ml.items.set_index("item_id")
    genres = sorted({g for gs in items["genres"].dropna() for g in gs})
    genre_id = {g: i for i, g in enumerate(genres)}
    year = items["year"].astype("float64").fillna(1995.0)
    imp["user_age"] = users["age"].reindex(imp["user_id"]).to_numpy() // 10
    imp["user_gender"] = (users["gender"].reindex(imp["user_id"]).to_numpy() == "M").astype(int)
    occ = {o: i for i, o in enumerate(sorted(users["occupation"].unique()))}
    imp["user_occupation"] = users["occupation"].reindex(imp["user_id"]).map(occ).to_numpy()
    imp["user_zip_prefix"] = users["zip_code"].reindex(imp["user_id"]).str[:1].map(
        lambda z: int(z) if z.isdigit() else 10).to_numpy()
    item_year = year.reindex(imp["item_id"]).to_numpy()
    imp["scenario"] = np.digitize(item_year, [1980, 1995])
    imp["item_decade"] = np.clip((item_year - 1900) // 10, 0, 12).astype(int)
    imp["item_year"] = item_year - 1900
    imp["item_genres"] = items["genres"].reindex(imp["item_id"]).map(
        lambda gs: [genre_id[g] for g in gs] if isinstance(gs, list) else []).to_numpy()
    imp["hour"] = (imp["ts"] // 3600) % 24
    imp = imp.sort_values(["ts", "user_id", "item_id"], kind="stable").reset_index(drop=True)
    cut = int(len(imp) * (1 - eval_fraction))
    train, test = imp.iloc[:cut].sample(frac=1.0, random_state=seed), imp.iloc[cut:]
    out = Path(out_dir)
    for name, frame in (("train", train), ("eval", test)):
        _write_split(out, frame, name, 1_000_000)
    features = [FeatureSpec("user_id", "categorical", int(users.index.max()) + 1),
                FeatureSpec("item_id", "categorical", n_items + 1),
                FeatureSpec("scenario", "categorical", 3),
                FeatureSpec("user_age", "categorical", 10), FeatureSpec("user_gender", "categorical", 2),
                FeatureSpec("user_occupation", "categorical", len(occ)),
                FeatureSpec("user_zip_prefix", "categorical", 11), FeatureSpec("item_decade", "categorical", 13),
                FeatureSpec("hour", "categorical", 24), FeatureSpec("item_year", "numeric"),
                FeatureSpec("item_genres", "multihot", len(genres), 6)]
    schema = CTRSchema(features, ["before_1980", "1980_1994", "1995_on"], has_true_probs=False,
                       description=f"MovieLens-100k as a multi-task log: {negatives} negatives per rating, "
                                   f"click = rated, conversion = rating >= 4, scenario = release era",
                       extra={"train_rows": len(train), "eval_rows": len(test)})
    schema.save(out)
    return schema


def _read_csvs(paths: list[Path], source: str) -> list[pd.DataFrame]:
    frames = []
    for p in paths:
        if not p.is_file():
            raise UserError(f"{source} file not found: {p}")
        try:
            df = pd.read_csv(p)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
            raise UserError(f"{source} file {p} cannot be parsed: {str(e).splitlines()[0]}") from None
        if df.empty:
            raise UserError(f"{source} file {p} has no rows")
        frames.append(df)
    return frames


def _tabular_to_ctr(out: Path, splits: dict[str, pd.DataFrame], cat_cols: list[str], num_cols: list[str],
                    scenarios: list[str], user_col: str, description: str, rows_per_shard: int) -> CTRSchema:
    """Shared tail of the public loaders: hash-free integer categoricals, finite numerics."""
    cards = {c: int(max(int(f[c].max()) for f in splits.values())) + 1 for c in cat_cols}
    for name, f in splits.items():
        bad = [c for c in num_cols if not np.isfinite(f[c].to_numpy(np.float64)).all()]
        if bad:
            raise UserError(f"{description}: numeric column '{bad[0]}' holds NaN or inf in the {name} split")
        neg = [c for c in cat_cols if (f[c] < 0).any()]
        if neg:
            raise UserError(f"{description}: categorical column '{neg[0]}' holds a negative id")
        f = f.copy()
        f["user_id"] = f[user_col].astype("int64")
        for c in num_cols:
            f[c] = f[c].astype("float32")
        _write_split(out, f, name, rows_per_shard)
    features = [FeatureSpec(c, "categorical", cards[c]) for c in cat_cols] + \
        [FeatureSpec(c, "numeric") for c in num_cols]
    schema = CTRSchema(features, scenarios, has_true_probs=False, description=description,
                       extra={"train_rows": len(splits["train"]), "eval_rows": len(splits["eval"])})
    schema.save(out)
    return schema


def aliexpress_to_ctr(data_dir: str | os.PathLike, out_dir: str | os.PathLike,
                      countries: tuple[str, ...] = ("NL", "ES", "FR", "US"), rows_per_shard: int = 1_000_000
                      ) -> CTRSchema:
    """AliExpress_<CC>/{train,test}.csv for each country -> one multi-scenario dataset."""
    d = Path(data_dir)
    splits: dict[str, list[pd.DataFrame]] = {"train": [], "eval": []}
    for s, cc in enumerate(countries):
        for split, fname in (("train", "train.csv"), ("eval", "test.csv")):
            (frame,) = _read_csvs([d / f"AliExpress_{cc}" / fname], "AliExpress")
            missing = [c for c in ("search_id", "click", "conversion", "categorical_1", "numerical_1")
                       if c not in frame.columns]
            if missing:
                raise UserError(f"AliExpress file {d / f'AliExpress_{cc}' / fname} has no column '{missing[0]}'")
            _check_labels(frame, "AliExpress")
            frame["scenario"] = s
            splits[split].append(frame)
    merged = {k: pd.concat(v, ignore_index=True) for k, v in splits.items()}
    cat_cols = [c for c in merged["train"].columns if c.startswith("categorical_")]
    num_cols = [c for c in merged["train"].columns if c.startswith("numerical_")]
    for f in merged.values():
        if (f["conversion"] > f["click"]).any():
            raise UserError("AliExpress: a conversion without a click")
    # AliExpress has no user id; a search session groups impressions, so GAUC is by search_id
    return _tabular_to_ctr(Path(out_dir), merged, cat_cols, num_cols, list(countries), "search_id",
                           f"AliExpress ({', '.join(countries)}); GAUC groups by search_id", rows_per_shard)


ALICCP_CATEGORICAL = ["101", "121", "122", "124", "125", "126", "127", "128", "129", "205", "206", "207",
                      "210", "216", "508", "509", "702", "853", "301"]
ALICCP_NUMERIC = ["D109_14", "D110_14", "D127_14", "D150_14", "D508", "D509", "D702", "D853"]


def aliccp_to_ctr(train_csv: str | os.PathLike, test_csv: str | os.PathLike, out_dir: str | os.PathLike,
                  rows_per_shard: int = 1_000_000) -> CTRSchema:
    frames = dict(zip(("train", "eval"), _read_csvs([Path(train_csv), Path(test_csv)], "Ali-CCP")))
    for name, f in list(frames.items()):
        missing = [c for c in ["click", "purchase", *ALICCP_CATEGORICAL, *ALICCP_NUMERIC] if c not in f.columns]
        if missing:
            raise UserError(f"Ali-CCP {name} file has no column '{missing[0]}'")
        _check_labels(f, "Ali-CCP", "click", "purchase")
        frames[name] = f = f.rename(columns={"purchase": "conversion"})
        if (f["conversion"] > f["click"]).any():
            raise UserError("Ali-CCP: a purchase without a click")
    # scenario: field 301 takes values 1..3 in the public files; ids are re-indexed from 0
    values = sorted(set().union(*(set(f["301"].unique()) for f in frames.values())))
    index = {v: i for i, v in enumerate(values)}
    for f in frames.values():
        f["scenario"] = f["301"].map(index).astype("int64")
    return _tabular_to_ctr(Path(out_dir), frames, ALICCP_CATEGORICAL, ALICCP_NUMERIC,
                           [f"301={v}" for v in values], "101", "Ali-CCP; scenario = field 301", rows_per_shard)
