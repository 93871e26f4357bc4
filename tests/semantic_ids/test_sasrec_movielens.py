import time

import pytest
import torch

from tetrad.core.config import load_config
from tetrad.data.movielens import load_movielens_100k, user_sequences
from tetrad.semantic_ids.anchors import popularity_ranking, score_ranking
from tetrad.semantic_ids.data import leave_one_out
from tetrad.semantic_ids.train import SidConfig, run_sasrec


@pytest.mark.slow
def test_sasrec_beats_popularity_on_movielens_100k(tmp_path):
    """Leave-one-out on MovieLens-100k (943 users, full ranking over 1,682 items, seen items not
    excluded): SASRec, a few hundred steps with the best validated weights, clearly above popularity."""
    ml = load_movielens_100k()
    split = leave_one_out({u: [i - 1 for i in s] for u, s in user_sequences(ml.ratings).items()}, 1682)
    popular = score_ranking(popularity_ranking(split.test[0], 1682, 10), split.test[1], [10])
    cfg = load_config(SidConfig, None, ["eval.valid_users=0", "sasrec.steps=400", "sasrec.lr=2e-3",
                                        "sasrec.eval_every=100", "sasrec.patience=2"])
    started = time.perf_counter()
    sasrec = run_sasrec(cfg, split, 1682, tmp_path / "sasrec", torch.device("cpu"))
    print(f"popularity {popular}; sasrec {sasrec}; {time.perf_counter() - started:.0f} s")
    assert sasrec["recall@10"] > 1.4 * popular["recall@10"]
    assert sasrec["ndcg@10"] > 1.4 * popular["ndcg@10"]
