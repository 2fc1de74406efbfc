"""Replay the USD/CLP forecasting service, 2025-2026: what ``forecast-mlflow monitor`` says and would have said.

Run it from the repository's root as ``python -m tests.benchmarks.replay_usdclp_live [--series CSV]
[--workdir DIR]`` (about two minutes on 2 cores). It never fails on a finding; it prints the figures the
README's "USD/CLP, 2025-2026" paragraph quotes. Everything happens in a temporary folder (``--workdir``
keeps it) with its own ``sqlite:///`` store: never the repository's ``data/mlflow``.

1. **The champion.** The main job (``pytest tests/forecasters --mlflow-experiment forecaster_30d
   --mlflow-promote``) runs on the official series cut at :data:`CUT`, in a subprocess, so the model
   registered as ``forecaster_30d@champion`` knows nothing after it.
2. **The service.** ``forecast-mlflow forecast --origin START..END`` backfills what the service would
   have forecast on every date of the series from :data:`LIVE_START` to its end, at each horizon.
3. **The monitor, as of the end**: ``forecast-mlflow monitor`` against the full series (its table, and
   where the plot ``plots/<label>_live_vs_backtest.png`` is). **Day by day**: the check the monitor makes
   (:func:`backtest.drift.assess` on the forecasts scored so far) on each date of the series, as if the
   data ended that day: the first alarm per horizon and lane, and every day in drift.
4. **A synthetic break**: a copy of the series whose every daily move from :data:`BREAK` on is doubled,
   forecast by the same champion into its own live experiment and checked day by day: business days
   from the break (its day counting as 1) to the first alarm, per horizon and lane.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from backtest import drift
from backtest.data import load_series
from pytest_forecast_mlflow.cli.main import main as cli

if TYPE_CHECKING:
    from pytest_forecast_mlflow.tracking.live import LiveTracker

ROOT = Path(__file__).resolve().parents[2]
SERIES = ROOT.parent / "shared" / "data" / "usdclp_daily.csv"
"""The official series, where the project's ini key ``usdclp_series`` points (outside the repository)."""
CUT = "2024-12-30"
LIVE_START = "2025-01-02"
BREAK = "2025-09-01"
BREAK_FACTOR = 2.0
EXPERIMENT = "forecaster_30d"
MODEL = f"models:/{EXPERIMENT}@champion"
LABELS = ("7d", "15d", "30d", "90d")


# ------------------------------------------------------------------------------------------ series


def write_series(series: pd.Series, path: Path) -> Path:
    """``series`` as the ``date,value`` CSV every command reads."""
    series.rename_axis("date").rename("value").to_csv(path)
    return path


def inject_break(series: pd.Series, start: str, factor: float) -> pd.Series:
    """A copy of ``series`` whose every daily move into a date on or after ``start`` is ``factor`` times larger."""
    values = series.to_numpy(dtype=float).copy()
    first = int(series.index.searchsorted(pd.Timestamp(start)))
    if not 0 < first < len(values):
        raise ValueError(f"break date {start} is not inside the series ({series.index[0]} .. {series.index[-1]})")
    moves = np.diff(values[first - 1 :]) * factor
    values[first:] = values[first - 1] + np.cumsum(moves)
    return pd.Series(values, index=series.index, name=series.name)


def business_days(index: pd.Index, start: str, when: pd.Timestamp) -> int:
    """Dates of the series from ``start`` to ``when``, both counted: the day of ``start`` is day 1."""
    return int(((index >= pd.Timestamp(start)) & (index <= when)).sum())


# ------------------------------------------------------------------------------------- the champion


def make_champion(store_uri: str, series_csv: Path, workdir: Path) -> str:
    """Run the main job on ``series_csv`` with ``--mlflow-promote`` against ``store_uri``; its output.

    The session runs from ``workdir`` with the repository as rootdir, so nothing lands in the repository.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "FORECAST_", "USDCLP_"))}
    env.update(USDCLP_SERIES=str(series_csv), MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-c", str(ROOT / "pyproject.toml")]
    command += ["--rootdir", str(ROOT), str(ROOT / "tests" / "forecasters"), "-q"]
    command += ["--mlflow-experiment", EXPERIMENT, "--mlflow-tracking-uri", store_uri, "--mlflow-promote"]
    done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the main job failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done.stdout


# --------------------------------------------------------------------------------- service, monitor


def backfill(store_uri: str, model: str, series_csv: Path, labels: Sequence[str], start: str, experiment: str) -> None:
    """``forecast-mlflow forecast --origin START..END`` at each label, from ``start`` to the series' end."""
    end = str(load_series(series_csv).index[-1].date())
    for label in labels:
        args = ["--model", model, "--series", str(series_csv), "--label", label, "--origin", f"{start}..{end}"]
        code = cli(["forecast", "--tracking-uri", store_uri, *args, "--experiment", experiment])
        if code != 0:
            raise RuntimeError(f"forecast-mlflow forecast failed at {label} ({code})")


