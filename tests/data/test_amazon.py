import gzip
import json

import pytest

from tetrad.core.errors import UserError
from tetrad.data.amazon import item_text, load_amazon


def write_folder(d, meta_gz=True):
    d.mkdir()
    (d / "sequential_data.txt").write_text("1 10 11 12 13\n2 11 14 10\n\n3 15 10 11 12 14\n")
    (d / "datamaps.json").write_text(json.dumps({"id2item": {str(i): f"B00{i}" for i in range(10, 16)},
                                                 "user2id": {}}))
    lines = [json.dumps({"asin": "B0010", "title": "Rose lip balm", "brand": "Acme",
                         "categories": [["Beauty", "Lips"]], "price": 4.5}),
             repr({"asin": "B0011", "title": "Shampoo", "categories": [["Beauty", "Hair"]]})]  # raw dumps: dict literals
    if meta_gz:
        with gzip.open(d / "meta.json.gz", "wt") as f:
            f.write("\n".join(lines) + "\n")
    else:
        (d / "meta.json").write_text("\n".join(lines) + "\n")


def test_loads_sequences_maps_and_metadata(tmp_path):
    write_folder(tmp_path / "Beauty")
    ds = load_amazon(tmp_path / "Beauty")
    assert ds.item_ids == ["10", "11", "12", "13", "14", "15"]  # order of first appearance
    assert ds.sequences == {1: [0, 1, 2, 3], 2: [1, 4, 0], 3: [5, 0, 1, 2, 4]}
    assert ds.item_text[0] == "Rose lip balm. Brand: Acme. Categories: Beauty, Lips. Price: 4.5"
    assert ds.item_text[1] == "Shampoo. Categories: Beauty, Hair"
    assert ds.item_text[2] == ""


def test_plain_meta_and_no_datamaps(tmp_path):
    d = tmp_path / "Toys"
    write_folder(d, meta_gz=False)
    (d / "datamaps.json").unlink()
    ds = load_amazon(d)
    assert all(t == "" for t in ds.item_text)  # item ids are not ASINs without the map


def test_item_text_flattens_categories():
    assert item_text({"title": "T", "categories": [["A", "B"], ["A", "C"]]}) == "T. Categories: A, B, C"


def test_bad_folders(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_amazon(tmp_path / "nope")
    (tmp_path / "a").mkdir()
    with pytest.raises(UserError, match="no sequential_data.txt"):
        load_amazon(tmp_path / "a")
    (tmp_path / "a" / "sequential_data.txt").write_text("1 5 6\nx 5\n")
    with pytest.raises(UserError, match="user id 'x' is not an integer"):
        load_amazon(tmp_path / "a")
    (tmp_path / "a" / "sequential_data.txt").write_text("1 5 6\n2 7\n")
    (tmp_path / "a" / "datamaps.json").write_text(json.dumps({"id2item": {"5": "B5"}}))
    with pytest.raises(UserError, match="item id '6' of sequential_data.txt is not in datamaps.json"):
        load_amazon(tmp_path / "a")
    (tmp_path / "a" / "datamaps.json").unlink()
    (tmp_path / "a" / "meta.json").write_text("{not a dict\n")
    with pytest.raises(UserError, match="neither JSON nor a Python dict"):
        load_amazon(tmp_path / "a")
