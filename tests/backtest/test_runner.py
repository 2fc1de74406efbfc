"""The runner: what a model is shown (never the future, never the series itself), how its failures are
reported, and the result object a user reads.

Most tests use a series whose values equal their positions, so a value a model receives says exactly
where in the series it came from.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest import (
    DEFAULT_METRICS,
    METRICS,
    DataError,
    Drift,
    ModelError,
    Naive,
    SeasonalNaive,
    SpecificationError,
    WalkForward,
    WindowMean,
    fingerprint,
    run,
)


def positions(n: int) -> pd.Series:
    """A dated series whose value at position ``p`` is ``p``."""
    return pd.Series(np.arange(n, dtype=float), index=pd.date_range("2024-01-01", periods=n))


def assert_detached(array: np.ndarray, series: pd.Series) -> None:
    """The array is a read-only copy: no memory shared with the series, and no ``.base`` leading to it."""
    values = series.to_numpy()
    assert not array.flags.writeable
    base: np.ndarray | None = array
    while base is not None:
        assert not np.shares_memory(base, values)
        base = base.base


class Recorder:
    """Keeps every array it is handed and forecasts its last observation."""

    def __init__(self, context_length: int | None = None) -> None:
        if context_length is not None:
            self.context_length = context_length
        self.fits: list[np.ndarray] = []
        self.predicts: list[np.ndarray] = []
        self.steps: list[int] = []

    def fit(self, history: np.ndarray) -> None:
        self.fits.append(history)

    def predict(self, history: np.ndarray, steps: int) -> np.ndarray:
        self.predicts.append(history)
        self.steps.append(steps)
        return np.full(steps, history[-1])


class BatchRecorder(Recorder):
    def __init__(self, context_length: int) -> None:
        super().__init__(context_length)
        self.batches: list[np.ndarray] = []

    def predict_batch(self, contexts: np.ndarray, steps: int) -> np.ndarray:
        self.batches.append(contexts)
        self.steps.append(steps)
        return np.repeat(contexts[:, -1:], steps, axis=1)


@dataclass(frozen=True)
class Case:
    spec: WalkForward
    n: int
    context: int | None
    batched: bool


@st.composite
def cases(draw: st.DrawFn) -> Case:
    horizon = draw(st.integers(1, 4))
    gap = draw(st.integers(0, 3))
    window = draw(st.none() | st.integers(1, 8))
    initial = draw(st.integers(1, 10)) if window is None else draw(st.none() | st.integers(window, window + 5))
    step = draw(st.integers(1, 3))
    shortest = window if window is not None else initial
    t0 = initial if initial is not None else window
    assert shortest is not None  # initial is drawn whenever window is None
    assert t0 is not None
    n = draw(st.integers(t0 + gap + horizon, t0 + gap + horizon + 25))
    possible = (n - gap - horizon - t0) // step + 1
    spec = WalkForward(
        horizon=horizon,
        step=step,
        initial=initial,
        gap=gap,
        window=window,
        refit=draw(st.integers(0, 3)),
        max_folds=draw(st.none() | st.integers(1, min(possible, 8))),  # more than possible is an error
        anchor=draw(st.sampled_from(["start", "end"])),
    )
    context = draw(st.none() | st.integers(1, shortest))
    batched = context is not None and draw(st.booleans())
    return Case(spec, n, context, batched)


# -- no look-ahead ----------------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(cases())
def test_a_model_never_sees_a_value_at_or_after_its_origin(case: Case) -> None:
    series = positions(case.n)
    model = BatchRecorder(case.context) if case.batched and case.context is not None else Recorder(case.context)
    result = run(model, series, case.spec)
    folds = list(case.spec.folds(case.n, series.index))
    refits = [f for f in folds if f.refit]

    assert len(model.fits) == len(refits)
    for fold, history in zip(refits, model.fits, strict=True):
        assert history.max() < fold.train_stop
        np.testing.assert_array_equal(history, np.arange(fold.train_start, fold.train_stop))
        assert_detached(history, series)

    if case.batched:
        assert isinstance(model, BatchRecorder)
        assert model.predicts == []
        assert len(model.batches) == len(refits)
        seen = [row for batch in model.batches for row in batch]
        for batch in model.batches:
            assert_detached(batch, series)
    else:
        seen = model.predicts
        for history in seen:
            assert_detached(history, series)
    assert len(seen) == len(folds)
    for fold, history in zip(folds, seen, strict=True):
        lo = fold.train_start if case.context is None else fold.train_stop - case.context
        assert history.max() < fold.train_stop
        np.testing.assert_array_equal(history, np.arange(lo, fold.train_stop))

    assert set(model.steps) == {case.spec.gap + case.spec.horizon}
    # the recorder forecasts its last observation: the forecasts prove which origin each fold had
    np.testing.assert_array_equal(result.forecasts[:, 0], [f.train_stop - 1 for f in folds])
    np.testing.assert_array_equal(result.actuals, [np.arange(f.test_start, f.test_stop) for f in folds])


class ReadsAhead:
    def fit(self, history: np.ndarray) -> None:
        pass

    def predict(self, history: np.ndarray, steps: int) -> np.ndarray:
        return np.full(steps, history[len(history)])  # the first point it must not see


def test_a_model_cannot_index_past_its_history() -> None:
    with pytest.raises(ModelError, match=r"fold 0 \(origin 2024-01-05.*IndexError"):
        run(ReadsAhead(), positions(12), WalkForward(horizon=2, initial=5))


class OverwritesInFit:
    def fit(self, history: np.ndarray) -> None:
        history[-1] = -1.0

    def predict(self, history: np.ndarray, steps: int) -> np.ndarray:
        return np.zeros(steps)


class OverwritesInPredict(OverwritesInFit):
    def fit(self, history: np.ndarray) -> None:
        pass

    def predict(self, history: np.ndarray, steps: int) -> np.ndarray:
        if history[-1] >= 6:
            history *= 0.0
        return np.zeros(steps)


class OverwritesInBatch(OverwritesInPredict):
    context_length = 2

    def predict_batch(self, contexts: np.ndarray, steps: int) -> np.ndarray:
        contexts[0, 0] = -1.0
        return np.zeros((len(contexts), steps))


@pytest.mark.parametrize(
    ("model", "fold", "origin"),
    [
        (OverwritesInFit(), 0, "2024-01-05"),
        (OverwritesInPredict(), 2, "2024-01-07"),
        (OverwritesInBatch(), 0, "2024-01-05"),
    ],
)
def test_a_model_that_mutates_its_history_gets_a_read_only_error_naming_the_fold(
    model: Any, fold: int, origin: str
) -> None:
    series = positions(12)
    with pytest.raises(ModelError, match=rf"^fold {fold} \(origin {origin} 00:00:00\): .*read-only") as excinfo:
        run(model, series, WalkForward(horizon=2, initial=5))
    assert "copy them first" in str(excinfo.value)
    np.testing.assert_array_equal(series.to_numpy(), np.arange(12.0))


class ForcesWritable:
    """Switches the write flag back on and scribbles over its history: it may, but only on its copy."""

    def fit(self, history: np.ndarray) -> None:
        pass

    def predict(self, history: np.ndarray, steps: int) -> np.ndarray:
        last = history[-1]
        history.setflags(write=True)
        history[:] = -1.0
        return np.full(steps, last)


def test_a_model_that_unlocks_its_copy_still_cannot_change_the_series() -> None:
    series = positions(15)
    result = run(ForcesWritable(), series, WalkForward(horizon=2, initial=5, step=2))
    np.testing.assert_array_equal(series.to_numpy(), np.arange(15.0))
    np.testing.assert_array_equal(result.forecasts[:, 0], result.last)
    np.testing.assert_array_equal(result.last, result.train_stop - 1)


# -- exogenous regressors --------------------------------------------------------------------------------


class ExogRecorder:
    def __init__(self, context_length: int | None = None) -> None:
        if context_length is not None:
            self.context_length = context_length
        self.fit_exog: list[np.ndarray | None] = []
        self.calls: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def fit(self, history: np.ndarray, exog: np.ndarray | None = None) -> None:
        self.fit_exog.append(exog)

    def predict(self, history, steps, exog=None, exog_future=None) -> np.ndarray:
        self.calls.append((history, exog, exog_future))
        return np.zeros(steps)

    def predict_batch(self, contexts: np.ndarray, steps: int) -> np.ndarray:
        raise AssertionError("with exog the runner must ask one origin at a time")


@pytest.mark.parametrize("context", [None, 3])
@pytest.mark.parametrize("window", [None, 6])
def test_the_model_gets_the_exog_rows_of_its_history_and_of_the_forecast_period_separately(
    context: int | None, window: int | None
) -> None:
    n, gap, horizon = 20, 2, 3
    series = positions(n)
    exog = pd.DataFrame({"a": 10.0 * np.arange(n), "b": -np.arange(n, dtype=float)}, index=series.index)
    spec = WalkForward(horizon=horizon, initial=7, step=2, gap=gap, window=window, refit=2)
    model = ExogRecorder(context)
    run(model, series, spec, exog=exog)

    folds = list(spec.folds(n, series.index))
    X = exog.to_numpy()
    assert len(model.fit_exog) == sum(f.refit for f in folds)
    for fold, fit_exog in zip([f for f in folds if f.refit], model.fit_exog, strict=True):
        np.testing.assert_array_equal(fit_exog, X[fold.train])
    assert len(model.calls) == len(folds)
    for fold, (history, past, future) in zip(folds, model.calls, strict=True):
        lo = fold.train_start if context is None else fold.train_stop - context
        np.testing.assert_array_equal(history, np.arange(lo, fold.train_stop))
        np.testing.assert_array_equal(past, X[lo : fold.train_stop])
        assert future.shape == (gap + horizon, 2)
        np.testing.assert_array_equal(future, X[fold.train_stop : fold.test_stop])
        assert not past.flags.writeable
        assert not future.flags.writeable


def test_a_one_dimensional_exog_becomes_one_column() -> None:
    model = ExogRecorder()
    run(model, positions(10), WalkForward(horizon=1, initial=8), exog=np.arange(10.0) * 2)
    (_, past, future), *_ = model.calls
    np.testing.assert_array_equal(past, 2 * np.arange(8.0)[:, None])
    np.testing.assert_array_equal(future, [[16.0]])


def test_exog_of_the_wrong_length_is_rejected() -> None:
    with pytest.raises(DataError, match="exog has 9 rows but the series has 10; align them on the same dates"):
        run(ExogRecorder(), positions(10), WalkForward(horizon=1, initial=5), exog=np.zeros((9, 2)))


# -- model errors --------------------------------------------------------------------------------------------


class MisbehavesAt:
    """Forecasts zeros except at the origin whose history has ``length`` points."""

    def __init__(self, length: int, answer) -> None:
        self.length = length
        self.answer = answer

    def fit(self, history: np.ndarray) -> None:
        pass

    def predict(self, history: np.ndarray, steps: int) -> Any:
        return self.answer(steps) if len(history) == self.length else np.zeros(steps)


def _raise(steps: int) -> Any:
    raise RuntimeError("the network diverged")


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (lambda steps: np.zeros(steps + 1), r"forecast has shape \(5,\), expected \(4,\)"),
        (lambda steps: np.zeros(steps - 1), r"forecast has shape \(3,\), expected \(4,\)"),
        (lambda steps: np.zeros((steps, 1)), r"forecast has shape \(4, 1\), expected \(4,\)"),
        (lambda steps: 0.0, r"forecast has shape \(\), expected \(4,\)"),
        (lambda steps: [0.0, np.nan, np.nan, 1.0], "forecast contains 2 NaN/inf value"),
        (lambda steps: [0.0, np.inf, 0.0, 1.0], "forecast contains 1 NaN/inf value"),
        (lambda steps: [0.0, -np.inf, 0.0, 1.0], "forecast contains 1 NaN/inf value"),
        (lambda steps: ["a", "b", "c", "d"], "forecast is not numeric"),
        (_raise, "RuntimeError: the network diverged"),
    ],
)
def test_a_bad_forecast_is_a_model_error_naming_the_fold_and_its_origin(answer, message: str) -> None:
    spec = WalkForward(horizon=3, gap=1, initial=5)  # fold k trains on 5 + k points, origin 2024-01-(5+k)
    with pytest.raises(ModelError, match=rf"^fold 3 \(origin 2024-01-08 00:00:00\): {message}"):
        run(MisbehavesAt(8, answer), positions(15), spec)


class RaisesInFit:
    def fit(self, history: np.ndarray) -> None:
        if len(history) > 6:
            raise ValueError("singular matrix")

    def predict(self, history: np.ndarray, steps: int) -> np.ndarray:
        return np.zeros(steps)


def test_a_model_raising_in_fit_is_named_by_the_refit_fold() -> None:
    with pytest.raises(ModelError, match=r"^fold 2 \(origin 2024-01-07 00:00:00\): ValueError: singular matrix"):
        run(RaisesInFit(), positions(15), WalkForward(horizon=1, initial=5, refit=2))


class BadBatch:
    """A batched model whose rows go wrong at chosen positions of its context."""

    context_length = 2

    def __init__(self, bad_origins: set[int], value: float = np.nan) -> None:
        self.bad_origins = bad_origins
        self.value = value

    def fit(self, history: np.ndarray) -> None:
        pass

    def predict(self, history: np.ndarray, steps: int) -> np.ndarray:
        raise AssertionError("the batched path must be used")

    def predict_batch(self, contexts: np.ndarray, steps: int) -> np.ndarray:
        out = np.zeros((len(contexts), steps))
        for row, context in enumerate(contexts):
            if int(context[-1]) in self.bad_origins:
                out[row, -1] = self.value
        return out


@pytest.mark.parametrize("value", [np.nan, np.inf])
@pytest.mark.parametrize(
    ("refit", "bad_origins", "fold", "origin"),
    [
        (0, {7, 9}, 3, "2024-01-08"),  # one batch of every fold: the first bad row is fold 3
        (0, {4}, 0, "2024-01-05"),
        (3, {9, 10}, 5, "2024-01-10"),  # second batch starts at fold 3
    ],
)
def test_a_bad_batch_row_names_the_first_bad_fold(
    refit: int, bad_origins: set[int], fold: int, origin: str, value: float
) -> None:
    spec = WalkForward(horizon=2, initial=5, refit=refit)
    with pytest.raises(ModelError, match=rf"^fold {fold} \(origin {origin} 00:00:00\): forecast contains NaN/inf"):
        run(BadBatch(bad_origins, value), positions(15), spec)


class ShapelessBatch(BadBatch):
    def __init__(self, answer) -> None:
        super().__init__(set())
        self.answer = answer

    def predict_batch(self, contexts: np.ndarray, steps: int) -> Any:
        return self.answer(len(contexts), steps)


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (lambda rows, steps: np.zeros((rows - 1, steps)), r"forecast has shape \(3, 2\), expected \(4, 2\)"),
        (lambda rows, steps: np.zeros((rows, steps + 1)), r"forecast has shape \(4, 3\), expected \(4, 2\)"),
        (lambda rows, steps: np.zeros(rows * steps), r"forecast has shape \(8,\), expected \(4, 2\)"),
        (lambda rows, steps: np.full((rows, steps), "x", dtype=object), "forecast is not numeric"),
        (lambda rows, steps: [[0.0] * steps] * (rows - 1) + [[0.0]], "forecast is not numeric"),
    ],
)
def test_an_unusable_batch_is_a_model_error_naming_the_batch(answer, message: str) -> None:
    spec = WalkForward(horizon=2, initial=5, refit=4)  # 8 folds: batches start at folds 0 and 4
    with pytest.raises(ModelError, match=rf"^fold 0 \(origin 2024-01-05 00:00:00\) \(batch of 4 origins\): {message}"):
        run(ShapelessBatch(answer), positions(14), spec)


def test_a_batched_model_raising_is_named_by_the_first_fold_of_its_batch() -> None:
    class Raises(BadBatch):
        def predict_batch(self, contexts: np.ndarray, steps: int) -> np.ndarray:
            if contexts[0, -1] > 5:
                raise RuntimeError("out of memory")
            return np.zeros((len(contexts), steps))

    with pytest.raises(ModelError, match=r"^fold 2 \(origin 2024-01-07 00:00:00\): RuntimeError: out of memory"):
        run(Raises(set()), positions(14), WalkForward(horizon=2, initial=5, refit=2))


def test_positional_series_name_folds_by_position() -> None:
    with pytest.raises(ModelError, match=r"^fold 3 \(origin 7\): "):
        run(MisbehavesAt(8, _raise), np.arange(15.0), WalkForward(horizon=3, initial=5))


# -- specifications that do not fit the model or the data ------------------------------------------------------


def test_a_sliding_window_shorter_than_the_models_context_is_rejected() -> None:
    with pytest.raises(SpecificationError) as excinfo:
        run(WindowMean(k=5), positions(30), WalkForward(horizon=1, window=3))
    message = str(excinfo.value)
    assert "WindowMean needs at least 5 points of history (context_length)" in message
    assert "shortest training window has 3" in message
    assert "window/initial of at least 5" in message


def test_an_expanding_window_starting_shorter_than_the_models_context_is_rejected() -> None:
    with pytest.raises(SpecificationError, match="Drift needs at least 10 points.*shortest training window has 4"):
        run(Drift(window=10), positions(30), WalkForward(horizon=1, initial=4))


def test_a_window_exactly_the_models_context_is_accepted() -> None:
    result = run(WindowMean(k=3), positions(10), WalkForward(horizon=1, window=3))
    np.testing.assert_allclose(result.forecasts[:, 0], np.arange(1.0, 8.0))


def test_a_series_too_short_for_the_spec_is_rejected_before_any_fit() -> None:
    with pytest.raises(SpecificationError, match="series has 10 points; initial 8 \\+ gap 1 \\+ horizon 3 needs"):
        run(RaisesInFit(), positions(10), WalkForward(horizon=3, gap=1, initial=8))


def test_a_date_initial_on_an_undated_series_is_rejected() -> None:
    with pytest.raises(SpecificationError, match="no DatetimeIndex"):
        run(Naive(), np.arange(10.0), WalkForward(horizon=1, initial="2024-01-05"))


@pytest.mark.parametrize(
    ("series", "message"),
    [
        (
            pd.Series([1.0, np.nan, 3.0, 4.0], index=pd.date_range("2024-01-01", periods=4)),
            "1 NaN/inf value.*2024-01-02",
        ),
        (pd.Series([1.0, 2.0, np.inf, 4.0]), r"1 NaN/inf value\(s\), first at 2"),
        (
            pd.Series(
                [1.0, 2.0, 3.0, 4.0], index=pd.to_datetime(["2024-01-02", "2024-01-01", "2024-01-03", "2024-01-04"])
            ),
            r"dates must be sorted: 2024-01-01 00:00:00 \(position 1\) comes after 2024-01-02.*sort_index",
        ),
        (
            pd.Series(
                [1.0, 2.0, 3.0, 4.0], index=pd.to_datetime(["2024-01-01", "2024-01-01", "2024-01-03", "2024-01-04"])
            ),
            r"dates must be unique: 2024-01-01 00:00:00 repeats at position 1.*one value per date",
        ),
        (np.zeros((4, 2)), r"one-dimensional, got shape \(4, 2\)"),
        (pd.Series(["1", "2", "x", "4"]), "series values must be numeric"),
    ],
)
def test_a_series_that_cannot_be_backtested_is_a_data_error(series: Any, message: str) -> None:
    with pytest.raises(DataError, match=message):
        run(Naive(), series, WalkForward(horizon=1, initial=2))


def test_one_metric_name_alone_scores_that_metric() -> None:
    res = run(Naive(), positions(20), WalkForward(horizon=2, initial=10), metrics="rmse")
    assert list(res.fold_metrics) == ["rmse"]


def test_a_positional_series_records_positions_not_invented_dates() -> None:
    res = run(Naive(), np.arange(20.0), WalkForward(horizon=2, initial=10))
    assert (res.data.first, res.data.last, res.data.length) == ("0", "19", 20)
    assert res.data == fingerprint(pd.Series(np.arange(20.0)))


@pytest.mark.parametrize(
    ("model", "spec", "error", "message"),
    [
        (None, WalkForward(horizon=1, initial=5), TypeError, r"^model must be a forecaster with fit\(history\) and "),
        (Naive, WalkForward(horizon=1, initial=5), TypeError, r"^model must be an instance, got the class Naive"),
        (object(), WalkForward(horizon=1, initial=5), TypeError, "got object, which lacks fit and predict"),
        (Naive(), None, TypeError, r"^spec must be a backtest.WalkForward, got None \(NoneType\); e.g. WalkForward"),
        (Naive(), {"horizon": 1}, TypeError, r"^spec must be a backtest.WalkForward, got \{'horizon': 1\} \(dict\)"),
    ],
)
def test_a_model_or_spec_of_the_wrong_kind_is_named_before_anything_runs(model, spec, error, message) -> None:
    with pytest.raises(error, match=message):
        run(model, positions(20), spec)


def test_an_unknown_metric_is_rejected_before_any_fit() -> None:
    with pytest.raises(ValueError, match="unknown metric 'r2'; known metrics: rmse, mae"):
        run(RaisesInFit(), positions(20), WalkForward(horizon=1, initial=10), metrics=("mae", "r2"))


# -- batched and sequential paths, determinism ------------------------------------------------------------


class Sequential:
    """The same model with ``predict_batch`` hidden, so the runner asks one origin at a time."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.context_length = inner.context_length
        self.name = type(inner).__name__

    def fit(self, history: np.ndarray) -> None:
        self.inner.fit(history)

    def predict(self, history: np.ndarray, steps: int) -> np.ndarray:
        return self.inner.predict(history, steps)


