"""Is the champion erring worse live than its backtest promised? A sequential, overlap-aware drift test.

One horizon at a time. The backtest gives the champion's per-fold losses ``b_1..b_m`` (for example its
per-fold RMSE at 30 days); live forecasts, scored once their target dates arrived, give per-forecast
losses ``l_1..l_n`` in origin order. Losses are compared on the log scale, where a change of the error
scale by a factor ``c`` is a shift by ``log c`` whatever the loss's units::

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
:func:`threshold`. ``REFERENCE_JUMP`` and the thresholds are calibration constants, chosen by
simulation (``tests/benchmarks/bench_drift.py``) so that a year of daily checks on a stable series
raises a false alarm in at most 5% of years. Fewer than :func:`min_forecasts` scored forecasts give
``too few``.

**What it costs.** Scoring whole ``h``-day forecasts, the monitor learns of a break ``h`` days late and
from losses that overlap: on a simulated random walk it needs about three times the delay of an oracle
that knows the jump and sees each day's one-step error (``bench_drift.py`` prints both).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = [
    "REFERENCE_JUMP",
    "THRESHOLDS",
    "DriftResult",
    "assess",
    "allowance",
    "log_spread",
    "long_run_ratios",
    "min_forecasts",
    "standardize",
    "statistic_path",
    "threshold",
]

Verdict = Literal["ok", "drift", "too few"]

REFERENCE_JUMP = 1.5
"""The factor on the error scale the CUSUM is tuned to catch soonest (its allowance is half its log shift)."""

THRESHOLDS: dict[int, float] = {1: 19.81, 7: 14.31, 15: 15.54, 30: 17.85, 90: 19.52}
"""Alarm thresholds by horizon, calibrated to 5% false-alarm years of daily checks (365 checks a year,
a random walk forecast by the no-change model, 100 backtest folds); other horizons interpolate in log h."""


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
    array = np.asarray(z, dtype=float)
    rows = np.atleast_2d(array)
    sims, n = rows.shape
    ratios = long_run_ratios(rows, horizon)
    sums = np.concatenate([np.zeros((sims, 1)), np.cumsum(rows, axis=1)], axis=1)
    step = np.broadcast_to(allowance(spread), (sims,))
    out = np.zeros((sims, n))
    for last in range(min_forecasts(horizon) - 1, n):
        out[:, last] = _cusum(sums[:, : last + 2], ratios[:, last], step)
    return out if array.ndim == 2 else out[0]


def _cusum(sums: np.ndarray, ratio: np.ndarray, step: np.ndarray) -> np.ndarray:
    """``S_n`` from the partial sums ``0, z_1, z_1+z_2, ...`` of each row, that check's ``omega`` and allowance."""
    walk = sums - step[:, None] * np.arange(sums.shape[1])
    return (walk[:, -1] - walk.min(axis=1)) / np.sqrt(ratio)


@dataclass(frozen=True)
class DriftResult:
    """One horizon's check: what the monitor prints and logs.

    ``live_error`` and ``backtest_error`` are means of per-forecast and per-fold losses; ``ratio`` is
    their quotient; ``statistic`` is ``S_n`` (0 with ``too few``), ``omega`` the long-run variance ratio.
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


def assess(live_losses, backtest_losses, horizon: int) -> DriftResult:
    """Decide one horizon: ``drift`` when ``S_n`` exceeds :func:`threshold`, ``too few`` before :func:`min_forecasts`.

    ``live_losses`` are per-forecast losses in origin order (consecutive origins, however far apart the
    service makes them); ``backtest_losses`` the champion's per-fold losses of the same metric.
    """
    _check_horizon(horizon)
    z = standardize(live_losses, backtest_losses)
    live = np.asarray(live_losses, dtype=float)
    backtest = np.asarray(backtest_losses, dtype=float)
    live_error = float(live.mean()) if live.size else math.nan
    backtest_error = float(backtest.mean())
    ratio = live_error / backtest_error if backtest_error > 0 else math.nan
    limit = threshold(horizon)
    if z.size < min_forecasts(horizon):
        omega = float(long_run_ratios(z, horizon)[0, -1]) if z.size else 1.0
        return DriftResult(horizon, int(z.size), live_error, backtest_error, ratio, 0.0, limit, omega, "too few")
    omega = float(long_run_ratios(z, horizon)[0, -1])
    step = allowance(np.array([log_spread(backtest_losses)]))
    statistic = float(_cusum(np.concatenate([[0.0], np.cumsum(z)])[None, :], np.array([omega]), step)[0])
    verdict: Verdict = "drift" if statistic > limit else "ok"
    return DriftResult(horizon, int(z.size), live_error, backtest_error, ratio, statistic, limit, omega, verdict)
