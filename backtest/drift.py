"""Is the champion erring worse live than its backtest promised? A sequential drift test in two lanes.

One horizon at a time, two CUSUMs, each against the champion's backtest; ``drift`` when either passes
its threshold. The false-alarm budget (5% of years of daily checks) is split: 4% to the fast lane, 1%
to the full lane.

**The fast lane** (one-step errors, learned of the next day). A forecast made on day ``d`` meets its
first target on day ``d + 1``: every day brings one new one-step error ``e`` (actual minus forecast),
and the backtest's folds hold the same error once per fold, ``e_b``. In robust units
(``sigma = median |e_b| / 0.6745``) the squares, winsorized at :data:`FAST_CAP` so that one wild day of
a heavy-tailed series counts a bounded amount, are standardized by the backtest's::

    u = min((e / sigma)^2, FAST_CAP)          x_i = (u_i - mean(u_b)) / sd(u_b)

A change of the error scale by ``c`` multiplies the squares by ``c^2``. Two CUSUMs of the same ``x``
share the lane's budget: one tuned to errors 50% larger (:data:`FAST_REFERENCE_JUMP`), one to a
doubling (:data:`FAST_SECOND_JUMP`), which catches a large break days sooner than the first can. Each
chart's allowance is the point where the Gaussian scale likelihood ratio for its jump ``c`` changes sign
(``2 log c / (1 - 1/c^2)`` in units of the variance), so each is close to the oracle's likelihood
ratio CUSUM for its jump when errors are Gaussian and stays calibrated when they are Student-t like; the
lane's statistic is the larger of the two, the second in units of the first's threshold. The one-step
errors of consecutive daily forecasts are independent for an efficient forecast of a random walk, but
not for every model (volatility clustering, a model that lags a turn): ``omega`` below, over
:data:`FAST_LAGS` lags, guards against dependence between consecutive days. Its threshold depends on how many
backtest folds taught it the one-step errors (:data:`FAST_THRESHOLDS`): a small backtest is a vague
promise, and the CUSUM must allow for its error. The fold step does not matter, only the count.

**The full lane** (whole forecasts, learned ``h`` days late). It catches a model that degrades only at
long steps. The backtest gives the champion's per-fold losses ``b_1..b_m`` (for example its per-fold
RMSE at 30 days); live forecasts, scored once all their target dates arrived, give per-forecast losses
``l_1..l_n`` in origin order. Losses are compared on the log scale, where a change of the error scale by
a factor ``c`` is a shift by ``log c`` whatever the loss's units::

    z_i = (log l_i - mean(log b)) / sd(log b)          standardized against the backtest

**Overlap.** Forecasts made every day for ``h`` days ahead share ``h - 1`` target dates with the next
one, so the ``z_i`` are autocorrelated up to lag ``h - 1`` (the same reason the gate uses a HAC
variance, see :mod:`backtest.compare`). The sum of ``n`` of them varies ``omega`` times more than ``n``
independent ones, with the long-run variance ratio (rectangular kernel, Bartlett when that is not
positive, clipped to ``[1, h]``)::

    omega = (g_0 + 2 sum_{j=1..h-1} g_j) / g_0,     g_j = sum_i z_i z_{i-j}

The autocovariances are taken about 0, the level the backtest promises, not about the live mean: with
few live forecasts, demeaning by their own mean biases a lag-29 estimate far below its value and
makes the test cry wolf.

**Sequential.** A one-sided CUSUM on the standardized losses, in units of the long-run deviation,
tuned to the jump it should catch soonest (``REFERENCE_JUMP``: errors 50% larger, a shift of
``delta = log 1.5 / sd(log b)``; the allowance is half of it, as for any CUSUM)::

    S_n = max_{k<=n} sum_{i=k..n} (z_i - delta / 2) / sqrt(omega)

``S_n`` is small while live losses look like the backtest's and climbs steadily after a break; the
monitor recomputes it at every check (daily, say) and says ``drift`` once it exceeds
:func:`threshold`. The fast lane's two charts are the same CUSUM of ``x_i`` with their own allowances and
``omega``. Thresholds are calibration constants, chosen by simulation
(``tests/benchmarks/bench_drift.py --calibrate``) so that a year of daily checks on a stable series
raises a false alarm in at most 5% of years. A lane with too few values (:func:`min_forecasts`,
:data:`FAST_MIN`) stays silent; with both silent the verdict is ``too few``.

**What it costs.** The fast lane needs a backtest of a few hundred folds to come near the oracle (an
oracle knows the scale exactly; a lane that learned it from 100 one-step errors must allow for their
error): ``bench_drift.py`` prints both lanes beside the oracle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = [
    "FAST_CAP",
    "FAST_LAGS",
    "FAST_MIN",
    "FAST_MIN_FOLDS",
    "FAST_REFERENCE_JUMP",
    "FAST_SECOND_JUMP",
    "FAST_SECOND_THRESHOLDS",
    "FAST_THRESHOLDS",
    "REFERENCE_JUMP",
    "THRESHOLDS",
    "DriftResult",
    "FastScale",
    "assess",
    "fast_charts",
    "fast_path",
    "fast_scale",
    "fast_standardize",
    "fast_threshold",
    "allowance",
    "log_spread",
    "long_run_ratios",
    "min_forecasts",
    "standardize",
    "statistic_path",
    "threshold",
]

Verdict = Literal["ok", "drift", "too few"]
Lane = Literal["1-step", "full"]

REFERENCE_JUMP = 1.5
"""The factor on the error scale the CUSUM is tuned to catch soonest (its allowance is half its log shift)."""

THRESHOLDS: dict[int, float] = {1: 41.22, 7: 23.03, 15: 22.93, 30: 24.89, 90: 39.14}
"""The full lane's alarm thresholds by horizon, calibrated to 1% false-alarm years of daily checks (365
checks a year, a random walk forecast by the no-change model, 100 backtest folds, the larger of the
thresholds with Gaussian and with Student t(4) steps; ``bench_drift.py --calibrate --sims 10000``): the
full lane's share of the 5% budget. Other horizons interpolate in log h."""


