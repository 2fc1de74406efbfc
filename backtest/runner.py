"""The only place a model is fit or asked to predict.

:func:`run` walks a forecaster across the folds of a :class:`~backtest.folds.WalkForward` schedule.
At each origin the model receives a read-only *copy* of the history it may see (never the series
itself, nor a view of it: a view's ``base`` is the whole series), so it cannot read beyond its origin or
change the data. Models with ``context_length`` and ``predict_batch`` are asked for every origin between
two refits in one vectorised call; a ``stateless`` model (its ``fit`` learns nothing) is fit once and
batched over every origin whatever the ``refit`` cadence. With ``quantiles=`` the model's
``predict_quantiles`` (or ``predict_quantiles_batch``) answers beside each point forecast.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .data import DataError, Fingerprint, fingerprint
from .folds import Fold, SpecificationError, WalkForward
from .metrics import (
    DEFAULT_METRICS,
    check_quantile_metrics,
    default_metrics,
    get_metric,
    interval_of,
    metric_names,
    score,
)

__all__ = ["BacktestResult", "ModelError", "DEFAULT_METRICS", "run"]


class ModelError(RuntimeError):
    """A forecaster that raised or returned unusable output at a named fold."""


@dataclass(frozen=True, eq=False)
class BacktestResult:
    """Everything one walk-forward backtest produced, per fold and pooled.

    ``actuals`` and ``forecasts`` are ``(folds, horizon)``; ``origins``, ``last``, ``train_start``
    and ``train_stop`` have one entry per fold. ``fold_metrics[name]`` holds one value per fold and
    ``pooled[name]`` one value over every fold×step point. With quantiles, ``quantiles`` is
    ``(folds, horizon, len(levels))`` at the sorted ``levels``; otherwise ``None`` and ``()``.
    """

    model: str
    spec: WalkForward
    origins: pd.Index
    train_start: np.ndarray
    train_stop: np.ndarray
    refit: np.ndarray
    actuals: np.ndarray
    forecasts: np.ndarray
    last: np.ndarray
    fold_metrics: dict[str, np.ndarray]
    pooled: dict[str, float]
    excluded: dict[str, int]
    data: Fingerprint
    params: dict[str, Any] = field(default_factory=dict)
    quantiles: np.ndarray | None = None
    levels: tuple[float, ...] = ()

    @property
    def horizon(self) -> int:
        return self.spec.horizon

    @property
    def n_folds(self) -> int:
        return len(self.origins)

    @cached_property
    def folds(self) -> tuple[Fold, ...]:
        gap, h = self.spec.gap, self.spec.horizon
        return tuple(
            Fold(k, int(a), int(b), int(b) + gap, int(b) + gap + h, bool(r), origin)
            for k, (a, b, r, origin) in enumerate(zip(self.train_start, self.train_stop, self.refit, self.origins))
        )

    def coverage_by_step(self) -> tuple[float, np.ndarray] | None:
        """The outermost symmetric interval's nominal level and its coverage at each step ahead, pooled over
        folds; ``None`` without such an interval."""
        found = None if self.quantiles is None else interval_of(self.levels)
        if found is None or self.quantiles is None:
            return None
        i, j, nominal = found
        inside = (self.quantiles[..., i] <= self.actuals) & (self.actuals <= self.quantiles[..., j])
        return nominal, inside.mean(axis=0)

    def aggregates(self) -> dict[str, float]:
        """Step-less aggregates named after what they aggregate: ``<metric>_mean``, ``_median``, ``_pooled``."""
        out: dict[str, float] = {}
        for name, values in self.fold_metrics.items():
            finite = values[~np.isnan(values)]
            out[f"{name}_mean"] = float(finite.mean()) if finite.size else float("nan")
            out[f"{name}_median"] = float(np.median(finite)) if finite.size else float("nan")
            out[f"{name}_pooled"] = self.pooled[name]
        return out

    def to_frame(self) -> pd.DataFrame:
        """Tidy per-fold rows: model, horizon, fold, origin, metric, value."""
        k = self.n_folds
        names = list(self.fold_metrics)
        return pd.DataFrame(
            {
                "model": self.model,
                "horizon": self.horizon,
                "fold": np.tile(np.arange(k), len(names)),
                "origin": np.tile(np.asarray(self.origins), len(names)),
                "metric": np.repeat(names, k),
                "value": np.concatenate([self.fold_metrics[n] for n in names]) if names else [],
            }
        )

    def summary(self) -> pd.DataFrame:
        """One row per metric: mean of folds, median of folds, pooled, and excluded points."""
        aggregates = self.aggregates()
        rows = [
            {
                "metric": name,
                "direction": get_metric(name).better,
                "mean": aggregates[f"{name}_mean"],
                "median": aggregates[f"{name}_median"],
                "pooled": aggregates[f"{name}_pooled"],
                "excluded_points": self.excluded[name],
            }
            for name in self.fold_metrics
        ]
        return pd.DataFrame(rows).set_index("metric")


def _name_of(model: Any) -> str:
    return getattr(model, "name", None) or type(model).__name__


def _params_of(model: Any) -> dict[str, Any]:
    get_params = getattr(model, "get_params", None)
    if callable(get_params):
        try:
            return dict(get_params())
        except Exception as exc:
            raise ModelError(
                f"{_name_of(model)}.get_params() failed ({type(exc).__name__}: {exc}); it must return a dict of "
                "parameters worth recording, or be removed"
            ) from exc
    return {}


def _frozen(values: np.ndarray) -> np.ndarray:
    values.setflags(write=False)
    return values


def _check_model(model: Any) -> None:
    """A forecaster has callable ``fit`` and ``predict``; say what was given instead, before any fit."""
    expected = "a forecaster with fit(history) and predict(history, steps) methods (see backtest.Forecaster)"
    if model is None:
        raise TypeError(f"model must be {expected}, got None")
    if isinstance(model, type):
        raise TypeError(f"model must be an instance, got the class {model.__name__}; pass {model.__name__}(...)")
    missing = [method for method in ("fit", "predict") if not callable(getattr(model, method, None))]
    if missing:
        raise TypeError(f"model must be {expected}, got {type(model).__name__}, which lacks {' and '.join(missing)}")
    context = getattr(model, "context_length", None)
    if context is not None and (isinstance(context, bool) or not isinstance(context, (int, np.integer)) or context < 1):
        raise ValueError(
            f"model {_name_of(model)}.context_length must be None or a whole number >= 1 (the trailing points "
            f"predict needs), got {context!r}"
        )


def _check_spec(spec: Any) -> None:
    if not isinstance(spec, WalkForward):
        raise TypeError(
            f"spec must be a backtest.WalkForward, got {spec!r} ({type(spec).__name__}); "
            "e.g. WalkForward(horizon=30, step=5, initial=500)"
        )


def _as_series(series: pd.Series | np.ndarray) -> pd.Series:
    if isinstance(series, pd.Series):
        return series
    expected = "series must be a pandas Series or a one-dimensional array of numbers"
    if series is None:
        raise TypeError(f"{expected}, got None; load one with backtest.load_series")
    if isinstance(series, pd.DataFrame):
        raise TypeError(
            f"{expected}, got a DataFrame with columns {list(series.columns)}; pass one column "
            "(frame['value']) or load it with backtest.load_series(frame)"
        )
    if isinstance(series, (str, Path)):
        path = str(series)
        raise TypeError(f"{expected}, got the path {path!r}; load it first: backtest.load_series({path!r})")
    try:
        values = np.asarray(series, dtype=float)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"series values must be numeric ({exc}), got a {type(series).__name__}; load it with backtest.load_series"
        ) from None
    if values.ndim != 1:
        raise DataError(f"the series must be one-dimensional, got shape {values.shape}; pass one column of values")
    return pd.Series(values)


def _check_series(series: pd.Series) -> np.ndarray:
    try:
        y = series.to_numpy(dtype=float)
    except (TypeError, ValueError) as exc:
        raise DataError(f"series values must be numeric ({exc}); load it with backtest.load_series") from None
    bad = np.flatnonzero(~np.isfinite(y))
    if bad.size:
        shown = ", ".join(str(series.index[i]) for i in bad[:5])
        raise DataError(f"series has {bad.size} NaN/inf value(s), first at {shown}; clean it with backtest.load_series")
    if isinstance(series.index, pd.DatetimeIndex):
        dates = series.index
        back = np.flatnonzero(np.diff(dates.asi8) < 0) + 1
        if back.size:
            k = int(back[0])
            raise DataError(
                f"series dates must be sorted: {dates[k]} (position {k}) comes after {dates[k - 1]}, and "
                f"{back.size} date(s) go back in time; sort it (series.sort_index()) or load it with "
                "backtest.load_series"
            )
        repeated = np.flatnonzero(dates.duplicated())
        if repeated.size:
            k = int(repeated[0])
            raise DataError(
                f"series dates must be unique: {dates[k]} repeats at position {k}, and {repeated.size} date(s) "
                "in all; keep one value per date or load it with backtest.load_series"
            )
    return y


def _as_exog(exog: Any, n: int) -> np.ndarray:
    try:
        X = np.asarray(exog, dtype=float)
    except (TypeError, ValueError) as exc:
        raise DataError(f"exog values must be numeric ({exc}); got {type(exog).__name__}") from None
    if X.ndim not in (1, 2):
        raise DataError(f"exog must be one row per point (1-D or 2-D), got shape {X.shape}")
    if len(X) != n:
        raise DataError(f"exog has {len(X)} rows but the series has {n}; align them on the same dates")
    return X[:, None] if X.ndim == 1 else X


def _as_forecast(raw: Any, expected: tuple[int, ...], where: object, source: str, per: str = "") -> np.ndarray:
    """A model's answer as a float array of the expected shape, or a :class:`ModelError` saying why not.

    ``source`` names the method that answered (``model Naive.predict``) in the fix the message suggests.
    """
    try:
        out = np.asarray(raw, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{where}: forecast is not numeric ({exc}); {source} must return numbers") from None
    if out.shape != expected:
        per = per or ("one row per origin and one column per step" if len(expected) == 2 else "one value per step")
        raise ModelError(
            f"{where}: forecast has shape {out.shape}, expected {expected} (gap + horizon steps); {source} must "
            f"return {per}"
        )
    return out


def _checked_forecast(raw: Any, expected: tuple[int, ...], where: object, source: str) -> np.ndarray:
    out = _as_forecast(raw, expected, where, source)
    if not np.isfinite(out).all():
        raise ModelError(
            f"{where}: forecast contains {int((~np.isfinite(out)).sum())} NaN/inf value(s); {source} must return "
            "finite numbers"
        )
    return out


class _Where:
    """Names a fold in messages; built per fold but formatted only when something fails."""

    __slots__ = ("k", "origins")

    def __init__(self, origins: pd.Index, k: int) -> None:
        self.origins = origins
        self.k = k

    def __str__(self) -> str:
        return f"fold {self.k} (origin {self.origins[self.k]})"


_where = _Where


def _call(where: _Where, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except ValueError as exc:
        if str(exc).endswith("is read-only"):  # numpy: "assignment destination is read-only", ".. array is .."
            raise ModelError(
                f"{where}: the model tried to modify the history it was given ({exc}); "
                "histories are read-only, copy them first (np.array(history))"
            ) from exc
        raise ModelError(f"{where}: {type(exc).__name__}: {exc}") from exc
    except Exception as exc:
        raise ModelError(f"{where}: {type(exc).__name__}: {exc}") from exc


def run(
    model: Any,
    series: pd.Series | np.ndarray,
    spec: WalkForward,
    *,
    name: str | None = None,
    exog: pd.DataFrame | np.ndarray | None = None,
    metrics: str | tuple[str, ...] | list[str] = DEFAULT_METRICS,
    quantiles: Any = None,
    n_jobs: int = 1,
    progress: Callable[[int, int], object] | None = None,
) -> BacktestResult:
    """Walk ``model`` across ``spec``'s folds of ``series`` and score every forecast.

    ``exog`` holds regressors known in advance, row-aligned with ``series``; the model receives the
    rows of its history and, separately, the rows of the period it forecasts. ``metrics`` names the
    metrics to score (one name alone is one metric); the default, ``DEFAULT_METRICS``, also scores the
    interval metrics when quantiles are asked for (:func:`backtest.metrics.default_metrics`).
    ``quantiles`` (levels in (0, 1), e.g. ``(0.05, 0.5, 0.95)``) asks the model for quantile forecasts
    too, scored by the interval metrics. ``n_jobs`` > 1 runs the refit blocks (the folds between two
    refits) in that many worker processes through joblib, with results identical to ``n_jobs=1`` for a
    model whose fit depends on its training window alone. ``progress(done, total)``, if given, is called
    with the folds forecast so far and the fold count each time a refit block completes (as its result
    comes back from a worker when ``n_jobs`` > 1), so a caller can show progress and estimate the time
    left. Every argument is checked before the first fit.
    """
    _check_model(model)
    _check_spec(spec)
    levels = _as_levels(quantiles)
    jobs = _check_jobs(n_jobs)
    if progress is not None and not callable(progress):
        raise TypeError(f"progress must be None or a callable progress(done, total), got {progress!r}")
    metrics = metric_names(default_metrics(levels) if metrics is DEFAULT_METRICS else metrics)
    check_quantile_metrics(metrics, levels)
    if levels:
        _check_quantile_model(model, levels)
    series = _as_series(series)
    y = _check_series(series)
    n, h, gap = len(y), spec.horizon, spec.gap
    stops = spec.stops(n, series.index)
    k_folds = len(stops)
    starts = np.zeros(k_folds, dtype=np.int64) if spec.window is None else stops - spec.window
    origins = series.index[stops - 1]
    refit = spec.refit_mask(k_folds)
    context = getattr(model, "context_length", None)
    shortest = int((stops - starts).min())
    if context is not None and shortest < context:
        raise SpecificationError(
            f"{_name_of(model)} needs at least {context} points of history (context_length), but the "
            f"shortest training window has {shortest} (initial={spec.initial}, window={spec.window}); "
            f"use a window/initial of at least {context}"
        )
    X = None if exog is None else _as_exog(exog, n)

    steps = gap + h
    batched = context is not None and X is None and callable(getattr(model, "predict_batch", None))
    # a model that learns nothing is fit once: refitting it would change no forecast, only cost time
    boundaries = np.array([0, k_folds]) if _stateless(model) else np.append(np.flatnonzero(refit), k_folds)
    blocks = list(zip(boundaries[:-1].tolist(), boundaries[1:].tolist()))  # ints: they appear in messages
    walk = _Walk(y, X, starts, stops, origins, context, batched, steps, levels, _name_of(model))
    forecasts = np.empty((k_folds, steps))
    bands = np.empty((k_folds, steps, len(levels))) if levels else None
    if jobs == 1 or len(blocks) == 1:
        for first, end in blocks:
            forecasts[first:end], block_bands = walk.block(model, first, end)
            if bands is not None:
                bands[first:end] = block_bands
            if progress is not None:
                progress(end, k_folds)
    else:
        _in_parallel(walk, model, blocks, jobs, forecasts, bands, progress)

    forecasts = forecasts[:, gap:]
    bands = None if bands is None else bands[:, gap:]
    test = stops[:, None] + gap + np.arange(h)
    actuals = y[test]
    last = y[stops - 1]
    # MASE scale: mean absolute one-step change inside each training window, from a running sum.
    moves = np.concatenate([[0.0], np.cumsum(np.abs(np.diff(y)))])
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = (moves[stops - 1] - moves[starts]) / (stops - 1 - starts)
    scores = score(actuals, forecasts, last=last, scale=scale, metrics=metrics, quantiles=bands, levels=levels)
    return BacktestResult(
        model=name or _name_of(model),
        spec=spec,
        origins=origins,
        train_start=starts,
        train_stop=stops,
        refit=refit,
        actuals=actuals,
        forecasts=forecasts,
        last=last,
        fold_metrics=scores.per_fold,
        pooled=scores.pooled,
        excluded=scores.excluded,
        data=fingerprint(series),
        params=_params_of(model),
        quantiles=bands,
        levels=levels,
    )


class _Walk:
    """Everything a refit block needs, apart from the model: picklable, so a block can run in another process.

    The series ``y`` travels whole, but a model only ever receives read-only copies of what it may see.
    """

    def __init__(
        self,
        y: np.ndarray,
        X: np.ndarray | None,
        starts: np.ndarray,
        stops: np.ndarray,
        origins: pd.Index,
        context: int | None,
        batched: bool,
        steps: int,
        levels: tuple[float, ...],
        model_name: str,
    ) -> None:
        self.y, self.X, self.starts, self.stops, self.origins = y, X, starts, stops, origins
        self.context, self.batched, self.steps, self.levels = context, batched, steps, levels
        self.wanted = _frozen(np.array(levels)) if levels else None
        self.model_name = model_name
        self.n_folds = len(stops)
        methods = ("predict", "predict_batch", "predict_quantiles", "predict_quantiles_batch")
        self.sources = {method: f"model {model_name}.{method}" for method in methods}

    def block(self, model: Any, first: int, end: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Fit ``model`` at fold ``first`` and forecast folds ``first`` to ``end`` (exclusive)."""
        y, X, starts, stops, origins = self.y, self.X, self.starts, self.stops, self.origins
        context, steps, levels, wanted, sources = self.context, self.steps, self.levels, self.wanted, self.sources
        forecasts = np.empty((end - first, steps))
        bands = np.empty((end - first, steps, len(levels))) if levels else None
        where = _where(origins, first)
        train = _frozen(y[starts[first] : stops[first]].copy())
        if X is None:
            _call(where, model.fit, train)
        else:
            _call(where, model.fit, train, exog=_frozen(X[starts[first] : stops[first]].copy()))
        if self.batched:
            assert context is not None  # batched needs a context_length
            window = stops[first:end, None] - context + np.arange(context)
            contexts = _frozen(y[window])
            raw = _call(where, model.predict_batch, contexts, steps)
            forecasts[:] = _checked_batch(raw, end - first, steps, origins, first, sources["predict_batch"])
            if bands is not None and callable(getattr(model, "predict_quantiles_batch", None)):
                raw = _call(where, model.predict_quantiles_batch, contexts, steps, wanted)
                source = sources["predict_quantiles_batch"]
                bands[:] = _checked_batch(raw, end - first, steps, origins, first, source, levels=levels)
            elif bands is not None:
                for k in range(first, end):
                    history = _frozen(contexts[k - first].copy())
                    raw = _call(_where(origins, k), model.predict_quantiles, history, steps, wanted)
                    bands[k - first] = _checked_bands(
                        raw, steps, levels, _where(origins, k), sources["predict_quantiles"]
                    )
            return forecasts, bands
        for k in range(first, end):
            where = _where(origins, k)
            lo = starts[k] if context is None else stops[k] - context
            # where the refit window is the forecast context, one read-only copy serves both
            history = train if k == first and lo == starts[first] else _frozen(y[lo : stops[k]].copy())
            regressors: dict[str, np.ndarray] = {}
            if X is not None:
                regressors = {
                    "exog": _frozen(X[lo : stops[k]].copy()),
                    "exog_future": _frozen(X[stops[k] : stops[k] + steps].copy()),
                }
            raw = _call(where, model.predict, history, steps, **regressors)
            forecasts[k - first] = _checked_forecast(raw, (steps,), where, sources["predict"])
            if bands is not None:
                raw = _call(where, model.predict_quantiles, history, steps, wanted, **regressors)
                bands[k - first] = _checked_bands(raw, steps, levels, where, sources["predict_quantiles"])
        return forecasts, bands


