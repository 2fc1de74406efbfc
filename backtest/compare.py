"""Pure comparison of a candidate's per-fold metric values with a baseline's: did the candidate regress?

Both models were scored by the same walk-forward schedule, one value per fold. Folds are first paired
by origin (:func:`pair_by_origin`), then :func:`compare` turns each metric into a :class:`Comparison`
and :func:`decide` flags regressions across all metrics at once.

**The differential.** For fold ``k`` with candidate value ``c_k``, baseline value ``b_k`` and
tolerance ``tol``::

    d_k = c_k - (1 + tol) * b_k      lower is better  (d_k > 0: candidate worse beyond the tolerance)
    d_k = (1 - tol) * b_k - c_k      higher is better

The gate tests ``H0: E[d] <= 0`` against ``H1: E[d] > 0``, one-sided: only a regression fails it.

**Why a long-run (HAC) variance.** Origins ``step`` positions apart, each scoring ``horizon`` steps,
make consecutive folds share scored points, so the ``d_k`` are autocorrelated up to lag
``h - 1 = ceil(horizon / step) - 1`` (an MA(h-1) when the folds are otherwise alike). The iid variance
of the mean ignores those covariances, understates the noise, and rejects equal models far too often.
The Diebold-Mariano statistic uses the long-run variance instead, with the autocovariances
``g_j = (1/n) sum_{k>=j} (d_k - dbar)(d_{k-j} - dbar)``::

    V   = g_0 + 2 sum_{j=1..h-1} g_j                      rectangular kernel (all h-1 lags of an MA(h-1))
    V   = g_0 + 2 sum_{j=1..h-1} (1 - j/h) g_j             Bartlett (Newey-West), used when the above <= 0
    DM  = dbar / sqrt(V / n)

**Why Harvey-Leybourne-Newbold** (method ``"dm-hln"``, the gate's test before version 0.x). With few
folds relative to ``h`` the rectangular estimate is biased low and ``DM`` is not normal yet. HLN (1997)
rescale it and read it against Student's t::

    DM* = DM * sqrt((n + 1 - 2h + h(h-1)/n) / n)          p = P(t_{n-1} > DM*)

The factor equals ``sqrt((n - h)(n - h + 1)) / n``: it is zero once ``n <= h``, when overlapping folds
hold no more independent information than one; the test then reports no evidence (see
:func:`diebold_mariano`). The same factor is applied after a Bartlett fallback.

**Why the default is a fixed-smoothing test** (method ``"dm"``). ``V`` above counts only the
autocorrelation that fold overlap creates. Real models' relative skill drifts slowly (regimes,
refitted parameters), the differential is then correlated far beyond the overlap, and ``dm-hln`` fails
equally good models in 15-30% of runs at alpha 5% (``tests/benchmarks/bench_gate_calibration.py``).
The default estimates the long-run variance from a few slow cosine averages of the differential (EWC,
Lazarus, Lewis, Stock and Watson 2018), each rescaled by the share of the mean's variance a cosine sees
under fold overlap alone (which matters when there are few folds per overlap), and reads the statistic
against Student's t with as many degrees of freedom as cosines (fixed-b asymptotics: Kiefer and
Vogelsang 2005; Coroneo and Iacone 2020), see :mod:`backtest.hac`. It also reports whether the slow
cosines carry more variance than the overlap explains (``persistence_p``), which is how a verdict can
say that skill drifted.

**Why Holm.** A gate over several metrics runs several tests; with five metrics at 5% each, equal
models would fail up to about one run in four. Holm's step-down adjustment keeps the chance of any
false regression at ``alpha`` under any dependence between the metrics (and they are dependent: RMSE
and MAE move together), and never rejects less than Bonferroni::

    p_(i) sorted ascending, m tests:  adj_(i) = min(1, max_{j<=i} (m - j + 1) p_(j))

**Minimum detectable regression.** ``min_detectable_pct`` is the smallest true regression, in percent
of the baseline mean, that the test detects at level ``alpha`` with 80% power given the observed
variance of the differential::

    tol * 100 + (t_{1-alpha, df} + t_{0.8, df}) * SE / |mean(b)| * 100

with the test's standard error and degrees of freedom (``sqrt(Omega / n)`` and ``nu`` for ``dm``;
``sqrt(V / n) / HLN factor`` and ``n - 1`` for ``dm-hln``).

A gate that reports "no regression" with a minimum detectable regression of 12% has not shown much.

**Calibration, and its limit.** On simulated equal models (``tests/backtest/test_compare.py``,
1,000 overlapping folds, step 1) ``dm-hln`` raises a false alarm in 5.2% of runs at horizon 7 and 5.7%
at horizon 30, where an iid t-test does in 23% and 33% and "fail if the mean went up" in about half;
its t reference ignores the noise of the HAC variance itself, which grows with ``h / n`` (9% with 250
folds and 12% with 60 at horizon 30). The default ``dm`` stays at or near alpha in those cases (4.8%,
4.7%, 5.2%, 4.6%) and under skill that drifts between regimes lasting 100 origins (6.1%, where ``dm-hln``
fails 17%). Regimes lasting about 333 origins in 1,000 are beyond any test with useful power (``dm``
11%, ``dm-hln`` 29%): in a fifth of such runs the candidate was the worse model for most of the history.
The whole grid is ``tests/benchmarks/bench_gate_calibration.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
from scipy import special

from .hac import ewc_applies, ewc_dof, ewc_variance, excess_persistence, overlap_variance

__all__ = [
    "DM_METHODS",
    "Comparison",
    "DMResult",
    "compare",
    "decide",
    "diebold_mariano",
    "fixed_smoothing_dm",
    "holm",
    "pair_by_origin",
]

Direction = Literal["lower", "higher"]
Method = Literal["dm", "dm-hln", "threshold"]
Variance = Literal["ewc", "rectangular", "bartlett", "constant"]

DM_METHODS = ("dm", "dm-hln")
"""The methods that test (a p-value, Holm's step, a minimum detectable regression); ``threshold`` does not."""

PERSISTENCE_ALPHA = 0.01
"""Below this ``persistence_p`` a comparison says its differential is correlated beyond the fold overlap."""

POWER = 0.8
"""The power at which :attr:`Comparison.min_detectable_pct` is computed."""


@dataclass(frozen=True)
class DMResult:
    """A one-sided Diebold-Mariano test of ``E[d] > 0``.

    ``std_error`` is the standard error of ``mean(d)`` the test used, so ``statistic = mean(d) /
    std_error``; ``variance`` names the long-run variance's estimator; ``dof`` the degrees of freedom
    of the Student's t reference. ``persistence_p`` is the p-value of "no autocorrelation beyond the
    fold overlap" (:func:`backtest.hac.excess_persistence`), ``nan`` when it could not be computed.
    """

    statistic: float
    p_value: float
    variance: Variance
    n: int
    lags: int
    std_error: float
    dof: int = 0
    persistence_p: float = math.nan


@dataclass(frozen=True)
class Comparison:
    """One metric of a candidate against the baseline over paired folds.

    ``baseline`` and ``candidate`` are means over the paired folds; ``delta_pct`` is
    ``100 * (candidate - baseline) / |baseline|``, positive when the raw value went up (worse for a
    lower-is-better metric, better for a higher-is-better one). ``p_value`` is the raw one-sided
    Diebold-Mariano p-value and ``p_adjusted`` the Holm-adjusted one, filled by :func:`decide`;
    ``regressed`` is ``None`` until then for the tested methods (``"dm"``, ``"dm-hln"``). Method
    ``"threshold"`` compares means only: its ``regressed`` is set at once and its statistic, p-values and
    ``min_detectable_pct`` are ``nan``. ``dof`` is the t reference's degrees of freedom (None when
    nothing was tested) and ``persistence_p`` the p-value of "the differential is correlated no further
    than the fold overlap" (small: relative skill drifts; see :attr:`persistent`).
    """

    method: Method
    direction: Direction
    baseline: float
    candidate: float
    delta_pct: float
    tolerance: float
    alpha: float
    n_folds: int
    lags: int
    statistic: float
    p_value: float
    variance: Variance | None
    min_detectable_pct: float
    p_adjusted: float = math.nan
    regressed: bool | None = None
    dof: int | None = None
    persistence_p: float = math.nan

    @property
    def persistent(self) -> bool:
        """The differential's autocorrelation extends beyond the fold overlap (``persistence_p`` < 1%)."""
        return bool(self.persistence_p < PERSISTENCE_ALPHA)


def pair_by_origin(baseline_origins, candidate_origins) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the folds whose origin appears in both runs, in increasing origin order.

    Origins are compared as given (strings with strings, ``datetime64`` with ``datetime64``): convert
    them to one representation first. Each run's origins must be unique.
    """
    baseline = np.asarray(baseline_origins)
    candidate = np.asarray(candidate_origins)
    for name, origins in (("baseline", baseline), ("candidate", candidate)):
        if origins.ndim != 1:
            raise ValueError(f"{name} origins must be one-dimensional, got shape {origins.shape}")
        values, counts = np.unique(origins, return_counts=True)
        if (counts > 1).any():
            repeated = ", ".join(str(v) for v in values[counts > 1][:5])
            raise ValueError(f"{name} origins must be unique; {int((counts > 1).sum())} repeat: {repeated}")
    _, base_index, cand_index = np.intersect1d(baseline, candidate, assume_unique=True, return_indices=True)
    return base_index.astype(np.intp), cand_index.astype(np.intp)


# Student's t through scipy.special's ufuncs: the same values as scipy.stats.t.sf / .ppf without the
# per-call overhead of the distribution objects (which dominated a comparison's cost).
def _t_sf(x: float, df: int) -> float:
    return float(special.stdtr(df, -x))


def _t_ppf(q: float, df: int) -> float:
    return float(special.stdtrit(df, q))


def _degenerate(d: np.ndarray, lags: int) -> DMResult | None:
    """The defined answer for a differential that cannot support a test, or None when it can."""
    n = d.size
    if n < 2:
        return DMResult(0.0, 1.0, "rectangular", n, lags, math.nan)
    if d.min() == d.max():
        sign = float(np.sign(d[0]))
        return DMResult(sign * math.inf if sign else 0.0, 0.0 if sign > 0 else 1.0, "constant", n, lags, 0.0)
    return None


def _checked(differential: np.ndarray, lags: int) -> tuple[np.ndarray, int]:
    d = np.asarray(differential, dtype=float)
    if d.ndim != 1:
        raise ValueError(f"the differential must be one-dimensional, got shape {d.shape}")
    if not np.isfinite(d).all():
        raise ValueError(f"the differential has {int((~np.isfinite(d)).sum())} NaN/inf value(s)")
    if isinstance(lags, bool) or int(lags) != lags or lags < 0:
        raise ValueError(f"lags must be a non-negative integer, got {lags!r}")
    return d, int(lags)


def diebold_mariano(differential: np.ndarray, lags: int) -> DMResult:
    """One-sided Diebold-Mariano test of ``H0: E[d] <= 0`` against ``E[d] > 0``, HLN-corrected (``dm-hln``).

    ``lags`` is the number of autocovariances in the long-run variance (``ceil(horizon/step) - 1``
    for walk-forward folds). When the rectangular estimate is not positive, Bartlett weights with the
    same lags are used and ``variance`` says ``"bartlett"``.

    Inputs that cannot support the test still give a defined answer, never ``nan``:

    * fewer than 2 values: statistic 0, p-value 1 (no evidence), ``std_error`` nan;
    * all ``d`` equal (zero variance, e.g. identical models): no test is possible and ``variance`` says
      ``"constant"``; the sign decides: ``d = 0`` gives statistic 0 and p-value 1, ``d > 0`` gives
      statistic ``+inf`` and p-value 0, ``d < 0`` gives ``-inf`` and 1; ``std_error`` 0;
    * ``n <= lags + 1``: the HLN factor is zero (the folds overlap too much to hold more than one
      independent observation): statistic 0, p-value 1, ``std_error`` inf.
    """
    d, lags = _checked(differential, lags)
    n = d.size
    degenerate = _degenerate(d, lags)
    if degenerate is not None:
        return degenerate
    h = lags + 1
    if n <= h:
        return DMResult(0.0, 1.0, "rectangular", n, lags, math.inf, n - 1)
    long_run, kernel = overlap_variance(d, lags)
    hln = math.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    std_error = math.sqrt(long_run / n) / hln
    statistic = float(d.mean() / std_error)
    persistence = excess_persistence(d, lags, long_run) if ewc_applies(n, lags) else math.nan
    return DMResult(statistic, _t_sf(statistic, n - 1), kernel, n, lags, std_error, n - 1, persistence)


def fixed_smoothing_dm(differential: np.ndarray, lags: int) -> DMResult:
    """One-sided Diebold-Mariano test of ``E[d] > 0`` with the EWC long-run variance and a t_nu reference.

    ``nu = ewc_dof(n, lags)`` cosines (:mod:`backtest.hac`); ``variance`` says ``"ewc"`` and ``dof`` is
    ``nu``. Degenerate inputs (fewer than 2 values, a constant differential) answer as in
    :func:`diebold_mariano`. ``persistence_p`` compares the EWC variance with the overlap-only one.

    With fewer than 30 folds, or no more folds than the overlap (:func:`backtest.hac.ewc_applies`), the
    result is :func:`diebold_mariano`'s, and its ``variance`` (``"rectangular"`` or ``"bartlett"``) says so.
    """
    d, lags = _checked(differential, lags)
    if not ewc_applies(d.size, lags):
        return diebold_mariano(d, lags)
    n = d.size
    degenerate = _degenerate(d, lags)
    if degenerate is not None:
        return degenerate
    nu = ewc_dof(n, lags)
    long_run = float(ewc_variance(d, nu, lags))
    if not long_run > 0:  # d is constant up to rounding along every cosine: as good as no variance
        return DMResult(0.0, 1.0, "ewc", n, lags, math.inf, nu)
    std_error = math.sqrt(long_run / n)
    statistic = float(d.mean() / std_error)
    persistence = excess_persistence(d, lags, overlap_variance(d, lags)[0])
    return DMResult(statistic, _t_sf(statistic, nu), "ewc", n, lags, std_error, nu, persistence)


def holm(p_values) -> np.ndarray:
    """Holm step-down adjusted p-values, in the input order: monotone in the raw order, capped at 1."""
    p = np.asarray(p_values, dtype=float)
    if p.ndim != 1:
        raise ValueError(f"p-values must be one-dimensional, got shape {p.shape}")
    if not ((p >= 0) & (p <= 1)).all():
        raise ValueError(f"p-values must lie in [0, 1]; got {p[~((p >= 0) & (p <= 1))][:5].tolist()}")
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
    return adjusted


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; use one of {', '.join(map(repr, allowed))}")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _check_alpha(alpha: float) -> None:
    if not (_is_number(alpha) and 0 < alpha < 1):
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")


def _positive_int(name: str, value: int) -> int:
    if not _is_number(value) or int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _fold_values(name: str, values) -> np.ndarray:
    try:
        return np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} fold values must be numeric ({exc})") from None


def _paired_values(candidate_values, baseline_values) -> tuple[np.ndarray, np.ndarray]:
    candidate = _fold_values("candidate", candidate_values)
    baseline = _fold_values("baseline", baseline_values)
    if candidate.ndim != 1 or baseline.ndim != 1:
        raise ValueError(f"fold values must be one-dimensional, got shapes {candidate.shape} and {baseline.shape}")
    if candidate.size != baseline.size:
        raise ValueError(
            f"candidate has {candidate.size} fold values, baseline has {baseline.size}; "
            "pair them by origin first (pair_by_origin)"
        )
    if np.isinf(candidate).any() or np.isinf(baseline).any():
        raise ValueError("fold values must be finite or NaN (a fold the metric could not score), not inf")
    scored = ~(np.isnan(candidate) | np.isnan(baseline))
    return candidate[scored], baseline[scored]


def _min_detectable_pct(std_error: float, baseline: float, dof: int, alpha: float, tolerance: float) -> float:
    # a zero standard error is a constant differential, not perfect sensitivity: nothing can be said
    if baseline == 0 or math.isnan(std_error) or std_error == 0:
        return math.nan
    quantiles = _t_ppf(1 - alpha, dof) + _t_ppf(POWER, dof)
    return float(100.0 * tolerance + 100.0 * quantiles * std_error / abs(baseline))


def compare(
    candidate_values,
    baseline_values,
    *,
    direction: Direction,
    horizon: int,
    step: int,
    tolerance: float = 0.0,
    alpha: float = 0.05,
    method: Method = "dm",
) -> Comparison:
    """Compare one metric's per-fold values, already paired fold by fold (see :func:`pair_by_origin`).

    The differential is ``c - (1 + tolerance) * b`` for a lower-is-better metric and
    ``(1 - tolerance) * b - c`` for a higher-is-better one; positive means worse beyond the tolerance.

    * ``"dm"``: a one-sided Diebold-Mariano test with the fixed-smoothing EWC long-run variance
      (:func:`fixed_smoothing_dm`), robust to relative skill that drifts; ``lags = ceil(horizon / step) - 1``
      sets how few cosines it may use. The row's ``regressed`` is left ``None``: pass every row of a run
      to :func:`decide` for the Holm step.
    * ``"dm-hln"``: the gate's earlier test (:func:`diebold_mariano`): the overlap's ``lags``
      autocovariances, HLN-corrected, t with ``n - 1`` degrees of freedom.
    * ``"threshold"``: no statistics; regressed when the mean differential is positive, that is
      ``mean(c) > (1 + tolerance) * mean(b)`` (lower) or ``mean(c) < (1 - tolerance) * mean(b)`` (higher).

    Folds where either value is NaN (the metric could not score them) are left out; ``n_folds`` counts
    the folds used. ``min_detectable_pct`` is the smallest true regression, in percent of the baseline
    mean, that the test detects at level ``alpha`` (before the Holm adjustment) with 80% power given the
    observed variance of the differential, plus the tolerance in percent:
    ``100 * tolerance + 100 * (t_{1-alpha,df} + t_{0.8,df}) * SE(mean d) / |mean b|``, with the test's
    standard error and degrees of freedom. It is ``nan`` when the baseline mean is zero, for method
    ``"threshold"`` and when the differential is the same on every fold (``variance == "constant"``, e.g.
    an identical rerun: there is no variance to measure sensitivity with), and ``inf`` when the folds are
    too few for their overlap (``n <= lags + 1`` for ``dm-hln``).
    """
    _check_choice("direction", direction, ("lower", "higher"))
    _check_choice("method", method, (*DM_METHODS, "threshold"))
    _check_alpha(alpha)
    if not (_is_number(tolerance) and 0 <= tolerance < 1):
        raise ValueError(f"tolerance must lie in [0, 1) (a fraction: 0.05 allows 5% worse), got {tolerance!r}")
    horizon = _positive_int("horizon", horizon)
    step = _positive_int("step", step)
    candidate, baseline = _paired_values(candidate_values, baseline_values)
    n = candidate.size
    if n < 2:
        raise ValueError(
            f"only {n} paired fold(s) with a value on both sides (of {np.size(candidate_values)} given); the test "
            "needs at least 2: use more folds"
        )

    if direction == "lower":
        differential = candidate - (1 + tolerance) * baseline
    else:
        differential = (1 - tolerance) * baseline - candidate
    base_mean, cand_mean = float(baseline.mean()), float(candidate.mean())
    delta_pct = 100.0 * (cand_mean - base_mean) / abs(base_mean) if base_mean != 0 else math.nan
    lags = (horizon - 1) // step  # ceil(horizon / step) - 1
    common: dict[str, Any] = dict(
        method=method,
        direction=direction,
        baseline=base_mean,
        candidate=cand_mean,
        delta_pct=delta_pct,
        tolerance=float(tolerance),
        alpha=float(alpha),
        n_folds=n,
        lags=lags,
    )
    if method == "threshold":
        return Comparison(
            **common,
            statistic=math.nan,
            p_value=math.nan,
            variance=None,
            min_detectable_pct=math.nan,
            regressed=bool(differential.mean() > 0),
        )
    test = (fixed_smoothing_dm if method == "dm" else diebold_mariano)(differential, lags)
    dof = test.dof or n - 1
    return Comparison(
        **common,
        statistic=test.statistic,
        p_value=test.p_value,
        variance=test.variance,
        min_detectable_pct=_min_detectable_pct(test.std_error, base_mean, dof, alpha, tolerance),
        dof=dof,
        persistence_p=test.persistence_p,
    )


def decide(comparisons: Sequence[Comparison], alpha: float) -> list[Comparison]:
    """Holm-adjust the tested rows (``"dm"``, ``"dm-hln"``) together and flag ``regressed = p_adjusted < alpha``.

    Every tested row given counts as one test in the family; ``"threshold"`` rows are returned
    unchanged (already decided, never adjusted). ``alpha`` must be the level the rows were compared at,
    so that their ``min_detectable_pct`` describes this decision.
    """
    _check_alpha(alpha)
    tested = [i for i, row in enumerate(comparisons) if row.method in DM_METHODS]
    for i in tested:
        if comparisons[i].alpha != alpha:
            raise ValueError(
                f"row {i} was compared at alpha {comparisons[i].alpha} but decide was given alpha {alpha}; "
                "compare and decide at the same level"
            )
    adjusted = holm([comparisons[i].p_value for i in tested])
    out = list(comparisons)
    for i, p in zip(tested, adjusted, strict=True):
        out[i] = replace(comparisons[i], p_adjusted=float(p), regressed=bool(p < alpha))
    return out
