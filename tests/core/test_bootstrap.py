import numpy as np
import pytest

from tetrad.core.bootstrap import (auc_replicates, gauc_replicates, group_weights, paired_bootstrap, paired_interval,
                                   paired_t_interval, row_weights)
from tetrad.core.metrics import auc, gauc


def data(n=3_000, seed=0):
    rng = np.random.default_rng(seed)
    users = rng.integers(0, 200, n)
    y = (rng.random(n) < 0.3).astype(int)
    good = y + rng.normal(0, 1.0, n)
    return users, y, np.round(good, 1), np.round(y + rng.normal(0, 1.5, n), 1)  # rounded: ties


def test_unit_weights_give_the_plain_metrics_and_weights_repeat_rows():
    users, y, s, _ = data()
    ids, _ = group_weights(users, 1)
    ones = np.ones((1, len(ids)))
    assert np.isclose(auc_replicates(y, s, row_weights(users, ids, ones))[0], auc(y, s))
    assert np.isclose(gauc_replicates(y, s, users, ids, ones)[0], gauc(y, s, users))
    # a weight of 2 on a user is that user's rows twice: the weighted AUC of the duplicated data
    w = ones.copy()
    w[0, :50] = 2.0
    w[0, 50:80] = 0.0
    rw = row_weights(users, ids, w)[0]
    rep = np.repeat(np.arange(len(y)), rw.astype(int))
    assert np.isclose(auc_replicates(y, s, rw[None])[0], auc(y[rep], s[rep]))
    assert np.isclose(gauc_replicates(y, s, users, ids, w)[0], gauc(y[rep], s[rep], users[rep]))


def test_same_groups_same_replicates_and_the_paired_interval_separates_a_real_gap():
    users, y, good, bad = data()
    ids, w = group_weights(users, 200, seed=3)
    assert np.array_equal(w, group_weights(users, 200, seed=3)[1])  # stored replicates pair across runs
    rw = row_weights(users, ids, w)
    a, b = auc_replicates(y, good, rw), auc_replicates(y, bad, rw)
    lo, hi = paired_interval((a - b)[None])
    assert 0 < lo < auc(y, good) - auc(y, bad) < hi
    noise = np.random.default_rng(1).normal(0, 0.01, (3, 200))  # differences that are noise only
    lo, hi = paired_interval(noise)
    assert lo < 0 < hi


def test_paired_t_interval_is_the_t_interval_of_the_differences():
    mean, half = paired_t_interval([0.1, 0.2, 0.3])
    assert mean == pytest.approx(0.2) and half == pytest.approx(4.302653 * 0.1 / 3 ** 0.5, rel=1e-5)
    assert np.isnan(paired_t_interval([0.4])[1])
    with pytest.raises(ValueError):
        paired_t_interval([])


def test_paired_bootstrap_covers_the_mean_difference_at_about_the_normal_width():
    rng = np.random.default_rng(1)
    b = rng.normal(size=4000)
    a = b + 0.1 + rng.normal(scale=1.0, size=4000)  # a shift of 0.1, the pairs share b
    mean, low, high = paired_bootstrap(a, b, seed=0)
    assert mean == pytest.approx(0.1, abs=0.05) and low < mean < high
    assert high - low == pytest.approx(2 * 1.96 / np.sqrt(4000), rel=0.15)  # the pairing removes b's variance
    assert paired_bootstrap(a, b, seed=0) == (mean, low, high)  # seeded
    with pytest.raises(ValueError):
        paired_bootstrap([], [])