def bits(result) -> dict[str, bytes]:
    """Every number a result holds, as raw bytes: equal bytes mean identical results, NaN included."""
    out = {
        "forecasts": result.forecasts.tobytes(),
        "actuals": result.actuals.tobytes(),
        "last": result.last.tobytes(),
        "pooled": np.array(list(result.pooled.values())).tobytes(),
    }
    out.update({name: values.tobytes() for name, values in result.fold_metrics.items()})
    return out


BASELINES = [Naive(), Drift(window=5), SeasonalNaive(season=4), WindowMean(k=3)]


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(40, 80),
    horizon=st.integers(1, 7),
    gap=st.integers(0, 2),
    step=st.integers(1, 4),
    window=st.none() | st.integers(8, 12),
    refit=st.integers(0, 4),
)
def test_batched_and_sequential_paths_give_identical_results(
    seed: int, n: int, horizon: int, gap: int, step: int, window: int | None, refit: int
) -> None:
    rng = np.random.default_rng(seed)
    series = pd.Series(500 + rng.normal(size=n).cumsum(), index=pd.bdate_range("2020-01-01", periods=n))
    spec = WalkForward(horizon=horizon, gap=gap, step=step, initial=12, window=window, refit=refit)
    for model in BASELINES:
        batched = run(model, series, spec)
        sequential = run(Sequential(model), series, spec)
        assert bits(batched) == bits(sequential), model
        assert batched.excluded == sequential.excluded


