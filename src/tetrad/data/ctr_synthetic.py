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
from tetrad.core.metrics import auc
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


# The teacher's explicit crosses: (features crossed, scale on the CTR logit). Each table is a pure
# interaction (centred along every axis, so every one-way marginal is zero): a model that adds up
# per-feature effects cannot represent any part of it.
CTR_CROSSES: list[tuple[tuple[str, ...], float]] = [
    (("scenario", "ctx_hour", "item_l1_category"), 0.6),
    (("scenario", "ctx_channel", "item_category"), 0.5),
    (("user_age", "user_gender", "item_l1_category"), 0.5),
    (("user_device_brand", "ctx_os", "item_price_band"), 0.4),
    (("scenario", "user_level", "item_seller_level", "ctx_weekday"), 0.4),
]
CVR_CROSSES: list[tuple[tuple[str, ...], float]] = [
    (("scenario", "user_income_band", "item_price_band"), 0.5),
]
# What the user and item latents are made of: (attribute, weight); the rest of the unit variance
# is per-id noise (weights² + noise² = 1), so latents are mostly learnable from attributes.
USER_LATENT = [("user_cluster", 0.65), ("user_city", 0.45), ("user_age", 0.45)]
ITEM_LATENT = [("item_category", 0.6), ("item_brand", 0.5), ("item_price_band", 0.45)]


def pure_interaction(table: np.ndarray) -> np.ndarray:
    """`table` centred along each axis in turn (every one-way marginal, under uniform weights, is
    then zero), scaled to unit standard deviation."""
    for axis in range(table.ndim):
        table = table - table.mean(axis=axis, keepdims=True)
    return (table / table.std()).astype(np.float32)


def attribute_latent(attrs: dict[str, np.ndarray], parts: list[tuple[str, int, float]], k: int,
                     rng: np.random.Generator) -> np.ndarray:
    """[n, k] latents: sum over (attribute, cardinality, weight) of weight x a random unit-variance
    vector per attribute value, plus per-row noise taking the rest of the unit variance."""
    n = len(next(iter(attrs.values())))
    latent = np.zeros((n, k), np.float32)
    for name, card, w in parts:
        latent += w * rng.normal(0, 1, (card, k)).astype(np.float32)[attrs[name]]
    noise = np.sqrt(max(0.0, 1.0 - sum(w * w for _, _, w in parts)))
    return latent + noise * rng.normal(0, 1, (n, k)).astype(np.float32)