def monitor(store_uri: str, experiment: str, series_csv: Path) -> int:
    """``forecast-mlflow monitor``: its table goes to stdout."""
    return cli(["monitor", "--tracking-uri", store_uri, "--experiment", experiment, "--series", str(series_csv)])


@contextlib.contextmanager
def tracker(store_uri: str, experiment: str) -> Iterator[LiveTracker]:
    """A :class:`~pytest_forecast_mlflow.tracking.live.LiveTracker` on the store, closed afterwards."""
    from pytest_forecast_mlflow.cli.base import connection_for
    from pytest_forecast_mlflow.tracking.live import LiveTracker

    with connection_for(argparse.Namespace(tracking_uri=store_uri, artifact_root=None), "replaying") as connection:
        yield LiveTracker(connection, experiment)


def plot_paths(store_uri: str, experiment: str) -> dict[str, str]:
    """Where each live run's ``plots/<label>_live_vs_backtest.png`` is, by label."""
    with tracker(store_uri, experiment) as live:
        out = {}
        for run in live.runs():
            for item in live.client.list_artifacts(run.run_id, "plots"):
                uri = live.client.get_run(run.run_id).info.artifact_uri
                out[run.label] = f"{uri.removeprefix('file://')}/{item.path}"
        return out


# ----------------------------------------------------------------------------------- day by day


@dataclass(frozen=True)
class Daily:
    """One horizon's checks on every date, as if the series ended that day."""

    label: str
    folds: int  # backtest folds the 1-step lane learned from
    dates: tuple[pd.Timestamp, ...]
    results: tuple[drift.DriftResult, ...]

    def alarms(self, lane: str | None = None, since: str | None = None) -> list[pd.Timestamp]:
        """Dates a check says drift (``lane``: only those where that lane passes its threshold)."""
        out = []
        for when, r in zip(self.dates, self.results):
            fast = r.fast_scored >= drift.FAST_MIN and r.fast_statistic > r.fast_threshold
            full = r.scored >= drift.min_forecasts(r.horizon) and r.statistic > r.threshold
            hit = {"1-step": fast, "full": full, None: r.verdict == "drift"}[lane]
            if hit and (since is None or when >= pd.Timestamp(since)):
                out.append(when)
        return out


def daily_checks(store_uri: str, experiment: str, series: pd.Series, metric: str = "rmse") -> list[Daily]:
    """Each live run's drift check on every date from its first origin, on what had arrived by then.

    The same pieces as ``monitor`` (:func:`~pytest_forecast_mlflow.tracking.live.score_forecasts`, the
    backtest's per-fold losses and one-step errors, :func:`backtest.drift.assess`), cut at each date.
    """
    from pytest_forecast_mlflow.tracking.live import ModelRef, score_forecasts

    out = []
    with tracker(store_uri, experiment) as live:
        for run in live.runs():
            ref = ModelRef(run.model, run.version)
            backtest = live.horizons(ref)[run.label].fold_metrics[metric]
            one_step = live.one_step_errors(ref, run.label)
            scored = score_forecasts(series, live.read(run), metric)
            first_target = np.array([series.index.searchsorted(pd.Timestamp(s.origin), side="right") for s in scored])
            last_target = first_target + np.array([s.horizon for s in scored]) - 1
            dates, results = [], []
            for day in range(int(first_target.min()), len(series)):
                arrived = first_target <= day
                complete = [s.loss for s, last in zip(scored, last_target) if last <= day and s.complete]
                errors = [s.first_error for s, ok in zip(scored, arrived) if ok]
                dates.append(series.index[day])
                results.append(drift.assess(complete, backtest, run.horizon, errors, one_step))
            out.append(Daily(run.label, len(one_step), tuple(dates), tuple(results)))
    return out


def _date(when: pd.Timestamp | None) -> str:
    return "never" if when is None else str(when.date())


