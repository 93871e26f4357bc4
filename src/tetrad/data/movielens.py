"""MovieLens-100k, read straight from the files inside the `recbole` wheel.

`pip install --no-deps recbole` puts the atomic files under
`recbole/dataset_example/ml-100k/`; recbole itself is never imported (it pins old
NumPy). A user with their own copy passes its folder (files `ml-100k.inter`,
`ml-100k.item`, `ml-100k.user` in recbole's tab-separated layout).
"""

from __future__ import annotations

import csv
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tetrad.core.errors import UserError


@dataclass(frozen=True)
class MovieLens100k:
    ratings: pd.DataFrame  # user_id, item_id, rating, timestamp
    items: pd.DataFrame  # item_id, title, year (nullable), genres (list of str)
    users: pd.DataFrame  # user_id, age, gender, occupation, zip_code


def recbole_ml100k_dir() -> Path:
    """The ml-100k folder of the installed recbole wheel."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or spec.origin is None:
        raise UserError("MovieLens-100k needs the recbole wheel's files: pip install --no-deps recbole==1.2.1")
    return Path(spec.origin).parent / "dataset_example" / "ml-100k"


def _read_atomic(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise UserError(f"MovieLens file not found: {path}")
    try:
        df = pd.read_csv(path, sep="\t", quoting=csv.QUOTE_NONE, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise UserError(f"MovieLens file {path} cannot be parsed: {e}".splitlines()[0]) from None
    if df.empty:
        raise UserError(f"MovieLens file {path} has no rows")
    df.columns = [c.split(":")[0] for c in df.columns]  # recbole headers are name:type
    return df


def load_movielens_100k(directory: str | os.PathLike | None = None) -> MovieLens100k:
    d = Path(directory) if directory is not None else recbole_ml100k_dir()
    inter = _read_atomic(d / "ml-100k.inter")
    item = _read_atomic(d / "ml-100k.item")
    user = _read_atomic(d / "ml-100k.user")
    try:
        ratings = pd.DataFrame({
            "user_id": inter["user_id"].astype("int64"),
            "item_id": inter["item_id"].astype("int64"),
            "rating": inter["rating"].astype("float32"),
            "timestamp": inter["timestamp"].astype("float64").astype("int64"),
        })
        items = pd.DataFrame({
            "item_id": item["item_id"].astype("int64"),
            "title": item["movie_title"],
            "year": pd.to_numeric(item["release_year"], errors="coerce").astype("Int64"),
            "genres": item["class"].str.split(),
        })
        users = pd.DataFrame({
            "user_id": user["user_id"].astype("int64"),
            "age": user["age"].astype("int64"),
            "gender": user["gender"],
            "occupation": user["occupation"],
            "zip_code": user["zip_code"],
        })
    except (KeyError, ValueError) as e:
        raise UserError(f"MovieLens files in {d} are not in recbole's ml-100k layout ({e})") from None
    return MovieLens100k(ratings=ratings, items=items, users=users)


def user_sequences(ratings: pd.DataFrame) -> dict[int, list[int]]:
    """Each user's items in time order (ties broken by item id, so the order is deterministic)."""
    ordered = ratings.sort_values(["user_id", "timestamp", "item_id"], kind="stable")
    return {int(u): g.tolist() for u, g in ordered.groupby("user_id", sort=True)["item_id"]}
