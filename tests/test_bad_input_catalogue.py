"""The catalogue of bad input to the library's API: one table, each row refused with a clear message.

Every row is a call that must fail with the library's own exception or a plain ``TypeError`` /
``ValueError`` whose message names the argument at fault (``series``, ``spec`` fields, ``model``,
``metrics``, ``exog``) and shows the value. None may surface as an ``AttributeError``, a ``KeyError``,
an ``IndexError`` or an exception raised inside pandas or numpy: those say where the code broke, not
what the user should change.

Beneath the table: two properties (any junk specification and any junk series are either accepted or
refused in those terms), the same bad inputs through the ``walk_forward`` fixture with the plugin off,
and ``pytest --help`` in this repository.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import backtest as bt
from backtest import DataError, ModelError, Naive, SpecificationError, WalkForward, WindowMean

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = (AttributeError, KeyError, IndexError)


def dated(n: int = 60, start: str = "2024-01-01") -> pd.Series:
    return pd.Series(100.0 + np.arange(n), index=pd.date_range(start, periods=n))


def with_dates(values: list[float], dates: list[str]) -> pd.Series:
    return pd.Series(values, index=pd.to_datetime(dates))


SPEC = WalkForward(horizon=2, step=5, initial=20)


def backtest(*, model: Any = None, series: Any = None, spec: Any = SPEC, **kwargs: Any) -> Callable[[], Any]:
    """A call of :func:`backtest.run` with good arguments except those given."""
    model = Naive() if model is None else model
    series = dated() if series is None else series
    return lambda: bt.run(model, series, spec, **kwargs)


def spec(**kwargs: Any) -> Callable[[], Any]:
    """A :class:`WalkForward` made from ``horizon=2, initial=20`` and the given changes."""
    return lambda: WalkForward(**{"horizon": 2, "initial": 20, **kwargs})


class Model:
    """A forecaster that misbehaves in one chosen way."""

    def __init__(self, mode: str = "good") -> None:
        self.mode = mode

    def fit(self, history: np.ndarray) -> None:
        if self.mode == "raises-in-fit":
            raise RuntimeError("fit exploded")

    def predict(self, history: np.ndarray, steps: int) -> Any:
        answers = {
            "length": lambda: np.zeros(steps + 1),
            "nan": lambda: np.full(steps, np.nan),
            "inf": lambda: np.full(steps, np.inf),
            "text": lambda: ["up"] * steps,
            "none": lambda: None,
        }
        if self.mode == "raises":
            raise RuntimeError("predict exploded")
        if self.mode == "mutates":
            history[-1] = 0.0
        return answers.get(self.mode, lambda: np.zeros(steps))()


class NoPredict:
    def fit(self, history: np.ndarray) -> None:
        pass


class NoFit:
    def predict(self, history: np.ndarray, steps: int) -> np.ndarray:
        return np.zeros(steps)


class Context(Model):
    def __init__(self, context_length: Any) -> None:
        super().__init__()
        self.context_length = context_length


class Batch(Model):
    context_length = 3

    def predict_batch(self, contexts: np.ndarray, steps: int) -> np.ndarray:
        return np.zeros((len(contexts) - 1, steps))


def row(name: str, call: Callable[[], Any], error: type[Exception], *fragments: str) -> Any:
    return pytest.param(call, error, fragments, id=name)


# a call that passes a deliberately wrong type carries `# type: ignore[arg-type]`: the error is the point
CATALOGUE = [
    # -- series ------------------------------------------------------------------------------------------
    row(
        "series-nan",
        backtest(series=dated().where(lambda s: s != 110.0)),
        DataError,
        "series has 1 NaN/inf",
        "2024-01-11",
    ),
    row(
        "series-inf", backtest(series=np.r_[np.arange(40.0), np.inf]), DataError, "series has 1 NaN/inf", "first at 40"
    ),
    row(
        "series-empty",
        backtest(series=pd.Series([], dtype=float)),
        SpecificationError,
        "series has 0 points",
        "needs at least 22",
    ),
    row("series-empty-array", backtest(series=np.array([])), SpecificationError, "series has 0 points"),
    row(
        "series-too-short",
        backtest(series=dated(15)),
        SpecificationError,
        "series has 15 points",
        "initial 20 + gap 0 + horizon 2 needs at least 22",
    ),
    row(
        "series-non-numeric",
        backtest(series=pd.Series(["1", "2", "x"] * 10)),
        DataError,
        "series values must be numeric",
    ),
    row("series-non-numeric-list", backtest(series=["a", "b", "c"]), DataError, "series values must be numeric", "'a'"),
    row("series-2d", backtest(series=np.zeros((40, 2))), DataError, "series must be one-dimensional", "(40, 2)"),
    row("series-scalar", backtest(series=5.0), DataError, "series must be one-dimensional", "shape ()"),
    row(
        "series-none",
        lambda: bt.run(Naive(), None, SPEC),  # type: ignore[arg-type]
        TypeError,
        "series must be a pandas Series",
        "got None",
    ),
    row(
        "series-path",
        backtest(series="data/usdclp.csv"),
        TypeError,
        "series",
        "backtest.load_series('data/usdclp.csv')",
    ),
    row(
        "series-frame",
        backtest(series=pd.DataFrame({"date": [1], "value": [2.0]})),
        TypeError,
        "series",
        "['date', 'value']",
        "frame['value']",
    ),
    row(
        "series-unsorted",
        backtest(series=with_dates([1.0, 2.0, 3.0], ["2024-01-02", "2024-01-01", "2024-01-03"])),
        DataError,
        "series dates must be sorted",
        "2024-01-01 00:00:00 (position 1) comes after 2024-01-02",
    ),
    row(
        "series-duplicate-dates",
        backtest(series=with_dates([1.0, 2.0, 3.0], ["2024-01-01", "2024-01-02", "2024-01-02"])),
        DataError,
        "series dates must be unique",
        "2024-01-02 00:00:00 repeats at position 2",
    ),
    row(
        "load-none",
        lambda: bt.load_series(None),  # type: ignore[arg-type]
        DataError,
        "cannot load a series from NoneType",
    ),
    row("load-missing-file", lambda: bt.load_series("no/such.csv"), DataError, "no/such.csv: no such file"),
    row(
        "load-unsorted",
        lambda: bt.load_series(with_dates([1.0, 2.0], ["2024-01-02", "2024-01-01"])),
        DataError,
        "dates are not sorted",
    ),
    row("load-negative", lambda: bt.load_series(dated() - 200, positive=True), DataError, "zero or negative value(s)"),
    # -- the specification -------------------------------------------------------------------------------
    row("horizon-zero", spec(horizon=0), SpecificationError, "horizon must be a whole number >= 1, got 0"),
    row("horizon-negative", spec(horizon=-3), SpecificationError, "horizon must be a whole number >= 1, got -3"),
    row("horizon-fraction", spec(horizon=1.5), SpecificationError, "horizon must be a whole number >= 1, got 1.5"),
    row("horizon-text", spec(horizon="5"), SpecificationError, "horizon must be a whole number >= 1, got '5'"),
    row("horizon-none", spec(horizon=None), SpecificationError, "horizon must be a whole number >= 1, got None"),
    row("step-zero", spec(step=0), SpecificationError, "step must be a whole number >= 1, got 0"),
    row("step-negative", spec(step=-2), SpecificationError, "step must be a whole number >= 1, got -2"),
    row("gap-negative", spec(gap=-1), SpecificationError, "gap must be a whole number >= 0, got -1"),
    row(
        "window-zero",
        spec(window=0),
        SpecificationError,
        "window must be None (expanding) or a whole number >= 1, got 0",
    ),
    row(
        "window-longer-than-initial",
        spec(window=30),
        SpecificationError,
        "initial (20) is shorter than the sliding window (30)",
    ),
    row(
        "window-longer-than-series",
        backtest(spec=WalkForward(horizon=2, window=100)),
        SpecificationError,
        "series has 60 points; window 100 + gap 0 + horizon 2 needs at least 102",
        "smaller window",
    ),
    row(
        "window-shorter-than-the-models-context",
        backtest(model=WindowMean(k=10), spec=WalkForward(horizon=2, window=5)),
        SpecificationError,
        "WindowMean needs at least 10 points of history (context_length)",
        "window=5",
    ),
    row(
        "refit-negative", spec(refit=-1), SpecificationError, "refit must be a whole number >= 0 (0 fits once), got -1"
    ),
    row(
        "max-folds-zero", spec(max_folds=0), SpecificationError, "max_folds must be None or a whole number >= 1, got 0"
    ),
    row(
        "max-folds-beyond-the-series",
        backtest(spec=WalkForward(horizon=2, step=5, initial=20, max_folds=500)),
        SpecificationError,
        "max_folds=500, but the series allows only 8 fold(s)",
        "(60 - 20 - 0 - 2) // 5 + 1 = 8",
        "Lower max_folds to 8",
    ),
    row("anchor-bogus", spec(anchor="middle"), SpecificationError, "anchor must be 'start' or 'end', got 'middle'"),
    row(
        "initial-missing",
        lambda: WalkForward(horizon=2),
        SpecificationError,
        "initial is required with an expanding window",
    ),
    row("initial-zero", spec(initial=0), SpecificationError, "initial must be >= 1 point, got 0"),
    row(
        "initial-bad-date",
        spec(initial="notadate"),
        SpecificationError,
        "initial must be a whole number of points (e.g. 500) or a date such as 2016-01-04, got 'notadate'",
    ),
    row(
        "initial-impossible-date",
        spec(initial="2016-02-30"),
        SpecificationError,
        "initial must be",
        "'2016-02-30', which is not a date",
    ),
    row(
        "initial-count-as-text",
        spec(initial="500"),
        SpecificationError,
        "initial must be",
        "write initial=500 without quotes",
    ),
    row("initial-fraction", spec(initial=20.5), SpecificationError, "initial must be", "got 20.5 (float)"),
    row("initial-list", spec(initial=[20]), SpecificationError, "initial must be", "got [20] (list)"),
    row(
        "initial-date-before-the-series",
        backtest(spec=WalkForward(horizon=2, initial="2023-06-01")),
        SpecificationError,
        "initial date 2023-06-01 is before the first observation (2024-01-01)",
    ),
    row(
        "initial-date-without-dates",
        backtest(series=np.arange(60.0), spec=WalkForward(horizon=2, initial="2024-01-20")),
        SpecificationError,
        "initial='2024-01-20' is a date, but the series has no DatetimeIndex",
    ),
    row(
        "initial-date-on-an-empty-series",
        backtest(
            series=pd.Series([], index=pd.DatetimeIndex([]), dtype=float),
            spec=WalkForward(horizon=2, initial="2024-01-20"),
        ),
        SpecificationError,
        "initial date 2024-01-20 cannot be placed: the series is empty",
    ),
    row("spec-none", backtest(spec=None), TypeError, "spec must be a backtest.WalkForward, got None"),
    row("spec-dict", backtest(spec={"horizon": 2}), TypeError, "spec must be a backtest.WalkForward", "(dict)"),
    # -- the model ---------------------------------------------------------------------------------------
    row(
        "model-none",
        lambda: bt.run(None, dated(), SPEC),
        TypeError,
        "model must be a forecaster with fit(history) and predict(history, steps)",
        "got None",
    ),
    row(
        "model-class",
        backtest(model=Naive),
        TypeError,
        "model must be an instance, got the class Naive; pass Naive(...)",
    ),
    row(
        "model-without-predict",
        backtest(model=NoPredict()),
        TypeError,
        "model must be a forecaster",
        "got NoPredict, which lacks predict",
    ),
    row(
        "model-without-fit",
        backtest(model=NoFit()),
        TypeError,
        "model must be a forecaster",
        "got NoFit, which lacks fit",
    ),
    row(
        "model-a-string",
        backtest(model="Naive"),
        TypeError,
        "model must be a forecaster",
        "got str, which lacks fit and predict",
    ),
    row(
        "model-context-zero",
        backtest(model=Context(0)),
        ValueError,
        "model Context.context_length must be None or a whole number >= 1",
        "got 0",
    ),
    row("model-context-text", backtest(model=Context("5")), ValueError, "model Context.context_length", "got '5'"),
    row(
        "model-wrong-length",
        backtest(model=Model("length")),
        ModelError,
        "fold 0 (origin 2024-01-20",
        "forecast has shape (3,), expected (2,)",
        "model Model.predict must return one value per step",
    ),
    row(
        "model-nan",
        backtest(model=Model("nan")),
        ModelError,
        "forecast contains 2 NaN/inf value(s)",
        "model Model.predict must return finite numbers",
    ),
    row(
        "model-inf",
        backtest(model=Model("inf")),
        ModelError,
        "forecast contains 2 NaN/inf value(s)",
        "model Model.predict",
    ),
    row(
        "model-text",
        backtest(model=Model("text")),
        ModelError,
        "forecast is not numeric",
        "model Model.predict must return numbers",
    ),
    row(
        "model-none-forecast",
        backtest(model=Model("none")),
        ModelError,
        "forecast has shape (), expected (2,)",
        "model Model.predict",
    ),
    row(
        "model-raises",
        backtest(model=Model("raises")),
        ModelError,
        "fold 0 (origin 2024-01-20 00:00:00): RuntimeError: predict exploded",
    ),
    row(
        "model-raises-in-fit",
        backtest(model=Model("raises-in-fit")),
        ModelError,
        "fold 0 (origin 2024-01-20 00:00:00): RuntimeError: fit exploded",
    ),
    row(
        "model-mutates-history",
        backtest(model=Model("mutates")),
        ModelError,
        "the model tried to modify the history",
        "copy them first",
    ),
    row(
        "model-bad-batch",
        backtest(model=Batch(), spec=WalkForward(horizon=2, step=5, initial=20, refit=0)),
        ModelError,
        "(batch of 8 origins): forecast has shape (7, 2), expected (8, 2)",
        "model Batch.predict_batch must return one row per origin",
    ),
    # -- metrics -----------------------------------------------------------------------------------------
    row(
        "metrics-unknown",
        backtest(metrics=("mae", "r2")),
        ValueError,
        "unknown metric 'r2'; known metrics: rmse, mae, mape, smape, mase, directional_accuracy",
    ),
    row("metrics-unknown-alone", backtest(metrics="rmsd"), ValueError, "unknown metric 'rmsd'", "did you mean 'rmse'?"),
    row("metrics-upper-case", backtest(metrics="RMSE"), ValueError, "unknown metric 'RMSE'", "did you mean 'rmse'?"),
    row("metrics-empty", backtest(metrics=()), ValueError, "metrics is empty; name at least one"),
    row("metrics-empty-string", backtest(metrics=""), ValueError, "unknown metric ''; known metrics: rmse"),
    row(
        "metrics-none",
        backtest(metrics=None),
        TypeError,
        "metrics must be a metric name or a sequence of them",
        "got None",
    ),
    row(
        "metrics-a-number",
        backtest(metrics=("rmse", 3)),
        TypeError,
        "metrics must hold metric names (str), got 3 (int)",
    ),
    row("get-metric-unknown", lambda: bt.get_metric("r2"), ValueError, "unknown metric 'r2'; known metrics: rmse"),
    # -- exogenous regressors ----------------------------------------------------------------------------
    row("exog-short", backtest(exog=np.zeros(59)), DataError, "exog has 59 rows but the series has 60"),
    row("exog-text", backtest(exog=["x"] * 60), DataError, "exog values must be numeric"),
    row("exog-3d", backtest(exog=np.zeros((60, 2, 2))), DataError, "exog must be one row per point", "(60, 2, 2)"),
    row("exog-scalar", backtest(exog=1.0), DataError, "exog must be one row per point", "shape ()"),
    # -- comparing two runs ------------------------------------------------------------------------------
    row(
        "compare-direction",
        lambda: bt.compare([1, 2], [1, 2], direction="up", horizon=1, step=1),  # type: ignore[arg-type]
        ValueError,
        "unknown direction 'up'",
    ),
    row(
        "compare-horizon",
        lambda: bt.compare([1, 2], [1, 2], direction="lower", horizon=0, step=1),
        ValueError,
        "horizon must be a positive integer, got 0",
    ),
    row(
        "compare-horizon-text",
        lambda: bt.compare([1, 2], [1, 2], direction="lower", horizon="x", step=1),  # type: ignore[arg-type]
        ValueError,
        "horizon must be a positive integer, got 'x'",
    ),
    row(
        "compare-alpha",
        lambda: bt.compare([1, 2], [1, 2], direction="lower", horizon=1, step=1, alpha=2),
        ValueError,
        "alpha must lie in (0, 1), got 2",
    ),
    row(
        "compare-alpha-none",
        lambda: bt.compare([1, 2], [1, 2], direction="lower", horizon=1, step=1, alpha=None),  # type: ignore[arg-type]
        ValueError,
        "alpha must lie in (0, 1), got None",
    ),
    row(
        "compare-tolerance",
        lambda: bt.compare([1, 2], [1, 2], direction="lower", horizon=1, step=1, tolerance=5),
        ValueError,
        "tolerance must lie in [0, 1)",
        "got 5",
    ),
    row(
        "compare-tolerance-text",
        lambda: bt.compare([1, 2], [1, 2], direction="lower", horizon=1, step=1, tolerance="2%"),  # type: ignore[arg-type]
        ValueError,
        "tolerance must lie in [0, 1)",
        "got '2%'",
    ),
    row(
        "compare-lengths",
        lambda: bt.compare([1, 2, 3], [1, 2], direction="lower", horizon=1, step=1),
        ValueError,
        "candidate has 3 fold values, baseline has 2",
        "pair_by_origin",
    ),
    row(
        "compare-one-fold",
        lambda: bt.compare([1], [1], direction="lower", horizon=1, step=1),
        ValueError,
        "only 1 paired fold(s) with a value on both sides (of 1 given)",
        "needs at least 2: use more folds",
    ),
    row(
        "compare-text",
        lambda: bt.compare(["a", "b"], [1, 2], direction="lower", horizon=1, step=1),
        ValueError,
        "candidate fold values must be numeric",
    ),
    row(
        "pair-repeated-origins",
        lambda: bt.pair_by_origin(["a", "a"], ["a"]),
        ValueError,
        "baseline origins must be unique",
    ),
    row("holm-out-of-range", lambda: bt.holm([0.5, 1.5]), ValueError, "p-values must lie in [0, 1]", "1.5"),
]


@pytest.mark.parametrize(("call", "error", "fragments"), CATALOGUE)
def test_every_bad_input_is_refused_naming_the_argument(
    call: Callable[[], Any], error: type[Exception], fragments: tuple[str, ...]
) -> None:
    with pytest.raises(Exception) as excinfo:  # the type is checked below, after ruling out the worse ones
        call()
    exc = excinfo.value
    assert not isinstance(exc, FORBIDDEN), f"{type(exc).__name__}: {exc}"
    assert type(exc).__module__.partition(".")[0] in ("builtins", "backtest"), f"{type(exc).__module__}: {exc}"
    assert isinstance(exc, error), f"{type(exc).__name__}: {exc}"
    for fragment in fragments:
        assert fragment in str(exc)


def test_one_metric_name_alone_is_one_metric() -> None:
    result = bt.run(Naive(), dated(), SPEC, metrics="rmse")
    assert list(result.fold_metrics) == ["rmse"]


def test_data_without_dates_is_fingerprinted_by_position_never_by_invented_dates() -> None:
    params = bt.run(Naive(), np.arange(60.0), SPEC).data.as_params()
    assert (params["data.first"], params["data.last"], params["data.length"]) == ("0", "59", "60")


# -- properties -------------------------------------------------------------------------------------------

JUNK = (
    st.none()
    | st.booleans()
    | st.integers(-3, 30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
    | st.sampled_from(["2024-01-15", "start", "end", "1e3", "NaT", "20240115", "2024-02-30"])
)
SPEC_FIELDS = ("horizon", "step", "initial", "gap", "window", "refit", "max_folds", "anchor")


@settings(max_examples=300, deadline=None)
@given(junk=st.dictionaries(st.sampled_from(SPEC_FIELDS), JUNK, min_size=1, max_size=2), n=st.integers(0, 60))
def test_junk_in_any_field_either_yields_folds_or_is_refused_naming_that_field(junk: dict[str, Any], n: int) -> None:
    index = pd.date_range("2024-01-01", periods=n)
    try:
        folds = list(WalkForward(**{"horizon": 3, "step": 2, "initial": 10, **junk}).folds(n, index))
    except SpecificationError as exc:
        message = str(exc)
    else:
        assert folds
        assert all(0 <= f.train_start < f.train_stop <= f.test_start < f.test_stop <= n for f in folds)
        return
    assert any(name in message for name in (*junk, "series")), message


@settings(max_examples=150, deadline=None)
@given(
    values=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), max_size=30)
    | st.lists(st.text(max_size=3), max_size=30)
    | st.lists(st.none() | st.floats(-10, 10) | st.text(max_size=2), max_size=30),
    container=st.sampled_from(["list", "array", "series", "dated series"]),
)
def test_any_series_either_backtests_or_is_refused_naming_the_series(values: list[Any], container: str) -> None:
    series: Any = {
        "list": lambda: values,
        "array": lambda: np.array(values, dtype=object),
        "series": lambda: pd.Series(values, dtype=object),
        "dated series": lambda: pd.Series(values, index=pd.date_range("2024-01-01", periods=len(values)), dtype=object),
    }[container]()
    try:
        result = bt.run(Naive(), series, WalkForward(horizon=2, initial=5))
    except (DataError, SpecificationError) as exc:
        message = str(exc)
    else:
        assert np.isfinite(result.forecasts).all()
        return
    assert "series" in message, message


# -- through the walk_forward fixture, plugin off ----------------------------------------------------------

INNER = r"""
import numpy as np, pandas as pd
import backtest as bt