def test_the_batched_path_asks_once_per_refit() -> None:
    class Counting(Naive):
        calls = 0

        def fit(self, history: np.ndarray) -> None:  # it may learn: refit as the spec says
            pass

        def predict_batch(self, contexts: np.ndarray, steps: int) -> np.ndarray:
            Counting.calls += 1
            return super().predict_batch(contexts, steps)

        def predict(self, history: np.ndarray, steps: int) -> np.ndarray:
            raise AssertionError("the batched path must be used")

    result = run(Counting(), positions(30), WalkForward(horizon=2, initial=10, refit=5))
    assert result.n_folds == 19
    assert Counting.calls == 4


def test_the_same_inputs_give_bit_identical_results() -> None:
    rng = np.random.default_rng(7)
    series = pd.Series(100 + rng.normal(size=200).cumsum(), index=pd.bdate_range("2020-01-01", periods=200))
    spec = WalkForward(horizon=10, step=5, initial=60, gap=1, refit=3)
    for model in BASELINES:
        first, second = run(model, series, spec), run(model, series.copy(), spec)
        assert bits(first) == bits(second)
        assert first.excluded == second.excluded
        assert first.data == second.data


# -- the result ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def result():
    rng = np.random.default_rng(3)
    series = pd.Series(800 + rng.normal(size=120).cumsum(), index=pd.bdate_range("2021-03-01", periods=120))
    return run(Drift(window=20), series, WalkForward(horizon=5, step=7, initial=40, gap=1, refit=2)), series


