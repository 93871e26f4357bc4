"""Amazon (Beauty / Sports / Toys) in the sequential-recommendation layout TIGER reimplementations use.

The layout is P5's (as read by RQ-VAE-Recommender and others), one folder per category:

    sequential_data.txt   one user per line: "user_id item_id item_id ..." in time order
    datamaps.json         optional: {"id2item": {"<item_id>": "<asin>", ...}, ...}
    meta.json[.gz]        optional: one product per line, a JSON object or a Python dict literal
                          (the raw Amazon dumps are the latter) with "asin", "title", "brand",
                          "categories", "price"

No Amazon data ships in any package; a user points `load_amazon` at their own folder. Item
ids are re-indexed to 0..items-1 in order of first appearance in `sequential_data.txt`.
"""

from __future__ import annotations

import ast
import gzip
import json
import os
from dataclasses import dataclass
from pathlib import Path

from tetrad.core.errors import UserError


@dataclass(frozen=True)
class AmazonDataset:
    sequences: dict[int, list[int]]  # user (as in the file) -> item indices in time order
    item_ids: list[str]  # item index -> the file's item id
    item_text: list[str]  # item index -> text for embedding ("" when no metadata)


def _read_sequences(path: Path) -> tuple[dict[int, list[str]], list[str]]:
    sequences: dict[int, list[str]] = {}
    order: dict[str, None] = {}
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 2:
                raise UserError(f"{path}:{lineno}: a user line needs a user id and at least one item")
            try:
                user = int(fields[0])
            except ValueError:
                raise UserError(f"{path}:{lineno}: user id '{fields[0]}' is not an integer") from None
            if user in sequences:
                raise UserError(f"{path}:{lineno}: user {user} appears twice")
            sequences[user] = fields[1:]
            order.update(dict.fromkeys(fields[1:]))
    if not sequences:
        raise UserError(f"{path} holds no user sequences")
    return sequences, list(order)


def _parse_meta_line(line: str, path: Path, lineno: int) -> dict:
    try:
        return json.loads(line)
    except json.JSONDecodeError:
        try:
            value = ast.literal_eval(line)
        except (ValueError, SyntaxError):
            raise UserError(f"{path}:{lineno}: metadata line is neither JSON nor a Python dict") from None
        if not isinstance(value, dict):
            raise UserError(f"{path}:{lineno}: metadata line is not a dict")
        return value


def item_text(meta: dict) -> str:
    """Title, brand, categories and price as one sentence-like string (TIGER's item content fields)."""
    parts = []
    if meta.get("title"):
        parts.append(str(meta["title"]))
    if meta.get("brand"):
        parts.append(f"Brand: {meta['brand']}")
    cats = meta.get("categories")
    if cats:
        flat = [c for group in cats for c in (group if isinstance(group, list) else [group])]
        parts.append("Categories: " + ", ".join(dict.fromkeys(map(str, flat))))
    if meta.get("price") not in (None, ""):
        parts.append(f"Price: {meta['price']}")
    return ". ".join(parts)


def load_amazon(directory: str | os.PathLike) -> AmazonDataset:
    d = Path(directory)
    if not d.is_dir():
        raise UserError(f"Amazon folder not found: {d}")
    seq_path = d / "sequential_data.txt"
    if not seq_path.is_file():
        raise UserError(f"Amazon folder {d} has no sequential_data.txt")
    raw, item_ids = _read_sequences(seq_path)
    index = {item: i for i, item in enumerate(item_ids)}
    sequences = {u: [index[i] for i in items] for u, items in raw.items()}

    asin = {i: i for i in item_ids}
    maps_path = d / "datamaps.json"
    if maps_path.is_file():
        try:
            id2item = json.loads(maps_path.read_text())["id2item"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise UserError(f"{maps_path} is not a datamaps file with an 'id2item' mapping") from None
        unknown = [i for i in item_ids if i not in id2item]
        if unknown:
            raise UserError(f"item id '{unknown[0]}' of sequential_data.txt is not in {maps_path.name}")
        asin = {i: str(id2item[i]) for i in item_ids}

    texts = {i: "" for i in item_ids}
    meta_path = next((p for p in (d / "meta.json.gz", d / "meta.json") if p.is_file()), None)
    if meta_path is not None:
        by_asin = {}
        opener = gzip.open if meta_path.suffix == ".gz" else open
        with opener(meta_path, "rt") as f:
            for lineno, line in enumerate(f, 1):
                if line.strip():
                    meta = _parse_meta_line(line, meta_path, lineno)
                    if "asin" in meta:
                        by_asin[str(meta["asin"])] = meta
        texts = {i: item_text(by_asin.get(asin[i], {})) for i in item_ids}
    return AmazonDataset(sequences, item_ids, [texts[i] for i in item_ids])
