"""Benchmark: calibration of the live drift test (``backtest.drift``) against an oracle CUSUM.

Run it as ``python tests/benchmarks/bench_drift.py [--sims 2000] [--calibrate]`` (about a minute on 2
cores). It never fails; it prints the figures the README quotes.

The simulated world: a random walk with standard normal steps, forecast every day by the no-change
model at horizon ``h``; a forecast's loss is its RMSE over its ``h`` steps, scored the day its last
target arrives. The champion's backtest is 100 folds of the same loss, ``h`` days apart, from an
independent stretch of the same walk. A year is 365 daily checks.

* **False alarms**: the share of stable years in which any daily check says ``drift``.
* **Detection delay**: after 90 stable days of live forecasts (years that alarmed before are set
  aside and counted), the walk's step scale jumps by 1.5x or 2x; the delay is the number of days from
  the jump to the first check that says ``drift``.
* **The oracle**: a CUSUM of the log-likelihood ratio of each day's new one-step error for the known
  jump (``-log c + e^2 (1 - 1/c^2) / 2``), its threshold set to 5% false-alarm years of 365 days. It
  is a lower bound no monitor of ``h``-day forecasts can beat; it is run both from the jump (the
  issue's figures: median 24 / p90 55 for 1.5x, 8 / 18 for 2x) and in the monitor's scenario.

``--calibrate`` prints the 95th percentile of each horizon's yearly maximum statistic: the values of
``backtest.drift.THRESHOLDS``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from backtest import drift

YEAR = 365
WARM_UP = 90
FOLDS = 100
JUMPS = (1.5, 2.0)


def naive_losses(steps: np.ndarray, horizon: int) -> np.ndarray:
    """Per-forecast RMSE of the no-change forecast from each origin of walks with ``steps`` (rows)."""
    level = np.concatenate([np.zeros((steps.shape[0], 1)), np.cumsum(steps, axis=1)], axis=1)
    origins = steps.shape[1] - horizon + 1
    total = np.zeros((steps.shape[0], origins))
    for step in range(1, horizon + 1):
        total += (level[:, step : step + origins] - level[:, :origins]) ** 2
    return np.sqrt(total / horizon)


def simulate(horizon: int, sims: int, days: int, rng: np.random.Generator, jump: float = 1.0) -> np.ndarray:
    """The statistic of every daily check: column ``d`` is the check on day ``d`` (0 while too few)."""
    backtest = naive_losses(rng.standard_normal((sims, FOLDS * horizon + horizon)), horizon)[:, ::horizon][:, :FOLDS]
    steps = rng.standard_normal((sims, days + horizon))
    steps[:, WARM_UP:] *= jump
    live = naive_losses(steps, horizon)[:, : days - horizon + 1]  # origin i is scored on day i + h
    log_b = np.log(backtest)
    spread = log_b.std(axis=1, ddof=1, keepdims=True)
    z = (np.log(live) - log_b.mean(axis=1, keepdims=True)) / spread
    checks = np.zeros((sims, days))
    checks[:, horizon - 1 :] = drift.statistic_path(z, horizon, spread[:, 0])
    return checks


def first_alarm(statistic: np.ndarray, limit: float) -> np.ndarray:
    alarm = statistic > limit
    return np.where(alarm.any(axis=1), alarm.argmax(axis=1), np.iinfo(np.int64).max)


def delays(first: np.ndarray, start: int) -> tuple[np.ndarray, float]:
    """Days from the jump at ``start`` to the first alarm, and the share set aside for an earlier alarm."""
    early = first < start
    return first[~early] - start, float(early.mean())


def oracle_paths(errors: np.ndarray, jump: float) -> np.ndarray:
    llr = -np.log(jump) + errors**2 * (1 - 1 / jump**2) / 2
    out = np.zeros_like(errors)
    current = np.zeros(errors.shape[0])
    for day in range(errors.shape[1]):
        current = np.maximum(0.0, current + llr[:, day])
        out[:, day] = current
    return out


def describe(values: np.ndarray) -> str:
    finite = values[values < 10**9]
    missed = 1 - finite.size / max(values.size, 1)
    median, p90 = np.quantile(values, [0.5, 0.9]) if values.size else (np.nan, np.nan)
    text = f"median {_days(median)}, p90 {_days(p90)}"
    return text + (f" ({missed:.1%} not caught in {YEAR - WARM_UP} days)" if missed else "")


def _days(value: float) -> str:
    return "never" if value >= 10**9 else f"{value:.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=20261127)
    parser.add_argument("--horizons", type=int, nargs="+", default=[7, 30])
    parser.add_argument("--calibrate", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    if args.calibrate:
        for horizon in (1, 7, 15, 30, 90):
            peak = simulate(horizon, args.sims, YEAR, rng).max(axis=1)
            print(f"h={horizon:>3}: 95th percentile of a stable year's maximum = {np.quantile(peak, 0.95):.2f}")
        return

    print(f"{args.sims} simulated years per cell, seed {args.seed}, reference jump {drift.REFERENCE_JUMP}x")
    days = WARM_UP + YEAR
    oracle = {}
    for jump in JUMPS:
        limit = float(np.quantile(oracle_paths(rng.standard_normal((args.sims, YEAR)), jump).max(axis=1), 0.95))
        from_jump = first_alarm(oracle_paths(rng.standard_normal((args.sims, YEAR)) * jump, jump), limit) + 1
        errors = rng.standard_normal((args.sims, days))
        errors[:, WARM_UP:] *= jump
        late, early = delays(first_alarm(oracle_paths(errors, jump), limit) + 1, WARM_UP)
        oracle[jump] = (from_jump, late, early, limit)
        print(
            f"oracle {jump}x: threshold {limit:.2f}; from the jump {describe(from_jump)}; "
            f"after {WARM_UP} stable days {describe(late)} ({early:.1%} alarmed before)"
        )
    for horizon in args.horizons:
        limit = drift.threshold(horizon)
        stable = simulate(horizon, args.sims, YEAR, rng)
        false_alarms = float((stable.max(axis=1) > limit).mean())
        print(f"\nh={horizon}: threshold {limit:.2f}; false-alarm years {false_alarms:.1%} (target <= 5%)")
        for jump in JUMPS:
            late, early = delays(first_alarm(simulate(horizon, args.sims, days, rng, jump), limit), WARM_UP)
            oracle_p90 = float(np.quantile(oracle[jump][1], 0.9))
            p90 = float(np.quantile(late, 0.9))
            ratio = f"{p90 / oracle_p90:.2f}" if p90 < 10**9 else "inf"
            print(
                f"  {jump}x: monitor {describe(late)}; oracle {describe(oracle[jump][1])}; "
                f"p90 ratio {ratio} (target <= 1.5 at h=7); {early:.1%} alarmed before the jump"
            )
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