def test_the_result_describes_its_folds(result) -> None:
    res, series = result
    spec = res.spec
    assert res.model == "Drift"
    assert res.params == {"window": 20}
    assert res.horizon == 5
    assert res.n_folds == spec.n_folds(len(series)) == 11  # (120 - 1 - 5 - 40) // 7 + 1
    assert list(res.folds) == list(spec.folds(len(series), series.index))
    assert list(res.origins) == [f.origin for f in res.folds]
    assert res.forecasts.shape == res.actuals.shape == (11, 5)
    assert res.data == fingerprint(series)


def test_aggregates_are_named_after_what_they_aggregate(result) -> None:
    res, _ = result
    aggregates = res.aggregates()
    assert set(aggregates) == {f"{m}_{a}" for m in DEFAULT_METRICS for a in ("mean", "median", "pooled")}
    for name in DEFAULT_METRICS:
        values = res.fold_metrics[name]
        assert aggregates[f"{name}_mean"] == pytest.approx(np.nanmean(values))
        assert aggregates[f"{name}_median"] == pytest.approx(np.nanmedian(values))
        assert aggregates[f"{name}_pooled"] == res.pooled[name]
    assert aggregates["rmse_mean"] != pytest.approx(aggregates["rmse_pooled"])  # not interchangeable