class Teacher:
    """The hidden model that gives every impression its true pCTR and pCVR.

    For an impression x in scenario s, with categorical values x_f, standardised numerics
    t_j = tanh(z_j) (z_j: log1p|x_j| standardised by the first chunk), user latent u and item
    latent v (k = latent_dim), the CTR logit is an additive part plus interaction terms:

        A(x) = b_s + Σ_f λ̄_f w_f[x_f] + Σ_j ā_j t_j                                     (additive)
        I(x) = Σ_f (λ_{s,f} - λ̄_f) w_f[x_f] + Σ_j (a_{s,j} - ā_j) t_j        scenario x feature
             + 1.2 u^T R_s v / √k                                  user attrs x item attrs, per scenario
             + Σ_c κ_c T_c[x_{c_1}, ..., x_{c_m}]            explicit crosses (`CTR_CROSSES`)
             + 0.6 ρ_s · |user_tags ∩ item_tags|                         tags x tags x scenario
             - 0.6 σ_s (income_band / 6 - 1) t_price                 income x price x scenario
             + 0.8 [user_city = item_city] (1 - t_distance)          city x city x distance
             - 0.5 |t_user_avg_price - t_item_price|                       numeric x numeric
        logit_CTR = A + I

    with λ̄_f, ā_j the means over scenarios of the per-scenario scales λ_{s,f}, a_{s,j}; R_s a
    random rotation per scenario; every T_c a pure-interaction table (`pure_interaction`).
    Latents are functions of attributes plus modest noise (`USER_LATENT`, `ITEM_LATENT`):
    u = 0.65 U[cluster] + 0.45 U[city] + 0.45 U[age] + 0.40 ε, v = 0.6 V[category] +
    0.5 V[brand] + 0.45 V[price band] + 0.4 ε. The CVR logit, likewise:

        A'(x) = b'_s + 0.4 Σ_f λ̄_f w_f[x_f] + 0.8 c^T v / √k
        I'(x) = 0.4 Σ_f (λ_{s,f} - λ̄_f) w_f[x_f] + 0.8 u^T Q_s v / √k
              + 0.7 σ_s (income_band / 6 - 1) t_price + Σ_c κ_c T_c[...]  (`CVR_CROSSES`)

    pCTR = σ(A + I), pCVR = σ(A' + I'), pCTCVR = pCTR pCVR. `probabilities` also returns the
    additive oracle σ(A) and σ(A) σ(A'): the teacher with every interaction term removed.
    """

    def __init__(self, cfg: SyntheticCTRConfig, schema: CTRSchema, world: "_World", rng: np.random.Generator):
        s, k = cfg.scenarios, cfg.latent_dim
        self.k = k
        self.cat_names = [f.name for f in schema.features if f.kind == "categorical"]
        self.cards = {f.name: f.cardinality for f in schema.features if f.kind == "categorical"}
        self.cap = 200_000  # effects of ids beyond this hash into shared slots: the long tail shares effects
        self.first_order = {n: rng.normal(0, 0.12, min(c, self.cap)).astype(np.float32)
                            for n, c in self.cards.items()}
        self.scenario_scale = rng.uniform(0.2, 1.8, (s, len(self.cat_names))).astype(np.float32)
        n_num = len(USER_NUMERIC + ITEM_NUMERIC + CONTEXT_NUMERIC)
        self.numeric_w = rng.normal(0, 0.15, (s, n_num)).astype(np.float32)
        self.user_latent = attribute_latent(world.user_attr, [(n, self.cards[n], w) for n, w in USER_LATENT], k,
                                            rng)
        self.item_latent = attribute_latent(world.item_attr, [(n, self.cards[n], w) for n, w in ITEM_LATENT], k,
                                            rng)
        # one rotation of the user-item interaction per scenario and task: the same pair scores differently
        self.rotation = _rotations(rng, s, k)
        self.cvr_rotation = _rotations(rng, s, k)
        self.cvr_latent = rng.normal(0, 1, (k,)).astype(np.float32)
        self.ctr_crosses = [(names, scale, pure_interaction(rng.normal(size=[self._card(n, s) for n in names])))
                            for names, scale in CTR_CROSSES]
        self.cvr_crosses = [(names, scale, pure_interaction(rng.normal(size=[self._card(n, s) for n in names])))
                            for names, scale in CVR_CROSSES]
        self.tag_scale = rng.uniform(0.3, 1.5, s).astype(np.float32)
        self.price_sign = rng.choice([-1.0, 1.0], s).astype(np.float32) * rng.uniform(0.5, 1.5, s).astype(np.float32)
        self.numeric_stats: tuple[np.ndarray, np.ndarray] | None = None
        self.bias_ctr = np.log(cfg.target_ctr / (1 - cfg.target_ctr)) + rng.normal(0, 0.3, s)
        self.bias_cvr = np.log(cfg.target_cvr / (1 - cfg.target_cvr)) + rng.normal(0, 0.3, s)

    def _card(self, name: str, n_scenarios: int) -> int:
        return n_scenarios if name == "scenario" else self.cards[name]

    def logits(self, cols: dict[str, np.ndarray], numeric: np.ndarray,
               tag_overlap: np.ndarray) -> dict[str, np.ndarray]:
        """The four parts of the teacher's logits: `ctr_additive`, `ctr_interaction`,
        `cvr_additive`, `cvr_interaction`."""
        scen = cols["scenario"]
        first = np.stack([self.first_order[n][cols[n] % self.cap] for n in self.cat_names], 1)
        lam = self.scenario_scale[scen]
        first_add = (first * self.scenario_scale.mean(0)).sum(1)
        first_int = (first * (lam - self.scenario_scale.mean(0))).sum(1)
        z = np.log1p(np.abs(numeric))
        if self.numeric_stats is None:  # fixed by the first chunk, so the teacher never drifts over the log
            self.numeric_stats = (z.mean(0), z.std(0) + 1e-6)
        t = np.tanh((z - self.numeric_stats[0]) / self.numeric_stats[1])
        num_add = t @ self.numeric_w.mean(0)
        num_int = (t * (self.numeric_w[scen] - self.numeric_w.mean(0))).sum(1)
        u = self.user_latent[cols["user_id"]]
        v = self.item_latent[cols["item_id"]]
        root_k = np.sqrt(self.k)
        user_item = np.einsum("bk,bkl,bl->b", u, self.rotation[scen], v) / root_k
        user_item_cvr = np.einsum("bk,bkl,bl->b", u, self.cvr_rotation[scen], v) / root_k
        n_user = len(USER_NUMERIC)
        price = t[:, n_user + ITEM_NUMERIC.index("item_price")]
        income_x_price = self.price_sign[scen] * (cols["user_income_band"] / 6.0 - 1.0) * price
        distance = t[:, n_user + len(ITEM_NUMERIC) + CONTEXT_NUMERIC.index("ctx_distance_km")]
        same_city = (cols["user_city"] == cols["item_city"]).astype(np.float32)
        price_gap = np.abs(t[:, USER_NUMERIC.index("user_avg_price")] - price)
        ctr_int = (first_int + num_int + 1.2 * user_item + self._crosses(self.ctr_crosses, cols)
                   + 0.6 * self.tag_scale[scen] * tag_overlap - 0.6 * income_x_price
                   + 0.8 * same_city * (1.0 - distance) - 0.5 * price_gap)
        cvr_int = (0.4 * first_int + 0.8 * user_item_cvr + 0.7 * income_x_price
                   + self._crosses(self.cvr_crosses, cols))
        return {"ctr_additive": self.bias_ctr[scen] + first_add + num_add, "ctr_interaction": ctr_int,
                "cvr_additive": self.bias_cvr[scen] + 0.4 * first_add + 0.8 * (v @ self.cvr_latent) / root_k,
                "cvr_interaction": cvr_int}

    @staticmethod
    def _crosses(crosses: list[tuple[tuple[str, ...], float, np.ndarray]], cols: dict[str, np.ndarray]) -> np.ndarray:
        return sum(scale * table[tuple(cols[n] for n in names)] for names, scale, table in crosses)

    def probabilities(self, cols: dict[str, np.ndarray], numeric: np.ndarray,
                      tag_overlap: np.ndarray) -> dict[str, np.ndarray]:
        """True pCTR and pCVR (`p_click`, `p_cvr`), and those of the additive oracle
        (`p_click_additive`, `p_cvr_additive`): the teacher without its interaction terms."""
        parts = self.logits(cols, numeric, tag_overlap)
        return {"p_click": _sigmoid(parts["ctr_additive"] + parts["ctr_interaction"]),
                "p_cvr": _sigmoid(parts["cvr_additive"] + parts["cvr_interaction"]),
                "p_click_additive": _sigmoid(parts["ctr_additive"]),
                "p_cvr_additive": _sigmoid(parts["cvr_additive"])}


