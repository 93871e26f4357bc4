import math

import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss, ndcg_score, roc_auc_score

from tetrad.core import metrics as M


@pytest.fixture
def scored():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    # rounded scores give many ties, which the rank formula must average
    s = np.round(rng.random(500) + 0.3 * y, 1)
    g = rng.integers(0, 40, 500)
    return y, s, g


def test_auc_matches_sklearn_with_ties(scored):
    y, s, _ = scored
    assert M.auc(y, s) == pytest.approx(roc_auc_score(y, s), abs=1e-12)
    assert M.auc(torch.tensor(y), torch.tensor(s)) == pytest.approx(roc_auc_score(y, s), abs=1e-12)


def test_auc_one_class_is_an_error():
    with pytest.raises(ValueError, match="one class"):
        M.auc([1, 1, 1], [0.1, 0.2, 0.3])


def test_gauc_matches_per_group_sklearn(scored):
    y, s, g = scored
    g[:10] = 999  # a group that is all one class once labels are forced
    y[:10] = 1
    num = den = 0.0
    for grp in np.unique(g):
        m = g == grp
        if 0 < y[m].sum() < m.sum():
            num += roc_auc_score(y[m], s[m]) * m.sum()
            den += m.sum()
    assert M.gauc(y, s, g) == pytest.approx(num / den, abs=1e-12)


def test_gauc_hand_case():
    # group a: perfect (AUC 1, 4 rows); group b: inverted (AUC 0, 2 rows); group c: one class, skipped
    y = [1, 0, 1, 0, 1, 0, 1, 1]
    s = [0.9, 0.1, 0.8, 0.2, 0.1, 0.9, 0.5, 0.4]
    g = ["a", "a", "a", "a", "b", "b", "c", "c"]
    assert M.gauc(y, s, g) == pytest.approx((1.0 * 4 + 0.0 * 2) / 6)


def test_logloss_matches_sklearn(scored):
    y, _, _ = scored
    p = np.random.default_rng(1).random(len(y))
    assert M.logloss(y, p) == pytest.approx(log_loss(y, p), rel=1e-9)


def test_recall_and_ndcg_single_target_hand_case():
    ranked = np.array([[5, 3, 9], [1, 2, 3], [7, 8, 4]])
    target = np.array([3, 4, 4])
    # hits at rank 2, none, rank 3
    assert M.recall_at_k(ranked, target, 3) == pytest.approx(2 / 3)
    assert M.recall_at_k(ranked, target, 1) == 0.0
    assert M.ndcg_at_k(ranked, target, 3) == pytest.approx((1 / math.log2(3) + 1 / math.log2(4)) / 3)


def test_recall_and_ndcg_sets_match_sklearn():
    rng = np.random.default_rng(2)
    n_items, k = 30, 10
    scores = rng.random((20, n_items))
    ranked = np.argsort(-scores, axis=1)
    relevant = [set(rng.choice(n_items, size=rng.integers(1, 6), replace=False).tolist()) for _ in range(20)]
    truth = np.zeros_like(scores)
    for row, rel in enumerate(relevant):
        truth[row, list(rel)] = 1
    assert M.ndcg_at_k(ranked, relevant, k) == pytest.approx(ndcg_score(truth, scores, k=k), abs=1e-12)
    want = np.mean([len(set(r[:k].tolist()) & rel) / len(rel) for r, rel in zip(ranked, relevant)])
    assert M.recall_at_k(ranked, relevant, k) == pytest.approx(want)


@pytest.mark.parametrize("n,c,k", [(10, 3, 1), (10, 3, 5), (64, 1, 8), (64, 60, 8), (5, 0, 2), (5, 5, 5), (200, 17, 50)])
def test_pass_at_k_matches_combinatorial_definition(n, c, k):
    want = 1 - math.comb(n - c, k) / math.comb(n, k)
    assert M.pass_at_k(n, c, k) == pytest.approx(want, abs=1e-12)


def test_pass_at_1_is_accuracy_and_bad_args_fail():
    assert M.pass_at_k(8, 2, 1) == pytest.approx(0.25)
    with pytest.raises(ValueError):
        M.pass_at_k(4, 5, 1)


def test_mean_at_k_and_maj_at_k_hand_cases():
    assert M.mean_at_k([[1, 0, 0, 1], [1, 1, 1, 1]]) == pytest.approx(0.75)
    answers = [["4", "4", "5"], ["7", None, None], ["1", "2", "2"], [None, None]]
    truths = ["4", "7", "1", "3"]
    # majorities: 4 (right), 7 (right: None never votes), 2 (wrong), none (wrong)
    assert M.maj_at_k(answers, truths) == pytest.approx(0.5)
    assert M.majority(["a", "b", "b", "a"]) == "a"  # tie: first seen wins
    assert M.maj_at_k([["2.0"]], ["2"], equal=lambda a, b: float(a) == float(b)) == 1.0


def test_gini_hand_cases():
    assert M.gini([5, 5, 5, 5]) == pytest.approx(0.0)
    assert M.gini([0, 0, 0, 8]) == pytest.approx(0.75)
    # mean absolute difference definition: sum_ij |xi-xj| / (2 n^2 mean)
    x = np.array([1.0, 2.0, 7.0])
    want = np.abs(x[:, None] - x[None, :]).sum() / (2 * len(x) ** 2 * x.mean())
    assert M.gini(x) == pytest.approx(want)
