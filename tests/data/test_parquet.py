import numpy as np
import pandas as pd
import pytest

from tetrad.core.errors import UserError
from tetrad.data.parquet import (ParquetShardWriter, iter_parquet_batches, parquet_num_rows, read_parquet,
                                 write_parquet)


def frame(n, start=0):
    return pd.DataFrame({"id": np.arange(start, start + n), "x": np.random.default_rng(start).random(n)})


def test_shards_round_trip_and_stream(tmp_path):
    with ParquetShardWriter(tmp_path / "ds", rows_per_shard=100) as w:
        for i in range(5):
            w.write(frame(70, start=70 * i))
    assert [p.name for p in w.shards] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet",
                                          "part-00003.parquet"]
    assert parquet_num_rows(tmp_path / "ds") == 350
    assert read_parquet(tmp_path / "ds")["id"].tolist() == list(range(350))
    batches = list(iter_parquet_batches(tmp_path / "ds", batch_size=64, columns=["id"]))
    assert max(len(b) for b in batches) <= 64 and list(batches[0].columns) == ["id"]
    assert pd.concat(batches)["id"].tolist() == list(range(350))


def test_bad_data_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        read_parquet(tmp_path / "none.parquet")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 garbage")
    with pytest.raises(UserError, match="corrupt"):
        read_parquet(tmp_path / "bad.parquet")
    write_parquet(frame(0), tmp_path / "empty.parquet")
    with pytest.raises(UserError, match="no rows"):
        read_parquet(tmp_path / "empty.parquet")
    write_parquet(frame(3), tmp_path / "ok.parquet")
    with pytest.raises(UserError, match="no column 'y'"):
        read_parquet(tmp_path / "ok.parquet", columns=["y"])