def min_forecasts(horizon: int) -> int:
    """Scored forecasts needed before a verdict: twice the overlap, and at least 10."""
    return max(10, 2 * int(horizon))


def threshold(horizon: int) -> float:
    """The alarm threshold at ``horizon``: :data:`THRESHOLDS`, interpolated linearly in ``log h``."""
    _check_horizon(horizon)
    known = sorted(THRESHOLDS)
    return float(np.interp(math.log(horizon), np.log(known), [THRESHOLDS[h] for h in known]))


def _check_horizon(horizon: int) -> None:
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ValueError(f"horizon must be a positive integer (steps ahead), got {horizon!r}")


def _positive_losses(name: str, values) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional (one loss per forecast or fold), got shape {array.shape}")
    bad = ~np.isfinite(array) | (array < 0)
    if bad.any():
        raise ValueError(f"{name} has {int(bad.sum())} NaN, infinite or negative value(s); losses are >= 0")
    return array


def _floor(backtest: np.ndarray) -> float:
    return max(float(np.median(backtest)) * 1e-6, np.finfo(float).tiny)


def _log_backtest(backtest_losses) -> np.ndarray:
    backtest = _positive_losses("backtest_losses", backtest_losses)
    if backtest.size < 3:
        raise ValueError(
            f"the backtest has {backtest.size} fold loss(es); the drift test needs at least 3 to know their spread"
        )
    log_backtest = np.log(np.maximum(backtest, _floor(backtest)))
    if not float(log_backtest.std(ddof=1)) > 0:
        raise ValueError("the backtest's fold losses are all equal; the drift test needs their spread")
    return log_backtest


def log_spread(backtest_losses) -> float:
    """``sd(log b)``: the spread of the backtest's log losses, the unit of ``z``."""
    return float(_log_backtest(backtest_losses).std(ddof=1))


