"""The only place a model is fit or asked to predict.

:func:`run` walks a forecaster across the folds of a :class:`~backtest.folds.WalkForward` schedule.
At each origin the model receives a read-only *copy* of the history it may see (never the series
itself), so it cannot read beyond its origin or change the data. Models with ``context_length`` and
``predict_batch`` are asked for every origin between two refits in one vectorised call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from .data import DataError, Fingerprint, fingerprint
from .folds import Fold, SpecificationError, WalkForward
from .metrics import METRICS, get_metric, score

__all__ = ["BacktestResult", "ModelError", "DEFAULT_METRICS", "run"]

DEFAULT_METRICS: tuple[str, ...] = tuple(METRICS)


class ModelError(RuntimeError):
    """A forecaster that raised or returned unusable output at a named fold."""


@dataclass(frozen=True, eq=False)
class BacktestResult:
    """Everything one walk-forward backtest produced, per fold and pooled.

    ``actuals`` and ``forecasts`` are ``(folds, horizon)``; ``origins``, ``last``, ``train_start``
    and ``train_stop`` have one entry per fold. ``fold_metrics[name]`` holds one value per fold and
    ``pooled[name]`` one value over every fold×step point.
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
                "direction": get_metric(name).direction,
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


def _as_series(series: pd.Series | np.ndarray) -> pd.Series:
    if isinstance(series, pd.Series):
        return series
    values = np.asarray(series, dtype=float)
    if values.ndim != 1:
        raise DataError(f"the series must be one-dimensional, got shape {values.shape}")
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
    if isinstance(series.index, pd.DatetimeIndex) and not (
        series.index.is_monotonic_increasing and series.index.is_unique
    ):
        raise DataError("series dates must be sorted and unique; load it with backtest.load_series")
    return y


def _as_forecast(raw: Any, expected: tuple[int, ...], where: object) -> np.ndarray:
    """A model's answer as a float array of the expected shape, or a :class:`ModelError` saying why not."""
    try:
        out = np.asarray(raw, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ModelError(f"{where}: forecast is not numeric ({exc})") from None
    if out.shape != expected:
        raise ModelError(f"{where}: forecast has shape {out.shape}, expected {expected} (gap + horizon steps)")
    return out


def _checked_forecast(raw: Any, expected: tuple[int, ...], where: object) -> np.ndarray:
    out = _as_forecast(raw, expected, where)
    if not np.isfinite(out).all():
        raise ModelError(f"{where}: forecast contains {int((~np.isfinite(out)).sum())} NaN/inf value(s)")
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
    metrics: tuple[str, ...] | list[str] = DEFAULT_METRICS,
) -> BacktestResult:
    """Walk ``model`` across ``spec``'s folds of ``series`` and score every forecast.

    ``exog`` holds regressors known in advance, row-aligned with ``series``; the model receives the
    rows of its history and, separately, the rows of the period it forecasts.
    """
    series = _as_series(series)
    y = _check_series(series)
    for metric in metrics:
        get_metric(metric)
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
    X = None
    if exog is not None:
        X = np.asarray(exog, dtype=float)
        if len(X) != n:
            raise DataError(f"exog has {len(X)} rows but the series has {n}; align them on the same dates")
        if X.ndim == 1:
            X = X[:, None]

    steps = gap + h
    forecasts = np.empty((k_folds, steps))
    batched = context is not None and X is None and callable(getattr(model, "predict_batch", None))
    boundaries = np.append(np.flatnonzero(refit), k_folds)
    for first, end in zip(boundaries[:-1].tolist(), boundaries[1:].tolist()):  # ints: they appear in messages
        where = _where(origins, first)
        train = _frozen(y[starts[first] : stops[first]].copy())
        if X is None:
            _call(where, model.fit, train)
        else:
            _call(where, model.fit, train, exog=_frozen(X[starts[first] : stops[first]].copy()))
        if batched:
            window = stops[first:end, None] - context + np.arange(context)
            contexts = _frozen(y[window])
            raw = _call(where, model.predict_batch, contexts, steps)
            forecasts[first:end] = _checked_batch(raw, end - first, steps, origins, first)
            continue
        for k in range(first, end):
            where = _where(origins, k)
            lo = starts[k] if context is None else stops[k] - context
            # where the refit window is the forecast context, one read-only copy serves both
            history = train if k == first and lo == starts[first] else _frozen(y[lo : stops[k]].copy())
            if X is None:
                raw = _call(where, model.predict, history, steps)
            else:
                raw = _call(
                    where,
                    model.predict,
                    history,
                    steps,
                    exog=_frozen(X[lo : stops[k]].copy()),
                    exog_future=_frozen(X[stops[k] : stops[k] + steps].copy()),
                )
            forecasts[k] = _checked_forecast(raw, (steps,), where)

    forecasts = forecasts[:, gap:]
    test = stops[:, None] + gap + np.arange(h)
    actuals = y[test]
    last = y[stops - 1]
    # MASE scale: mean absolute one-step change inside each training window, from a running sum.
    moves = np.concatenate([[0.0], np.cumsum(np.abs(np.diff(y)))])
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = (moves[stops - 1] - moves[starts]) / (stops - 1 - starts)
    scores = score(actuals, forecasts, last=last, scale=scale, metrics=tuple(metrics))
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
        data=fingerprint(series) if isinstance(series.index, pd.DatetimeIndex) else _positional_fingerprint(y),
        params=_params_of(model),
    )


def _checked_batch(raw: Any, rows: int, steps: int, origins: pd.Index, first: int) -> np.ndarray:
    """Validate a ``predict_batch`` answer, naming the first fold whose row is unusable."""
    out = _as_forecast(raw, (rows, steps), f"{_where(origins, first)} (batch of {rows} origins)")
    bad = np.flatnonzero(~np.isfinite(out).all(axis=1))
    if bad.size:
        k = first + int(bad[0])
        count = int((~np.isfinite(out)).sum())
        raise ModelError(f"{_where(origins, k)}: forecast contains NaN/inf ({count} value(s) in the batch)")
    return out


def _positional_fingerprint(y: np.ndarray) -> Fingerprint:
    return fingerprint(pd.Series(y, index=pd.DatetimeIndex(pd.to_datetime(np.arange(len(y)), unit="D"))))
