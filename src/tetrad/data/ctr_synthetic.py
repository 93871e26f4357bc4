"""A synthetic multi-scenario, multi-task impression log that looks like an industrial one.

Every impression has a user (Zipf activity, so users have many impressions for GAUC), an
item (Zipf popularity), a scenario, and 40+ heterogeneous features:

- categorical: user/item ids, user and item attributes and context fields, values
  Zipf-distributed, cardinalities from tens to a million;
- numeric: skewed (log-normal, heavy-tailed counts);
- multi-hot: user interest tags and item tags (short lists).

Labels come from a hidden teacher with feature interactions whose weights differ per
scenario: logit = scenario bias + first-order effects scaled per scenario + user x item
latent dot products (rotated per scenario) + tag overlap + non-linear numeric terms. A
click is Bernoulli(pCTR); a conversion is drawn only after a click, Bernoulli(pCVR), so
pCTCVR = pCTR x pCVR. The true probabilities are stored (`p_click`, `p_ctcvr`), so the
oracle AUC of any split is known.

The log is generated in chunks and written as sharded Parquet (`train/`, `eval/`; eval is
the last `eval_fraction` of impressions in time) plus `schema.json`, so 10M+ rows stream
in bounded memory. `python -m tetrad.data.ctr_synthetic out_dir rows=...` or
`tetrad ranking generate`.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
import pyarrow as pa
from pydantic import Field

from tetrad.core.config import Config, PositiveInt, Seed
from tetrad.core.errors import UserError
from tetrad.core.io import atomic_write_text
from tetrad.data.parquet import ParquetShardWriter

SCHEMA_FILE = "schema.json"


@dataclass
class FeatureSpec:
    name: str
    kind: str  # "categorical" | "numeric" | "multihot"
    cardinality: int = 0  # categorical / multihot: ids lie in [0, cardinality)
    max_len: int = 0  # multihot: longest list


@dataclass
class CTRSchema:
    """What a multi-task CTR dataset holds: its features, scenarios and label columns.

    Every dataset the ranking recipe reads (synthetic, MovieLens framing, AliExpress,
    Ali-CCP) has a `schema.json` of this shape beside its `train/` and `eval/` folders.
    Columns besides the features: `scenario` (int id), `user_id` (for GAUC), `click`,
    `conversion` (0/1) and optionally `p_click`, `p_ctcvr` (true probabilities).
    """

    features: list[FeatureSpec]
    scenarios: list[str]
    has_true_probs: bool = False
    description: str = ""
    extra: dict = field(default_factory=dict)

    def feature(self, name: str) -> FeatureSpec:
        for f in self.features:
            if f.name == name:
                return f
        raise UserError(f"unknown feature '{name}' (the dataset has: {', '.join(f.name for f in self.features)})")

    def save(self, directory: str | os.PathLike) -> Path:
        path = Path(directory) / SCHEMA_FILE
        atomic_write_text(path, json.dumps(asdict(self), indent=1))
        return path

    @classmethod
    def load(cls, directory: str | os.PathLike) -> "CTRSchema":
        path = Path(directory) / SCHEMA_FILE
        if not path.is_file():
            raise UserError(f"no {SCHEMA_FILE} in {directory}: not a tetrad CTR dataset "
                            f"(make one with `tetrad ranking generate` or a loader in tetrad.data.ctr_public)")
        try:
            raw = json.loads(path.read_text())
            return cls(features=[FeatureSpec(**f) for f in raw["features"]], scenarios=list(raw["scenarios"]),
                       has_true_probs=bool(raw.get("has_true_probs", False)),
                       description=raw.get("description", ""), extra=raw.get("extra", {}))
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise UserError(f"{path} is not a valid CTR schema ({type(e).__name__}: {e})") from None


class SyntheticCTRConfig(Config):
    rows: Annotated[int, Field(ge=10)] = 200_000
    users: Annotated[int, Field(ge=2)] = 5_000
    items: Annotated[int, Field(ge=2)] = 20_000
    scenarios: PositiveInt = 3
    eval_fraction: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.2
    rows_per_shard: PositiveInt = 1_000_000
    chunk_rows: PositiveInt = 100_000
    seed: Seed = 0
    latent_dim: PositiveInt = 8
    target_ctr: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.1  # the bias is set so the mean pCTR is near this
    target_cvr: Annotated[float, Field(gt=0.0, lt=1.0)] = 0.15


# (name, cardinality) of the categorical fields; owner says what the value is a function of.
USER_CATEGORICAL = [("user_age", 8), ("user_gender", 3), ("user_city", 400), ("user_level", 10),
                    ("user_device_brand", 60), ("user_occupation", 25), ("user_cluster", 2_000),
                    ("user_income_band", 12)]
ITEM_CATEGORICAL = [("item_category", 150), ("item_brand", 5_000), ("item_shop", 20_000),
                    ("item_city", 400), ("item_price_band", 20), ("item_l1_category", 30),
                    ("item_seller_level", 6), ("item_cluster", 3_000)]
CONTEXT_CATEGORICAL = [("ctx_hour", 24), ("ctx_weekday", 7), ("ctx_position", 50), ("ctx_network", 5),
                       ("ctx_query", 1_000_000), ("ctx_page", 100), ("ctx_os", 4), ("ctx_channel", 40)]
USER_NUMERIC = ["user_orders_30d", "user_clicks_7d", "user_spend_90d", "user_days_active", "user_avg_price"]
ITEM_NUMERIC = ["item_price", "item_sales_30d", "item_reviews", "item_rating", "item_ctr_hist",
                "item_discount", "item_stock"]
CONTEXT_NUMERIC = ["ctx_distance_km", "ctx_session_len"]
TAGS = 300


def synthetic_schema(cfg: SyntheticCTRConfig) -> CTRSchema:
    cat = [("user_id", cfg.users), ("item_id", cfg.items), ("scenario", cfg.scenarios)]
    cat += USER_CATEGORICAL + ITEM_CATEGORICAL + CONTEXT_CATEGORICAL
    features = [FeatureSpec(n, "categorical", cardinality=c) for n, c in cat]
    features += [FeatureSpec(n, "numeric") for n in USER_NUMERIC + ITEM_NUMERIC + CONTEXT_NUMERIC]
    features += [FeatureSpec("user_tags", "multihot", TAGS, 5), FeatureSpec("item_tags", "multihot", TAGS, 4)]
    return CTRSchema(features=features, scenarios=[f"scenario_{s}" for s in range(cfg.scenarios)],
                     has_true_probs=True,
                     description=f"synthetic multi-scenario log: {cfg.rows} rows, seed {cfg.seed}")


def _zipf_sampler(rng: np.random.Generator, n: int, a: float = 1.1):
    """Draw ids in [0, n) with P(rank r) ~ 1 / r^a, ids shuffled so popularity is not id order."""
    weights = 1.0 / np.arange(1, n + 1) ** a
    cdf = np.cumsum(weights / weights.sum())
    perm = rng.permutation(n)

    def draw(size: int) -> np.ndarray:
        return perm[np.minimum(np.searchsorted(cdf, rng.random(size)), n - 1)]

    return draw


class Teacher:
    """The hidden model that gives every impression its true pCTR and pCVR."""

    def __init__(self, cfg: SyntheticCTRConfig, schema: CTRSchema, rng: np.random.Generator):
        s, k = cfg.scenarios, cfg.latent_dim
        self.cat_names = [f.name for f in schema.features if f.kind == "categorical"]
        cap = 200_000  # effects of ids beyond this hash into shared slots: the long tail shares effects
        self.cap = cap
        self.first_order = {n: rng.normal(0, 0.35, min(f.cardinality, cap)).astype(np.float32)
                            for n, f in ((f.name, f) for f in schema.features if f.kind == "categorical")}
        self.scenario_scale = rng.uniform(0.2, 1.6, (s, len(self.cat_names))).astype(np.float32)
        self.user_latent = rng.normal(0, 1, (cfg.users, k)).astype(np.float32)
        self.item_latent = rng.normal(0, 1, (cfg.items, k)).astype(np.float32)
        self.ctx_latent = rng.normal(0, 1, (24, k)).astype(np.float32)
        # one rotation of the user-item interaction per scenario: the same pair scores differently
        self.rotation = np.stack([np.linalg.qr(rng.normal(size=(k, k)))[0] for _ in range(s)]).astype(np.float32)
        self.cvr_latent = rng.normal(0, 1, (k,)).astype(np.float32)
        self.numeric_w = rng.normal(0, 0.3, (s, len(USER_NUMERIC + ITEM_NUMERIC + CONTEXT_NUMERIC))).astype(np.float32)
        self.numeric_stats: tuple[np.ndarray, np.ndarray] | None = None
        self.bias_ctr = np.log(cfg.target_ctr / (1 - cfg.target_ctr)) + rng.normal(0, 0.3, s)
        self.bias_cvr = np.log(cfg.target_cvr / (1 - cfg.target_cvr)) + rng.normal(0, 0.3, s)

    def probabilities(self, cols: dict[str, np.ndarray], numeric: np.ndarray, tag_overlap: np.ndarray):
        scen = cols["scenario"]
        first = np.zeros(len(scen), np.float32)
        for j, n in enumerate(self.cat_names):
            first += self.first_order[n][cols[n] % self.cap] * self.scenario_scale[scen, j]
        u = self.user_latent[cols["user_id"]]
        i = self.item_latent[cols["item_id"]]
        ur = np.einsum("bk,bkl->bl", u, self.rotation[scen])
        inter = (ur * i).sum(1) / np.sqrt(u.shape[1])
        ctx = (self.ctx_latent[cols["ctx_hour"]] * i).sum(1) / np.sqrt(u.shape[1])
        z = np.log1p(np.abs(numeric))
        if self.numeric_stats is None:  # fixed by the first chunk, so the teacher never drifts over the log
            self.numeric_stats = (z.mean(0), z.std(0) + 1e-6)
        z = (z - self.numeric_stats[0]) / self.numeric_stats[1]
        num = (self.numeric_w[scen] * np.tanh(z)).sum(1)
        price_x_income = np.tanh(z[:, len(USER_NUMERIC)]) * (cols["user_income_band"] / 6.0 - 1.0)
        logit_ctr = self.bias_ctr[scen] + 0.6 * first + 1.2 * inter + 0.5 * ctx + num + 0.8 * tag_overlap \
            - 0.6 * price_x_income
        logit_cvr = self.bias_cvr[scen] + 0.4 * first + 0.8 * (i @ self.cvr_latent) / np.sqrt(u.shape[1]) \
            + 0.7 * price_x_income - 0.3 * num
        return _sigmoid(logit_ctr), _sigmoid(logit_cvr)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


class _World:
    """Users, items and their attributes: fixed for the whole log."""

    def __init__(self, cfg: SyntheticCTRConfig, rng: np.random.Generator):
        self.user_draw = _zipf_sampler(rng, cfg.users, 0.9)
        self.item_draw = _zipf_sampler(rng, cfg.items, 1.0)
        self.user_attr = {n: _zipf_sampler(rng, c)(cfg.users) for n, c in USER_CATEGORICAL}
        self.item_attr = {n: _zipf_sampler(rng, c)(cfg.items) for n, c in ITEM_CATEGORICAL}
        self.ctx_draw = {n: _zipf_sampler(rng, c) for n, c in CONTEXT_CATEGORICAL}
        self.user_scale = rng.lognormal(0, 1, (cfg.users, len(USER_NUMERIC))).astype(np.float32)
        self.item_scale = rng.lognormal(1, 1.2, (cfg.items, len(ITEM_NUMERIC))).astype(np.float32)
        self.user_home_scenario = rng.integers(0, cfg.scenarios, cfg.users)
        tag_draw = _zipf_sampler(rng, TAGS, 0.8)
        self.user_tags = tag_draw(cfg.users * 5).reshape(cfg.users, 5)
        self.user_tag_len = rng.integers(1, 6, cfg.users)
        self.item_tags = tag_draw(cfg.items * 4).reshape(cfg.items, 4)
        self.item_tag_len = rng.integers(1, 5, cfg.items)


def _chunk(cfg: SyntheticCTRConfig, world: _World, teacher: Teacher, rng: np.random.Generator,
           start: int, n: int) -> pa.Table:
    users = world.user_draw(n)
    items = world.item_draw(n)
    # users mostly browse their home scenario: scenarios differ in who they see, not only in weights
    scen = np.where(rng.random(n) < 0.6, world.user_home_scenario[users], rng.integers(0, cfg.scenarios, n))
    cols: dict[str, np.ndarray] = {"user_id": users, "item_id": items, "scenario": scen}
    cols.update({k: v[users] for k, v in world.user_attr.items()})
    cols.update({k: v[items] for k, v in world.item_attr.items()})
    cols.update({k: draw(n) for k, draw in world.ctx_draw.items()})
    numeric = np.concatenate([
        world.user_scale[users] * rng.lognormal(0, 0.5, (n, len(USER_NUMERIC))),
        world.item_scale[items] * rng.lognormal(0, 0.5, (n, len(ITEM_NUMERIC))),
        rng.pareto(2.0, (n, len(CONTEXT_NUMERIC))),
    ], axis=1).astype(np.float32)
    ulen, ilen = world.user_tag_len[users], world.item_tag_len[items]
    utags, itags = world.user_tags[users], world.item_tags[items]
    umask = np.arange(5)[None, :] < ulen[:, None]
    imask = np.arange(4)[None, :] < ilen[:, None]
    overlap = ((utags[:, :, None] == itags[:, None, :]) & umask[:, :, None] & imask[:, None, :]).any(2).sum(1)
    p_ctr, p_cvr = teacher.probabilities(cols, numeric, overlap.astype(np.float32))
    click = (rng.random(n) < p_ctr).astype(np.int8)
    conversion = (click.astype(bool) & (rng.random(n) < p_cvr)).astype(np.int8)
    arrays = {"ts": pa.array(np.arange(start, start + n, dtype=np.int64))}
    arrays.update({k: pa.array(v.astype(np.int64)) for k, v in cols.items()})
    for j, name in enumerate(USER_NUMERIC + ITEM_NUMERIC + CONTEXT_NUMERIC):
        arrays[name] = pa.array(numeric[:, j])
    arrays["user_tags"] = _list_array(utags, ulen)
    arrays["item_tags"] = _list_array(itags, ilen)
    arrays.update({"click": pa.array(click), "conversion": pa.array(conversion),
                   "p_click": pa.array(p_ctr), "p_ctcvr": pa.array(p_ctr * p_cvr)})
    return pa.table(arrays)


def _list_array(values: np.ndarray, lengths: np.ndarray) -> pa.ListArray:
    mask = np.arange(values.shape[1])[None, :] < lengths[:, None]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values[mask].astype(np.int64)))


def generate(out_dir: str | os.PathLike, cfg: SyntheticCTRConfig | None = None) -> CTRSchema:
    """Write `out_dir/{train,eval}/part-*.parquet` and `out_dir/schema.json`; return the schema."""
    cfg = cfg or SyntheticCTRConfig()
    out = Path(out_dir)
    rng = np.random.default_rng(cfg.seed)
    schema = synthetic_schema(cfg)
    world = _World(cfg, rng)
    teacher = Teacher(cfg, schema, rng)
    n_train = int(round(cfg.rows * (1 - cfg.eval_fraction)))
    writers = {"train": ParquetShardWriter(out / "train", cfg.rows_per_shard),
               "eval": ParquetShardWriter(out / "eval", cfg.rows_per_shard)}
    for start in range(0, cfg.rows, cfg.chunk_rows):
        table = _chunk(cfg, world, teacher, rng, start, min(cfg.chunk_rows, cfg.rows - start))
        cut = min(max(n_train - start, 0), table.num_rows)  # rows before n_train in time go to train
        if cut:
            writers["train"].write(table.slice(0, cut))
        if cut < table.num_rows:
            writers["eval"].write(table.slice(cut))
    for w in writers.values():
        w.close()
    schema.extra = {"train_rows": n_train, "eval_rows": cfg.rows - n_train, "generator": cfg.model_dump()}
    schema.save(out)
    return schema


if __name__ == "__main__":
    import sys

    from tetrad.core.config import load_config

    if len(sys.argv) < 2:
        sys.exit("usage: python -m tetrad.data.ctr_synthetic OUT_DIR [key=value ...]")
    generate(sys.argv[1], load_config(SyntheticCTRConfig, None, sys.argv[2:]))
