"""Multi-horizon superior predictive ability: one test of a candidate against a baseline over all horizons.

Quaedvlieg, R. (2021). "Multi-horizon forecast comparison." *Journal of Business & Economic
Statistics* 39(1), 40-53. doi:10.1080/07350015.2019.1620074.

The input is the matrix ``d[t, h]`` of loss differentials over ``T`` common origins and ``H``
horizons, positive where the candidate is worse (see :func:`differentials`). With ``dbar_h`` the
column means, ``w`` weights summing to one and ``omega_h^2``, ``zeta^2`` long-run variances:

* **uniform SPA** (``"uniform"``): ``t_uSPA = min_h sqrt(T) dbar_h / omega_h``. Large only when the
  candidate is worse at *every* horizon: rejecting says the baseline is uniformly superior.
* **average SPA** (``"average"``): ``t_aSPA = sqrt(T) w'dbar / zeta``, ``zeta`` the long-run standard
  deviation of ``w'd_t``. Large when the candidate is worse on the weighted average of horizons, where a
  worse horizon may be outweighed by better ones.

The orientation is a gate's: the null is "the candidate is no worse" (at some horizon for the uniform
test, on the weighted average for the average one) and only a regression rejects it. The paper's other
use, "is the candidate better at every horizon?", would fail a candidate unless it was shown better, so
equal models would fail almost always.

Critical values come from the moving-block bootstrap (Algorithms 1 and 2 of the paper): ``B`` series of
``T`` rows are drawn as ``floor(T / L)`` blocks of ``L`` consecutive rows of the *recentred* differentials
(see below); each gives the statistic with its own "natural" block variance (Goetze and Kuensch 1996:
the mean square of the ``L``-row block sums over ``L``); the p-value is the share of bootstrap
statistics at or above the sample's (at or above: identical models, a zero differential everywhere, get
p = 1, not 0). Recentring at every horizon calibrates the uniform test where the
candidate is as good as the baseline at every horizon; where it is equal at some horizons and worse at
others the bootstrap minimum is too low and the test rejects more than ``alpha`` (Monschang, Trede and
Wilfling 2025, JBES): for a gate that is a regression at the worse horizons, and a failure anyway.

Adapted to overlapping walk-forward folds, and said here because it departs from the paper:

* ``L`` is never shorter than twice the deepest fold overlap (``2 * ceil(h_max / step)``), since a block
  shorter than the overlap cuts the dependence the bootstrap must keep;
* the sample statistic is studentised like the bootstrap's, with the natural block variance of its
  ``floor(T / L)`` consecutive blocks (the paper uses a quadratic-spectral HAC with bandwidth
  ``1.3 T^(1/5)``, about 5 for 500 origins: far shorter than a 30-step overlap; on MA(29) differentials,
  300 runs, that QS version rejected equal models in 7-8% of runs at 5%, the block version in 5-6%);
* the bootstrap recentres at its own expectation, the mean of all block means (Lahiri 1992), not at
  the sample mean.

Measured in ``tests/benchmarks/bench_mh_spa.py`` (horizons 5, 10, 20 and 30, step 1, 500 common origins,
500 runs per row, alpha 5%): on differentials independent over time both tests reject equal models in
5-6% of runs, as the paper's own algorithm (quadratic-spectral HAC, circular blocks of 3) does; on
overlapping folds that algorithm rejects them in 9%, these adaptations in 7%, and in 9-11% when which model is
better drifts between regimes (Holm over the per-horizon ``dm`` tests: 4-5%). They find a regression at
every horizon more often than Holm over ``dm`` (10% worse everywhere: 43-47% against 28%), and a
regression at one horizon only less often or no more often (10% worse at horizon 5: 9-11% against 23%;
at horizon 30: 9-12% against 9%); the uniform test is not meant to see those at all. So they are opt-in
gate methods (``--forecast-method mh-aspa`` / ``mh-uspa``, decided in ``pytest_forecast_mlflow.gate``),
not the default. One gate comparison of four horizons x 500 folds, bootstrap included, takes about 10 ms
(Holm over ``dm``: 2 ms).
The generator is seeded: the same data and seed give the same p-value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

__all__ = ["Kind", "MultiHorizonSPA", "block_length", "common_origins", "differentials", "multi_horizon_spa"]

Kind = Literal["uniform", "average"]

BOOTSTRAPS = 999
SEED = 20210101
Z_POWER = 0.8416212335729143  # the standard normal's 0.8 quantile: min_detectable is at 80% power


@dataclass(frozen=True)
class MultiHorizonSPA:
    """One multi-horizon test: its statistic, bootstrap p-value and what it was computed from."""

    kind: Kind
    statistic: float
    p_value: float
    n: int
    horizons: int
    block_length: int
    bootstraps: int
    seed: int
    #: ``sqrt(T) dbar_h / omega_h`` per horizon, in the input's column order
    horizon_statistics: tuple[float, ...]
    #: the bootstrap's ``1 - alpha`` quantile: the statistic rejects above it
    critical_value: float = math.nan
    #: the smallest regression, in fractions of the baseline's mean (beyond the tolerance), that the test finds
    #: with 80% power at ``alpha``: ``(critical_value + z_0.8) * SE``, with ``SE`` the standard error of the
    #: weighted mean differential (average) or of the noisiest horizon's (uniform: a regression of that size at
    #: every horizon); ``nan`` when the differential does not vary
    min_detectable: float = math.nan


def common_origins(origins: Sequence[Sequence[object] | np.ndarray]) -> np.ndarray:
    """The origins present in every sequence, increasing: the rows a multi-horizon test can use.

    Horizons of one walk-forward backtest have different fold counts and origins (a longer horizon runs
    out of actuals sooner; a label may use another step); the joint test compares the forecast paths
    made at the same origins, so only origins every horizon (candidate and baseline alike) scored count.
    """
    if not origins:
        raise ValueError("no horizons given; the multi-horizon test needs at least one")
    common = np.unique(np.asarray(origins[0]))
    for other in origins[1:]:
        common = np.intersect1d(common, np.asarray(other))
    return common


def differentials(
    candidate: np.ndarray, baseline: np.ndarray, *, direction: str = "lower", tolerance: float = 0.0
) -> np.ndarray:
    """``d[t, h]`` in fractions of the baseline's mean at each horizon, positive where the candidate is worse.

    ``(c - (1 + tol) b) / |mean b|`` for a lower-is-better metric, ``((1 - tol) b - c) / |mean b|`` for a
    higher-is-better one: scaled so that equal weights mean equal relative importance (an RMSE at 90 days
    is larger than at 1 day and would otherwise dominate the average).
    """
    c = np.asarray(candidate, dtype=float)
    b = np.asarray(baseline, dtype=float)
    if c.shape != b.shape or c.ndim != 2:
        raise ValueError(
            f"candidate and baseline must be (origins, horizons) arrays of one shape, got {c.shape}, {b.shape}"
        )
    if not (np.isfinite(c).all() and np.isfinite(b).all()):
        raise ValueError("the per-fold values must be finite; leave out origins a metric could not score")
    scale = np.abs(b.mean(axis=0))
    if (scale == 0).any():
        raise ValueError("the baseline's mean is zero at some horizon: its relative differential is undefined")
    raw = c - (1 + tolerance) * b if direction == "lower" else (1 - tolerance) * b - c
    return raw / scale


def block_length(n: int, deepest_lags: int) -> int:
    """The bootstrap's block length: ``max(ceil(n^(1/3)), 2 * (deepest_lags + 1))``."""
    return max(math.ceil(n ** (1 / 3)), 2 * (deepest_lags + 1))


