"""Benchmark: calibration of the live drift test (``backtest.drift``, both lanes) against an oracle CUSUM.

Run it as ``python tests/benchmarks/bench_drift.py [--sims 10000] [--folds 100 500] [--calibrate | --calibrate-fast]``
(a few minutes on 2 cores). It never fails; it prints the figures the README quotes.

The simulated world: a random walk with unit-variance steps (standard normal, or Student t(4) scaled to
unit variance for the heavy-tailed check), forecast every day by the no-change model at horizon ``h``.

* **Full lane**: a forecast's loss is its RMSE over its ``h`` steps, scored the day its last target
  arrives, against the champion's backtest of 100 folds of the same loss, ``h`` days apart, from an
  independent stretch of the same walk.
* **Fast lane**: each forecast's one-step error (for the no-change forecast: the day's step), known the
  day after its origin, against the backtest's one-step errors, one per fold. Their number is
  ``--folds`` (the USD/CLP job's backtests have 499-515 folds, hence 500); the fold step does not
  matter, since the one-step error of each fold is one independent draw either way.
* A year is 365 daily checks; the monitor alarms on the first check where either lane exceeds its
  threshold.
* **False alarms**: the share of stable years in which any daily check says ``drift``.
* **Detection delay**: after 90 stable days of live forecasts (years that alarmed before are set
  aside and counted), the walk's step scale jumps by 1.5x or 2x; the delay counts days from the jump
  to the first alarm, the day of the jump being day 1.
* **The oracle**: a CUSUM of the log-likelihood ratio of each day's new one-step error for the known
  jump and the known scale (``-log c + e^2 (1 - 1/c^2) / 2``), its threshold set to 5% false-alarm
  years of 365 days: a lower bound no monitor can beat. It runs in the monitor's scenario (after 90
  stable days) and from the jump (the issue's figures: median 24 / p90 55 for 1.5x, 8 / 18 for 2x).

``--calibrate`` prints the constants of ``backtest.drift``: the 99th percentile of each horizon's
yearly maximum full-lane statistic (``THRESHOLDS``, 1% of the false-alarm budget) and, by backtest
folds, the fast lane's two charts' thresholds (``FAST_THRESHOLDS`` and ``FAST_SECOND_THRESHOLDS``,
together the other 4%: see :func:`calibrate_fast`), each the larger of the two with Gaussian and with
t(4) steps. ``--calibrate-fast`` prints the fast lane's alone (seconds; the constants were made with
``--sims 10000``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from backtest import drift

YEAR = 365
WARM_UP = 90
FOLDS = 100
JUMPS = (1.5, 2.0)
NEVER = np.iinfo(np.int64).max
FULL_SHARE, FAST_SHARE = 0.01, 0.04

Draw = Callable[[np.random.Generator, tuple[int, int]], np.ndarray]


def gaussian(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    return rng.standard_normal(shape)


def student4(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """Student t with 4 degrees of freedom, scaled to unit variance (its variance is 2)."""
    return rng.standard_t(4, shape) / np.sqrt(2.0)


DRAWS: tuple[Draw, ...] = (gaussian, student4)


def naive_losses(steps: np.ndarray, horizon: int) -> np.ndarray:
    """Per-forecast RMSE of the no-change forecast from each origin of walks with ``steps`` (rows)."""
    level = np.concatenate([np.zeros((steps.shape[0], 1)), np.cumsum(steps, axis=1)], axis=1)
    origins = steps.shape[1] - horizon + 1
    total = np.zeros((steps.shape[0], origins))
    for step in range(1, horizon + 1):
        total += (level[:, step : step + origins] - level[:, :origins]) ** 2
    return np.sqrt(total / horizon)


def full_lane(steps: np.ndarray, backtest: np.ndarray, horizon: int) -> np.ndarray:
    """The full lane's statistic at every daily check: column ``d`` is the check once step ``d`` arrived."""
    days = steps.shape[1] - horizon
    live = naive_losses(steps, horizon)[:, : days - horizon + 1]  # origin i is complete once step i + h - 1 arrived
    log_b = np.log(backtest)
    spread = log_b.std(axis=1, ddof=1, keepdims=True)
    z = (np.log(live) - log_b.mean(axis=1, keepdims=True)) / spread
    checks = np.zeros((steps.shape[0], days))
    checks[:, horizon - 1 :] = drift.statistic_path(z, horizon, spread[:, 0])
    return checks


