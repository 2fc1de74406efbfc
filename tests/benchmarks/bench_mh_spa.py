"""The multi-horizon gate methods (``mh-uspa``, ``mh-aspa``): validation, size and power against Holm over dm, cost.

Run from the repository root (a few minutes at the defaults on one core; ``nice -n 10`` on a shared machine)::

    python tests/benchmarks/bench_mh_spa.py                 # all three tables
    python tests/benchmarks/bench_mh_spa.py --sims 200      # quicker, noisier
    python tests/benchmarks/bench_mh_spa.py --only timing   # or: validation, readings, size-power

**1. Validation.** Quaedvlieg (2021, JBES 39(1) 40-53) reports Monte Carlo size and power, but no stored
copy of the article, of its working paper ("Multi-horizon forecast comparison", 2018) or of Monschang, Trede
and Wilfling (CQE working paper 106/2023; JBES 2025) holds a simulation design or table values (searched: the
JBES, RePEc and CQE abstracts, the working paper's transcript, whose stored text ends after page 1, the R
ports ``gabbocg/forecastdom``, whose vignette runs only the archive's two example matrices, and
``lucabarbaglia/MultiHorizonSPA``). So no published rejection rate is reproduced here. What is reproduced is
the paper's *algorithm* as its Matlab code (``QS.m``, ``Get_MBB_ID.m``, ``MBB_Variance.m``,
``Bootstrap_uSPA.m``, ``Bootstrap_aSPA.m``) implements it, in :func:`reference_spa`: the statistic
studentised by a quadratic-spectral HAC with bandwidth ``1.3 T^(1/5)``; a circular moving-block bootstrap
with blocks of 3, 999 draws, recentred at the sample mean, each draw studentised by its natural block
variance; the p-value the share of draws strictly above the statistic. Next to ``backtest.spa``, on three
designs:

* ``iid``: ``T = 500`` origins, ``H = 4`` horizons, Gaussian differentials correlated 0.5 across horizons
  and independent over time, the setting the paper's theory covers: both should reject equal models in
  about 5% of runs at 5%, and agree on power;
* ``overlap``: the gate's setting, per-fold RMSE at horizons 5, 10, 20, 30 from the same origins (step 1,
  so a fold overlaps the next 29 deep): a block of 3 cuts that dependence, which is why ``backtest.spa``
  uses blocks of at least twice the deepest overlap;
* ``boundary`` (and the iid boundary row): equal at one horizon, worse at the others, a null point of the
  uniform test where Monschang, Trede and Wilfling show the recentred bootstrap rejects too often; the
  column "statistic > z_0.95" is their fix, our statistic against the standard normal's 95% quantile.

**1b. Readings of the natural variance** (``--only readings``). ``MBB_Variance.m`` as distributed reshapes the
``K * L`` rows to ``[K, L]`` and sums along dimension 1: ``L`` sums of ``K`` consecutive rows where the
natural variance sums ``K`` blocks of ``L``, so it is about ``K / L`` (55 at ``T = 500``) times too large and
the bootstrap statistics about 7 times too small; the ports ``lucabarbaglia/MultiHorizonSPA`` (R and C++)
copy it, ``forecastdom`` takes the other sums of the same matrix (``L`` rows ``K`` apart, the plain
variance, right only for differentials independent over time). The table runs the reference with each reading
on the iid design and on overlapping folds; :func:`reference_spa` uses ``blocks``, the estimator the algorithm
names.

**2. Size and power against Holm over dm**, on the same simulated walk-forward folds (the ``overlap``
design; 500 common origins): equal models, equal models whose relative skill drifts between regimes,
a candidate 10% worse at one horizon only (5 or 30), and 10% worse at every horizon. ``Holm over dm`` is
the gate's default: the per-horizon ``dm`` tests of ``backtest.compare``, Holm-adjusted together.

**3. Cost**: the gate's whole comparison of four horizons with 500 folds each (``compare_record`` per
horizon, then ``decide``), bootstrap included, per method, side by side in one process.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from backtest.compare import compare, decide  # noqa: E402
from backtest.spa import Kind, differentials, multi_horizon_spa  # noqa: E402
from pytest_forecast_mlflow import gate  # noqa: E402
from pytest_forecast_mlflow.records import Record  # noqa: E402
from tests.backtest import gate_simulations as sim  # noqa: E402
from tests.plugin.conftest import candidate_record  # noqa: E402

ALPHA = 0.05
HORIZONS = (5, 10, 20, 30)
ORIGINS = 500
KINDS: tuple[Kind, ...] = ("uniform", "average")


# -- the paper's algorithm, as its Matlab code and the R port implement it ---------------------------------------


def qs_variance(d: np.ndarray) -> np.ndarray:
    """Quadratic-spectral HAC long-run variance of each column, bandwidth ``1.3 T^(1/5)`` (Andrews 1991)."""
    t = d.shape[0]
    e = d - d.mean(axis=0)
    band = 1.3 * t**0.2
    j = np.arange(1, t)
    x = 6 * math.pi * (j / band) / 5
    weights = 25 / (12 * math.pi**2 * (j / band) ** 2) * (np.sin(x) / x - np.cos(x))
    spectrum = np.fft.rfft(e, n=2 * t, axis=0)
    gammas = np.fft.irfft(spectrum * spectrum.conj(), n=2 * t, axis=0)[1:t] / t  # autocovariances, lags 1..t-1
    return np.maximum((e * e).sum(axis=0) / t + 2 * weights @ gammas, 1e-300)


READINGS = ("blocks", "matlab", "forecastdom")


def mbb_indices(t: int, block: int, rng: np.random.Generator, draws: int) -> np.ndarray:
    """``draws`` resamples of row numbers as the reference's ``Get_MBB_ID.m`` draws them (0-based here).

    A block starts at row 1 and at every row ``t`` (1-based) with ``t mod L == 0``, so the first block is
    ``L - 1`` rows long; each starts anywhere in ``1..T`` and runs on circularly (past ``T`` back to 1)."""
    position = np.arange(t)
    fresh = (position == 0) | ((position + 1) % block == 0)
    first = np.flatnonzero(fresh)
    owner = np.cumsum(fresh) - 1
    starts = rng.integers(0, t, size=(draws, first.size))
    return (starts[:, owner] + position - first[owner]) % t


def bootstrap_variance(sample: np.ndarray, block: int, reading: str = "blocks") -> np.ndarray:
    """The "natural variance" of resampled series (draws, T, k) with ``K = floor(T / L)``, as each reading has it.

    ``blocks``: the mean square of the ``K`` sums of ``L`` consecutive demeaned rows, over ``L`` (Algorithm 1's
    natural variance, and ``backtest.spa``'s). ``matlab``: the reference's ``MBB_Variance.m`` as distributed,
    ``reshape(y, [K, L])`` then ``sum(., 1)``: the ``L`` sums of ``K`` consecutive rows, about ``K / L`` times the
    long-run variance (the R/C++ port ``lucabarbaglia/MultiHorizonSPA`` computes the same). ``forecastdom``: that
    R port's row sums of the same ``K x L`` matrix, ``K`` sums of ``L`` rows ``K`` apart, about the plain variance.
    """
    draws, t, k = sample.shape
    chunks = t // block
    e = (sample - sample.mean(axis=1, keepdims=True))[:, : chunks * block]
    if reading == "blocks":
        sums = e.reshape(draws, chunks, block, k).sum(axis=2)
    else:
        grid = e.reshape(draws, block, chunks, k)  # [:, j, i] is row j * K + i: Matlab's column-major K x L, transposed
        sums = grid.sum(axis=2) if reading == "matlab" else grid.sum(axis=1)
    return np.maximum((sums**2).mean(axis=1) / block, 1e-300)


def reference_spa(
    d: np.ndarray, kind: str, rng: np.random.Generator, block: int = 3, draws: int = 999, reading: str = "blocks"
) -> float:
    """The p-value of the paper's uSPA / aSPA as its Matlab code (``Bootstrap_uSPA.m``, ``Bootstrap_aSPA.m``) has it.

    ``d`` is benchmark minus competitor loss (our candidate minus baseline); the average test uses equal weights.
    The statistic is studentised by :func:`qs_variance`; the bootstrap resamples the differentials recentred at
    their sample mean with :func:`mbb_indices`, studentises each draw by :func:`bootstrap_variance` and the p-value
    is the share of draws strictly above the statistic. ``reading`` chooses the natural variance's reading."""
    t = d.shape[0]
    x = d.mean(axis=1, keepdims=True) if kind == "average" else d
    statistic = float((math.sqrt(t) * x.mean(axis=0) / np.sqrt(qs_variance(x))).min())
    sample = (x - x.mean(axis=0))[mbb_indices(t, block, rng, draws)]  # (draws, t, k)
    variance = bootstrap_variance(sample, block, reading)
    boot = (math.sqrt(t) * sample.mean(axis=1) / np.sqrt(variance)).min(axis=1)
    return float((boot > statistic).mean())


# -- the data ----------------------------------------------------------------------------------------------------


def iid_differentials(rng: np.random.Generator, means: tuple[float, ...]) -> np.ndarray:
    """``T x H`` Gaussian differentials, unit variance, correlation 0.5 across horizons, independent over time."""
    h = len(means)
    common = rng.standard_normal((ORIGINS, 1))
    return np.asarray(means) + math.sqrt(0.5) * common + math.sqrt(0.5) * rng.standard_normal((ORIGINS, h))


def fold_paths(
    rng: np.random.Generator, scales: tuple[float, ...], *, drifting: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """One run's per-fold RMSE at every horizon from the same origins: (origins, horizons) for both models.

    Both models miss the same random-walk series and add their own error walk; the candidate's RMSE at
    horizon ``h`` is multiplied by ``scales[h]``. ``drifting``: the two error scales swap between 0.25
    and 0.75 at regime switches (1% per origin), equal on average (the calibration grid's regimes)."""
    length = ORIGINS + max(HORIZONS)
    series = rng.standard_normal((1, length)).cumsum(axis=1)
    if drifting:
        state = (np.cumsum(rng.random((1, length)) < 0.01, axis=1) + rng.integers(0, 2)) % 2
        cand_scale, base_scale = np.where(state == 0, 0.25, 0.75), np.where(state == 0, 0.75, 0.25)
    else:
        cand_scale = base_scale = np.full((1, length), sim.NOISE)
    cand = (cand_scale * rng.standard_normal((1, length))).cumsum(axis=1) - series
    base = (base_scale * rng.standard_normal((1, length))).cumsum(axis=1) - series
    candidate = np.stack([s * sim.fold_rmse(cand, h, ORIGINS)[0] for s, h in zip(scales, HORIZONS, strict=True)], 1)
    baseline = np.stack([sim.fold_rmse(base, h, ORIGINS)[0] for h in HORIZONS], axis=1)
    return candidate, baseline


def holm_dm(candidate: np.ndarray, baseline: np.ndarray) -> bool:
    """The gate's default decision: per-horizon dm tests, Holm-adjusted together; True when any regressed."""
    rows = [
        compare(candidate[:, i], baseline[:, i], direction="lower", horizon=h, step=1, method="dm")
        for i, h in enumerate(HORIZONS)
    ]
    return any(row.regressed for row in decide(rows, ALPHA))


def _pct(count: float, sims: int) -> str:
    return f"{100 * count / sims:.1f}%"


# -- 1. validation -----------------------------------------------------------------------------------------------

VALIDATION = [
    ("iid", "equal at every horizon", (0.0, 0.0, 0.0, 0.0)),
    ("iid", "worse by 0.1 sd at every horizon", (0.1, 0.1, 0.1, 0.1)),
    ("iid", "worse by 0.2 sd at one horizon", (0.2, 0.0, 0.0, 0.0)),
    ("iid", "uSPA boundary: equal at one horizon, worse by 0.2 sd at the others", (0.0, 0.2, 0.2, 0.2)),
    ("overlap", "equal at every horizon", (1.0, 1.0, 1.0, 1.0)),
    ("overlap", "10% worse at every horizon", (1.1, 1.1, 1.1, 1.1)),
    ("boundary", "overlap folds: equal at h 5, 10% worse at 10, 20, 30", (1.0, 1.1, 1.1, 1.1)),
]
Z_ALPHA = 1.6448536269514722  # the standard normal's 0.95 quantile: Monschang, Trede and Wilfling's critical value


def _design(rng: np.random.Generator, design: str, params: tuple[float, ...]) -> tuple[np.ndarray, int]:
    if design == "iid":
        return iid_differentials(rng, params), 0
    return differentials(*fold_paths(rng, params)), max(HORIZONS) - 1


def validation(rng: np.random.Generator, sims: int) -> None:
    print(f"1. the paper's algorithm (QS HAC, blocks of 3, 999 draws) and backtest.spa; {sims} runs per row, alpha 5%")
    print()
    columns = (
        "uSPA, paper's algorithm",
        "uSPA, backtest.spa",
        "uSPA, backtest.spa statistic > z_0.95",
        "aSPA, paper's algorithm",
        "aSPA, backtest.spa",
    )
    print("| design | scenario | " + " | ".join(columns) + " |")
    print("|---|---|" + "---:|" * len(columns))
    for design, label, params in VALIDATION:
        counts = np.zeros(len(columns))
        for run in range(sims):
            d, lags = _design(rng, design, params)
            for k, kind in enumerate(KINDS):
                ours = multi_horizon_spa(d, kind=kind, deepest_lags=lags, seed=run)
                counts[3 * k] += reference_spa(d, kind, rng) < ALPHA
                counts[3 * k + 1] += ours.p_value < ALPHA
                if kind == "uniform":
                    counts[2] += ours.statistic > Z_ALPHA
        print(f"| {design} | {label} | " + " | ".join(_pct(c, sims) for c in counts) + " |", flush=True)
    print()


def readings(rng: np.random.Generator, sims: int) -> None:
    """The reference's bootstrap with each reading of its natural variance: iid design, and overlapping folds."""
    print(f"1b. the paper's algorithm with each reading of MBB_Variance; {sims} runs per row, alpha 5%")
    print()
    columns = [f"{kind[0]}SPA, {reading}" for kind in KINDS for reading in READINGS]
    print("| design | scenario | " + " | ".join(columns) + " |")
    print("|---|---|" + "---:|" * len(columns))
    for design, label, params in [VALIDATION[0], VALIDATION[1], VALIDATION[4]]:
        counts = np.zeros(len(columns))
        for _ in range(sims):
            d = _design(rng, design, params)[0]
            for k, kind in enumerate(KINDS):
                for r, reading in enumerate(READINGS):
                    counts[k * len(READINGS) + r] += reference_spa(d, kind, rng, reading=reading) < ALPHA
        print(f"| {design} | {label} | " + " | ".join(_pct(c, sims) for c in counts) + " |", flush=True)
    print()


# -- 2. size and power against Holm over dm ------------------------------------------------------------------------

SCENARIOS = [
    ("size", "equal at every horizon", (1.0, 1.0, 1.0, 1.0), False),
    ("size", "equal, skill drifting between regimes (0.25/0.75, length 100)", (1.0, 1.0, 1.0, 1.0), True),
    ("power", "10% worse at h 5 only", (1.1, 1.0, 1.0, 1.0), False),
    ("power", "10% worse at h 30 only", (1.0, 1.0, 1.0, 1.1), False),
    ("power", "10% worse at every horizon", (1.1, 1.1, 1.1, 1.1), False),
]


def size_power(rng: np.random.Generator, sims: int) -> None:
    names = ("mh-uspa", "mh-aspa", "Holm over dm (default)")
    print(f"2. fail rate at alpha 5%: horizons {HORIZONS}, step 1, {ORIGINS} common origins, {sims} runs per row")
    print()
    print("| | scenario | " + " | ".join(names) + " |")
    print("|---|---|" + "---:|" * len(names))
    for what, label, scales, drifting in SCENARIOS:
        counts = np.zeros(len(names))
        for run in range(sims):
            candidate, baseline = fold_paths(rng, scales, drifting=drifting)
            d = differentials(candidate, baseline)
            for k, kind in enumerate(KINDS):
                counts[k] += multi_horizon_spa(d, kind=kind, deepest_lags=max(HORIZONS) - 1, seed=run).p_value < ALPHA
            counts[2] += holm_dm(candidate, baseline)
        print(f"| {what} | {label} | " + " | ".join(_pct(c, sims) for c in counts) + " |", flush=True)
    print()


# -- 3. cost -------------------------------------------------------------------------------------------------------


def _gate_inputs(horizons: tuple[int, ...], folds: int) -> tuple[list[Record], gate.Baseline]:
    rng = np.random.default_rng(0)
    origins = [f"o{k:05d}" for k in range(folds)]
    records, champion = [], {}
    for h in horizons:
        label = f"{h}d"
        actuals = [[0.0] * h for _ in origins]
        base = rng.gamma(8.0, 1.0, folds)
        champion[label] = gate.BaselineHorizon(label, h, 1, origins, actuals, {"rmse": base.tolist()})
        values = (base * rng.lognormal(0.0, 0.05, folds)).tolist()
        records.append(candidate_record(label, h, origins, {"rmse": values}))
    return records, gate.Baseline("fx", "1", "alias champion", "0" * 16, "naive", "same", champion)


def _gate_seconds(records: list[Record], baseline: gate.Baseline, method: str) -> float:
    started = time.perf_counter()
    rows = [
        row
        for record in records
        for row in gate.compare_record(record, baseline, metrics=("rmse",), tolerance=0.0, alpha=ALPHA, method=method)
    ]
    gate.decide(
        rows, baseline=baseline, alpha=ALPHA, method=method, require_baseline=False, incomplete=[], interrupted=False
    )
    return time.perf_counter() - started


def timing(repeats: int) -> None:
    print(f"3. the gate's comparison of four horizons x 500 folds, compare_record + decide; median of {repeats}")
    print()
    print("| horizons (step 1) | block length | dm | mh-uspa | mh-aspa | mh-aspa / dm |")
    print("|---|---:|---:|---:|---:|---:|")
    for horizons in (HORIZONS, (1, 2, 3, 4)):
        records, baseline = _gate_inputs(horizons, 500)
        times = {}
        for method in ("dm", "mh-uspa", "mh-aspa"):
            _gate_seconds(records, baseline, method)  # imports and first calls
            times[method] = statistics.median(_gate_seconds(records, baseline, method) for _ in range(repeats))
        length = max(math.ceil(500 ** (1 / 3)), 2 * max(horizons))
        cells = [f"{1000 * times[m]:.0f} ms" for m in ("dm", "mh-uspa", "mh-aspa")]
        ratio = times["mh-aspa"] / times["dm"]
        print(f"| {', '.join(map(str, horizons))} | {length} | " + " | ".join(cells) + f" | {ratio:.2f}x |", flush=True)
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=500, help="runs per row of tables 1 and 2 (default 500)")
    parser.add_argument("--repeats", type=int, default=21, help="timed repeats per method (default 21)")
    parser.add_argument("--seed", type=int, default=2021)
    parser.add_argument("--only", choices=("validation", "readings", "size-power", "timing"))
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    if args.only in (None, "timing"):
        timing(args.repeats)
    if args.only in (None, "validation"):
        validation(rng, args.sims)
    if args.only in (None, "readings"):
        readings(rng, args.sims)
    if args.only in (None, "size-power"):
        size_power(rng, args.sims)
    print(f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
