import numpy as np
import pytest

from tetrad.core.metrics import ndcg_at_k, ndcg_rows, recall_at_k, recall_rows
from tetrad.semantic_ids.anchors import popularity_ranking, score_ranking, subcluster_ranking


def test_subcluster_heuristic_draws_distinct_items_of_the_last_items_group():
    groups = np.array([0, 0, 0, 1, 1, 2] + [3] * 30)
    ranked = subcluster_ranking([[5, 0], [4, 35], [1, 3]], groups, 10, seed=0)
    assert sorted(ranked[0, :3]) == [0, 1, 2] and (ranked[0, 3:] == -1).all()  # a 3-item group, padded
    assert len(set(ranked[1])) == 10 and (groups[ranked[1]] == 3).all()
    assert sorted(ranked[2, :2]) == [3, 4]
    np.testing.assert_array_equal(subcluster_ranking([[5, 0], [4, 35], [1, 3]], groups, 10, seed=0), ranked)  # seeded


def test_popularity_and_per_user_scores():
    ranked = popularity_ranking([[2, 2, 1], [2, 0], [1]], 4, 3)
    np.testing.assert_array_equal(ranked, [[2, 1, 0]] * 3)  # counts 3, 2, 1, 0; ties in item order
    out = score_ranking(ranked, [1, 3, 2], [1, 3], per_user=True)
    assert out["recall@1"] == pytest.approx(1 / 3) and out["recall@3"] == pytest.approx(2 / 3)
    assert out["per_user"]["recall@3"] == [1.0, 0.0, 1.0]
    assert out["per_user"]["ndcg@3"] == pytest.approx([1 / np.log2(3), 0.0, 1.0])
    assert np.mean(out["per_user"]["ndcg@3"]) == pytest.approx(out["ndcg@3"])
    assert recall_at_k(ranked, np.array([1, 3, 2]), 3) == recall_rows(ranked, np.array([1, 3, 2]), 3).mean()
    assert ndcg_at_k(ranked, np.array([1, 3, 2]), 3) == ndcg_rows(ranked, np.array([1, 3, 2]), 3).mean()
