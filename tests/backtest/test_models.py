"""The baseline forecasters on examples small enough to compute by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtest import Drift, Forecaster, Naive, SeasonalNaive, WalkForward, WindowMean, run


def frozen(values) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    array.setflags(write=False)  # what the runner hands a model
    return array


def test_naive_repeats_the_last_observation() -> None:
    np.testing.assert_array_equal(Naive().predict(frozen([1.0, 2.0, 5.0]), 3), [5.0, 5.0, 5.0])


def test_drift_extends_the_average_change_over_its_window() -> None:
    # the window is the last 3 points, 2 -> 4 -> 8: slope (8 - 2) / 2 = 3; the 100 is outside it
    np.testing.assert_array_equal(Drift(window=3).predict(frozen([100.0, 2.0, 4.0, 8.0]), 2), [11.0, 14.0])


def test_seasonal_naive_repeats_the_last_season() -> None:
    forecast = SeasonalNaive(season=4).predict(frozen([1, 2, 3, 4, 5, 6, 7, 8]), 6)
    np.testing.assert_array_equal(forecast, [5.0, 6.0, 7.0, 8.0, 5.0, 6.0])


def test_window_mean_repeats_the_mean_of_the_last_k() -> None:
    np.testing.assert_array_equal(WindowMean(k=2).predict(frozen([1.0, 3.0, 5.0]), 2), [4.0, 4.0])


def test_batches_give_one_row_per_context() -> None:
    contexts = frozen([[1.0, 2.0, 4.0], [3.0, 3.0, 0.0]])
    np.testing.assert_array_equal(Naive().predict_batch(contexts, 2), [[4.0, 4.0], [0.0, 0.0]])
    np.testing.assert_array_equal(Drift(window=3).predict_batch(contexts, 2), [[5.5, 7.0], [-1.5, -3.0]])
    np.testing.assert_array_equal(SeasonalNaive(season=3).predict_batch(contexts, 4), [[1, 2, 4, 1], [3, 3, 0, 3]])
    np.testing.assert_array_equal(WindowMean(k=3).predict_batch(contexts, 1), [[7 / 3], [2.0]])


@pytest.mark.parametrize(
    ("model", "context_length", "params", "text"),
    [
        (Naive(), 1, {}, "Naive()"),
        (Drift(window=5), 5, {"window": 5}, "Drift(window=5)"),
        (SeasonalNaive(season=7), 7, {"season": 7}, "SeasonalNaive(season=7)"),
        (WindowMean(k=3), 3, {"k": 3}, "WindowMean(k=3)"),
    ],
)
def test_baselines_declare_their_context_and_parameters(
    model: Naive | Drift | SeasonalNaive | WindowMean, context_length: int, params: dict, text: str
) -> None:
    assert isinstance(model, Forecaster)
    assert model.context_length == context_length
    assert model.get_params() == params
    assert repr(model) == text


def test_drift_defaults_to_a_250_point_window() -> None:
    assert Drift().window == Drift().context_length == 250


def test_fitting_a_baseline_changes_nothing() -> None:
    model: Forecaster = WindowMean(k=2)  # through the protocol: fit's return value is what is checked
    history = frozen([1.0, 2.0, 3.0])
    before = model.predict(history, 2)
    assert model.fit(frozen(np.arange(100.0))) is None
    np.testing.assert_array_equal(model.predict(history, 2), before)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Drift(window=1), "Drift window must be >= 2 points, got 1"),
        (lambda: SeasonalNaive(season=0), "SeasonalNaive season must be >= 1, got 0"),
        (lambda: WindowMean(k=0), "WindowMean k must be >= 1, got 0"),
    ],
)
def test_baselines_refuse_impossible_parameters(make, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_something_without_predict_is_not_a_forecaster() -> None:
    class FitOnly:
        def fit(self, history: np.ndarray) -> None:
            pass

    assert not isinstance(FitOnly(), Forecaster)


def test_seasonal_naive_is_exact_on_a_periodic_series() -> None:
    series = pd.Series(np.tile([3.0, 1.0, 4.0, 1.0, 5.0], 12), index=pd.date_range("2024-01-01", periods=60))
    result = run(SeasonalNaive(season=5), series, WalkForward(horizon=7, initial=10, step=3, gap=1))
    np.testing.assert_array_equal(result.forecasts, result.actuals)
    np.testing.assert_array_equal(result.fold_metrics["mae"], 0.0)
