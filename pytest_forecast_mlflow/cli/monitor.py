"""``forecast-mlflow monitor``: score live forecasts whose dates have arrived, test for drift, alert.

::

    forecast-mlflow monitor --experiment NAME --series CSV [--metric rmse] [--notify URL ...] [--fail-on-drift]

Arguments and text only: scoring, logging and tagging are :func:`pytest_forecast_mlflow.tracking.live.monitor`,
the test is :mod:`backtest.drift`, delivery is :mod:`pytest_forecast_mlflow.notify`. Exit codes: 0 no
drift (or drift without ``--fail-on-drift``), 1 drift with ``--fail-on-drift`` or a failure, 2 usage.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, TextIO

from pytest_forecast_mlflow.cli.base import CliError, Parser, connection_for
from pytest_forecast_mlflow.cli.champion import _table
from pytest_forecast_mlflow.cli.forecast import load_series_arg
from pytest_forecast_mlflow.report import significant

if TYPE_CHECKING:
    from pytest_forecast_mlflow.tracking.live import HorizonCheck

DEFAULT_METRIC = "rmse"


def _number(value: float) -> str:
    return "-" if value is None or not math.isfinite(value) else significant(value)


def format_checks(checks: Sequence[HorizonCheck], experiment: str, source: str) -> str:
    """The gate-like table: one row per model version and horizon."""
    metric = checks[0].metric
    rows = []
    for check in checks:
        r = check.result
        scored = str(check.complete)
        if check.partial:
            scored += f" (+{check.partial} partial)"
        rows.append(
            [
                check.who,
                check.run.label,
                scored,
                _number(r.live_error),
                _number(r.backtest_error),
                _number(r.ratio),
                r.lane_text("1-step"),
                r.lane_text("full"),
                r.verdict,
            ]
        )
    headers = ["model", "horizon", "forecasts scored", f"live {metric}", f"backtest {metric}", "ratio"]
    headers += ["1-step lane", "full lane", "verdict"]
    lines = [f"live forecasts of experiment {experiment!r} against {source} (to {checks[0].as_of}):"]
    lines += ["  " + line for line in _table(headers, rows)]
    partial = [c for c in checks if c.partial]
    if partial:
        lines.append(
            "partial: forecasts whose last target dates have not arrived are scored on their realized steps "
            "(mean " + ", ".join(f"{c.run.label} {_number(c.partial_error)}" for c in partial) + ") and left out "
            "of the test and the logged errors until complete"
        )
    lines.append(
        "lanes: statistic / threshold of the CUSUM on each day's one-step errors (1-step) and on whole "
        "forecasts once complete (full); drift when either passes its threshold"
    )
    few = [c for c in checks if c.result.verdict == "too few"]
    if few:
        from backtest.drift import FAST_MIN, min_forecasts

        lines.append(
            "too few: "
            + ", ".join(
                f"{c.run.label} needs {FAST_MIN} one-step errors or {min_forecasts(c.run.horizon)} complete forecasts"
                for c in few
            )
        )
    logged = sum(c.logged for c in checks)
    lines.append(f"logged {logged} new per-forecast error(s)" if logged else "nothing new to log")
    return "\n".join(lines) + "\n"


def alert_text(drifted: Sequence[HorizonCheck], experiment: str) -> tuple[str, str]:
    """Title and body of the one notification a check with drift sends."""
    title = f"forecast drift in {experiment}: " + ", ".join(f"{c.who} {c.run.label}" for c in drifted)
    body = "\n".join(
        f"{c.who} horizon {c.run.label}: verdict {c.result.verdict}, ratio {c.result.ratio:.2f} "
        f"(live {c.metric} {significant(c.result.live_error)} vs backtest {significant(c.result.backtest_error)} "
        f"over {c.result.scored} forecasts to {c.as_of}); {c.result.explain()}"
        for c in drifted
    )
    return title, body


def cmd_monitor(args: argparse.Namespace, out: TextIO) -> int:
    from backtest.metrics import get_metric
    from pytest_forecast_mlflow.tracking.live import monitor

    try:
        if get_metric(args.metric).direction != "lower":
            raise ValueError(f"{args.metric} is higher-is-better; the drift test watches a loss (rmse, mae, ...)")
    except ValueError as exc:
        raise CliError(f"--metric: {exc}", 2) from None
    series = load_series_arg(args.series)
    with connection_for(args, "monitoring live forecasts") as connection:
        checks = monitor(connection, args.experiment, series, args.metric)
    out.write(format_checks(checks, args.experiment, args.series))
    drifted = [c for c in checks if c.result.verdict == "drift"]
    if drifted:
        versions = sorted({c.who for c in drifted})
        out.write(
            f"drift: tagged {', '.join(versions)} forecast.drift in the registry (see forecast-mlflow champion show); "
            "consider forecast-mlflow champion rollback\n"
        )
        if args.notify:
            from pytest_forecast_mlflow.notify import send

            delivery = send(args.notify, *alert_text(drifted, args.experiment))
            if delivery.sent:
                out.write(f"notified {delivery.sent} URL(s)\n")
            for failure in delivery.failures:
                sys.stderr.write(f"forecast-mlflow monitor: warning: notification not delivered: {failure}\n")
    return 1 if drifted and args.fail_on_drift else 0


def add_parser(commands: argparse._SubParsersAction[Parser], common: Parser) -> None:
    parser = commands.add_parser(
        "monitor",
        parents=[common],
        help="Score live forecasts whose dates have arrived and test them for drift against the backtest",
        description="Score every live forecast of the experiment whose target dates are in the series, log the "
        "realized errors beside the backtest's, and test each horizon for drift: a CUSUM of each day's one-step "
        "errors and one of whole forecasts' losses, each against the champion's backtest (the second allows for "
        "overlapping forecasts).",
    )
    parser.add_argument("--experiment", required=True, metavar="NAME", help="The live experiment (<NAME>-live)")
    parser.add_argument("--series", required=True, metavar="CSV", help="The series with the realized values")
    parser.add_argument("--metric", default=DEFAULT_METRIC, metavar="NAME", help="Loss to watch (default rmse)")
    parser.add_argument(
        "--notify",
        action="append",
        default=[],
        metavar="URL",
        help="Apprise URL to alert on drift (slack://..., mailto://..., json://host:port/path); repeatable",
    )
    parser.add_argument("--fail-on-drift", action="store_true", help="Exit 1 when a horizon drifts")
    parser.set_defaults(handler=cmd_monitor)