def test_aggregates_skip_folds_without_a_score() -> None:
    series = pd.Series([1.0, 2.0, 3.0, 3.0, 3.0, 3.0, 5.0], index=pd.date_range("2024-01-01", periods=7))
    res = run(Naive(), series, WalkForward(horizon=1, initial=3), metrics=("directional_accuracy",))
    # Naive always ties with the last value: no fold can score a direction
    assert np.isnan(res.fold_metrics["directional_accuracy"]).all()
    assert np.isnan(res.aggregates()["directional_accuracy_mean"])
    assert res.excluded == {"directional_accuracy": 4}


def test_to_frame_is_tidy(result) -> None:
    res, _ = result
    frame = res.to_frame()
    assert list(frame.columns) == ["model", "horizon", "fold", "origin", "metric", "value"]
    assert len(frame) == res.n_folds * len(DEFAULT_METRICS)
    assert set(frame["model"]) == {"Drift"}
    assert set(frame["horizon"]) == {5}
    for row in frame.itertuples():
        assert row.origin == res.origins[row.fold]
        np.testing.assert_equal(row.value, res.fold_metrics[row.metric][row.fold])


def test_summary_has_one_row_per_metric_with_its_direction(result) -> None:
    res, _ = result
    summary = res.summary()
    assert list(summary.index) == list(DEFAULT_METRICS)
    assert list(summary.columns) == ["direction", "mean", "median", "pooled", "excluded_points"]
    for name in DEFAULT_METRICS:
        row = summary.loc[name]
        assert row["direction"] == METRICS[name].direction
        assert row["pooled"] == res.pooled[name]
        assert row["excluded_points"] == res.excluded[name]
        assert row["mean"] == pytest.approx(np.nanmean(res.fold_metrics[name]))
    assert summary.loc["directional_accuracy", "direction"] == "higher"
    assert summary.loc["rmse", "direction"] == "lower"


