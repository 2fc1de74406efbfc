"""Forecast accuracy metrics with one contract.

Every metric is computed from the same arrays, all shaped ``(folds, steps)`` except ``last`` and
``scale`` (``(folds,)``):

* ``actual``, ``forecast``: what happened and what the model said;
* ``last``: the last value the model observed at each origin (for directional accuracy);
* ``scale``: the in-sample mean absolute one-step naive error of each fold's training window (MASE).

A metric is a pointwise value plus a validity mask; a fold's value and the pooled value apply the same
reduction (mean, then ``finish``) to one fold's points or to every fold×step point. Overlapping
forecasts are never deduplicated: pooled values weigh every (origin, step) pair once.

=====================  ==========================================================  =========
name                   definition                                                  better
=====================  ==========================================================  =========
``rmse``               ``sqrt(mean((f - a)^2))``                                   lower
``mae``                ``mean(|f - a|)``                                           lower
``mape``               ``100 * mean(|f - a| / |a|)`` over ``a != 0`` (percent)     lower
``smape``              ``100 * mean(2|f - a| / (|a| + |f|))``, range 0..200        lower
``mase``               ``mean(|f - a|) / scale``                                   lower
``directional_accuracy``  share of points where ``sign(f - last) == sign(a - last)``,  higher
                       ties (either sign zero) excluded; range 0..1
=====================  ==========================================================  =========

Points a metric cannot score (zero actuals for MAPE, ties for directional accuracy, ``|a|+|f| = 0``
for sMAPE, a zero scale for MASE) are excluded and counted in :attr:`Scores.excluded`, never turned
into ``inf``. A fold with no scoreable point gets ``nan``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = ["METRICS", "Metric", "Scores", "get_metric", "metric_names", "score"]

Direction = Literal["lower", "higher"]


@dataclass(frozen=True)
class Metric:
    """A registered metric: its name, which direction is better, and how it is computed."""

    name: str
    direction: Direction
    pointwise: Callable[..., tuple[np.ndarray, np.ndarray]]
    finish: Callable[[np.ndarray], np.ndarray] = np.asarray
    description: str = ""

    @property
    def lower_is_better(self) -> bool:
        return self.direction == "lower"


@dataclass(frozen=True)
class Scores:
    """Per-fold and pooled values of several metrics, with the count of excluded points."""

    per_fold: dict[str, np.ndarray]
    pooled: dict[str, float]
    excluded: dict[str, int]


def _all(shape: tuple[int, ...]) -> np.ndarray:
    return np.ones(shape, dtype=bool)


def _squared(actual, forecast, **_):
    return (forecast - actual) ** 2, _all(actual.shape)


def _absolute(actual, forecast, **_):
    return np.abs(forecast - actual), _all(actual.shape)


def _percentage(actual, forecast, **_):
    valid = actual != 0
    with np.errstate(divide="ignore", invalid="ignore"):
        return 100.0 * np.abs(forecast - actual) / np.abs(actual), valid


def _symmetric_percentage(actual, forecast, **_):
    denominator = np.abs(actual) + np.abs(forecast)
    with np.errstate(divide="ignore", invalid="ignore"):
        # divide first: |f - a| <= |a| + |f| holds in floating point, so the value never exceeds 200
        return 200.0 * (np.abs(forecast - actual) / denominator), denominator != 0


def _scaled(actual, forecast, *, scale, **_):
    scale = np.asarray(scale, dtype=float)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.abs(forecast - actual) / scale
    return values, np.broadcast_to((scale > 0) & np.isfinite(scale), actual.shape)


def _direction(actual, forecast, *, last, **_):
    last = np.asarray(last, dtype=float)[:, None]
    predicted = np.sign(forecast - last)
    realised = np.sign(actual - last)
    return (predicted == realised).astype(float), (predicted != 0) & (realised != 0)


METRICS: dict[str, Metric] = {
    metric.name: metric
    for metric in (
        Metric("rmse", "lower", _squared, np.sqrt, "root mean squared error"),
        Metric("mae", "lower", _absolute, description="mean absolute error"),
        Metric("mape", "lower", _percentage, description="mean absolute percentage error, percent"),
        Metric("smape", "lower", _symmetric_percentage, description="symmetric MAPE, percent, 0..200"),
        Metric("mase", "lower", _scaled, description="mean absolute scaled error (one-step naive scale)"),
        Metric(
            "directional_accuracy",
            "higher",
            _direction,
            description="share of correctly predicted directions relative to the last observation",
        ),
    )
}


def get_metric(name: str) -> Metric:
    """Look a metric up by name; an unknown name is a :class:`ValueError` listing the known ones."""
    metric = METRICS.get(name) if isinstance(name, Hashable) else None
    if metric is None:
        close = difflib.get_close_matches(str(name).lower(), METRICS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown metric {name!r}; known metrics: {', '.join(METRICS)}{hint}")
    return metric


def metric_names(metrics: str | Iterable[str]) -> tuple[str, ...]:
    """``metrics`` as a tuple of known metric names: one name alone counts as one metric, not its letters."""
    if isinstance(metrics, str):
        metrics = (metrics,)
    elif not isinstance(metrics, Iterable):
        raise TypeError(
            f"metrics must be a metric name or a sequence of them, e.g. ('rmse', 'mae'), got {metrics!r} "
            f"({type(metrics).__name__}); known metrics: {', '.join(METRICS)}"
        )
    names = tuple(metrics)
    if not names:
        raise ValueError(f"metrics is empty; name at least one, e.g. ('rmse',). Known metrics: {', '.join(METRICS)}")
    for name in names:
        if not isinstance(name, str):
            raise TypeError(
                f"metrics must hold metric names (str), got {name!r} ({type(name).__name__}) in {names!r}; "
                f"known metrics: {', '.join(METRICS)}"
            )
        get_metric(name)
    return names


def score(
    actual: np.ndarray,
    forecast: np.ndarray,
    *,
    last: ArrayLike,
    scale: ArrayLike,
    metrics: str | Iterable[str] = tuple(METRICS),
) -> Scores:
    """Score ``(folds, steps)`` forecasts with each named metric (or the one named), per fold and pooled."""
    names = metric_names(metrics)
    actual = np.asarray(actual, dtype=float)
    forecast = np.asarray(forecast, dtype=float)
    per_fold: dict[str, np.ndarray] = {}
    pooled: dict[str, float] = {}
    excluded: dict[str, int] = {}
    for name in names:
        metric = get_metric(name)
        values, valid = metric.pointwise(actual, forecast, last=last, scale=scale)
        masked = np.where(valid, values, 0.0)
        counts = valid.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            fold_means = np.where(counts > 0, masked.sum(axis=1) / np.maximum(counts, 1), np.nan)
        total = int(counts.sum())
        pooled_mean = float(masked.sum() / total) if total else float("nan")
        per_fold[name] = np.asarray(metric.finish(fold_means), dtype=float)
        pooled[name] = float(metric.finish(np.float64(pooled_mean)))
        excluded[name] = int(valid.size - total)
    return Scores(per_fold=per_fold, pooled=pooled, excluded=excluded)
