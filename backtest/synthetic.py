"""A deterministic USD/CLP-like daily series, for machines without the real data.

:func:`synthetic_usdclp` simulates pesos per dollar on every business day (Monday to Friday) from
2000-01-03 to 2026-05-18, starting at 530:

* the log-price is a random walk whose daily shocks have GARCH(1,1) volatility (calm stretches and
  turbulent ones, about 10% a year on average) and Student-t tails;
* it reverts a little (half-life about a year) toward a level that itself drifts slowly, from 530
  toward about 900 pesos, with a random wander of its own; the level is kept between 450 and 1000;
* values are rounded to cents.

The same seed gives the same series, value for value. Write it as a ``date,value`` CSV with::

    python -m backtest.synthetic --output data/usdclp_synthetic.csv --seed 20260518

It is a stand-in for tests and examples, not a model of the peso: nothing in it is calibrated beyond
its range, its volatility and its calendar.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["DEFAULT_SEED", "synthetic_usdclp", "to_csv", "main"]

DEFAULT_SEED = 20260518
FIRST, LAST = "2000-01-03", "2026-05-18"
START = 530.0
TRADING_DAYS = 252

_ANNUAL_VOL = 0.10  # long-run volatility of the daily shocks
_ARCH, _GARCH = 0.06, 0.92  # GARCH(1,1) reaction to yesterday's shock, persistence of yesterday's variance
_T_DEGREES = 6  # Student-t tails of the shocks
_HALF_LIFE = TRADING_DAYS  # days for half of a gap to the level to close
_LEVEL_END = 900.0  # where the level's trend heads by the last day
_LEVEL_VOL = 0.02  # annual volatility of the level's own wander
_LEVEL_FLOOR, _LEVEL_CAP = 450.0, 1000.0


def synthetic_usdclp(seed: int = DEFAULT_SEED) -> pd.Series:
    """Pesos per dollar on business days from 2000-01-03 to 2026-05-18, rounded to cents.

    Deterministic for a given ``seed``: the draws come from ``numpy.random.default_rng(seed)``.
    """
    dates = pd.bdate_range(FIRST, LAST, name="date")
    n = len(dates)
    rng = np.random.default_rng(seed)
    t_scale = math.sqrt(_T_DEGREES / (_T_DEGREES - 2))  # Student-t draws with unit variance
    shocks = rng.standard_t(_T_DEGREES, size=n) / t_scale
    wander = rng.standard_normal(n) * (_LEVEL_VOL / math.sqrt(TRADING_DAYS))

    long_run = _ANNUAL_VOL**2 / TRADING_DAYS
    omega = long_run * (1 - _ARCH - _GARCH)
    reversion = 1 - 0.5 ** (1 / _HALF_LIFE)
    trend = math.log(_LEVEL_END / START) / (n - 1)
    floor, cap = math.log(_LEVEL_FLOOR), math.log(_LEVEL_CAP)

    log_price = np.empty(n)
    log_price[0] = level = math.log(START)
    variance, previous = long_run, 0.0
    for i in range(1, n):
        variance = omega + _ARCH * previous**2 + _GARCH * variance
        level = min(max(level + trend + wander[i], floor), cap)
        previous = math.sqrt(variance) * shocks[i]
        log_price[i] = log_price[i - 1] + reversion * (level - log_price[i - 1]) + previous
    return pd.Series(np.round(np.exp(log_price), 2), index=dates, name="value")


def to_csv(series: pd.Series) -> str:
    """The series as ``date,value`` CSV text: ISO dates, two decimals, LF line endings."""
    rows = (f"{date:%Y-%m-%d},{value:.2f}" for date, value in series.items())
    return "\n".join(["date,value", *rows]) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write the synthetic series as a CSV; report one line on stderr."""
    parser = argparse.ArgumentParser(
        prog="python -m backtest.synthetic",
        description="Write a synthetic USD/CLP-like daily series as date,value CSV.",
    )
    parser.add_argument(
        "--output", type=Path, default=Path("data/usdclp_synthetic.csv"), help="CSV to write (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="Random seed (default: %(default)s)")
    args = parser.parse_args(argv)
    series = synthetic_usdclp(args.seed)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(to_csv(series).encode("ascii"))
    print(
        f"wrote {len(series)} business days {series.index[0]:%Y-%m-%d}..{series.index[-1]:%Y-%m-%d} "
        f"(min {series.min():.2f}, max {series.max():.2f}, seed {args.seed}) to {args.output}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