def _block_on_worker(walk: _Walk, model: Any, first: int, end: int, keep: bool):
    """One refit block in a worker process, on the worker's own copy of the model; ``keep``: return it fitted."""
    forecasts, bands = walk.block(model, first, end)
    return forecasts, bands, (model if keep else None)


def _in_parallel(
    walk: _Walk,
    model: Any,
    blocks: list[tuple[int, int]],
    jobs: int,
    forecasts: np.ndarray,
    bands: np.ndarray | None,
    progress: Callable[[int, int], object] | None = None,
) -> None:
    """Run the refit blocks through joblib (local processes by default; ``joblib.parallel_config(backend=
    "dask")`` sends them to a Dask cluster). Every block starts from the model as given, so its fit must
    depend on its training window alone; the model passed in ends fitted like the last block's.

    Results come back as a generator, in block order, so ``progress`` hears of each block as it returns;
    a backend that cannot stream results (joblib's ``multiprocessing``) returns them all at the end."""
    import cloudpickle  # what loky pickles with: the check sees what the workers would
    import joblib  # type: ignore[import-untyped]

    try:
        cloudpickle.dumps(model)
    except Exception as exc:
        raise TypeError(
            f"n_jobs={jobs}: model {walk.model_name} cannot be sent to worker processes, it cannot be pickled "
            f"({type(exc).__name__}: {exc}); make it picklable (no open files, locks or live connections in its "
            "attributes) or use n_jobs=1"
        ) from exc
    last = len(blocks) - 1
    try:
        parallel = joblib.Parallel(n_jobs=jobs, return_as="generator")
    except ValueError:  # "Backend ... does not support return_as=generator"
        parallel = joblib.Parallel(n_jobs=jobs)
    done = parallel(
        joblib.delayed(_block_on_worker)(walk, model, first, end, i == last) for i, (first, end) in enumerate(blocks)
    )
    folds_done = 0
    for (first, end), (block_forecasts, block_bands, fitted) in zip(blocks, done):
        forecasts[first:end] = block_forecasts
        if bands is not None:
            bands[first:end] = block_bands
        if fitted is not None and hasattr(model, "__dict__") and hasattr(fitted, "__dict__"):
            vars(model).update(vars(fitted))
        folds_done += end - first
        if progress is not None:
            progress(folds_done, walk.n_folds)