SERIES = pd.Series(100.0 + np.arange(60), index=pd.date_range("2024-01-01", periods=60))
SPEC = bt.WalkForward(horizon=2, step=5, initial=20)

class Nan:
    def fit(self, history): pass
    def predict(self, history, steps): return np.full(steps, np.nan)

def test_model_none(walk_forward):
    walk_forward(None, SERIES, SPEC)

def test_model_class(walk_forward):
    walk_forward(bt.Naive, SERIES, SPEC)

def test_series_nan(walk_forward):
    walk_forward(bt.Naive(), np.r_[np.arange(40.0), np.nan], SPEC)

def test_series_path(walk_forward):
    walk_forward(bt.Naive(), "data/usdclp.csv", SPEC)

def test_unknown_metric(walk_forward):
    walk_forward(bt.Naive(), SERIES, SPEC, metrics=("mae", "r2"))

def test_max_folds_beyond_the_series(walk_forward):
    walk_forward(bt.Naive(), SERIES, bt.WalkForward(horizon=2, step=5, initial=20, max_folds=500))

def test_initial_date_without_dates(walk_forward):
    walk_forward(bt.Naive(), np.arange(60.0), bt.WalkForward(horizon=2, initial="2024-01-20"))

def test_nan_forecast(walk_forward):
    walk_forward(Nan(), SERIES, SPEC)
