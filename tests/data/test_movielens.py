import pytest

from tetrad.core.errors import UserError
from tetrad.data.movielens import load_movielens_100k, recbole_ml100k_dir, user_sequences


def test_loads_the_wheel_files():
    ml = load_movielens_100k()
    assert len(ml.ratings) == 100_000
    assert ml.ratings["user_id"].nunique() == 943 and len(ml.users) == 943
    assert len(ml.items) == 1682
    assert set(ml.ratings["rating"].unique()) == {1, 2, 3, 4, 5}
    toy_story = ml.items.set_index("item_id").loc[1]
    assert toy_story["title"] == "Toy Story" and toy_story["year"] == 1995
    assert toy_story["genres"] == ["Animation", "Children's", "Comedy"]


def test_user_sequences_are_time_ordered():
    ml = load_movielens_100k()
    seqs = user_sequences(ml.ratings)
    ts = ml.ratings.set_index(["user_id", "item_id"])["timestamp"]
    for u in (1, 500, 943):
        times = [ts[(u, i)] for i in seqs[u]]
        assert times == sorted(times)
    assert sum(len(s) for s in seqs.values()) == 100_000


def test_missing_or_malformed_folder(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_movielens_100k(tmp_path)
    src = recbole_ml100k_dir()
    for name in ("ml-100k.item", "ml-100k.user"):
        (tmp_path / name).write_text((src / name).read_text())
    (tmp_path / "ml-100k.inter").write_text("user_id:token\tmovie:token\n1\t2\n")
    with pytest.raises(UserError, match="layout"):
        load_movielens_100k(tmp_path)
