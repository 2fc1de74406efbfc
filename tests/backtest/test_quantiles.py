"""Quantile forecasts and the interval metrics; metrics of your own; the stateless (refit-free) path."""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import backtest
from backtest import Drift, ModelError, Naive, RandomWalk, WalkForward, get_metric, register_metric, run, score
from backtest.metrics import _REGISTERED, default_metrics, interval_of

LEVELS = (0.05, 0.5, 0.95)


def positions(n: int) -> pd.Series:
    return pd.Series(np.arange(float(n)), index=pd.bdate_range("2024-01-01", periods=n))


def bands(result: backtest.BacktestResult) -> np.ndarray:
    assert result.quantiles is not None
    return result.quantiles


def gaussian_walk(n: int, seed: int = 11) -> np.ndarray:
    return 100.0 + np.cumsum(np.random.default_rng(seed).normal(0.0, 1.0, n))


# -- the interval metrics ----------------------------------------------------------------------------------

finite = st.floats(-1e3, 1e3)


@settings(max_examples=60, deadline=None)
@given(actual=arrays(float, (3, 4), elements=finite), forecast=arrays(float, (3, 4), elements=finite))
def test_pinball_at_the_median_is_half_the_mae(actual: np.ndarray, forecast: np.ndarray) -> None:
    scores = score(
        actual,
        forecast,
        last=np.zeros(3),
        scale=np.ones(3),
        metrics=("pinball", "mae"),
        quantiles=forecast[..., None],
        levels=(0.5,),
    )
    np.testing.assert_allclose(scores.per_fold["pinball"], scores.per_fold["mae"] / 2, rtol=1e-12, atol=1e-12)
    assert scores.pooled["pinball"] == pytest.approx(scores.pooled["mae"] / 2, rel=1e-12, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    actual=arrays(float, (3, 4), elements=finite),
    below=arrays(float, (3, 4), elements=st.floats(0, 100)),
    above=arrays(float, (3, 4), elements=st.floats(0, 100)),
)
def test_an_interval_holding_every_actual_covers_1_and_scores_its_width(actual, below, above) -> None:
    bands = np.stack([actual - below, actual, actual + above], axis=-1)
    scores = score(
        actual,
        actual,
        last=np.zeros(3),
        scale=np.ones(3),
        metrics=("coverage", "coverage_error", "interval_score"),
        quantiles=bands,
        levels=LEVELS,
    )
    np.testing.assert_array_equal(scores.per_fold["coverage"], 1.0)
    np.testing.assert_allclose(scores.per_fold["coverage_error"], 0.1, rtol=1e-12)  # nominal 0.9
    np.testing.assert_allclose(scores.per_fold["interval_score"], (below + above).mean(axis=1), rtol=1e-9, atol=1e-9)


def test_the_interval_score_charges_2_over_alpha_per_unit_outside() -> None:
    # a 90% interval [0, 1] (alpha 0.1): inside costs the width 1; 2 above costs 1 + 20 * 1; 3 below 1 + 20 * 3
    actual = np.array([[0.5, 2.0, -3.0]])
    bands = np.broadcast_to([0.0, 0.5, 1.0], (1, 3, 3))
    scores = score(
        actual, actual, last=[0.0], scale=[1.0], metrics=("interval_score", "coverage"), quantiles=bands, levels=LEVELS
    )
    np.testing.assert_allclose(scores.per_fold["interval_score"], [(1 + 21 + 61) / 3])
    np.testing.assert_allclose(scores.per_fold["coverage"], [1 / 3])


@pytest.mark.parametrize(
    ("levels", "expected"),
    [
        ((0.05, 0.5, 0.95), (0, 2, 0.9)),
        ((0.1, 0.25, 0.75, 0.9), (0, 3, 0.8)),
        ((0.1, 0.2, 0.8), (1, 2, 0.6)),
        ((0.5,), None),
    ],
)
def test_the_interval_is_the_outermost_symmetric_pair(levels, expected) -> None:
    found = interval_of(levels)
    if expected is None:
        assert found is None
    else:
        assert found is not None
        assert found[:2] == expected[:2]
        assert found[2] == pytest.approx(expected[2])


def test_interval_metrics_are_added_to_the_defaults_only_with_quantiles() -> None:
    assert "pinball" not in default_metrics()
    assert default_metrics((0.5,))[-1] == "pinball"
    assert default_metrics(LEVELS)[-4:] == ("pinball", "coverage", "coverage_error", "interval_score")


# -- asking a model for quantiles --------------------------------------------------------------------------