def _check_jobs(n_jobs: Any) -> int:
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or not (n_jobs >= 1 or n_jobs == -1):
        raise ValueError(
            f"n_jobs must be a whole number >= 1 (worker processes for the refit blocks) or -1 (one per CPU), "
            f"got {n_jobs!r}"
        )
    return int(n_jobs)


def _checked_batch(
    raw: Any, rows: int, steps: int, origins: pd.Index, first: int, source: str, levels: tuple[float, ...] = ()
) -> np.ndarray:
    """Validate a ``predict_batch`` (or, with ``levels``, ``predict_quantiles_batch``) answer, naming the
    first fold whose row is unusable."""
    expected = (rows, steps, len(levels)) if levels else (rows, steps)
    per = "one (steps, levels) block per origin" if levels else ""
    out = _as_forecast(raw, expected, f"{_where(origins, first)} (batch of {rows} origins)", source, per)
    finite = np.isfinite(out).reshape(rows, -1).all(axis=1)
    bad = np.flatnonzero(~finite)
    if bad.size:
        k = first + int(bad[0])
        count = int((~np.isfinite(out)).sum())
        raise ModelError(
            f"{_where(origins, k)}: forecast contains NaN/inf ({count} value(s) in the batch); {source} must "
            "return finite numbers"
        )
    if levels:
        crossed = np.flatnonzero((np.diff(out, axis=2) < 0).any(axis=(1, 2)))
        if crossed.size:
            k = int(crossed[0])
            _check_crossing(out[k], levels, _where(origins, first + k), source)
    return out


