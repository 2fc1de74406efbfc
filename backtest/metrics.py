"""Forecast accuracy metrics with one contract.

Every metric is computed from the same arrays, all shaped ``(folds, steps)`` except ``last`` and
``scale`` (``(folds,)``) and ``quantiles`` (``(folds, steps, levels)``):

* ``actual``, ``forecast``: what happened and what the model said;
* ``last``: the last value the model observed at each origin (for directional accuracy);
* ``scale``: the in-sample mean absolute one-step naive error of each fold's training window (MASE);
* ``quantiles``, ``levels``: the quantile forecasts at the requested levels (sorted, in (0, 1)), for the
  interval metrics; ``None`` and ``()`` when no quantiles were asked for.

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
``mse``                ``mean((f - a)^2)``                                         lower
``pinball``            ``mean over levels t of max(t (a - q_t), (t - 1)(a - q_t))``  lower
``coverage``           share of points with ``lo <= a <= hi``, the outermost        (nominal)
                       symmetric interval ``[q_t, q_(1-t)]``; informative, not gated
``coverage_error``     ``|coverage - (1 - 2t)|``, distance to the nominal level     lower
``interval_score``     ``(hi - lo) + 2/alpha (lo - a)[a < lo] + 2/alpha (a - hi)[a > hi]``,  lower
                       ``alpha = 2t`` (Gneiting & Raftery 2007; Winkler 1972)
=====================  ==========================================================  =========

Points a metric cannot score (zero actuals for MAPE, ties for directional accuracy, ``|a|+|f| = 0``
for sMAPE, a zero scale for MASE) are excluded and counted in :attr:`Scores.excluded`, never turned
into ``inf``. A fold with no scoreable point gets ``nan``.

Metrics of your own: :func:`register_metric` (a function of ``(actual, forecast, context)`` returning one
value per point, a name and a direction); registered metrics are known to :func:`get_metric`, to
:func:`backtest.run` and to the plugin's gate like the built-in ones.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import ArrayLike

__all__ = [
    "DEFAULT_METRICS",
    "INTERVAL_METRICS",
    "METRICS",
    "Metric",
    "MetricContext",
    "Scores",
    "default_metrics",
    "get_metric",
    "interval_of",
    "metric_names",
    "register_metric",
    "registered_metrics",
    "score",
]

Direction = Literal["lower", "higher"]


@dataclass(frozen=True)
class Metric:
    """A registered metric: its name, which direction is better, and how it is computed.

    ``needs_quantiles`` metrics score quantile forecasts and ``needs_interval`` ones a symmetric interval
    among them; ``gateable`` is false for a metric where neither more nor less is better (``coverage``).
    """

    name: str
    direction: Direction
    pointwise: Callable[..., tuple[np.ndarray, np.ndarray]]
    finish: Callable[[np.ndarray], np.ndarray] = np.asarray
    description: str = ""
    needs_quantiles: bool = False
    needs_interval: bool = False
    gateable: bool = True
    builtin: bool = True

    @property
    def lower_is_better(self) -> bool:
        return self.direction == "lower"

    @property
    def better(self) -> str:
        """What a reader is told is better: ``lower``, ``higher``, or ``nominal`` (closest to the nominal level)."""
        return self.direction if self.gateable else "nominal"


@dataclass(frozen=True)
class MetricContext:
    """What a metric of your own may use beside ``actual`` and ``forecast`` (read-only arrays).

    ``last`` (folds,) the last value seen at each origin; ``scale`` (folds,) the mean absolute one-step
    change of each training window; ``quantiles`` (folds, steps, levels) or ``None``; ``levels`` sorted.
    """

    last: np.ndarray
    scale: np.ndarray
    quantiles: np.ndarray | None = None
    levels: tuple[float, ...] = ()


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


def interval_of(levels: Iterable[float]) -> tuple[int, int, float] | None:
    """The outermost symmetric interval among sorted ``levels``: (lower index, upper index, nominal level).

    ``(0.05, 0.5, 0.95)`` gives ``(0, 2, 0.9)``; ``None`` when no level ``t < 0.5`` has its ``1 - t``.
    """
    levels = tuple(levels)
    for i, low in enumerate(levels):
        if low >= 0.5:
            break
        for j in range(len(levels) - 1, i, -1):
            if abs(levels[j] - (1.0 - low)) < 1e-9:
                return i, j, levels[j] - low
    return None


def _bounds(quantiles, levels) -> tuple[np.ndarray, np.ndarray, float]:
    found = interval_of(levels)
    assert found is not None  # score() checks it before any metric runs
    i, j, nominal = found
    return quantiles[..., i], quantiles[..., j], nominal


def _pinball(actual, forecast, *, quantiles, levels, **_):
    tau = np.asarray(levels, dtype=float)
    below = actual[..., None] - quantiles
    return np.maximum(tau * below, (tau - 1.0) * below).mean(axis=-1), _all(actual.shape)


def _inside(actual, forecast, *, quantiles, levels, **_):
    low, high, _nominal = _bounds(quantiles, levels)
    return ((low <= actual) & (actual <= high)).astype(float), _all(actual.shape)


def _inside_minus_nominal(actual, forecast, *, quantiles, levels, **_):
    inside, valid = _inside(actual, forecast, quantiles=quantiles, levels=levels)
    return inside - _bounds(quantiles, levels)[2], valid


def _interval_score(actual, forecast, *, quantiles, levels, **_):
    low, high, nominal = _bounds(quantiles, levels)
    alpha = 1.0 - nominal
    penalty = (2.0 / alpha) * (np.maximum(low - actual, 0.0) + np.maximum(actual - high, 0.0))
    return (high - low) + penalty, _all(actual.shape)


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
        Metric("mse", "lower", _squared, description="mean squared error"),
        Metric(
            "pinball",
            "lower",
            _pinball,
            description="mean quantile (pinball) loss over the requested levels",
            needs_quantiles=True,
        ),
        Metric(
            "coverage",
            "higher",
            _inside,
            description="share of actuals inside the outermost symmetric interval; best at its nominal level, "
            "so not a gate metric (gate on coverage_error)",
            needs_quantiles=True,
            needs_interval=True,
            gateable=False,
        ),
        Metric(
            "coverage_error",
            "lower",
            _inside_minus_nominal,
            np.abs,
            "distance of coverage to the interval's nominal level, |coverage - nominal|",
            needs_quantiles=True,
            needs_interval=True,
        ),
        Metric(
            "interval_score",
            "lower",
            _interval_score,
            description="Winkler / Gneiting-Raftery interval score of the outermost symmetric interval",
            needs_quantiles=True,
            needs_interval=True,
        ),
    )
}

#: the metrics a backtest scores when none are named: every built-in point metric (``mse`` on request)
DEFAULT_METRICS: tuple[str, ...] = ("rmse", "mae", "mape", "smape", "mase", "directional_accuracy")
#: added to the defaults when quantiles are asked for (the last three need a symmetric interval)
INTERVAL_METRICS: tuple[str, ...] = ("pinball", "coverage", "coverage_error", "interval_score")

#: metrics registered with :func:`register_metric`, by name
_REGISTERED: dict[str, Metric] = {}
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
#: endings of the step-less names the plugin logs beside each metric, and names it logs itself
_TAKEN_SUFFIXES = ("_mean", "_median", "_pooled")
_TAKEN_NAMES = frozenset({"folds", "theil_u", "rmse_ratio"})


def default_metrics(levels: Iterable[float] = ()) -> tuple[str, ...]:
    """The metrics scored when none are named: the point metrics, and with quantiles the interval ones."""
    levels = tuple(levels)
    if not levels:
        return DEFAULT_METRICS
    if interval_of(levels) is None:
        return (*DEFAULT_METRICS, "pinball")
    return DEFAULT_METRICS + INTERVAL_METRICS


def registered_metrics() -> tuple[str, ...]:
    """The names of the metrics registered with :func:`register_metric`, in registration order."""
    return tuple(_REGISTERED)


def _known() -> dict[str, Metric]:
    return {**METRICS, **_REGISTERED}


def get_metric(name: str) -> Metric:
    """Look a metric up by name; an unknown name is a :class:`ValueError` listing the known ones."""
    known = _known()
    metric = known.get(name) if isinstance(name, Hashable) else None
    if metric is None:
        close = difflib.get_close_matches(str(name).lower(), known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown metric {name!r}; known metrics: {', '.join(known)}{hint}")
    return metric


def metric_names(metrics: str | Iterable[str]) -> tuple[str, ...]:
    """``metrics`` as a tuple of known metric names: one name alone counts as one metric, not its letters."""
    if isinstance(metrics, str):
        metrics = (metrics,)
    elif not isinstance(metrics, Iterable):
        raise TypeError(
            f"metrics must be a metric name or a sequence of them, e.g. ('rmse', 'mae'), got {metrics!r} "
            f"({type(metrics).__name__}); known metrics: {', '.join(_known())}"
        )
    names = tuple(metrics)
    if not names:
        raise ValueError(f"metrics is empty; name at least one, e.g. ('rmse',). Known metrics: {', '.join(_known())}")
    for name in names:
        if not isinstance(name, str):
            raise TypeError(
                f"metrics must hold metric names (str), got {name!r} ({type(name).__name__}) in {names!r}; "
                f"known metrics: {', '.join(_known())}"
            )
        get_metric(name)
    return names


def check_quantile_metrics(names: Iterable[str], levels: tuple[float, ...]) -> None:
    """Refuse interval metrics that the requested ``levels`` cannot score, saying which levels would."""
    for name in names:
        metric = get_metric(name)
        if metric.needs_quantiles and not levels:
            raise ValueError(
                f"metric {name!r} scores quantile forecasts, and none were asked for; pass quantiles=(0.05, 0.5, "
                "0.95) (the model needs predict_quantiles) or drop the metric"
            )
        if metric.needs_interval and interval_of(levels) is None:
            raise ValueError(
                f"metric {name!r} scores the outermost symmetric interval, and quantiles={levels} hold none; add "
                f"the matching levels (t and 1 - t, e.g. 0.05 and 0.95) or drop the metric"
            )


def register_metric(
    name: str,
    function: Callable[[np.ndarray, np.ndarray, MetricContext], Any] | None = None,
    *,
    direction: str | None = None,
    description: str = "",
) -> Any:
    """Add a metric of your own, known by ``name`` to :func:`backtest.run`, the plugin and its gate.

    ``function(actual, forecast, context)`` gets ``(folds, steps)`` arrays and a :class:`MetricContext`,
    and returns one value per point, ``(folds, steps)``: a fold scores the mean of its points, the pooled
    value the mean of all (NaN marks a point that cannot be scored: excluded and counted). ``direction``
    is ``"lower"`` or ``"higher"`` (which is better). Use it as a call or as a decorator::

        @register_metric("cost_pesos", direction="lower")
        def cost_pesos(actual, forecast, context): ...

    Registering a name again replaces the earlier metric of that name (a conftest re-imported).
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(
            f"metric name {name!r} cannot name a metric: use a letter, then letters, digits or '_' (at most 64), "
            "e.g. 'cost_pesos'; it becomes part of MLflow metric names"
        )
    if name in METRICS:
        raise ValueError(
            f"metric name {name!r} is taken by a built-in metric ({', '.join(METRICS)}); choose another, "
            f"e.g. {name + '_custom'!r}"
        )
    if name in _TAKEN_NAMES or name.endswith(_TAKEN_SUFFIXES):
        raise ValueError(
            f"metric name {name!r} would collide with the names logged beside each metric (<metric>_mean, "
            f"_median, _pooled, {', '.join(sorted(_TAKEN_NAMES))}); choose another"
        )
    if direction not in ("lower", "higher"):
        raise ValueError(
            f"metric {name!r} needs a direction: direction='lower' (smaller is better, an error or a cost) or "
            f"direction='higher' (larger is better, an accuracy); got {direction!r}"
        )
    checked: Direction = "lower" if direction == "lower" else "higher"

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(fn):
            raise TypeError(
                f"metric {name!r} must be a function of (actual, forecast, context), got {fn!r} ({type(fn).__name__})"
            )
        _REGISTERED[name] = Metric(
            name,
            checked,
            _user_pointwise(name, fn),
            description=description or (fn.__doc__ or "").strip(),
            builtin=False,
        )
        return fn

    return register if function is None else register(function)