def standardize(live_losses, backtest_losses) -> np.ndarray:
    """``z_i``: the live losses on the log scale, centred and scaled by the backtest's log losses.

    A loss of exactly 0 (a perfect forecast) is floored at a millionth of the backtest's median loss,
    so that its logarithm is finite.
    """
    live = _positive_losses("live_losses", live_losses)
    log_backtest = _log_backtest(backtest_losses)
    floor = _floor(np.exp(log_backtest))
    return (np.log(np.maximum(live, floor)) - float(log_backtest.mean())) / float(log_backtest.std(ddof=1))


def long_run_ratios(z: np.ndarray, horizon: int) -> np.ndarray:
    """``omega`` of every prefix: ``out[..., n-1]`` is the long-run variance ratio of ``z[..., :n]``.

    ``z`` is 1-D (one series) or 2-D (rows of simulated series); autocovariances about 0 up to lag
    ``horizon - 1``, rectangular kernel, Bartlett where that is not positive, clipped to ``[1, horizon]``.
    """
    _check_horizon(horizon)
    z = np.atleast_2d(np.asarray(z, dtype=float))
    g0 = np.cumsum(z * z, axis=1)
    rectangular = g0.copy()
    bartlett = g0.copy()
    for lag in range(1, min(horizon, z.shape[1])):
        g = np.zeros_like(z)
        g[:, lag:] = np.cumsum(z[:, lag:] * z[:, :-lag], axis=1)
        rectangular += 2.0 * g
        bartlett += 2.0 * (1.0 - lag / horizon) * g
    long_run = np.where(rectangular > 0, rectangular, bartlett)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(g0 > 0, long_run / g0, 1.0)
    return np.clip(ratio, 1.0, float(horizon))


def allowance(spread) -> np.ndarray:
    """The CUSUM's allowance per forecast in units of ``z``: half the log shift of :data:`REFERENCE_JUMP`."""
    return math.log(REFERENCE_JUMP) / (2.0 * np.asarray(spread, dtype=float))


def statistic_path(z: np.ndarray, horizon: int, spread) -> np.ndarray:
    """The statistic ``S_n`` a check would report after each scored forecast ``n``, as that check computes it.

    ``spread`` is :func:`log_spread` of the backtest (one per row for 2-D ``z``). Each check recomputes
    the whole CUSUM with its own ``omega`` (from the forecasts scored so far), so the path is not one
    recursion. Entries before :func:`min_forecasts` are 0. 1-D in, 1-D out; 2-D (simulations x
    forecasts) in, 2-D out.
    """
    return _path(z, horizon, allowance(spread), min_forecasts(horizon))


def _path(z: np.ndarray, lags: int, allowances, minimum: int) -> np.ndarray:
    """Every check's CUSUM of ``z`` (rows) with ``omega`` over ``lags``, 0 before ``minimum`` values."""
    array = np.asarray(z, dtype=float)
    rows = np.atleast_2d(array)
    sims, n = rows.shape
    sums = np.concatenate([np.zeros((sims, 1)), np.cumsum(rows, axis=1)], axis=1)
    step = np.broadcast_to(np.asarray(allowances, dtype=float), (sims,))
    # check n's CUSUM is its walk's last point above the walk's lowest point so far (the running minimum)
    walk = sums - step[:, None] * np.arange(n + 1)
    out = (walk - np.minimum.accumulate(walk, axis=1))[:, 1:] / np.sqrt(long_run_ratios(rows, lags))
    out[:, : max(minimum - 1, 0)] = 0.0
    return out if array.ndim == 2 else out[0]


def _cusum(sums: np.ndarray, ratio: np.ndarray, step: np.ndarray) -> np.ndarray:
    """``S_n`` from the partial sums ``0, z_1, z_1+z_2, ...`` of each row, that check's ``omega`` and allowance."""
    walk = sums - step[:, None] * np.arange(sums.shape[1])
    return (walk[:, -1] - walk.min(axis=1)) / np.sqrt(ratio)


