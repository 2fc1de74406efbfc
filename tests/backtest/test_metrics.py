"""Metrics against plain reference loops over folds and steps, on random data and on known examples."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from backtest import METRICS, Drift, Naive, WalkForward, WindowMean, get_metric, run, score
from backtest.metrics import DEFAULT_METRICS, metric_names

#: every built-in metric of point forecasts (the interval metrics are tested in test_quantiles.py)
POINT = (*DEFAULT_METRICS, "mse")


def reference(name: str, actual, forecast, last, scale) -> tuple[list[float], float, int]:
    """Per-fold values, the pooled value and the excluded count of one metric, by Python loops."""
    per_fold: list[float] = []
    everything: list[float] = []
    excluded = 0
    for k in range(len(actual)):
        terms: list[float] = []
        for j in range(len(actual[k])):
            a, f = float(actual[k][j]), float(forecast[k][j])
            if name in ("rmse", "mse"):
                terms.append((f - a) ** 2)
            elif name == "mae":
                terms.append(abs(f - a))
            elif name == "mape":
                if a == 0:
                    excluded += 1
                    continue
                terms.append(100 * abs(f - a) / abs(a))
            elif name == "smape":
                if abs(a) + abs(f) == 0:
                    excluded += 1
                    continue
                terms.append(200 * abs(f - a) / (abs(a) + abs(f)))
            elif name == "mase":
                s = float(scale[k])
                if not (math.isfinite(s) and s > 0):
                    excluded += 1
                    continue
                terms.append(abs(f - a) / s)
            elif name == "directional_accuracy":
                predicted = np.sign(f - float(last[k]))
                realised = np.sign(a - float(last[k]))
                if predicted == 0 or realised == 0:
                    excluded += 1
                    continue
                terms.append(1.0 if predicted == realised else 0.0)
        finish = math.sqrt if name == "rmse" else float
        per_fold.append(finish(sum(terms) / len(terms)) if terms else math.nan)
        everything.extend(terms)
    finish = math.sqrt if name == "rmse" else float
    pooled = finish(sum(everything) / len(everything)) if everything else math.nan
    return per_fold, pooled, excluded


def naive_scale(window) -> float:
    """Mean absolute one-step change inside a training window, by a loop."""
    moves = [abs(window[i] - window[i - 1]) for i in range(1, len(window))]
    return sum(moves) / len(moves) if moves else math.nan


# Small integers make zeros and ties (the excluded points) common; other floats cover the rest. Magnitudes
# stay above 1e-3 so that a percentage error cannot overflow to inf (a float limit, not a metric's).
values = st.one_of(st.integers(-3, 3).map(float), st.floats(1e-3, 1e3), st.floats(-1e3, -1e-3))


@st.composite
def scoring_inputs(draw: st.DrawFn):
    folds = draw(st.integers(1, 5))
    steps = draw(st.integers(1, 5))
    actual = draw(arrays(float, (folds, steps), elements=values))
    forecast = draw(arrays(float, (folds, steps), elements=values))
    last = draw(arrays(float, (folds,), elements=values))
    scale = draw(arrays(float, (folds,), elements=st.sampled_from([0.0, math.nan]) | st.floats(0.01, 100)))
    return actual, forecast, last, scale


@settings(max_examples=100, deadline=None)
@given(scoring_inputs())
def test_every_metric_matches_a_reference_loop(inputs) -> None:
    actual, forecast, last, scale = inputs
    scores = score(actual, forecast, last=last, scale=scale, metrics=POINT)
    assert list(score(actual, forecast, last=last, scale=scale).per_fold) == list(DEFAULT_METRICS)
    for name in POINT:
        per_fold, pooled, excluded = reference(name, actual, forecast, last, scale)
        assert scores.per_fold[name].shape == (len(actual),)
        assert scores.per_fold[name].tolist() == pytest.approx(per_fold, rel=1e-9, abs=1e-12, nan_ok=True), name
        assert scores.pooled[name] == pytest.approx(pooled, rel=1e-9, abs=1e-12, nan_ok=True), name
        assert scores.excluded[name] == excluded, name


@settings(max_examples=100, deadline=None)
@given(scoring_inputs())
def test_no_metric_is_ever_infinite_and_percentages_stay_in_range(inputs) -> None:
    actual, forecast, last, scale = inputs
    scores = score(actual, forecast, last=last, scale=scale, metrics=POINT)
    for name in POINT:
        assert not np.isinf(scores.per_fold[name]).any(), name
        assert not math.isinf(scores.pooled[name]), name
    smape = np.append(scores.per_fold["smape"], scores.pooled["smape"])
    smape = smape[~np.isnan(smape)]
    assert ((smape >= 0) & (smape <= 200)).all()
    accuracy = np.append(scores.per_fold["directional_accuracy"], scores.pooled["directional_accuracy"])
    accuracy = accuracy[~np.isnan(accuracy)]
    assert ((accuracy >= 0) & (accuracy <= 1)).all()


def test_mape_excludes_and_counts_zero_actuals() -> None:
    actual = np.array([[0.0, 2.0], [0.0, 0.0]])
    forecast = np.array([[5.0, 3.0], [1.0, 1.0]])
    scores = score(actual, forecast, last=np.zeros(2), scale=np.ones(2), metrics=["mape"])
    np.testing.assert_array_equal(scores.per_fold["mape"], [50.0, np.nan])
    assert scores.pooled["mape"] == 50.0
    assert scores.excluded["mape"] == 3


def test_smape_reaches_200_when_forecast_and_actual_have_opposite_signs() -> None:
    scores = score(np.array([[1.0, 0.0]]), np.array([[-1.0, 0.0]]), last=[0.0], scale=[1.0], metrics=["smape"])
    assert scores.per_fold["smape"].tolist() == [200.0]  # the 0/0 point is excluded, not 0 or nan
    assert scores.excluded["smape"] == 1


def test_smape_never_rounds_above_200() -> None:
    # 200 * 0.8 / 0.8 computed left to right is 200.00000000000003
    scores = score(np.array([[0.1, 0.7]]), np.array([[-0.7, -0.1]]), last=[0.0], scale=[1.0], metrics=["smape"])
    assert scores.per_fold["smape"].tolist() == [200.0]
    assert scores.pooled["smape"] == 200.0


def test_directional_accuracy_is_relative_to_the_last_observation_and_excludes_ties() -> None:
    last = np.array([10.0])
    actual = np.array([[11.0, 9.0, 12.0, 10.0, 8.0]])
    forecast = np.array([[12.0, 11.0, 10.0, 13.0, 7.0]])
    #                  right  wrong  tie(f) tie(a) right
    scores = score(actual, forecast, last=last, scale=[1.0], metrics=["directional_accuracy"])
    assert scores.per_fold["directional_accuracy"].tolist() == [pytest.approx(2 / 3)]
    assert scores.excluded["directional_accuracy"] == 2


def test_mase_divides_by_the_scale_of_each_fold_and_excludes_a_zero_scale() -> None:
    actual = np.array([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0]])
    forecast = np.array([[2.0, 4.0], [2.0, 4.0], [2.0, 4.0]])
    scores = score(actual, forecast, last=np.zeros(3), scale=np.array([0.5, 0.0, np.nan]), metrics=["mase"])
    np.testing.assert_array_equal(scores.per_fold["mase"], [3.0, np.nan, np.nan])
    assert scores.pooled["mase"] == 3.0
    assert scores.excluded["mase"] == 4


def test_pooled_and_mean_of_folds_differ_when_folds_score_different_numbers_of_points() -> None:
    actual = np.array([[0.0, 1.0], [1.0, 1.0]])
    forecast = np.array([[1.0, 2.0], [1.5, 1.5]])
    scores = score(actual, forecast, last=np.zeros(2), scale=np.ones(2), metrics=["mape"])
    np.testing.assert_array_equal(scores.per_fold["mape"], [100.0, 50.0])
    assert scores.pooled["mape"] == pytest.approx(200 / 3)  # not the 75 of the mean of folds


def test_every_metric_declares_its_direction() -> None:
    assert {name: get_metric(name).direction for name in METRICS} == {
        "rmse": "lower",
        "mae": "lower",
        "mape": "lower",
        "smape": "lower",
        "mase": "lower",
        "directional_accuracy": "higher",
        "mse": "lower",
        "pinball": "lower",
        "coverage": "higher",  # never gated: better is closest to the nominal level (its ``better``)
        "coverage_error": "lower",
        "interval_score": "lower",
    }
    assert [name for name in METRICS if not get_metric(name).gateable] == ["coverage"]
    assert get_metric("coverage").better == "nominal"
    assert get_metric("rmse").lower_is_better
    assert not get_metric("directional_accuracy").lower_is_better


def test_an_unknown_metric_lists_the_known_ones() -> None:
    with pytest.raises(
        ValueError, match="unknown metric 'rmsd'; known metrics: rmse, mae, mape, smape, mase"
    ) as excinfo:
        get_metric("rmsd")
    assert str(excinfo.value).endswith("(did you mean 'rmse'?)")
    assert not isinstance(excinfo.value, KeyError)  # a KeyError's message prints inside quotes


@pytest.mark.parametrize(
    ("metrics", "names"),
    [("rmse", ("rmse",)), (["mae"], ("mae",)), (("rmse", "directional_accuracy"), ("rmse", "directional_accuracy"))],
)
def test_one_metric_name_alone_is_one_metric_not_its_letters(metrics, names: tuple[str, ...]) -> None:
    assert metric_names(metrics) == names


@pytest.mark.parametrize(
    ("metrics", "error", "message"),
    [
        ((), ValueError, r"metrics is empty; name at least one, e.g. \('rmse',\). Known metrics: rmse, mae"),
        (None, TypeError, r"metrics must be a metric name or a sequence of them, .* got None \(NoneType\)"),
        (("rmse", 3), TypeError, r"metrics must hold metric names \(str\), got 3 \(int\)"),
        (("rmse", "R2"), ValueError, "unknown metric 'R2'; known metrics: rmse"),
    ],
)
def test_bad_metric_lists_name_the_problem_and_the_known_metrics(metrics, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        metric_names(metrics)


# -- through the runner ------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    y=st.lists(
        st.integers(-3, 3).map(float) | st.integers(-2000, 2000).map(lambda v: v / 100), min_size=20, max_size=45
    ),
    horizon=st.integers(1, 4),
    gap=st.integers(0, 2),
    step=st.integers(1, 3),
    window=st.none() | st.integers(1, 8),
    k=st.integers(1, 3),
)
def test_backtest_metrics_match_reference_loops_over_the_series(
    y: list[float], horizon: int, gap: int, step: int, window: int | None, k: int
) -> None:
    n = len(y)
    spec = WalkForward(horizon=horizon, gap=gap, step=step, initial=8, window=window)
    model = WindowMean(k=min(k, window or k))
    result = run(model, pd.Series(y), spec, metrics=POINT)

    stops = list(range(8, n - gap - horizon + 1, step))
    actual, forecast, last, scale = [], [], [], []
    for stop in stops:
        start = 0 if window is None else stop - window
        forecast.append([sum(y[stop - model.k : stop]) / model.k] * horizon)
        actual.append([y[stop + gap + j] for j in range(horizon)])
        last.append(y[stop - 1])
        scale.append(naive_scale(y[start:stop]))

    assert result.n_folds == len(stops)
    np.testing.assert_allclose(result.actuals, actual)
    np.testing.assert_allclose(result.forecasts, forecast, rtol=1e-12)
    for name in POINT:
        per_fold, pooled, excluded = reference(name, actual, result.forecasts, last, scale)
        assert result.fold_metrics[name].tolist() == pytest.approx(per_fold, rel=1e-9, abs=1e-9, nan_ok=True), name
        assert result.pooled[name] == pytest.approx(pooled, rel=1e-9, abs=1e-9, nan_ok=True), name
        assert result.excluded[name] == excluded, name


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(30, 90),
    horizon=st.integers(1, 8),
    step=st.integers(1, 5),
    window=st.none() | st.integers(10, 20),
)
def test_pooled_equals_the_mean_of_folds_when_every_fold_scores_the_same_points(
    seed: int, n: int, horizon: int, step: int, window: int | None
) -> None:
    rng = np.random.default_rng(seed)
    series = pd.Series(50 + rng.normal(size=n).cumsum())  # no zeros, no flat windows: nothing excluded
    result = run(Drift(window=5), series, WalkForward(horizon=horizon, step=step, initial=20, window=window))
    fold, pooled = result.fold_metrics, result.pooled
    assert result.excluded["mae"] == result.excluded["rmse"] == result.excluded["mase"] == 0
    assert pooled["mae"] == pytest.approx(fold["mae"].mean(), rel=1e-12)
    assert pooled["rmse"] ** 2 == pytest.approx((fold["rmse"] ** 2).mean(), rel=1e-12)
    assert pooled["mase"] == pytest.approx(fold["mase"].mean(), rel=1e-12)
    assert pooled["mape"] == pytest.approx(fold["mape"].mean(), rel=1e-12)
    assert pooled["smape"] == pytest.approx(fold["smape"].mean(), rel=1e-12)


def test_naive_on_a_straight_line_has_known_errors() -> None:
    # Values equal positions; fold k trains on [0, 5 + k), so naive says 4 + k and the truth is 5 + k + j.
    series = pd.Series(np.arange(12.0), index=pd.date_range("2024-01-01", periods=12))
    result = run(Naive(), series, WalkForward(horizon=3, initial=5))
    k = np.arange(5.0)[:, None]
    j = np.arange(1.0, 4.0)
    np.testing.assert_array_equal(result.forecasts, np.repeat(4 + k, 3, axis=1))
    np.testing.assert_array_equal(result.actuals, 4 + k + j)
    np.testing.assert_allclose(result.fold_metrics["mae"], [2.0] * 5)
    np.testing.assert_allclose(result.fold_metrics["rmse"], [math.sqrt(14 / 3)] * 5)
    np.testing.assert_allclose(result.fold_metrics["mase"], [2.0] * 5)  # one-step changes are all 1
    np.testing.assert_allclose(result.fold_metrics["mape"], (100 * j / (4 + k + j)).mean(axis=1))
    np.testing.assert_allclose(result.fold_metrics["smape"], (200 * j / (8 + 2 * k + j)).mean(axis=1))
    # a naive forecast always ties with the last value: no direction to score
    assert np.isnan(result.fold_metrics["directional_accuracy"]).all()
    assert result.excluded == {name: 0 for name in DEFAULT_METRICS} | {"directional_accuracy": 15}
    assert result.pooled["mae"] == 2.0


def test_drift_on_a_straight_line_is_perfect() -> None:
    series = pd.Series(3.0 + 0.5 * np.arange(40))
    result = run(Drift(window=10), series, WalkForward(horizon=4, initial=10, step=3, gap=2))
    for name in ("rmse", "mae", "mape", "smape", "mase"):
        np.testing.assert_allclose(result.fold_metrics[name], 0.0, atol=1e-12)
    np.testing.assert_array_equal(result.fold_metrics["directional_accuracy"], 1.0)


def test_a_one_point_training_window_has_no_mase_scale() -> None:
    result = run(Naive(), pd.Series(np.arange(10.0)), WalkForward(horizon=2, window=1))
    assert np.isnan(result.fold_metrics["mase"]).all()
    assert result.excluded["mase"] == result.n_folds * 2
    assert not np.isnan(result.fold_metrics["mae"]).any()