def test_only_the_requested_metrics_are_computed() -> None:
    res = run(Naive(), positions(20), WalkForward(horizon=2, initial=10), metrics=["mae", "rmse"])
    assert list(res.fold_metrics) == ["mae", "rmse"]
    assert set(res.aggregates()) == {"mae_mean", "mae_median", "mae_pooled", "rmse_mean", "rmse_median", "rmse_pooled"}
    assert len(res.to_frame()) == 2 * res.n_folds


def test_the_name_comes_from_the_caller_then_the_model_then_its_class() -> None:
    spec = WalkForward(horizon=1, initial=5)
    assert run(Naive(), positions(8), spec).model == "Naive"
    assert run(Sequential(Drift(window=3)), positions(8), spec).model == "Drift"
    assert run(Naive(), positions(8), spec, name="random walk").model == "random walk"


# -- refit blocks in worker processes (n_jobs) ---------------------------------------------------------------


class NoisyMean:
    """Refits a mean plus seeded noise; the seed comes from the training window, so any process agrees."""

    def fit(self, history: np.ndarray) -> None:
        rng = np.random.default_rng(len(history))
        self.level = float(history.mean()) + rng.normal()
        self.spread = float(np.diff(history).std()) + abs(rng.normal())

    def predict(self, history: np.ndarray, steps: int) -> np.ndarray:
        return self.level + 0.1 * (history[-1] - self.level) * np.ones(steps)

    def predict_quantiles(self, history: np.ndarray, steps: int, quantiles: np.ndarray) -> np.ndarray:
        return self.predict(history, steps)[:, None] + self.spread * (np.asarray(quantiles) - 0.5)[None, :]