class Bands(Naive):
    """The random walk with a fixed +-1 band per level pair, or whatever ``answer`` returns at fold 2."""

    def __init__(self, answer=None, batched: bool = True) -> None:
        self.answer = answer
        self.batched = batched
        self.calls = 0

    def predict_quantiles(self, history, steps, quantiles):
        self.calls += 1
        out = history[-1] + np.repeat((np.asarray(quantiles) - 0.5)[None, :], steps, axis=0)
        return self.answer(out) if self.answer is not None and self.calls == 3 else out


class Sequential:
    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def fit(self, history):
        self.inner.fit(history)

    def predict(self, history, steps):
        return self.inner.predict(history, steps)

    def predict_quantiles(self, history, steps, quantiles):
        return self.inner.predict_quantiles(history, steps, quantiles)


def test_quantiles_come_back_sorted_by_level_without_the_gap() -> None:
    result = run(
        Sequential(Bands()), positions(20), WalkForward(horizon=2, gap=1, initial=10), quantiles=(0.95, 0.05, 0.5)
    )
    assert result.levels == LEVELS
    assert result.quantiles is not None
    assert result.quantiles.shape == (result.n_folds, 2, 3)
    np.testing.assert_allclose(result.quantiles[:, :, 1], result.forecasts)
    np.testing.assert_allclose(result.quantiles[:, :, 2] - result.quantiles[:, :, 0], 0.9)


def test_the_batched_path_asks_each_origin_when_the_model_has_no_quantile_batch() -> None:
    model = Bands()
    result = run(model, positions(20), WalkForward(horizon=2, initial=10), quantiles=LEVELS)
    assert model.calls == result.n_folds
    assert result.quantiles is not None


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (
            lambda out: out[:, :2],
            r"fold 2 \(origin 2024-01-16 00:00:00\): forecast has shape \(2, 2\), expected \(2, 3\) \(gap \+ horizon "
            r"steps\); model \w+.predict_quantiles must return one row per step and one column per level",
        ),
        (
            lambda out: np.where(out > 0, np.nan, out),
            r"fold 2 \(origin 2024-01-16.*\): quantile forecast contains 6 NaN/inf",
        ),
        (
            lambda out: out[:, ::-1],
            r"fold 2 \(origin 2024-01-16.*\): quantiles cross at step 1: the 0.05 quantile 11.45 exceeds the 0.5 "
            r"quantile 11 \(4 crossing\(s\)\); model \w+.predict_quantiles must return",
        ),
    ],
)
def test_a_bad_quantile_forecast_names_the_fold_and_its_origin(answer, message: str) -> None:
    for model in (Bands(answer), Sequential(Bands(answer))):
        with pytest.raises(ModelError, match=message):
            run(model, positions(20), WalkForward(horizon=2, initial=10), quantiles=LEVELS)


def test_a_crossing_quantile_batch_names_the_fold() -> None:
    class CrossingBatch(RandomWalk):
        def predict_quantiles_batch(self, contexts, steps, quantiles):
            out = np.array(super().predict_quantiles_batch(contexts, steps, quantiles))
            out[4] = out[4, :, ::-1]
            return out

    with pytest.raises(ModelError, match=r"^fold 4 \(origin 2024-01-18.*\): quantiles cross at step 1: the 0.05"):
        run(
            CrossingBatch(),
            positions(40) + np.sin(np.arange(40)),
            WalkForward(horizon=2, initial=10, refit=0),
            quantiles=LEVELS,
        )


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"quantiles": (0.05, 1.0)}, ValueError, r"quantile levels must lie strictly between 0 and 1, got \[1.0\]"),
        ({"quantiles": (0.5, 0.5)}, ValueError, r"quantile levels repeat in \(0.5, 0.5\)"),
        ({"quantiles": "0.5"}, TypeError, r"quantiles must be a sequence of levels in \(0, 1\), e.g. quantiles="),
        ({"quantiles": ()}, ValueError, "quantiles is empty"),
        ({"metrics": ("interval_score",)}, ValueError, r"metric 'interval_score' scores quantile forecasts, and none"),
        (
            {"metrics": ("coverage",), "quantiles": (0.1, 0.5)},
            ValueError,
            r"metric 'coverage' scores the outermost symmetric interval, and quantiles=\(0.1, 0.5\) hold none",
        ),
    ],
)
def test_bad_quantile_requests_are_refused_before_any_fit(kwargs, error, message: str) -> None:
    class NeverFit(RandomWalk):
        def fit(self, history):
            raise AssertionError("fit before the arguments were checked")

    with pytest.raises(error, match=message):
        run(NeverFit(), positions(20), WalkForward(horizon=2, initial=10), **kwargs)


