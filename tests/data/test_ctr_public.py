import numpy as np
import pandas as pd
import pyarrow.dataset as pds
import pytest

from tetrad.core.errors import UserError
from tetrad.data.ctr_public import (ALICCP_CATEGORICAL, ALICCP_NUMERIC, aliccp_to_ctr, aliexpress_to_ctr,
                                    movielens_multitask)
from tetrad.data.ctr_synthetic import CTRSchema
from tetrad.ranking.data import check_dataset, iter_batches, select_features


def read(path):
    return pds.dataset(str(path)).to_table().to_pandas()


def test_movielens_as_a_multitask_log(tmp_path):
    schema = movielens_multitask(tmp_path, negatives=1, seed=0)
    train, test = read(tmp_path / "train"), read(tmp_path / "eval")
    both = pd.concat([train, test])
    assert (both["click"] == 1).sum() == 100_000  # every rating is a click impression
    assert 0.5 < (both["click"] == 0).sum() / 100_000 <= 1.0  # about one sampled unrated movie per rating
    rated = both[both["click"] == 1]
    assert 0.4 < rated["conversion"].mean() < 0.7  # rating >= 4 among rated movies
    assert (both["conversion"] <= both["click"]).all()
    assert train["ts"].max() <= test["ts"].min()  # time-ordered split
    assert set(both["scenario"].unique()) == {0, 1, 2} and len(schema.scenarios) == 3
    negatives = both[both["click"] == 0]
    rated_pairs = set(zip(rated["user_id"], rated["item_id"]))
    assert not any(p in rated_pairs for p in zip(negatives["user_id"], negatives["item_id"]))
    fs = select_features(CTRSchema.load(tmp_path))
    check_dataset(tmp_path / "train", fs)
    batch = next(iter_batches(tmp_path / "train", fs, 64))
    assert batch.multihot[0].shape == (64, 6) and (batch.multihot[0] > 0).any()


def aliexpress_frame(rng, n, conv_after_click=True):
    df = pd.DataFrame({"search_id": rng.integers(0, 20, n)})
    for i in range(1, 17):
        df[f"categorical_{i}"] = rng.integers(0, 50, n)
    for i in range(1, 64):
        df[f"numerical_{i}"] = rng.random(n)
    df["click"] = rng.integers(0, 2, n)
    df["conversion"] = df["click"] * rng.integers(0, 2, n) if conv_after_click else 1
    return df


def test_aliexpress_layout_becomes_a_multi_scenario_dataset(tmp_path):
    rng = np.random.default_rng(0)
    for cc in ("NL", "US"):
        (tmp_path / "raw" / f"AliExpress_{cc}").mkdir(parents=True)
        aliexpress_frame(rng, 50).to_csv(tmp_path / "raw" / f"AliExpress_{cc}" / "train.csv", index=False)
        aliexpress_frame(rng, 20).to_csv(tmp_path / "raw" / f"AliExpress_{cc}" / "test.csv", index=False)
    schema = aliexpress_to_ctr(tmp_path / "raw", tmp_path / "out", countries=("NL", "US"))
    assert schema.scenarios == ["NL", "US"] and len(schema.features) == 16 + 63
    train = read(tmp_path / "out" / "train")
    assert len(train) == 100 and train["scenario"].tolist() == [0] * 50 + [1] * 50
    fs = select_features(schema)
    b = next(iter_batches(tmp_path / "out" / "eval", fs, 40))
    assert b.categorical.shape == (40, 16) and b.numeric.shape == (40, 63)


def test_aliexpress_bad_files_are_user_errors(tmp_path):
    rng = np.random.default_rng(0)
    d = tmp_path / "AliExpress_NL"
    d.mkdir()
    aliexpress_frame(rng, 10, conv_after_click=False).to_csv(d / "train.csv", index=False)
    aliexpress_frame(rng, 10).to_csv(d / "test.csv", index=False)
    with pytest.raises(UserError, match="conversion without a click"):
        aliexpress_to_ctr(tmp_path, tmp_path / "out", countries=("NL",))
    with pytest.raises(UserError, match="not found"):
        aliexpress_to_ctr(tmp_path, tmp_path / "out", countries=("FR",))
    bad = aliexpress_frame(rng, 10)
    bad.loc[0, "click"] = 3
    bad.to_csv(d / "train.csv", index=False)
    with pytest.raises(UserError, match="other than 0/1"):
        aliexpress_to_ctr(tmp_path, tmp_path / "out", countries=("NL",))


def aliccp_frame(rng, n):
    df = pd.DataFrame({"click": rng.integers(0, 2, n)})
    df["purchase"] = df["click"] * rng.integers(0, 2, n)
    for c in ALICCP_CATEGORICAL:
        df[c] = rng.integers(0, 30, n)
    df["301"] = rng.integers(1, 4, n)
    for c in ALICCP_NUMERIC:
        df[c] = rng.random(n)
    return df


def test_aliccp_layout_and_numeric_checks(tmp_path):
    rng = np.random.default_rng(1)
    aliccp_frame(rng, 60).to_csv(tmp_path / "train.csv", index=False)
    aliccp_frame(rng, 30).to_csv(tmp_path / "test.csv", index=False)
    schema = aliccp_to_ctr(tmp_path / "train.csv", tmp_path / "test.csv", tmp_path / "out")
    assert schema.scenarios == ["301=1", "301=2", "301=3"]
    train = read(tmp_path / "out" / "train")
    assert set(train["scenario"]) == {0, 1, 2} and (train["user_id"] == train["101"]).all()
    assert "purchase" not in train and (train["conversion"] <= train["click"]).all()
    bad = aliccp_frame(rng, 10)
    bad.loc[3, "D508"] = np.inf
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(UserError, match="NaN or inf"):
        aliccp_to_ctr(tmp_path / "bad.csv", tmp_path / "test.csv", tmp_path / "out2")
    aliccp_frame(rng, 10).drop(columns=["D702"]).to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(UserError, match="no column 'D702'"):
        aliccp_to_ctr(tmp_path / "short.csv", tmp_path / "test.csv", tmp_path / "out3")
