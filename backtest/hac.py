"""Long-run variances of a per-fold loss differential, and the reference distributions that go with them.

Two estimators, pure numpy, each working on the last axis so that a benchmark can run thousands of
simulated differentials at once:

* :func:`overlap_variance`: the kernel sum over the ``lags = ceil(horizon/step) - 1`` autocovariances
  that fold overlap alone creates (rectangular, Bartlett when that is not positive). Read against
  Student's t with ``n - 1`` degrees of freedom after the Harvey-Leybourne-Newbold rescaling, it is the
  ``dm-hln`` gate. It assumes the differential is uncorrelated beyond the overlap.
* :func:`ewc_variance`: the equal-weighted cosine (EWC) estimator of Lazarus, Lewis, Stock and Watson
  (2018, "HAR inference: recommendations for practice", JBES 36(4)) with ``nu`` cosines, each rescaled
  for the fold overlap::

      Lambda_j = sqrt(2/n) sum_t cos(pi j (t - 1/2) / n) d_t,   j = 1..nu
      Omega    = (1/nu) sum_j Lambda_j^2 / kappa_j              t = sqrt(n) mean(d) / sqrt(Omega) ~ t_nu

  Each ``Lambda_j`` is an average of the differential against a slow cosine, so slow drifts in
  relative skill (regimes, refits) are in the estimate; and the fixed-smoothing (fixed-b) reference
  ``t_nu`` accounts for the estimate's own noise (Kiefer and Vogelsang 2005; for forecast comparison
  Coroneo and Iacone 2020). It is the default ``dm`` gate.

  ``kappa_j`` (:func:`overlap_ratios`) is ``E[Lambda_j^2] / (n Var(mean d))`` when ``d`` is correlated
  as the sums of ``lags + 1`` overlapping windows are (autocorrelation ``1 - k/(lags + 1)``): with few
  folds per overlap a cosine is not slow next to the overlap and sees less than the mean's variance
  (``kappa_1`` is 0.66 with 60 folds at horizon 30, 0.95 with 250, 0.99 with 1,000; 0.998 with 1,000
  folds at horizon 7). Dividing by it makes ``t`` exactly ``t_nu`` for a Gaussian differential of that
  shape, up to the cosines' small correlation (for one cosine, exactly); without overlap ``kappa_j = 1``.
  It takes two equally good drifting forecasters compared over 60 folds at horizon 30 from 7.4% false
  fails to 6.3% and leaves 1,000 folds at horizon 7 as they were.

:func:`ewc_dof` picks ``nu``: few cosines, ``EWC_MAX_DOF``, chosen by the calibration grid in
``tests/benchmarks/bench_gate_calibration.py``. With 1,000 folds, under skill that switches between
regimes lasting 100 origins, three cosines fail equally good models in 6.1% of runs, four in 6.3%,
eight in 7.6% and Lazarus et al.'s rule ``0.4 n^(2/3)`` (40 cosines) in 15%, while a 20% worse candidate
at horizon 7 is caught in 99%. Two cosines fail fewer (10% against 11% under regimes lasting 333
origins) but catch a 10% worse candidate at horizon 7 in 60% of runs instead of 72%; no number of
cosines keeps regimes lasting 333 origins under 6.5% with the power the gate needs (the grid's second
table: the false fails come from the runs in which the candidate was the noisier model for most of the
history, a regression on the data the gate sees). Fewer cosines when the folds overlap so deeply that a
cosine would no longer be slow next to the overlap (``nu <= n / (3 * (lags + 1))``), never below one:
with fewer than three overlaps' worth of folds a single cosine is all there is, a t with one degree of
freedom, and the minimum detectable regression says how little such a comparison can see. With fewer
than ``EWC_MIN_FOLDS`` folds (:func:`ewc_applies` is false) the gate falls back to the overlap-only
variance, as before: a t with one or two degrees of freedom could detect almost nothing there, and such
a comparison is inconclusive under the gate's default ``--forecast-min-folds 30`` unless it regresses.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Literal

import numpy as np
from scipy import special

__all__ = [
    "EWC_MAX_DOF",
    "EWC_MIN_FOLDS",
    "ewc_applies",
    "ewc_dof",
    "ewc_variance",
    "excess_persistence",
    "overlap_ratios",
    "overlap_variance",
]

EWC_MAX_DOF = 3
"""The most cosines (degrees of freedom) the default test uses, whatever the fold count."""

PERSISTENCE_DOF = 8
"""Cosines in the persistence check: more than the test's, for a steadier ratio (flagging a third of the
issue #16 reproducer's runs at the 1% level, against a third fewer with three)."""

OVERLAP_MULTIPLE = 3
"""A cosine's half period must span at least this many fold overlaps (``lags + 1``) to count."""