class FailsLate(NoisyMean):
    def predict(self, history: np.ndarray, steps: int) -> np.ndarray:
        if len(history) == 47:
            raise ArithmeticError("no forecast today")
        return super().predict(history, steps)


def test_refit_blocks_on_two_workers_give_bit_identical_results_and_a_fitted_model() -> None:
    series = pd.Series(
        100 + np.random.default_rng(3).normal(size=90).cumsum(), index=pd.bdate_range("2024-01-01", periods=90)
    )
    spec = WalkForward(horizon=3, step=2, initial=30, refit=4)
    one, two = NoisyMean(), NoisyMean()
    alone = run(one, series, spec, quantiles=(0.1, 0.5, 0.9))
    shared = run(two, series, spec, quantiles=(0.1, 0.5, 0.9), n_jobs=2)

    assert shared.forecasts.tobytes() == alone.forecasts.tobytes()
    assert shared.quantiles is not None
    assert alone.quantiles is not None
    assert shared.quantiles.tobytes() == alone.quantiles.tobytes()
    assert {k: v.tobytes() for k, v in shared.fold_metrics.items()} == {
        k: v.tobytes() for k, v in alone.fold_metrics.items()
    }
    assert (two.level, two.spread) == (one.level, one.spread)  # fitted on the last refit window, like n_jobs=1


