"""Parquet reading and writing shared by the systems.

A dataset is one `.parquet` file or a folder of shards (`part-00000.parquet`, ...).
Writes are atomic per file; reads stream in record batches so a dataset larger than
memory trains in bounded memory. Missing, corrupt or empty data is a `UserError`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pds
import pyarrow.parquet as pq

from tetrad.core.errors import UserError
from tetrad.core.io import atomic_write


def write_parquet(data: pd.DataFrame | pa.Table, path: str | os.PathLike) -> Path:
    table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
    return atomic_write(path, lambda f: pq.write_table(table, f))


class ParquetShardWriter:
    """Append frames; every `rows_per_shard` rows become one `part-NNNNN.parquet` file."""

    def __init__(self, directory: str | os.PathLike, rows_per_shard: int = 1_000_000):
        self.directory = Path(directory)
        self.rows_per_shard = rows_per_shard
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self.shards: list[Path] = []

    def write(self, data: pd.DataFrame | pa.Table) -> None:
        table = data if isinstance(data, pa.Table) else pa.Table.from_pandas(data, preserve_index=False)
        self._pending.append(table)
        self._pending_rows += table.num_rows
        while self._pending_rows >= self.rows_per_shard:
            merged = pa.concat_tables(self._pending)
            self._flush(merged.slice(0, self.rows_per_shard))
            rest = merged.slice(self.rows_per_shard)
            self._pending, self._pending_rows = ([rest] if rest.num_rows else []), rest.num_rows

    def close(self) -> list[Path]:
        if self._pending_rows:
            self._flush(pa.concat_tables(self._pending))
            self._pending, self._pending_rows = [], 0
        return self.shards

    def _flush(self, table: pa.Table) -> None:
        self.shards.append(write_parquet(table, self.directory / f"part-{len(self.shards):05d}.parquet"))

    def __enter__(self) -> "ParquetShardWriter":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()


def open_dataset(path: str | os.PathLike) -> pds.Dataset:
    """A pyarrow dataset over a Parquet file or folder; a missing, corrupt or empty one is a `UserError`."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"Parquet data not found: {path}")
    try:
        ds = pds.dataset(str(path), format="parquet")
        rows = ds.count_rows()
    except (pa.ArrowInvalid, OSError) as e:
        raise UserError(f"Parquet data {path} is corrupt or unreadable: {str(e).splitlines()[0]}") from None
    if rows == 0:
        raise UserError(f"Parquet data {path} has no rows")
    return ds


def read_parquet(path: str | os.PathLike, columns: Sequence[str] | None = None) -> pd.DataFrame:
    ds = open_dataset(path)
    _check_columns(ds, columns, path)
    return ds.to_table(columns=list(columns) if columns else None).to_pandas()


def iter_parquet_batches(path: str | os.PathLike, batch_size: int,
                         columns: Sequence[str] | None = None) -> Iterator[pd.DataFrame]:
    """Stream a dataset as frames of at most `batch_size` rows, in file order."""
    ds = open_dataset(path)
    _check_columns(ds, columns, path)
    # One file read ahead, not pyarrow's default of several: halves peak memory on large shards.
    for batch in ds.to_batches(columns=list(columns) if columns else None, batch_size=batch_size,
                               fragment_readahead=1):
        if batch.num_rows:
            yield batch.to_pandas()


def parquet_num_rows(path: str | os.PathLike) -> int:
    return open_dataset(path).count_rows()


def _check_columns(ds: pds.Dataset, columns: Sequence[str] | None, path) -> None:
    missing = [c for c in columns or () if c not in ds.schema.names]
    if missing:
        raise UserError(f"Parquet data {path} has no column {missing[0]!r}")