def _fast_z(errors: np.ndarray, backtest_errors: np.ndarray) -> tuple[np.ndarray, list[drift.FastScale]]:
    scales = [drift.fast_scale(row) for row in backtest_errors]
    known = [scale for scale in scales if scale is not None]
    if len(known) < len(scales):
        raise ValueError("a simulated backtest too small for the fast lane")
    return np.stack([drift.fast_standardize(row, scale) for row, scale in zip(errors, known)]), known


def fast_lane(errors: np.ndarray, backtest_errors: np.ndarray) -> np.ndarray:
    """The fast lane's statistic at every daily check: column ``d`` has seen the one-step errors ``0..d``."""
    return drift.fast_path(*_fast_z(errors, backtest_errors))


def simulate(
    horizon: int,
    sims: int,
    days: int,
    rng: np.random.Generator,
    jump: float = 1.0,
    folds: int = FOLDS,
    draw: Draw = gaussian,
) -> tuple[np.ndarray, np.ndarray]:
    """Both lanes' statistics at every daily check of ``days`` days (the step scale times ``jump`` from day
    :data:`WARM_UP` on): ``(full, fast)``, each ``sims x days``."""
    backtest_steps = draw(rng, (sims, FOLDS * horizon + horizon))
    backtest = naive_losses(backtest_steps, horizon)[:, ::horizon][:, :FOLDS]
    backtest_errors = draw(rng, (sims, folds))
    steps = draw(rng, (sims, days + horizon))
    steps[:, WARM_UP:] *= jump
    return full_lane(steps, backtest, horizon), fast_lane(steps[:, :days], backtest_errors)


def first_alarm(statistic: np.ndarray, limit: float) -> np.ndarray:
    """The first day (column) whose statistic exceeds ``limit``, per row; NEVER when none does."""
    alarm = statistic > limit
    return np.where(alarm.any(axis=1), alarm.argmax(axis=1), NEVER)


def monitor_alarm(full: np.ndarray, fast: np.ndarray, horizon: int, folds: int) -> np.ndarray:
    """The first day either lane alarms."""
    return np.minimum(first_alarm(full, drift.threshold(horizon)), first_alarm(fast, drift.fast_threshold(folds)))


def delays(first: np.ndarray, start: int) -> tuple[np.ndarray, float]:
    """Days from the jump on day ``start`` (day 1) to the first alarm, and the share set aside for an earlier one."""
    early = first < start
    late = first[~early]
    return np.where(late == NEVER, NEVER, late - start + 1), float(early.mean())


def oracle_paths(errors: np.ndarray, jump: float) -> np.ndarray:
    llr = -np.log(jump) + errors**2 * (1 - 1 / jump**2) / 2
    out = np.zeros_like(errors)
    current = np.zeros(errors.shape[0])
    for day in range(errors.shape[1]):
        current = np.maximum(0.0, current + llr[:, day])
        out[:, day] = current
    return out


def describe(values: np.ndarray) -> str:
    missed = float((values == NEVER).mean()) if values.size else 0.0
    median, p90 = np.quantile(values, [0.5, 0.9]) if values.size else (np.nan, np.nan)
    text = f"median {_days(median)}, p90 {_days(p90)}"
    return text + (f" ({missed:.1%} not caught in {YEAR} days)" if missed else "")


def _days(value: float) -> str:
    return "never" if value >= NEVER / 2 else f"{value:.0f}"


def calibrate(sims: int, rng: np.random.Generator) -> None:
    """Each threshold is the larger of its quantile with Gaussian and with t(4) steps: it holds for both."""
    for horizon in sorted(drift.THRESHOLDS):
        peaks = [simulate(horizon, sims, YEAR, rng, folds=drift.FAST_MIN_FOLDS, draw=draw)[0] for draw in DRAWS]
        limits = [float(np.quantile(full.max(axis=1), 1 - FULL_SHARE)) for full in peaks]
        print(f"THRESHOLDS h={horizon:>3}: {1 - FULL_SHARE:.0%} of a stable year's maximum = {_pair(limits)}")
    calibrate_fast(sims, rng)