def _user_pointwise(name: str, fn: Callable[..., Any]) -> Callable[..., tuple[np.ndarray, np.ndarray]]:
    def pointwise(actual, forecast, *, last, scale, quantiles=None, levels=(), **_):
        context = MetricContext(
            last=_read_only(last), scale=_read_only(scale), quantiles=_maybe_read_only(quantiles), levels=tuple(levels)
        )
        raw = fn(_read_only(actual), _read_only(forecast), context)
        try:
            values = np.asarray(raw, dtype=float)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"metric {name!r} returned {type(raw).__name__}, not numbers ({exc}); it must return one value per "
                f"point, shape {actual.shape} (folds, steps)"
            ) from None
        if values.shape != actual.shape:
            raise ValueError(
                f"metric {name!r} returned shape {values.shape}, expected {actual.shape} (folds, steps): one value "
                "per point, which the backtest averages per fold and pooled; return NaN where a point cannot be "
                "scored"
            )
        if np.isinf(values).any():
            raise ValueError(
                f"metric {name!r} returned {int(np.isinf(values).sum())} infinite value(s); return NaN where a "
                "point cannot be scored (it is then excluded and counted)"
            )
        valid = ~np.isnan(values)
        return np.where(valid, values, 0.0), valid

    return pointwise


def _read_only(values: ArrayLike) -> np.ndarray:
    out = np.array(values, dtype=float)
    out.setflags(write=False)
    return out