def test_an_error_on_a_worker_names_the_fold_and_its_origin() -> None:
    with pytest.raises(ModelError, match=r"^fold 8 \(origin 2024-03-05 00:00:00\): ArithmeticError: no forecast today"):
        run(
            FailsLate(),
            pd.Series(np.arange(60.0), index=pd.bdate_range("2024-01-01", periods=60)),
            WalkForward(horizon=2, initial=39, refit=3),
            n_jobs=2,
        )


def test_a_model_that_cannot_be_pickled_is_named_before_any_worker_starts() -> None:
    import threading

    class Locked(NoisyMean):
        def __init__(self) -> None:
            self.lock = threading.Lock()

    with pytest.raises(
        TypeError,
        match=r"^n_jobs=2: model Locked cannot be sent to worker processes, it cannot be pickled "
        r"\(TypeError: cannot pickle '_thread.lock'",
    ):
        run(Locked(), positions(40), WalkForward(horizon=2, initial=20, refit=3), n_jobs=2)


@pytest.mark.parametrize("n_jobs", [0, -2, 1.5, True, "2"])
def test_n_jobs_must_be_a_count_of_workers(n_jobs: Any) -> None:
    with pytest.raises(
        ValueError, match=r"^n_jobs must be a whole number >= 1 \(worker processes for the refit blocks\) or -1"
    ):
        run(Naive(), positions(20), WalkForward(horizon=1, initial=10), n_jobs=n_jobs)


def test_importing_backtest_does_not_import_joblib() -> None:
    import subprocess
    import sys

    code = "import sys, backtest; print('joblib' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