def calibrate_fast(sims: int, rng: np.random.Generator) -> None:
    """The fast lane's two charts share its budget: each chart's yearly maximum is put in units of its own
    1 - FAST_SHARE quantile (the larger of Gaussian and t(4)), and the larger of the two, so scaled, gets
    the 1 - FAST_SHARE quantile ``q``: the thresholds are each chart's quantile times ``q``."""
    for folds in sorted(drift.FAST_THRESHOLDS):
        peaks = []
        for draw in DRAWS:
            charts = drift.fast_charts(*_fast_z(draw(rng, (sims, YEAR)), draw(rng, (sims, folds))))
            peaks.append(np.stack([chart.max(axis=1) for chart in charts], axis=1))
        own = np.array([max(float(np.quantile(p[:, c], 1 - FAST_SHARE)) for p in peaks) for c in (0, 1)])
        either = [float(np.quantile((p / own).max(axis=1), 1 - FAST_SHARE)) for p in peaks]
        first, second = own * max(either)
        print(
            f"FAST_THRESHOLDS folds={folds:>4}: {first:.2f}, FAST_SECOND_THRESHOLDS {second:.2f} "
            f"(scale {_pair(either)})"
        )


def _pair(limits: list[float]) -> str:
    return f"{max(limits):.2f} (gaussian {limits[0]:.2f}, t(4) {limits[1]:.2f})"


def oracle(sims: int, rng: np.random.Generator) -> dict[float, np.ndarray]:
    """The oracle's delays after :data:`WARM_UP` stable days, by jump (and what it prints)."""
    late = {}
    days = WARM_UP + YEAR
    for jump in JUMPS:
        limit = float(np.quantile(oracle_paths(rng.standard_normal((sims, YEAR)), jump).max(axis=1), 0.95))
        from_jump, _ = delays(first_alarm(oracle_paths(rng.standard_normal((sims, YEAR)) * jump, jump), limit), 0)
        errors = rng.standard_normal((sims, days))
        errors[:, WARM_UP:] *= jump
        late[jump], early = delays(first_alarm(oracle_paths(errors, jump), limit), WARM_UP)
        print(
            f"oracle {jump}x: threshold {limit:.2f}; from the jump {describe(from_jump)}"
            f"; after {WARM_UP} stable days {describe(late[jump])} ({early:.1%} alarmed before)"
        )
    return late


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=20261127)
    parser.add_argument("--horizons", type=int, nargs="+", default=[7, 30])
    parser.add_argument("--folds", type=int, nargs="+", default=[100, 500], help="Backtest folds of the fast lane")
    parser.add_argument("--calibrate", action="store_true")
    parser.add_argument("--calibrate-fast", action="store_true", help="Only the fast lane's thresholds")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    if args.calibrate or args.calibrate_fast:
        (calibrate_fast if args.calibrate_fast else calibrate)(args.sims, rng)
        return
    print(
        f"{args.sims} simulated years per cell, seed {args.seed}; full lane: reference jump "
        f"{drift.REFERENCE_JUMP}x, {FOLDS} folds; fast lane: reference jump {drift.FAST_REFERENCE_JUMP}x, "
        f"and {drift.FAST_SECOND_JUMP}x, winsorized at {drift.FAST_CAP:g} robust variances, omega over "
        f"{drift.FAST_LAGS} lag(s)"
    )
    late_oracle = oracle(args.sims, rng)
    for folds in args.folds:
        for horizon in args.horizons:
            limits = f"full {drift.threshold(horizon):.2f}, 1-step {drift.fast_threshold(folds):.2f}"
            print(f"\nh={horizon}, fast lane from {folds} backtest folds: thresholds {limits}")
            for name, draw in zip(("gaussian", "t(4)"), DRAWS):
                full, fast = simulate(horizon, args.sims, YEAR, rng, folds=folds, draw=draw)
                either = float((monitor_alarm(full, fast, horizon, folds) < NEVER).mean())
                alone = float((full.max(axis=1) > drift.threshold(horizon)).mean())
                quick = float((fast.max(axis=1) > drift.fast_threshold(folds)).mean())
                print(
                    f"  false-alarm years, {name} steps: {either:.1%} (target <= 5%; full lane {alone:.1%}, "
                    f"1-step lane {quick:.1%})"
                )
            for jump in JUMPS:
                full, fast = simulate(horizon, args.sims, WARM_UP + YEAR, rng, jump, folds)
                late, early = delays(monitor_alarm(full, fast, horizon, folds), WARM_UP)
                oracle_p90 = float(np.quantile(late_oracle[jump], 0.9))
                p90 = float(np.quantile(late, 0.9))
                ratio = f"{p90 / oracle_p90:.2f}" if p90 < NEVER / 2 else "inf"
                print(
                    f"  {jump}x: monitor {describe(late)}; oracle {describe(late_oracle[jump])}; "
                    f"p90 ratio {ratio} (target <= 1.5 at h=7); {early:.1%} alarmed before the jump"
                )
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