def _maybe_read_only(values: ArrayLike | None) -> np.ndarray | None:
    return None if values is None else _read_only(values)


def score(
    actual: np.ndarray,
    forecast: np.ndarray,
    *,
    last: ArrayLike,
    scale: ArrayLike,
    metrics: str | Iterable[str] = DEFAULT_METRICS,
    quantiles: ArrayLike | None = None,
    levels: Iterable[float] = (),
) -> Scores:
    """Score ``(folds, steps)`` forecasts with each named metric (or the one named), per fold and pooled.

    ``quantiles`` ``(folds, steps, len(levels))`` at the sorted ``levels`` feed the interval metrics.
    """
    names = metric_names(metrics)
    levels = tuple(float(t) for t in levels) if quantiles is not None else ()
    check_quantile_metrics(names, levels)
    actual = np.asarray(actual, dtype=float)
    forecast = np.asarray(forecast, dtype=float)
    q = None if quantiles is None else np.asarray(quantiles, dtype=float)
    per_fold: dict[str, np.ndarray] = {}
    pooled: dict[str, float] = {}
    excluded: dict[str, int] = {}
    for name in names:
        metric = get_metric(name)
        values, valid = metric.pointwise(actual, forecast, last=last, scale=scale, quantiles=q, levels=levels)
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
