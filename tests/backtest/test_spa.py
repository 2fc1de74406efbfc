"""Quaedvlieg's multi-horizon SPA tests (backtest.spa): alignment, scaling, the bootstrap, and its size on iid data."""

from __future__ import annotations

import numpy as np
import pytest

from backtest.spa import block_length, common_origins, differentials, multi_horizon_spa


def test_common_origins_are_those_every_horizon_scored_in_increasing_order():
    origins = [["2024-01-05", "2024-01-01", "2024-01-03"], ["2024-01-03", "2024-01-01"], ["2024-01-01", "2024-01-03"]]
    assert common_origins(origins).tolist() == ["2024-01-01", "2024-01-03"]
    with pytest.raises(ValueError, match="no horizons given"):
        common_origins([])


def test_differentials_are_relative_to_the_baselines_mean_and_positive_when_worse():
    baseline = np.array([[1.0, 10.0], [3.0, 30.0]])
    candidate = baseline * [1.1, 0.9]
    d = differentials(candidate, baseline)
    np.testing.assert_allclose(d.mean(axis=0), [0.1, -0.1])  # 10% worse at the first horizon, better at the second
    higher = differentials(candidate, baseline, direction="higher", tolerance=0.05)
    np.testing.assert_allclose(higher, (0.95 * baseline - candidate) / baseline.mean(axis=0))
    with pytest.raises(ValueError, match="of one shape"):
        differentials(candidate[:, :1], baseline)
    with pytest.raises(ValueError, match="mean is zero"):
        differentials(candidate, baseline * [1.0, 0.0])


@pytest.mark.parametrize(("n", "lags", "expected"), [(500, 0, 8), (500, 29, 60), (1000, 4, 10), (40, 29, 60)])
def test_blocks_are_at_least_twice_the_deepest_overlap(n, lags, expected):
    assert block_length(n, lags) == expected


def test_a_verdict_is_reproducible_from_its_seed():
    d = np.random.default_rng(1).normal(0.05, 1.0, (300, 4))
    first = multi_horizon_spa(d, kind="average", deepest_lags=3, seed=7)
    assert multi_horizon_spa(d, kind="average", deepest_lags=3, seed=7) == first
    assert (first.n, first.horizons, first.block_length, first.bootstraps, first.seed) == (300, 4, 8, 999, 7)


def test_with_one_horizon_the_uniform_and_average_tests_agree():
    d = np.random.default_rng(2).normal(0.1, 1.0, (200, 1))
    uniform = multi_horizon_spa(d, kind="uniform", deepest_lags=0, seed=3)
    average = multi_horizon_spa(d, kind="average", deepest_lags=0, seed=3)
    assert (uniform.statistic, uniform.p_value) == (average.statistic, average.p_value)


def test_uniform_needs_every_horizon_worse_average_needs_the_mean_worse():
    noise = np.random.default_rng(4).normal(0.0, 1.0, (400, 3))
    everywhere = multi_horizon_spa(noise + 0.5, kind="uniform", deepest_lags=0)
    assert everywhere.p_value < 0.01
    one_horizon = noise + [1.0, -0.2, -0.2]  # much worse at one horizon, a little better at the others
    assert multi_horizon_spa(one_horizon, kind="uniform", deepest_lags=0).p_value > 0.5
    assert multi_horizon_spa(one_horizon, kind="average", deepest_lags=0).p_value < 0.01
    assert multi_horizon_spa(noise - 0.5, kind="average", deepest_lags=0).p_value > 0.99


def test_bad_input_is_refused_with_the_numbers():
    d = np.zeros((50, 2))
    with pytest.raises(ValueError, match="unknown kind 'max'"):
        multi_horizon_spa(d, kind="max", deepest_lags=0)
    with pytest.raises(ValueError, match="50 common origins are too few for blocks of 26"):
        multi_horizon_spa(d, kind="uniform", deepest_lags=12)
    with pytest.raises(ValueError, match=r"weights must be 2 non-negative numbers summing to 1, got \[0.5, 0.6\]"):
        multi_horizon_spa(d, kind="average", deepest_lags=0, weights=np.array([0.5, 0.6]))


def test_equal_models_with_iid_differentials_are_rarely_rejected():
    rng = np.random.default_rng(5)
    rejected = [
        multi_horizon_spa(rng.standard_normal((200, 4)), kind=kind, deepest_lags=0, bootstraps=199, seed=i).p_value
        < 0.05
        for i in range(150)
        for kind in ("uniform", "average")
    ]
    assert np.mean(rejected) <= 0.09  # about 5-6% measured; 300 tests carry a 1.3-point standard error


def test_identical_models_are_never_rejected():
    """A zero differential everywhere (an identical rerun) ties every bootstrap statistic: p is 1, not 0."""
    for kind in ("uniform", "average"):
        result = multi_horizon_spa(np.zeros((40, 2)), kind=kind, deepest_lags=1)
        assert (result.statistic, result.p_value) == (0.0, 1.0)


def test_the_detectable_regression_is_the_critical_value_plus_power_in_standard_errors():
    d = np.random.default_rng(6).standard_normal((400, 4))  # the equal-weight mean has a standard error of 0.025
    average = multi_horizon_spa(d, kind="average", deepest_lags=0, alpha=0.05)
    assert 1.4 < average.critical_value < 1.9  # about the normal's 1.645
    assert 0.8 * 2.49 * 0.025 < average.min_detectable < 1.2 * 2.49 * 0.025
    uniform = multi_horizon_spa(d, kind="uniform", deepest_lags=0, alpha=0.05)
    assert uniform.critical_value < average.critical_value  # the minimum of four statistics is smaller


def test_the_statistic_is_studentised_by_the_natural_variance_of_consecutive_blocks():
    """Pinned on a hand-made matrix: 8 origins, blocks of 4 (twice the overlap of 2), so 2 blocks per horizon.

    The variance is the mean square of the demeaned 4-row block sums over 4 (not the paper's QS HAC, not
    the Matlab code's sums of the 2-row chunks): here the sums are +s and -s, so it is s^2 / 4. Positive
    where the candidate is worse, as the paper's L_bench - L_comp is positive where the benchmark is worse.
    """
    d = np.array([[2, 1], [1, 1], [2, 1], [1, 1], [0, -1], [1, 0], [0, 0], [1, 0]], dtype=float)
    # horizon 1: mean 1, s = (6 - 2) / 2 = 2, variance 1; horizon 2: mean 0.375, s = 2.5, variance 1.5625
    uniform = multi_horizon_spa(d, kind="uniform", deepest_lags=1)
    assert uniform.block_length == 4
    np.testing.assert_allclose(uniform.horizon_statistics, [np.sqrt(8) * 1 / 1, np.sqrt(8) * 0.375 / 1.25])
    assert uniform.statistic == pytest.approx(np.sqrt(8) * 0.3)
    # the average of the two: mean 0.6875, s = (5 - 0.5) / 2 = 2.25, variance 1.265625
    average = multi_horizon_spa(d, kind="average", deepest_lags=1)
    assert average.statistic == pytest.approx(np.sqrt(8) * 0.6875 / 1.125)