def _rotations(rng: np.random.Generator, s: int, k: int) -> np.ndarray:
    return np.stack([np.linalg.qr(rng.normal(size=(k, k)))[0] for _ in range(s)]).astype(np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-x))).astype(np.float32)


class _World:
    """Users, items and their attributes: fixed for the whole log. An item's top-level category
    is a function of its category (a category tree), not an independent draw."""

    def __init__(self, cfg: SyntheticCTRConfig, rng: np.random.Generator):
        self.user_draw = _zipf_sampler(rng, cfg.users, 0.9)
        self.item_draw = _zipf_sampler(rng, cfg.items, 1.0)
        self.user_attr = {n: _zipf_sampler(rng, c)(cfg.users) for n, c in USER_CATEGORICAL}
        self.item_attr = {n: _zipf_sampler(rng, c)(cfg.items) for n, c in ITEM_CATEGORICAL}
        categories, l1 = dict(ITEM_CATEGORICAL)["item_category"], dict(ITEM_CATEGORICAL)["item_l1_category"]
        self.item_attr["item_l1_category"] = rng.integers(0, l1, categories)[self.item_attr["item_category"]]
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
    p = teacher.probabilities(cols, numeric, overlap.astype(np.float32))
    click = (rng.random(n) < p["p_click"]).astype(np.int8)
    conversion = (click.astype(bool) & (rng.random(n) < p["p_cvr"])).astype(np.int8)
    arrays = {"ts": pa.array(np.arange(start, start + n, dtype=np.int64))}
    arrays.update({k: pa.array(v.astype(np.int64)) for k, v in cols.items()})
    for j, name in enumerate(USER_NUMERIC + ITEM_NUMERIC + CONTEXT_NUMERIC):
        arrays[name] = pa.array(numeric[:, j])
    arrays["user_tags"] = _list_array(utags, ulen)
    arrays["item_tags"] = _list_array(itags, ilen)
    arrays.update({"click": pa.array(click), "conversion": pa.array(conversion),
                   "p_click": pa.array(p["p_click"]), "p_ctcvr": pa.array(p["p_click"] * p["p_cvr"]),
                   "p_click_additive": pa.array(p["p_click_additive"]),
                   "p_ctcvr_additive": pa.array(p["p_click_additive"] * p["p_cvr_additive"])})
    return pa.table(arrays)


