import numpy as np
import pyarrow as pa
import pyarrow.dataset as pds
import pyarrow.parquet as pq
import pytest

from tetrad.core.errors import UserError
from tetrad.data.ctr_synthetic import CTRSchema, FeatureSpec
from tetrad.ranking.data import check_dataset, iter_batches, select_features


def write_log(path, n=10, **over):
    cols = {"user_id": np.arange(n) % 3, "item": np.arange(n) % 5, "price": np.linspace(0, 9, n).astype(np.float32),
            "tags": [[1, 2, 3][: i % 4] for i in range(n)], "scenario": np.arange(n) % 2,
            "click": np.arange(n) % 2, "conversion": np.zeros(n, int)}
    cols.update(over)
    path.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(cols), path / "part-00000.parquet")
    return path


SCHEMA = CTRSchema([FeatureSpec("user_id", "categorical", 3), FeatureSpec("item", "categorical", 5),
                    FeatureSpec("price", "numeric"), FeatureSpec("tags", "multihot", 4, 2)], ["a", "b"])


def test_batches_are_exact_size_across_shards_and_decode_features(tmp_path):
    d = write_log(tmp_path / "d", n=10)
    pq.write_table(pds.dataset(str(d)).to_table(), d / "part-00001.parquet")  # 20 rows over 2 shards
    fs = select_features(SCHEMA)
    batches = list(iter_batches(d, fs, 6))
    assert [len(b) for b in batches] == [6, 6, 6]
    assert [len(b) for b in iter_batches(d, fs, 6, drop_last=False)] == [6, 6, 6, 2]
    assert len(list(iter_batches(d, fs, 6, skip=2))) == 1
    b = batches[0]
    assert b.categorical.shape == (6, 2) and b.numeric.shape == (6, 1)
    # multi-hot: ids shifted by one, padded with 0, truncated to max_len
    assert b.multihot[0].tolist() == [[0, 0], [2, 0], [2, 3], [2, 3], [0, 0], [2, 0]]


def test_feature_selection_and_unknown_names(tmp_path):
    fs = select_features(SCHEMA, exclude=["tags"])
    assert fs.names == ["user_id", "item", "price"]
    with pytest.raises(UserError, match="unknown feature 'colour'"):
        select_features(SCHEMA, ["colour"])


@pytest.mark.parametrize("over, message", [
    ({"price": np.array([1.0, np.nan] * 5, np.float32)}, "NaN or inf"),
    ({"price": np.array([1.0, np.inf] * 5, np.float32)}, "NaN or inf"),
    ({"click": np.array([0, 2] * 5)}, "other than 0/1"),
    ({"conversion": np.ones(10, int)}, "conversion without a click"),
    ({"scenario": np.array([0, 5] * 5)}, "scenario id 5"),
])
def test_bad_values_are_one_line_user_errors(tmp_path, over, message):
    d = write_log(tmp_path / "d", **over)
    with pytest.raises(UserError, match=message):
        list(iter_batches(d, select_features(SCHEMA), 4))


def test_schema_mismatch_and_empty_shards(tmp_path):
    fs = select_features(SCHEMA)
    d = tmp_path / "d"
    d.mkdir()
    pq.write_table(pa.table({"user_id": [1], "scenario": [0], "click": [0], "conversion": [0]}),
                   d / "part-00000.parquet")
    with pytest.raises(UserError, match="schema mismatch.*'item'"):
        check_dataset(d, fs)
    e = write_log(tmp_path / "e")
    pq.write_table(pa.table({k: pa.array([], t.type) for k, t in zip(pq.read_table(e).column_names,
                                                                      pq.read_table(e).columns)}),
                   e / "part-00001.parquet")
    with pytest.raises(UserError, match="empty"):
        check_dataset(e, fs)


def test_main_scenario_gets_id_zero_and_unknown_scenarios_are_user_errors(tmp_path):
    d = write_log(tmp_path / "d")
    default = next(iter_batches(d, select_features(SCHEMA), 10)).scenario
    swapped = next(iter_batches(d, select_features(SCHEMA, main_scenario="b"), 10)).scenario
    assert (swapped == 1 - default).all()
    with pytest.raises(UserError, match="unknown scenario 'c'"):
        select_features(SCHEMA, main_scenario="c")