def test_a_model_without_predict_quantiles_is_named() -> None:
    with pytest.raises(
        TypeError, match=r"quantiles=\(0.05, 0.5, 0.95\) needs quantile forecasts, and model Drift has no"
    ):
        run(Drift(window=3), positions(20), WalkForward(horizon=2, initial=10), quantiles=LEVELS)


# -- the random walk's honest interval ---------------------------------------------------------------------


@pytest.mark.parametrize("interval", ["gaussian", "empirical"])
def test_the_random_walk_interval_comes_from_the_training_window_and_widens_with_sqrt_step(
    interval: Literal["gaussian", "empirical"],
) -> None:
    y = gaussian_walk(300)
    spec = WalkForward(horizon=4, step=10, initial=200, refit=0)
    result = run(RandomWalk(interval), y, spec, quantiles=LEVELS)
    changes = np.diff(y[:200])
    if interval == "gaussian":
        half = changes.std(ddof=1) * NormalDist().inv_cdf(0.95)
        np.testing.assert_allclose(
            bands(result)[:, :, 2] - result.forecasts, half * np.sqrt([1, 2, 3, 4]) + 0 * result.forecasts
        )
    else:
        np.testing.assert_allclose(bands(result)[0, 0, 0], y[199] + np.quantile(changes, 0.05))
    # the future never moves the interval: the same first 200 points, a wild continuation
    wild = np.concatenate([y[:200], y[200:] * 10])
    np.testing.assert_array_equal(bands(run(RandomWalk(interval), wild, spec, quantiles=LEVELS))[0], bands(result)[0])


class Halved(RandomWalk):
    """The correctly specified Gaussian interval at half its width."""

    def predict_quantiles_batch(self, contexts, steps, quantiles):
        full = super().predict_quantiles_batch(contexts, steps, quantiles)
        return contexts[:, -1, None, None] + 0.5 * (full - contexts[:, -1, None, None])


def test_acceptance_a_correct_gaussian_interval_covers_its_nominal_level_and_halving_it_shows() -> None:
    # 2,000 non-overlapping folds of a Gaussian random walk, scale estimated from each training window
    y = gaussian_walk(500 + 2000 * 5, seed=2026)
    spec = WalkForward(horizon=5, step=5, initial=500, refit=100)
    levels = (0.05, 0.95)
    right = run(RandomWalk("gaussian"), y, spec, quantiles=levels)
    halved = run(Halved("gaussian"), y, spec, quantiles=levels)
    assert right.n_folds == 2000
    assert abs(right.pooled["coverage"] - 0.90) <= 0.02
    assert right.pooled["coverage_error"] <= 0.02
    assert right.summary().loc["coverage", "direction"] == "nominal"  # neither more nor less is better
    assert halved.pooled["coverage"] < 0.7
    assert halved.pooled["interval_score"] > right.pooled["interval_score"]
    assert halved.pooled["coverage_error"] > right.pooled["coverage_error"]
    found = right.coverage_by_step()
    assert found is not None
    nominal, by_step = found
    assert nominal == pytest.approx(0.9)
    assert by_step.shape == (5,)
    assert (abs(by_step - 0.9) < 0.03).all()


# -- metrics of your own -----------------------------------------------------------------------------------


@pytest.fixture
def registered():
    before = dict(_REGISTERED)
    yield
    _REGISTERED.clear()
    _REGISTERED.update(before)


def cost_pesos(actual, forecast, context):
    """Cost in pesos of a forecast error on 1,000 USD: selling short of the need costs three times more."""
    return 1000 * np.where(forecast < actual, 3.0, 1.0) * np.abs(forecast - actual)


def test_a_metric_of_your_own_is_scored_logged_as_aggregates_and_has_its_direction(registered) -> None:
    register_metric("cost_pesos", cost_pesos, direction="lower")
    result = run(Naive(), positions(20), WalkForward(horizon=2, initial=10), metrics=("rmse", "cost_pesos"))
    # Naive on a line is always 1..2 short: cost 3,000 and 6,000 a fold
    np.testing.assert_allclose(result.fold_metrics["cost_pesos"], 4500.0)
    assert result.aggregates()["cost_pesos_pooled"] == 4500.0
    assert get_metric("cost_pesos").direction == "lower"
    assert not get_metric("cost_pesos").builtin
    assert result.summary().loc["cost_pesos", "direction"] == "lower"