def _list_array(values: np.ndarray, lengths: np.ndarray) -> pa.ListArray:
    mask = np.arange(values.shape[1])[None, :] < lengths[:, None]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values[mask].astype(np.int64)))


def generate(out_dir: str | os.PathLike, cfg: SyntheticCTRConfig | None = None) -> CTRSchema:
    """Write `out_dir/{train,eval}/part-*.parquet` and `out_dir/schema.json`; return the schema.

    `schema.extra["teacher"]` holds the eval split's AUC of the oracle (`oracle/ctr_auc`, ...)
    and of the additive oracle, the teacher without interaction terms (`additive/ctr_auc`, ...).
    """
    cfg = cfg or SyntheticCTRConfig()
    out = Path(out_dir)
    rng = np.random.default_rng(cfg.seed)
    schema = synthetic_schema(cfg)
    world = _World(cfg, rng)
    teacher = Teacher(cfg, schema, world, rng)
    n_train = int(round(cfg.rows * (1 - cfg.eval_fraction)))
    writers = {"train": ParquetShardWriter(out / "train", cfg.rows_per_shard),
               "eval": ParquetShardWriter(out / "eval", cfg.rows_per_shard)}
    scored: list[pa.Table] = []
    for start in range(0, cfg.rows, cfg.chunk_rows):
        table = _chunk(cfg, world, teacher, rng, start, min(cfg.chunk_rows, cfg.rows - start))
        cut = min(max(n_train - start, 0), table.num_rows)  # rows before n_train in time go to train
        if cut:
            writers["train"].write(table.slice(0, cut))
        if cut < table.num_rows:
            writers["eval"].write(table.slice(cut))
            scored.append(table.slice(cut).select(list(ORACLE_COLUMNS)))
    for w in writers.values():
        w.close()
    schema.extra = {"train_rows": n_train, "eval_rows": cfg.rows - n_train, "generator": cfg.model_dump(),
                    "teacher": oracle_aucs(pa.concat_tables(scored))}
    schema.save(out)
    return schema


ORACLE_COLUMNS = ("click", "conversion", "p_click", "p_ctcvr", "p_click_additive", "p_ctcvr_additive")


def oracle_aucs(table: pa.Table) -> dict[str, float]:
    """CTR and CTCVR AUC of the oracle and of the additive oracle on `table` (`ORACLE_COLUMNS`)."""
    col = {name: table.column(name).to_numpy() for name in ORACLE_COLUMNS}
    out = {}
    for prefix, suffix in (("oracle", ""), ("additive", "_additive")):
        out[f"{prefix}/ctr_auc"] = auc(col["click"], col["p_click" + suffix])
        out[f"{prefix}/ctcvr_auc"] = auc(col["conversion"], col["p_ctcvr" + suffix])
    return out

if __name__ == "__main__":
    import sys

    from tetrad.core.config import load_config

    if len(sys.argv) < 2:
        sys.exit("usage: python -m tetrad.data.ctr_synthetic OUT_DIR [key=value ...]")
    generate(sys.argv[1], load_config(SyntheticCTRConfig, None, sys.argv[2:]))
