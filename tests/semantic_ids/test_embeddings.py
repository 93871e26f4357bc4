import numpy as np
import pandas as pd
import pytest

from tetrad.core.errors import UserError
from tetrad.data.movielens import load_movielens_100k
from tetrad.semantic_ids.embeddings import embed_texts, load_embedding_file, movielens_texts


def test_minilm_embeds_offline_and_caches(tmp_path, monkeypatch):
    texts = ["Toy Story (1995). Genres: Animation, Children's, Comedy",
             "Aladdin (1992). Genres: Animation, Children's, Comedy, Musical",
             "The Godfather (1972). Genres: Action, Crime, Drama"]
    emb = embed_texts(texts, cache_dir=tmp_path)
    assert emb.shape == (3, 384) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1, rtol=1e-5)
    assert emb[0] @ emb[1] > emb[0] @ emb[2]  # two animated children's films are closer than a crime drama
    assert len(list(tmp_path.glob("text_embeddings_*.npy"))) == 1
    monkeypatch.setattr("transformers.AutoModel.from_pretrained", None)  # a cache hit must not load the model
    np.testing.assert_array_equal(embed_texts(texts, cache_dir=tmp_path), emb)


def test_movielens_item_text():
    texts = movielens_texts(load_movielens_100k().items)
    assert len(texts) == 1682 and texts[0] == "Toy Story (1995). Genres: Animation, Children's, Comedy"


def test_embedding_files(tmp_path):
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    np.save(tmp_path / "e.npy", x)
    np.testing.assert_array_equal(load_embedding_file(tmp_path / "e.npy"), x)
    pd.DataFrame({"emb": list(x)}).to_parquet(tmp_path / "l.parquet")
    np.testing.assert_array_equal(load_embedding_file(tmp_path / "l.parquet"), x)
    pd.DataFrame(x, columns=["a", "b", "c"]).to_parquet(tmp_path / "w.parquet")
    np.testing.assert_array_equal(load_embedding_file(tmp_path / "w.parquet"), x)
    with pytest.raises(UserError, match="column 'v' not in"):
        load_embedding_file(tmp_path / "l.parquet", column="v")
    np.save(tmp_path / "one.npy", x[0])
    with pytest.raises(UserError, match="must be a 2-D items x dim array"):
        load_embedding_file(tmp_path / "one.npy")
    (tmp_path / "e.txt").write_text("1 2")
    with pytest.raises(UserError, match="must be .npy or .parquet"):
        load_embedding_file(tmp_path / "e.txt")