# ------------------------------------------------------------------------------ the fast lane

FAST_REFERENCE_JUMP = 1.5
"""The factor on the one-step error scale the fast lane's first chart is tuned to catch soonest."""

FAST_SECOND_JUMP = 2.0
"""The factor the fast lane's second chart is tuned to: a large break, caught days before the first chart would."""

FAST_CAP = 9.0
"""Squared one-step errors are winsorized at this many robust variances (3 robust standard deviations):
one wild day of a heavy-tailed series moves the statistic by a bounded amount."""

FAST_LAGS = 2
"""The fast lane's ``omega`` counts autocovariances up to lag ``FAST_LAGS - 1``: a guard against squared
one-step errors that are dependent from one day to the next. Autocovariances about 0 (the backtest's
level) read a break as dependence too, so each lag costs detection speed: with 5 lags a doubling's
90th-percentile delay was 27 business days instead of 25 (500 folds, ``bench_drift.py``). The price of
fewer lags is a lane that reacts sooner to volatility clustering, a real rise in daily errors."""

FAST_MIN = 20
"""One-step errors needed before the fast lane decides."""

FAST_MIN_FOLDS = 20
"""Backtest folds needed for the fast lane to know the one-step error distribution (fewer: the lane is silent)."""

FAST_THRESHOLDS: dict[int, float] = {20: 148.76, 30: 89.15, 100: 25.14, 300: 17.74, 1000: 15.79}
"""The fast lane's alarm thresholds (its first chart's) by the number of backtest folds it learned the
one-step errors from (fewer folds: a less certain promise, a higher threshold). With
:data:`FAST_SECOND_THRESHOLDS`, the pair alarms in 4% of years of daily checks with Gaussian or Student
t(4) errors, whichever needs the higher thresholds; other fold counts interpolate in log folds, more
than 1000 use 1000's."""

FAST_SECOND_THRESHOLDS: dict[int, float] = {20: 64.10, 30: 32.55, 100: 15.04, 300: 12.03, 1000: 11.15}
"""The second chart's (:data:`FAST_SECOND_JUMP`) thresholds, by backtest folds as :data:`FAST_THRESHOLDS`."""


def _by_folds(table: dict[int, float], folds: int) -> float:
    known = sorted(table)
    return float(np.interp(math.log(max(folds, 1)), np.log(known), [table[m] for m in known]))


def fast_threshold(folds: int) -> float:
    """The fast lane's threshold for a backtest of ``folds`` one-step errors (:data:`FAST_THRESHOLDS`)."""
    return _by_folds(FAST_THRESHOLDS, folds)


def _second_weight(folds: int) -> float:
    """What the second chart's statistic is multiplied by to be read against the first chart's threshold."""
    return fast_threshold(folds) / _by_folds(FAST_SECOND_THRESHOLDS, folds)


def _errors(name: str, values) -> np.ndarray:
    array = np.asarray(values, dtype=float)
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional (one one-step error per forecast or fold), got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError(f"{name} has {int((~np.isfinite(array)).sum())} NaN or infinite value(s)")
    return array


@dataclass(frozen=True)
class FastScale:
    """What the backtest's one-step errors say a stable live error looks like (from :func:`fast_scale`)."""

    robust_sd: float  # median |e| / 0.6745: the error scale a Gaussian with that median absolute error has
    mean: float  # mean and sd of the winsorized squared standardized backtest errors
    sd: float
    folds: int

    @property
    def allowance(self) -> float:
        """The first chart's allowance (:data:`FAST_REFERENCE_JUMP`), in z units."""
        return self.allowance_for(FAST_REFERENCE_JUMP)

    def allowance_for(self, jump: float) -> float:
        """Where the Gaussian scale likelihood ratio for an error scale ``jump`` times larger changes sign, in z
        units (the squares' mean rises by the factor ``2 log c / (1 - 1/c^2)`` before it)."""
        crossing = 2.0 * math.log(jump) / (1.0 - 1.0 / jump**2)
        return (crossing - 1.0) * self.mean / self.sd