EWC_MIN_FOLDS = 30
"""Below this many folds the default test falls back to the overlap-only (HLN) variance."""


def ewc_applies(n: int, lags: int) -> bool:
    """Whether ``n`` folds are enough for the EWC test (``EWC_MIN_FOLDS``) and outnumber the overlap."""
    return n >= EWC_MIN_FOLDS and n > lags + 1


def ewc_dof(n: int, lags: int) -> int:
    """Degrees of freedom of the EWC test for ``n`` folds whose differential overlaps ``lags`` deep (>= 1)."""
    return max(1, min(EWC_MAX_DOF, n // (OVERLAP_MULTIPLE * (lags + 1))))


@lru_cache(maxsize=64)
def _cosines(n: int, nu: int) -> np.ndarray:
    t = (np.arange(n) + 0.5) / n
    return math.sqrt(2.0 / n) * np.cos(np.pi * np.outer(t, np.arange(1, nu + 1)))


@lru_cache(maxsize=64)
def overlap_ratios(n: int, lags: int, nu: int) -> np.ndarray:
    """``kappa_j = c_j' R c_j / (1' R 1 / n)``, j = 1..nu, for ``R`` the autocorrelation ``1 - k/(lags + 1)``.

    ``c_j`` are the EWC cosines; ``R`` is the correlation of the sums of ``lags + 1`` overlapping
    windows of white noise, the shape fold overlap alone gives a differential. All ones when ``lags == 0``.
    """
    cosines = _cosines(n, nu)
    quadratic = (cosines**2).sum(axis=0)
    total = 1.0
    for k in range(1, min(lags, n - 1) + 1):
        rho = 1.0 - k / (lags + 1)
        quadratic = quadratic + 2.0 * rho * (cosines[k:] * cosines[: n - k]).sum(axis=0)
        total += 2.0 * rho * (n - k) / n
    ratios = quadratic / total
    ratios.setflags(write=False)
    return ratios


def ewc_variance(d: np.ndarray, nu: int, lags: int) -> np.ndarray:
    """The EWC long-run variance of ``d`` (along the last axis) with ``nu`` cosines, corrected for ``lags``.

    Each squared cosine projection is divided by its :func:`overlap_ratios` value. The cosines are
    orthogonal to a constant, so the mean needs no removing. A one-dimensional ``d`` gives a
    zero-dimensional array (``float()`` it).
    """
    d = np.asarray(d, dtype=float)
    n = d.shape[-1]
    projections = d @ _cosines(n, nu)
    return (projections**2 / overlap_ratios(n, lags, nu)).mean(axis=-1)


def overlap_variance(d: np.ndarray, lags: int) -> tuple[float, Literal["rectangular", "bartlett"]]:
    """The long-run variance from the ``lags`` autocovariances of fold overlap, and its kernel's name.

    Rectangular weights (all ``lags`` of an MA(lags) process); Bartlett weights with the same lags when
    the rectangular sum is not positive. ``g_j = (1/n) sum_{k>=j} (d_k - dbar)(d_{k-j} - dbar)``.
    """
    e = np.asarray(d, dtype=float) - np.mean(d)
    n = e.size
    gamma = np.array([e[j:] @ e[: n - j] / n for j in range(lags + 1)])
    long_run = float(gamma[0] + 2.0 * gamma[1:].sum())
    if long_run > 0:
        return long_run, "rectangular"
    weights = 1.0 - np.arange(1, lags + 1) / (lags + 1)
    return float(gamma[0] + 2.0 * (weights * gamma[1:]).sum()), "bartlett"


def excess_persistence(d: np.ndarray, lags: int, overlap: float) -> float:
    """The p-value of "the differential is no more persistent than fold overlap explains".

    ``overlap`` is :func:`overlap_variance`'s estimate. Without autocorrelation beyond the overlap, the
    EWC variance with ``nu = min(PERSISTENCE_DOF, n // (3 * (lags + 1)))`` cosines, times ``nu / overlap``,
    is about chi-squared with ``nu`` degrees of freedom (the overlap-only estimate is far less noisy); a
    small p-value says the slow cosines carry more variance than overlap can: relative skill drifts.
    A check with little power (a third of the drifting runs in the calibration grid), so a clear sign
    only; ``nan`` when ``overlap`` is not positive, and when ``nu`` would be one (fewer than six
    overlaps' worth of folds): the overlap-only estimate from so few folds is itself noisy and biased
    low, and the check would call 5-15% of comparisons with 60-90 folds at horizon 30 drifting when only
    the overlap correlates them (1.4% with 180 folds).
    """
    nu = min(PERSISTENCE_DOF, len(d) // (OVERLAP_MULTIPLE * (lags + 1)))
    if not overlap > 0 or nu < 2:
        return math.nan
    return float(special.chdtrc(nu, nu * float(ewc_variance(d, nu, lags)) / overlap))
