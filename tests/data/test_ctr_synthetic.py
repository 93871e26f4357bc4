import json

import numpy as np
import pyarrow.dataset as pds
import pytest

from tetrad.core.config import load_config
from tetrad.core.errors import UserError
from tetrad.core.metrics import auc
from tetrad.data.ctr_synthetic import (CTRSchema, SyntheticCTRConfig, Teacher, _World, attribute_latent, generate,
                                       pure_interaction, synthetic_schema)


@pytest.fixture(scope="module")
def log(tmp_path_factory):
    out = tmp_path_factory.mktemp("syn")
    cfg = SyntheticCTRConfig(rows=30_000, users=400, items=2_000, chunk_rows=7_000, rows_per_shard=10_000, seed=3)
    schema = generate(out, cfg)
    frames = {s: pds.dataset(str(out / s)).to_table().to_pandas() for s in ("train", "eval")}
    return out, schema, frames


def test_log_shape_shards_and_time_split(log):
    out, schema, frames = log
    assert len(frames["train"]) == 24_000 and len(frames["eval"]) == 6_000
    assert sorted(p.name for p in (out / "train").iterdir()) == ["part-00000.parquet", "part-00001.parquet",
                                                                  "part-00002.parquet"]
    assert frames["train"]["ts"].max() < frames["eval"]["ts"].min()  # eval is the later impressions
    kinds = [f.kind for f in schema.features]
    assert len(schema.features) >= 40 and {"categorical", "numeric", "multihot"} <= set(kinds)
    cards = [f.cardinality for f in schema.features if f.kind == "categorical"]
    assert min(cards) <= 10 and max(cards) >= 1_000_000
    assert len(schema.scenarios) >= 3
    assert CTRSchema.load(out).features == schema.features  # round trip through schema.json
    json.loads((out / "schema.json").read_text())


def test_funnel_labels_and_true_probabilities(log):
    _, _, frames = log
    df = pd_concat(frames)
    assert set(df["click"].unique()) <= {0, 1} and set(df["conversion"].unique()) <= {0, 1}
    assert (df["conversion"] <= df["click"]).all()  # conversion only after a click
    assert (df["p_ctcvr"] <= df["p_click"] + 1e-7).all()
    # labels are drawn from the stored probabilities: calibrated, and the oracle ranks well
    assert abs(df["click"].mean() - df["p_click"].mean()) < 0.01
    assert abs(df["conversion"].mean() - df["p_ctcvr"].mean()) < 0.01
    assert auc(df["click"], df["p_click"]) > 0.75


def test_heavy_tails_many_impressions_per_user_and_scenarios_differ(log):
    _, _, frames = log
    df = pd_concat(frames)
    per_user = df.groupby("user_id").size()
    assert per_user.median() >= 10  # users have many impressions: GAUC is meaningful
    top_share = df["item_id"].value_counts().iloc[:20].sum() / len(df)
    assert top_share > 0.1  # Zipf popularity: 1% of items take a large share
    assert df["item_price"].mean() > 1.5 * df["item_price"].median()  # right-skewed numerics
    ctr = df.groupby("scenario")["p_click"].mean()
    assert ctr.max() - ctr.min() > 0.01
    # feature effects differ by scenario: a feature's CTR lift is not the same everywhere
    lift = df.groupby(["scenario", "item_l1_category"])["p_click"].mean().unstack()
    assert np.corrcoef(lift.iloc[0].fillna(0), lift.iloc[1].fillna(0))[0, 1] < 0.95
    lens = df["user_tags"].map(len)
    assert lens.min() >= 1 and lens.max() <= 5


def test_default_log_rewards_interactions_the_additive_oracle_is_far_below_the_oracle(tmp_path):
    # the signal must live in feature interactions: the teacher without them ranks much worse
    teacher = generate(tmp_path / "default", SyntheticCTRConfig()).extra["teacher"]
    for task in ("ctr", "ctcvr"):
        assert teacher[f"oracle/{task}_auc"] - teacher[f"additive/{task}_auc"] >= 0.1, teacher
    frame = pds.dataset(str(tmp_path / "default" / "eval")).to_table().to_pandas()
    assert abs(auc(frame["click"], frame["p_click_additive"]) - teacher["additive/ctr_auc"]) < 1e-9


def test_crosses_are_pure_interactions_and_latents_come_from_attributes():
    table = pure_interaction(np.random.default_rng(0).normal(size=(3, 24, 30)))
    for axis in range(3):  # every one-way marginal is zero: no additive model can express any of it
        others = tuple(a for a in range(3) if a != axis)
        assert np.abs(table.mean(axis=others)).max() < 1e-5
    rng = np.random.default_rng(0)
    attrs = {"a": rng.integers(0, 20, 5_000), "b": rng.integers(0, 5, 5_000)}
    latent = attribute_latent(attrs, [("a", 20, 0.8), ("b", 5, 0.5)], 4, rng)
    assert abs(latent.var() - 1.0) < 0.15
    # rows sharing both attributes share most of their latent: the noise is the small rest
    same = (attrs["a"] == attrs["a"][0]) & (attrs["b"] == attrs["b"][0])
    assert np.corrcoef(latent[same][0], latent[same][1:].mean(0))[0, 1] > 0.8
    cfg = SyntheticCTRConfig(users=300, items=500)
    world = _World(cfg, np.random.default_rng(1))
    teacher = Teacher(cfg, synthetic_schema(cfg), world, np.random.default_rng(2))
    cat = world.item_attr["item_category"]  # the category tree: a category has one top-level category
    assert all(len(set(world.item_attr["item_l1_category"][cat == c])) == 1 for c in np.unique(cat))
    assert teacher.user_latent.shape == (300, cfg.latent_dim)


def test_same_seed_same_log_and_chunking_does_not_matter_for_labels(tmp_path):
    a = generate(tmp_path / "a", SyntheticCTRConfig(rows=2_000, users=50, items=100, seed=1))
    generate(tmp_path / "b", SyntheticCTRConfig(rows=2_000, users=50, items=100, seed=1))
    ta = pds.dataset(str(tmp_path / "a" / "train")).to_table()
    tb = pds.dataset(str(tmp_path / "b" / "train")).to_table()
    assert ta.equals(tb) and a.features == CTRSchema.load(tmp_path / "b").features


def test_bad_generator_settings_are_user_errors(tmp_path):
    with pytest.raises(UserError, match="config key 'rows'"):
        load_config(SyntheticCTRConfig, None, ["rows=5"])
    with pytest.raises(UserError, match="schema.json"):
        CTRSchema.load(tmp_path / "nothing")


def pd_concat(frames):
    import pandas as pd

    return pd.concat(frames.values(), ignore_index=True)
