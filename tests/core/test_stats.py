import numpy as np
import pytest

from tetrad.core.stats import paired_bootstrap, paired_t_interval


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