def _checked_bands(raw: Any, steps: int, levels: tuple[float, ...], where: object, source: str) -> np.ndarray:
    """Validate one fold's ``predict_quantiles`` answer: shape ``(steps, levels)``, finite, not crossing."""
    out = _as_forecast(raw, (steps, len(levels)), where, source, "one row per step and one column per level")
    if not np.isfinite(out).all():
        raise ModelError(
            f"{where}: quantile forecast contains {int((~np.isfinite(out)).sum())} NaN/inf value(s); {source} "
            "must return finite numbers"
        )
    _check_crossing(out, levels, where, source)
    return out


def _check_crossing(out: np.ndarray, levels: tuple[float, ...], where: object, source: str) -> None:
    """A ``(steps, levels)`` quantile forecast must not decrease from one level to the next."""
    drops = np.argwhere(np.diff(out, axis=1) < 0)
    if drops.size:
        step, j = (int(v) for v in drops[0])
        raise ModelError(
            f"{where}: quantiles cross at step {step + 1}: the {levels[j]:g} quantile {out[step, j]:.6g} exceeds "
            f"the {levels[j + 1]:g} quantile {out[step, j + 1]:.6g} ({len(drops)} crossing(s)); {source} must "
            "return each step's quantiles in the order of the levels, non-decreasing"
        )