def fast_scale(backtest_errors) -> FastScale | None:
    """The backtest's one-step error distribution, or None when it has fewer than :data:`FAST_MIN_FOLDS`
    folds or no spread (the fast lane then stays silent and the full lane decides alone)."""
    errors = _errors("backtest_errors", backtest_errors)
    if errors.size < FAST_MIN_FOLDS:
        return None
    robust = float(np.median(np.abs(errors))) / 0.6745
    if not robust > 0:
        return None
    u = np.minimum((errors / robust) ** 2, FAST_CAP)
    sd = float(u.std(ddof=1))
    return FastScale(robust, float(u.mean()), sd, int(errors.size)) if sd > 0 else None


def fast_standardize(live_errors, scale: FastScale) -> np.ndarray:
    """``z`` of the fast lane: each live one-step error, squared in robust units, winsorized at :data:`FAST_CAP`,
    centred and scaled by the backtest's. A change of the error scale by ``c`` multiplies the unwinsorized
    squares by ``c**2``."""
    errors = _errors("live_errors", live_errors)
    return (np.minimum((errors / scale.robust_sd) ** 2, FAST_CAP) - scale.mean) / scale.sd


def _per_row(z: np.ndarray, scales) -> list[FastScale]:
    rows = np.atleast_2d(np.asarray(z, dtype=float)).shape[0]
    return [scales] * rows if isinstance(scales, FastScale) else list(scales)


def fast_charts(z: np.ndarray, scales) -> tuple[np.ndarray, np.ndarray]:
    """Each chart's statistic after each one-step error (rows for 2-D ``z``, one :class:`FastScale` per row,
    or one for all), as each check computes it: the first chart's, and the second's in its own units."""
    listed = _per_row(z, scales)
    first = _path(z, FAST_LAGS, [s.allowance_for(FAST_REFERENCE_JUMP) for s in listed], FAST_MIN)
    second = _path(z, FAST_LAGS, [s.allowance_for(FAST_SECOND_JUMP) for s in listed], FAST_MIN)
    return first, second


def fast_path(z: np.ndarray, scales) -> np.ndarray:
    """The fast lane's statistic after each one-step error (rows for 2-D ``z``, one :class:`FastScale` per row,
    or one for all): the larger of the two charts, the second weighted to be read against :func:`fast_threshold`."""
    first, second = fast_charts(z, scales)
    weights = np.array([_second_weight(s.folds) for s in _per_row(z, scales)])
    return np.maximum(first, second * (weights[:, None] if second.ndim == 2 else weights[0]))


@dataclass(frozen=True)
class DriftResult:
    """One horizon's check: what the monitor prints and logs.

    ``live_error`` and ``backtest_error`` are means of per-forecast and per-fold losses; ``ratio`` is
    their quotient. The full lane: ``statistic`` is its ``S_n`` (0 before :func:`min_forecasts`),
    ``threshold`` its limit, ``omega`` its long-run variance ratio. The fast lane: ``fast_scored``
    one-step errors, ``fast_statistic`` and ``fast_threshold`` (0 and NaN when the lane is silent: no
    one-step errors given, too few of them, or a backtest too small to learn them from). ``drift`` when
    either lane exceeds its threshold; ``too few`` when neither lane has enough to decide.
    """

    horizon: int
    scored: int
    live_error: float
    backtest_error: float
    ratio: float
    statistic: float
    threshold: float
    omega: float
    verdict: Verdict
    fast_scored: int = 0
    fast_statistic: float = 0.0
    fast_threshold: float = math.nan

    @property
    def lane(self) -> Lane:
        """The lane closer to (or further past) its threshold: the one that explains the verdict."""
        fast = self.fast_statistic / self.fast_threshold if math.isfinite(self.fast_threshold) else -math.inf
        return "1-step" if fast > self.statistic / self.threshold else "full"

    def lane_text(self, lane: Lane) -> str:
        """``statistic / threshold`` of one lane, ``-`` when it is silent or has too few values."""
        if lane == "full":
            return f"{self.statistic:.1f} / {self.threshold:.1f}" if self.scored >= min_forecasts(self.horizon) else "-"
        ready = math.isfinite(self.fast_threshold) and self.fast_scored >= FAST_MIN
        return f"{self.fast_statistic:.1f} / {self.fast_threshold:.1f}" if ready else "-"

    def explain(self) -> str:
        """Both lanes in a phrase: ``1-step lane 25.1 / 14.9, full lane 3.2 / 18.1`` (statistic / threshold)."""
        return f"1-step lane {self.lane_text('1-step')}, full lane {self.lane_text('full')} (statistic / threshold)"


