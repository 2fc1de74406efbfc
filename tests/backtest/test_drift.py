"""The live drift test: standardization, the overlap-aware variance ratio, the CUSUM and its verdicts."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest import drift

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_drift.py"


def _bench():
    spec = importlib.util.spec_from_file_location("bench_drift", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RNG = np.random.default_rng(7)
BACKTEST = np.exp(RNG.normal(0.0, 0.5, 200))


@given(scale=st.floats(0.1, 10.0), seed=st.integers(0, 2**16))
@settings(max_examples=30, deadline=None)
def test_a_change_of_error_scale_is_a_shift_by_its_log_whatever_the_units(scale: float, seed: int) -> None:
    live = np.exp(np.random.default_rng(seed).normal(0.0, 0.5, 20))
    spread = np.log(BACKTEST).std(ddof=1)
    shifted = drift.standardize(live * scale, BACKTEST) - drift.standardize(live, BACKTEST)
    assert np.allclose(shifted, math.log(scale) / spread)
    # the units of the loss do not matter: both sides in cents give the same z
    assert np.allclose(drift.standardize(live * 100, BACKTEST * 100), drift.standardize(live, BACKTEST))


@given(horizon=st.integers(1, 40), seed=st.integers(0, 2**16), n=st.integers(1, 120))
@settings(max_examples=40, deadline=None)
def test_the_long_run_ratio_stays_between_1_and_the_horizon(horizon: int, seed: int, n: int) -> None:
    z = np.random.default_rng(seed).normal(size=n)
    ratios = drift.long_run_ratios(z, horizon)
    assert ratios.shape == (1, n)
    assert (ratios >= 1).all()
    assert (ratios <= horizon).all()


def test_overlapping_losses_have_a_long_run_ratio_near_their_true_value_and_independent_ones_near_1() -> None:
    rng = np.random.default_rng(1)
    independent = rng.normal(size=5000)
    assert drift.long_run_ratios(independent, 7)[0, -1] == pytest.approx(1.0, abs=0.15)
    # a moving sum of 7 independent shocks: an MA(6) whose long-run variance is 7 times its variance
    overlapping = np.convolve(rng.normal(size=5006), np.ones(7), mode="valid") / math.sqrt(7)
    assert drift.long_run_ratios(overlapping, 7)[0, -1] == pytest.approx(7.0, rel=0.1)


def test_the_path_is_what_each_check_would_report() -> None:
    rng = np.random.default_rng(2)
    live = np.exp(rng.normal(0.2, 0.5, 60))
    z = drift.standardize(live, BACKTEST)
    path = drift.statistic_path(z, 7, drift.log_spread(BACKTEST))
    assert (path[: drift.min_forecasts(7) - 1] == 0).all()
    for n in (drift.min_forecasts(7), 30, 60):
        assert drift.assess(live[:n], BACKTEST, 7).statistic == pytest.approx(path[n - 1])


def test_verdicts_too_few_ok_and_drift() -> None:
    rng = np.random.default_rng(3)
    stable = np.exp(rng.normal(0.0, 0.5, 200))
    few = drift.assess(stable[:13], BACKTEST, 7)
    assert few.verdict == "too few"
    assert few.scored == 13
    assert few.statistic == 0.0
    ok = drift.assess(stable, BACKTEST, 7)
    assert ok.verdict == "ok"
    assert ok.statistic < ok.threshold
    assert ok.ratio == pytest.approx(stable.mean() / BACKTEST.mean())
    broken = np.concatenate([stable[:100], stable[100:] * 2.0])
    alarm = drift.assess(broken, BACKTEST, 7)
    assert alarm.verdict == "drift"
    assert alarm.statistic > alarm.threshold
    assert alarm.ratio > ok.ratio


def test_better_live_errors_never_alarm() -> None:
    """The test is one-sided: a champion that errs less live than in its backtest is not drifting."""
    stable = np.exp(np.random.default_rng(4).normal(0.0, 0.5, 300))
    assert drift.assess(stable / 3, BACKTEST, 7).statistic == 0.0


def test_thresholds_interpolate_in_log_horizon() -> None:
    assert drift.threshold(7) == drift.THRESHOLDS[7]
    assert (
        min(drift.THRESHOLDS[7], drift.THRESHOLDS[15])
        <= drift.threshold(10)
        <= max(drift.THRESHOLDS[7], drift.THRESHOLDS[15])
    )
    assert drift.threshold(365) == drift.THRESHOLDS[90]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: drift.assess([1.0, -1.0], BACKTEST, 7), "negative"),
        (lambda: drift.assess([1.0], [1.0, 2.0], 7), "at least 3"),
        (lambda: drift.assess([1.0], [2.0, 2.0, 2.0], 7), "all equal"),
        (lambda: drift.assess([1.0], BACKTEST, 0), "horizon must be a positive integer"),
        (lambda: drift.assess([[1.0]], BACKTEST, 7), "one-dimensional"),
    ],
)
def test_bad_input_names_the_cause(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_a_perfect_forecast_has_a_finite_z() -> None:
    assert np.isfinite(drift.standardize([0.0, 1.0], BACKTEST)).all()


ONE_STEP = np.random.default_rng(8).normal(0.0, 1.0, 300)  # the backtest's one-step errors, one per fold


@given(scale=st.floats(0.01, 100.0), seed=st.integers(0, 2**16))
@settings(max_examples=30, deadline=None)
def test_the_fast_lane_ignores_units_and_bounds_a_wild_day(scale: float, seed: int) -> None:
    live = np.random.default_rng(seed).standard_t(4, 40)
    wild, scaled = drift.fast_scale(ONE_STEP), drift.fast_scale(ONE_STEP * scale)
    assert wild is not None
    assert scaled is not None
    assert np.allclose(drift.fast_standardize(live * scale, scaled), drift.fast_standardize(live, wild))
    # however wild one day's error, it counts as much as an error of FAST_CAP robust variances
    assert drift.fast_standardize([1e9 * scale], wild)[0] == pytest.approx((drift.FAST_CAP - wild.mean) / wild.sd)


def test_the_fast_lane_catches_a_break_in_one_step_errors_before_any_forecast_is_complete() -> None:
    rng = np.random.default_rng(9)
    errors = np.concatenate([rng.normal(0, 1, 60), rng.normal(0, 3, 40)])
    result = drift.assess([], BACKTEST, 30, live_errors=errors, backtest_errors=ONE_STEP)
    assert (result.verdict, result.lane, result.fast_scored, result.scored) == ("drift", "1-step", 100, 0)
    assert result.fast_statistic > result.fast_threshold == drift.fast_threshold(ONE_STEP.size)
    assert result.lane_text("full") == "-"
    assert result.explain().startswith(f"1-step lane {result.fast_statistic:.1f} / {result.fast_threshold:.1f}")
    # the statistic is the last entry of the path the benchmark simulates
    scale = drift.fast_scale(ONE_STEP)
    assert scale is not None
    path = drift.fast_path(drift.fast_standardize(errors, scale), scale)
    assert result.fast_statistic == pytest.approx(path[-1])
    assert (path[: drift.FAST_MIN - 1] == 0).all()
    stable = drift.assess([], BACKTEST, 30, live_errors=errors[:60], backtest_errors=ONE_STEP)
    assert stable.verdict == "ok"


def test_a_model_that_degrades_only_at_long_steps_is_caught_by_the_full_lane() -> None:
    rng = np.random.default_rng(10)
    losses = np.exp(rng.normal(0.0, 0.5, 200))
    losses[100:] *= 3.0
    result = drift.assess(losses, BACKTEST, 7, live_errors=rng.normal(0, 1, 206), backtest_errors=ONE_STEP)
    assert (result.verdict, result.lane) == ("drift", "full")
    assert result.fast_statistic < result.fast_threshold


def test_a_lane_without_enough_data_stays_silent_and_both_silent_is_too_few() -> None:
    rng = np.random.default_rng(11)
    small_backtest = ONE_STEP[: drift.FAST_MIN_FOLDS - 1]
    silent = drift.assess(np.exp(rng.normal(0, 0.5, 5)), BACKTEST, 7, rng.normal(0, 5, 50), small_backtest)
    assert (silent.verdict, silent.fast_statistic, silent.lane_text("1-step")) == ("too few", 0.0, "-")
    assert math.isnan(silent.fast_threshold)
    few = drift.assess([], BACKTEST, 7, rng.normal(0, 5, drift.FAST_MIN - 1), ONE_STEP)
    assert (few.verdict, few.fast_statistic) == ("too few", 0.0)
    assert drift.assess([], BACKTEST, 7, rng.normal(0, 1, drift.FAST_MIN), ONE_STEP).verdict == "ok"


def test_fast_thresholds_fall_with_backtest_folds_and_stop_falling_at_1000() -> None:
    counts = [drift.FAST_MIN_FOLDS, 50, 100, 200, 300, 500, 1000]
    limits = [drift.fast_threshold(m) for m in counts]
    assert limits == sorted(limits, reverse=True)
    assert drift.fast_threshold(100) == drift.FAST_THRESHOLDS[100]
    assert drift.fast_threshold(5000) == drift.FAST_THRESHOLDS[1000]


def test_fixed_seed_calibration_at_horizon_7() -> None:
    """A small, fixed-seed version of tests/benchmarks/bench_drift.py: stable years rarely alarm (Gaussian or
    t(4) steps), a doubling is caught within a few weeks by a monitor whose backtest has 500 folds."""
    bench = _bench()
    rng = np.random.default_rng(20261127)
    for draw in (bench.gaussian, bench.student4):
        full, fast = bench.simulate(7, 600, bench.YEAR, rng, folds=500, draw=draw)
        assert (bench.monitor_alarm(full, fast, 7, 500) < bench.NEVER).mean() <= 0.07
    full, fast = bench.simulate(7, 600, 200, rng, 2.0, folds=500)
    doubled, early = bench.delays(bench.monitor_alarm(full, fast, 7, 500), bench.WARM_UP)
    assert early <= 0.02
    # the oracle needs a median of 8 and a 90th percentile of 18 business days (the README's table)
    assert np.median(doubled) <= 14
    assert np.quantile(doubled, 0.9) <= 27


def test_the_fast_lane_reads_the_larger_of_its_two_charts_and_the_second_is_quicker_on_a_doubling() -> None:
    scale = drift.fast_scale(ONE_STEP)
    assert scale is not None
    rng = np.random.default_rng(12)
    errors = np.concatenate([rng.normal(0, 1, (400, 60)), rng.normal(0, 2, (400, 60))], axis=1)
    z = drift.fast_standardize(errors.ravel(), scale).reshape(errors.shape)
    first, second = drift.fast_charts(z, scale)
    weight = drift.FAST_THRESHOLDS[300] / drift.FAST_SECOND_THRESHOLDS[300]
    np.testing.assert_allclose(drift.fast_path(z, scale), np.maximum(first, second * weight))
    np.testing.assert_allclose(drift.fast_path(z[0], scale), np.maximum(first[0], second[0] * weight))

    def first_alarm(path: np.ndarray, limit: float) -> np.ndarray:
        return np.where((path > limit).any(axis=1), (path > limit).argmax(axis=1), path.shape[1])

    quick = first_alarm(second, drift.FAST_SECOND_THRESHOLDS[300])
    slow = first_alarm(first, drift.FAST_THRESHOLDS[300])
    assert np.median(quick) < np.median(slow)
