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


def test_fixed_seed_calibration_at_horizon_7() -> None:
    """A small, fixed-seed version of tests/benchmarks/bench_drift.py: stable years rarely alarm, a doubling does."""
    bench = _bench()
    rng = np.random.default_rng(20261127)
    limit = drift.threshold(7)
    stable = bench.simulate(7, 200, bench.YEAR, rng)
    assert (stable.max(axis=1) > limit).mean() <= 0.10
    doubled, early = bench.delays(bench.first_alarm(bench.simulate(7, 200, 250, rng, 2.0), limit), bench.WARM_UP)
    assert early <= 0.10
    assert np.median(doubled) <= 60