def assess(
    live_losses,
    backtest_losses,
    horizon: int,
    live_errors=None,
    backtest_errors=None,
) -> DriftResult:
    """Decide one horizon from both lanes: ``drift`` when either statistic exceeds its threshold.

    ``live_losses`` are per-forecast losses of complete forecasts in origin order (consecutive origins,
    however far apart the service makes them); ``backtest_losses`` the champion's per-fold losses of the
    same metric. ``live_errors`` (optional) are the live one-step errors (actual minus forecast) of every
    forecast whose first target date has arrived, in origin order, and ``backtest_errors`` the backtest's
    one-step errors, one per fold: the fast lane runs when both are given.
    """
    _check_horizon(horizon)
    z = standardize(live_losses, backtest_losses)
    live = np.asarray(live_losses, dtype=float)
    backtest = np.asarray(backtest_losses, dtype=float)
    live_error = float(live.mean()) if live.size else math.nan
    backtest_error = float(backtest.mean())
    ratio = live_error / backtest_error if backtest_error > 0 else math.nan
    limit = threshold(horizon)
    omega = float(long_run_ratios(z, horizon)[0, -1]) if z.size else 1.0
    full_ready = z.size >= min_forecasts(horizon)
    statistic = 0.0
    if full_ready:
        statistic = _last_check(z, omega, float(allowance(log_spread(backtest_losses))))
    fast_scored, fast_statistic, fast_limit = _fast_lane(live_errors, backtest_errors)
    fast_ready = math.isfinite(fast_limit) and fast_scored >= FAST_MIN
    verdict: Verdict
    if statistic > limit or (fast_ready and fast_statistic > fast_limit):
        verdict = "drift"
    else:
        verdict = "ok" if full_ready or fast_ready else "too few"
    return DriftResult(
        horizon,
        int(z.size),
        live_error,
        backtest_error,
        ratio,
        statistic,
        limit,
        omega,
        verdict,
        fast_scored,
        fast_statistic,
        fast_limit,
    )


def _last_check(z: np.ndarray, omega: float, step: float) -> float:
    """The CUSUM a check reports over all of ``z``."""
    return float(_cusum(np.concatenate([[0.0], np.cumsum(z)])[None, :], np.array([omega]), np.array([step]))[0])


def _fast_lane(live_errors, backtest_errors) -> tuple[int, float, float]:
    """``(one-step errors, statistic, threshold)`` of the fast lane; threshold NaN when it is silent."""
    if live_errors is None or backtest_errors is None:
        return 0, 0.0, math.nan
    live = _errors("live_errors", live_errors)
    scale = fast_scale(backtest_errors)
    if scale is None:
        return int(live.size), 0.0, math.nan
    if live.size < FAST_MIN:
        return int(live.size), 0.0, fast_threshold(scale.folds)
    z = fast_standardize(live, scale)
    omega = float(long_run_ratios(z, FAST_LAGS)[0, -1])
    first = _last_check(z, omega, scale.allowance_for(FAST_REFERENCE_JUMP))
    second = _last_check(z, omega, scale.allowance_for(FAST_SECOND_JUMP)) * _second_weight(scale.folds)
    return int(live.size), max(first, second), fast_threshold(scale.folds)