"""

INNER_ERRORS = [  # in test order: the error line each test ends with
    "E *TypeError: model must be a forecaster with fit(history) and predict(history, steps) methods*, got None",
    "E *TypeError: model must be an instance, got the class Naive; pass Naive(...)",
    "E *DataError: series has 1 NaN/inf value(s), first at 40; clean it with backtest.load_series",
    "E *TypeError: series must be a pandas Series *, got the path 'data/usdclp.csv'; load it first*",
    "E *ValueError: unknown metric 'r2'; known metrics: rmse, mae, mape, smape, mase, directional_accuracy, mse, "
    "pinball, coverage, coverage_error, interval_score",
    "E *SpecificationError: max_folds=500, but the series allows only 8 fold(s)*Lower max_folds to 8 or less*",
    "E *SpecificationError: initial='2024-01-20' is a date, but the series has no DatetimeIndex*",
    "E *ModelError: fold 0 (origin 2024-01-20 00:00:00): forecast contains 2 NaN/inf value(s); model Nan.predict*",
]


def test_bad_input_through_the_fixture_fails_the_test_naming_the_cause(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner=INNER)
    result = pytester.runpytest("-p", "no:cacheprovider", "--tb=short")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=len(INNER_ERRORS))
    result.stdout.fnmatch_lines(INNER_ERRORS)
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()


# -- the repository's own command line ----------------------------------------------------------------------


def test_pytest_help_in_this_repository_lists_the_root_options() -> None:
    # argparse %-formats help texts: a bare "%" in an addoption help crashed --help with a ValueError
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--help", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert "--usdclp-degrade=USDCLP_DEGRADE" in done.stdout
    assert "~40% worse" in " ".join(done.stdout.split())


def _header(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The repository's report header, without collecting its backtests (``conftest.py`` holds no test)."""
    environ = {k: v for k, v in os.environ.items() if k != "USDCLP_DEGRADE"} | env
    return subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-p", "no:cacheprovider", *args, "conftest.py"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_deliberately_degraded_candidate_is_announced_in_the_header() -> None:
    # a regression shown on purpose must never be mistaken for a real one in a saved log
    plain, degraded = _header(), _header("--usdclp-degrade", "0.2", USDCLP_DEGRADE="0.5")

    assert plain.returncode == degraded.returncode == pytest.ExitCode.NO_TESTS_COLLECTED, degraded.stderr[-2000:]
    assert "usdclp series:" in plain.stdout
    assert "DEGRADED" not in plain.stdout
    # the option beats the environment variable, and the header names both ways of switching it on
    assert "usdclp candidate: DEGRADED on purpose by 0.2 (--usdclp-degrade / USDCLP_DEGRADE)" in degraded.stdout


def test_a_bad_degrade_value_is_a_usage_error_before_any_backtest() -> None:
    done = _header(USDCLP_DEGRADE="lots")

    assert done.returncode == pytest.ExitCode.USAGE_ERROR
    assert "USDCLP_DEGRADE='lots' is not a number; use e.g. 0.2" in done.stderr