def test_a_metric_of_your_own_sees_the_context_and_can_exclude_points(registered) -> None:
    seen = {}

    @register_metric("inside_share", direction="higher")
    def inside(actual, forecast, context):
        seen["context"] = context
        with pytest.raises(ValueError, match="read-only"):
            actual[0, 0] = 0
        low, high = context.quantiles[..., 0], context.quantiles[..., -1]
        return np.where(np.arange(actual.shape[1]) == 0, np.nan, (low <= actual) & (actual <= high))

    result = run(
        RandomWalk(), gaussian_walk(60), WalkForward(horizon=3, initial=30), metrics=("inside_share",), quantiles=LEVELS
    )
    assert seen["context"].levels == LEVELS
    assert seen["context"].last.shape == (result.n_folds,)
    assert result.excluded["inside_share"] == result.n_folds  # the first step of each fold: NaN, excluded
    assert 0 <= result.pooled["inside_share"] <= 1


@pytest.mark.parametrize(
    ("name", "function", "direction", "error", "message"),
    [
        (
            "rmse",
            cost_pesos,
            "lower",
            ValueError,
            r"metric name 'rmse' is taken by a built-in metric .*choose another, e.g. 'rmse_custom'",
        ),
        ("cost pesos", cost_pesos, "lower", ValueError, r"metric name 'cost pesos' cannot name a metric: use a letter"),
        ("cost_pooled", cost_pesos, "lower", ValueError, r"'cost_pooled' would collide with the names logged beside"),
        ("cost_pesos", cost_pesos, None, ValueError, r"metric 'cost_pesos' needs a direction: direction='lower'"),
        ("cost_pesos", cost_pesos, "smaller", ValueError, r"needs a direction: .*got 'smaller'"),
        (
            "cost_pesos",
            3,
            "lower",
            TypeError,
            r"metric 'cost_pesos' must be a function of \(actual, forecast, context\)",
        ),
    ],
)
def test_a_bad_metric_definition_is_refused_saying_why(registered, name, function, direction, error, message) -> None:
    with pytest.raises(error, match=message):
        register_metric(name, function, direction=direction)
    assert name not in _REGISTERED


@pytest.mark.parametrize(
    ("returns", "message"),
    [
        (
            lambda a, f, c: np.abs(f - a).mean(axis=1),
            r"metric 'per_fold' returned shape \(9,\), expected \(9, 2\) \(folds, steps\)",
        ),
        (lambda a, f, c: np.full(a.shape, np.inf), r"metric 'per_fold' returned 18 infinite value\(s\); return NaN"),
        (lambda a, f, c: "cheap", r"metric 'per_fold' returned str, not numbers"),
    ],
)
def test_a_metric_of_your_own_returning_the_wrong_shape_is_named(registered, returns, message: str) -> None:
    register_metric("per_fold", returns, direction="lower")
    with pytest.raises(ValueError, match=message):
        run(Naive(), positions(20), WalkForward(horizon=2, initial=10), metrics=("per_fold",))


# -- the stateless path ------------------------------------------------------------------------------------


def test_a_stateless_model_is_fit_once_and_batched_whatever_the_refit() -> None:
    class Counting(Naive):
        batches = 0

        def predict_batch(self, contexts, steps):
            Counting.batches += 1
            return super().predict_batch(contexts, steps)

    y = gaussian_walk(400)
    every = run(Counting(), y, WalkForward(horizon=5, initial=100, refit=1))
    assert Counting.batches == 1
    assert every.refit.all()
    once = run(Naive(), y, WalkForward(horizon=5, initial=100, refit=0))
    np.testing.assert_array_equal(every.forecasts, once.forecasts)
    assert every.pooled == pytest.approx(once.pooled, rel=0, abs=0, nan_ok=True)
    assert Naive().stateless
    assert Drift().stateless
    assert not RandomWalk().stateless


def test_a_baseline_subclass_that_learns_in_fit_is_refit() -> None:
    class Learns(Drift):
        fits = 0

        def fit(self, history):
            Learns.fits += 1

    run(Learns(window=3), positions(30), WalkForward(horizon=2, initial=10, refit=5))
    assert not Learns(window=3).stateless
    assert Learns.fits == 4


def test_the_public_names_are_exported() -> None:
    assert {"RandomWalk", "register_metric", "MetricContext"} <= set(backtest.__all__)
    assert math.isfinite(get_metric("mse").finish(np.float64(4.0)))
