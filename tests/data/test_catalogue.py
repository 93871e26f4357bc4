import numpy as np
import pytest

from tetrad.core.errors import UserError
from tetrad.core.metrics import gini
from tetrad.data.catalogue import make_catalogue, zipf_sizes


def test_zipf_sizes_sum_and_skew():
    rng = np.random.default_rng(0)
    sizes = zipf_sizes(10_000, 50, 1.2, rng)
    assert sizes.sum() == 10_000 and sizes.min() >= 1
    assert np.sort(sizes)[-1] > 20 * np.sort(sizes)[len(sizes) // 2]
    flat = zipf_sizes(10_000, 50, 0.0, rng)
    assert flat.max() - flat.min() <= 1


def test_long_tail_and_uniform_twin():
    tail = make_catalogue(items=6000, dim=16, top_clusters=12, sub_clusters=6, zipf=1.2, users=200, seed=3)
    flat = make_catalogue(items=6000, dim=16, top_clusters=12, sub_clusters=6, zipf=0.0, users=200, seed=3)
    for cat in (tail, flat):
        assert cat.embeddings.shape == (6000, 16) and cat.embeddings.dtype == np.float32
        assert len(cat.sequences) == 200
        lengths = [len(s) for s in cat.sequences.values()]
        assert min(lengths) >= 5 and max(lengths) <= 30
        assert all(0 <= i < 6000 for s in cat.sequences.values() for i in s)
    assert gini(np.bincount(tail.sub_cluster)) > 0.5 > 0.05 > gini(np.bincount(flat.sub_cluster))
    # items sit nearer their own sub-cluster's mean than the other sub-clusters'
    means = np.stack([tail.embeddings[tail.sub_cluster == c].mean(0) for c in range(72)])
    d = ((tail.embeddings[:500, None] - means[None]) ** 2).sum(-1)
    assert (d.argmin(1) == tail.sub_cluster[:500]).mean() > 0.9


def test_sequences_stay_in_a_region_and_are_reproducible():
    a = make_catalogue(items=4000, dim=16, top_clusters=8, sub_clusters=4, users=100, stay=0.8, seed=1)
    b = make_catalogue(items=4000, dim=16, top_clusters=8, sub_clusters=4, users=100, stay=0.8, seed=1)
    np.testing.assert_array_equal(a.embeddings, b.embeddings)
    assert a.sequences == b.sequences
    same = [a.sub_cluster[s[i]] == a.sub_cluster[s[i + 1]] for s in a.sequences.values() for i in range(len(s) - 1)]
    assert np.mean(same) > 0.75  # stay = 0.8, plus moves that land in the same sub-cluster


def test_bad_sizes():
    with pytest.raises(UserError, match="fewer than"):
        make_catalogue(items=100, top_clusters=32, sub_clusters=16)
    with pytest.raises(UserError, match="min_len"):
        make_catalogue(items=1000, top_clusters=4, sub_clusters=4, min_len=1)


def _oracles(cat, k=10):
    """Hit@k of three oracles that all know the test item's sub-cluster: one ranks its items at random
    (all a sub-cluster carries), one by their popularity in the training positions, one by how close
    their offset from the sub-cluster mean lies to the user's mean offset over the history."""
    sub = cat.sub_cluster
    means = np.stack([cat.embeddings[sub == c].mean(0) for c in range(sub.max() + 1)])
    offset = cat.embeddings - means[sub]
    train = np.bincount([i for s in cat.sequences.values() for i in s[:-1]], minlength=len(sub))
    random_hit, popular_hit, taste_hit = [], [], []
    for s in cat.sequences.values():
        target = s[-1]
        members = np.flatnonzero(sub == sub[target])
        random_hit.append(min(k, len(members)) / len(members))
        popular_hit.append(target in members[np.argsort(-train[members], kind="stable")[:k]])
        taste = offset[s[:-1]].mean(0)
        taste_hit.append(target in members[np.argsort(-(offset[members] @ taste), kind="stable")[:k]])
    return np.mean(random_hit), np.mean(popular_hit), np.mean(taste_hit)


def test_fine_knobs_make_the_item_within_a_sub_cluster_predictable():
    """The data carries the effect: with `item_zipf` an oracle that knows item popularity, with
    `user_pull` one that knows the user's earlier positions, beats one that only knows the sub-cluster."""
    kw = dict(items=4000, dim=16, top_clusters=8, sub_clusters=8, zipf=0.0, users=1000, seed=2)
    plain = make_catalogue(**kw)
    popular = make_catalogue(**kw, item_zipf=1.2)
    taste = make_catalogue(**kw, user_pull=2.0)
    for cat in (popular, taste):  # the geometry is the plain catalogue's: only the sequences change
        np.testing.assert_array_equal(cat.embeddings, plain.embeddings)
        np.testing.assert_array_equal(cat.sub_cluster, plain.sub_cluster)
    r, p, t = _oracles(plain)
    assert 0.12 < r < 0.2 and p < 1.3 * r and t < 1.3 * r  # uniform within the sub-cluster: nothing to know
    r, p, t = _oracles(popular)
    assert p > 3 * r and p > t  # (users' past items lean to the popular side too, so the taste oracle gains)
    r, p, t = _oracles(taste)
    assert t > 3 * r and t > 1.5 * p  # a user's own taste beats what is popular among all users
    with pytest.raises(UserError, match="non-negative"):
        make_catalogue(**kw, item_zipf=-1.0)