def _block_variance(samples: np.ndarray, length: int) -> np.ndarray:
    """The "natural" block variance of series (B, K*L, k): the mean square of their demeaned ``L``-row block
    sums over ``L`` (the bootstrap computes the same from its drawn block sums)."""
    e = samples - samples.mean(axis=1, keepdims=True)
    b, rows, k = e.shape
    sums = e.reshape(b, rows // length, length, k).sum(axis=2)
    return (sums**2).mean(axis=1) / length


def multi_horizon_spa(
    d: np.ndarray,
    *,
    kind: Kind,
    deepest_lags: int,
    weights: np.ndarray | None = None,
    bootstraps: int = BOOTSTRAPS,
    seed: int = SEED,
    alpha: float = 0.05,
) -> MultiHorizonSPA:
    """Quaedvlieg's uniform or average multi-horizon SPA test of ``d`` (T origins x H horizons).

    ``deepest_lags`` is ``ceil(h / step) - 1`` of the longest horizon (it sets the block length);
    ``weights`` (average test only) default to equal. Rejecting (small ``p_value``) says the candidate is
    worse at every horizon (``"uniform"``) or on the weighted average (``"average"``). ``alpha`` only sets
    :attr:`MultiHorizonSPA.critical_value` and :attr:`MultiHorizonSPA.min_detectable`.
    """
    d = np.asarray(d, dtype=float)
    if d.ndim != 2 or d.shape[1] < 1:
        raise ValueError(f"the differentials must be an (origins, horizons) array, got shape {d.shape}")
    if kind not in ("uniform", "average"):
        raise ValueError(f"unknown kind {kind!r}; use 'uniform' or 'average'")
    n, horizons = d.shape
    length = block_length(n, deepest_lags)
    if n < 2 * length:
        raise ValueError(
            f"{n} common origins are too few for blocks of {length} (twice the deepest overlap of "
            f"{deepest_lags + 1}): the bootstrap needs at least {2 * length}; add origins (a smaller step, a longer "
            "history)"
        )
    if kind == "average":
        w = np.full(horizons, 1.0 / horizons) if weights is None else np.asarray(weights, dtype=float)
        if w.shape != (horizons,) or not np.isclose(w.sum(), 1.0) or (w < 0).any():
            raise ValueError(f"weights must be {horizons} non-negative numbers summing to 1, got {w.tolist()}")
        d_tested = (d @ w)[:, None]
    else:
        d_tested = d
    root_n = math.sqrt(n)
    usable = n // length * length
    var_all = _block_variance(d[None, :usable], length)[0]
    var_tested = _block_variance(d_tested[None, :usable], length)[0]
    per_horizon = root_n * d.mean(axis=0) / np.sqrt(np.maximum(var_all, 1e-300))
    tested = root_n * d_tested.mean(axis=0) / np.sqrt(np.maximum(var_tested, 1e-300))
    statistic = float(tested.min())

    # centred at the bootstrap's own expectation (the mean over every block's mean, which weighs the first
    # and last L - 1 origins less than the sample mean does), so the resampled mean is centred at zero.
    # A resampled series is K blocks, so everything it needs is its blocks' sums: drawn from the sums of
    # all n - L + 1 blocks (prefix sums), never building the (B, K * L, k) resampled array.
    prefix = np.vstack([np.zeros((1, d_tested.shape[1])), np.cumsum(d_tested, axis=0)])
    block_sums = prefix[length:] - prefix[:-length]
    block_sums = block_sums - block_sums.mean(axis=0)
    blocks = n // length
    rng = np.random.default_rng(seed)
    drawn = block_sums[rng.integers(0, n - length + 1, size=(bootstraps, blocks))]  # (B, K, k)
    mean = drawn.sum(axis=1) / (blocks * length)
    variance = ((drawn - length * mean[:, None, :]) ** 2).mean(axis=1) / length
    boot = (math.sqrt(blocks * length) * mean / np.sqrt(np.maximum(variance, 1e-300))).min(axis=1)
    p_value = float((boot >= statistic).mean())
    critical = float(np.quantile(boot, 1 - alpha))
    errors = np.sqrt(var_tested if kind == "average" else var_all) / root_n
    noisiest = float(errors.max())
    detectable = (critical + Z_POWER) * noisiest if noisiest > 0 else math.nan
    return MultiHorizonSPA(
        kind,
        statistic,
        p_value,
        n,
        horizons,
        length,
        bootstraps,
        seed,
        tuple(float(t) for t in per_horizon),
        critical,
        detectable,
    )
