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