def describe_daily(checks: Sequence[Daily]) -> str:
    """First alarm per horizon and lane, and the days in drift, of a day-by-day replay."""
    lines = []
    for c in checks:
        days = c.alarms()
        fast, full = c.alarms("1-step"), c.alarms("full")
        lines.append(
            f"  {c.label:>4}: first alarm {_date(days[0] if days else None)} (1-step lane "
            f"{_date(fast[0] if fast else None)}, full lane {_date(full[0] if full else None)}); "
            f"{len(days)} day(s) in drift" + (f", the last {days[-1].date()}" if days else "")
        )
        if days:
            lines.append("        in drift: " + ", ".join(str(d.date()) for d in days))
    return "\n".join(lines)


def describe_break(checks: Sequence[Daily], index: pd.Index, start: str) -> str:
    """Business days from the break (day 1) to the first alarm on or after it, per horizon and lane."""
    lines = []
    for c in checks:
        cells = []
        for lane in (None, "1-step", "full"):
            after = c.alarms(lane, since=start)
            days = f"{business_days(index, start, after[0])} ({after[0].date()})" if after else "never"
            cells.append(f"{lane or 'monitor'} {days}")
        before = [d for d in c.alarms() if d < pd.Timestamp(start)]
        last = c.results[-1]
        lines.append(
            f"  {c.label:>4}: first alarm after the break, business days (date): "
            + ", ".join(cells)
            + f"; {len(before)} day(s) in drift before it; on {c.dates[-1].date()}: {last.explain()}"
        )
    return "\n".join(lines)


def typical_moves(series: pd.Series, since: str, live_start: str, freq: str = "Q") -> str:
    """Median absolute daily move of the backtest's span and of each live quarter (``freq="M"``: month) from
    ``live_start``: what the 1-step lane sees."""
    moves = series.diff().abs()
    parts = [f"backtest {since[:4]}..{CUT[:4]} {moves[since:CUT].median():.2f}"]
    live = moves[live_start:]
    for period, values in live.groupby(pd.PeriodIndex(live.index, freq=freq)):
        parts.append(f"{period} {values.median():.2f}")
    return "median absolute daily move: " + ", ".join(parts)


# ------------------------------------------------------------------------------------------ main


def replay(series_path: Path, workdir: Path) -> None:
    started = time.perf_counter()
    series = load_series(series_path)
    store = f"sqlite:///{workdir / 'mlflow.db'}"
    cut_csv = write_series(series[:CUT], workdir / "usdclp_cut.csv")
    full_csv = write_series(series, workdir / "usdclp.csv")
    broken_csv = write_series(inject_break(series, BREAK, BREAK_FACTOR), workdir / "usdclp_break.csv")
    print(f"series {series_path}: {series.index[0].date()} .. {series.index[-1].date()}; store {store}")

    print(f"\n1. the main job on the series cut at {CUT} (--mlflow-promote)")
    tail = make_champion(store, cut_csv, workdir).strip().splitlines()
    print("   " + (tail[-1] if tail else ""))

    print(f"\n2. live forecasts from every date {LIVE_START} .. {series.index[-1].date()} at {', '.join(LABELS)}")
    backfill(store, MODEL, full_csv, LABELS, LIVE_START, f"{EXPERIMENT}-live")

    print(f"\n3. forecast-mlflow monitor as of {series.index[-1].date()}")
    monitor(store, f"{EXPERIMENT}-live", full_csv)
    for label, path in plot_paths(store, f"{EXPERIMENT}-live").items():
        print(f"   plot {label}: {path}")
    daily = daily_checks(store, f"{EXPERIMENT}-live", series)
    print("\n   checked every day (the check on each date, as if the series ended there):")
    print("   backtest folds of the 1-step lane: " + ", ".join(f"{c.label} {c.folds}" for c in daily))
    print(describe_daily(daily))
    print("   " + typical_moves(series, "2016-01-04", LIVE_START))

    print(f"\n4. every daily move from {BREAK} on times {BREAK_FACTOR:g}, checked every day")
    backfill(store, MODEL, broken_csv, LABELS, LIVE_START, f"{EXPERIMENT}-live-break")
    broken = daily_checks(store, f"{EXPERIMENT}-live-break", load_series(broken_csv))
    print(describe_break(broken, series.index, BREAK))
    print("   doubled series, " + typical_moves(load_series(broken_csv), "2016-01-04", BREAK, freq="M"))
    print(f"\n{time.perf_counter() - started:.0f} s")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=Path, default=SERIES, help=f"The official series (default {SERIES})")
    parser.add_argument("--workdir", type=Path, help="Keep the store and the plots here (default: a temporary folder)")
    args = parser.parse_args(argv)
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        replay(args.series, args.workdir.resolve())
        return
    with tempfile.TemporaryDirectory(prefix="replay-usdclp-") as tmp:
        replay(args.series, Path(tmp))


if __name__ == "__main__":
    main()