def _as_levels(quantiles: Any) -> tuple[float, ...]:
    """The requested quantile levels, sorted, or a ValueError saying what is wrong with them."""
    if quantiles is None:
        return ()
    example = "e.g. quantiles=(0.05, 0.5, 0.95)"
    if isinstance(quantiles, (str, bytes)) or not hasattr(quantiles, "__iter__"):
        raise TypeError(f"quantiles must be a sequence of levels in (0, 1), {example}; got {quantiles!r}")
    try:
        levels = [float(t) for t in quantiles]
    except (TypeError, ValueError):
        raise TypeError(f"quantiles must be numbers in (0, 1), {example}; got {quantiles!r}") from None
    if not levels:
        raise ValueError(f"quantiles is empty; name at least one level, {example}, or pass None")
    outside = [t for t in levels if not (0.0 < t < 1.0)]
    if outside:
        raise ValueError(
            f"quantile levels must lie strictly between 0 and 1, got {outside} in {tuple(levels)}; {example}"
        )
    if len(set(levels)) != len(levels):
        raise ValueError(f"quantile levels repeat in {tuple(levels)}; name each level once, {example}")
    return tuple(sorted(levels))


def _check_quantile_model(model: Any, levels: tuple[float, ...]) -> None:
    if not any(callable(getattr(model, m, None)) for m in ("predict_quantiles", "predict_quantiles_batch")):
        raise TypeError(
            f"quantiles={levels} needs quantile forecasts, and model {_name_of(model)} has no "
            "predict_quantiles(history, steps, quantiles) method; add one (it returns a (steps, len(quantiles)) "
            "array), use a baseline that has one (backtest.RandomWalk), or drop quantiles"
        )
    if not callable(getattr(model, "predict_quantiles", None)) and not (
        getattr(model, "context_length", None) is not None and callable(getattr(model, "predict_batch", None))
    ):
        raise TypeError(
            f"model {_name_of(model)} has predict_quantiles_batch but no predict_quantiles; the batch method is only "
            "used beside predict_batch and context_length, so add predict_quantiles(history, steps, quantiles)"
        )


def _stateless(model: Any) -> bool:
    """A model that declares ``stateless = True``: its ``fit`` learns nothing (see backtest.models)."""
    return getattr(model, "stateless", False) is True
