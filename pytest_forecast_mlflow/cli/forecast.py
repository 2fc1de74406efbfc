"""``forecast-mlflow forecast``: forecast with a registered model and record it as a live forecast.

::

    forecast-mlflow forecast --model models:/NAME@champion --series CSV --label 30d
                             [--origin DATE | --origin START..END] [--experiment NAME] [--history N]

Arguments and text only: the work is :mod:`pytest_forecast_mlflow.tracking.live`. Exit codes: 0
recorded (or already recorded), 1 failed, nothing recorded, 2 usage.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, TextIO

from pytest_forecast_mlflow.cli.base import CliError, Parser, connection_for, whole_number
from pytest_forecast_mlflow.report import significant

if TYPE_CHECKING:
    import pandas as pd

    from pytest_forecast_mlflow.tracking.live import LiveForecast, Recorded


def load_series_arg(path: str) -> pd.Series:
    """``--series``: a validated ``date,value`` CSV, or a usage error naming what is wrong with it."""
    from backtest.data import DataError, load_series

    try:
        return load_series(path)
    except DataError as exc:
        raise CliError(f"--series: {exc}", 2) from None


def format_recorded(recorded: Recorded, experiment: str, skipped_note: bool = True) -> str:
    new = recorded.new
    if not new:
        return f"nothing new: {recorded.skipped} forecast(s) already recorded in experiment {experiment!r}\n"
    first, last = new[0], new[-1]
    span = first.origin if len(new) == 1 else f"{first.origin} .. {last.origin}"
    lines = [
        f"recorded {len(new)} forecast(s) of {first.model} v{first.version} at {first.label} "
        f"(horizon {first.horizon}) from {span} in experiment {experiment!r}, run {recorded.run_id[:8]}"
        + (f"; {recorded.skipped} already recorded" if recorded.skipped and skipped_note else "")
        + f" ({recorded.seconds:.1f} s)"
    ]
    if len(new) == 1:
        lines.append(_one(first))
    return "\n".join(lines) + "\n"


def _one(fc: LiveForecast) -> str:
    shown = ", ".join(significant(v) for v in fc.values[:5]) + (", ..." if len(fc.values) > 5 else "")
    text = f"  forecast: {shown} (last {significant(fc.values[-1])})"
    if fc.lower is not None and fc.upper is not None:
        text += f"; interval at the last step {significant(fc.lower[-1])} .. {significant(fc.upper[-1])}"
    return text


def cmd_forecast(args: argparse.Namespace, out: TextIO) -> int:
    from pytest_forecast_mlflow.tracking.live import forecast_and_record, parse_model_uri

    try:
        name = parse_model_uri(args.model)[0]
    except ValueError as exc:
        raise CliError(f"--model: {exc}", 2) from None
    series = load_series_arg(args.series)
    experiment = args.experiment or f"{name}-live"
    with connection_for(args, "recording a live forecast") as connection:
        try:
            recorded, _ = forecast_and_record(
                connection,
                args.model,
                series,
                label=args.label,
                origin=args.origin,
                experiment=experiment,
                history=args.history,
            )
        except ValueError as exc:  # an origin the series cannot serve
            raise CliError(f"--origin: {exc}", 2) from None
    out.write(format_recorded(recorded, experiment))
    return 0


def _history(text: str) -> int:
    value = whole_number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be 0 (all) or more")
    return value


def add_parser(commands: argparse._SubParsersAction[Parser], common: Parser) -> None:
    parser = commands.add_parser(
        "forecast",
        parents=[common],
        help="Forecast with a registered model and record it as a live forecast",
        description="Load a registered model, forecast from the series up to and including each origin (never "
        "later), and record origin, label, model version and interval (if the model gives one) in the live "
        "experiment. A range of origins backfills what the service would have forecast on each date.",
    )
    parser.add_argument("--model", required=True, metavar="URI", help="models:/NAME@champion or models:/NAME/3")
    parser.add_argument("--series", required=True, metavar="CSV", help="The series, a date,value CSV")
    parser.add_argument("--label", required=True, metavar="LABEL", help="The horizon label, as backtested: 30d")
    parser.add_argument(
        "--origin",
        metavar="DATE|START..END",
        help="Forecast from this date (default: the series' last), or from every date in START..END",
    )
    parser.add_argument("--experiment", metavar="NAME", help="Live experiment (default: <NAME>-live)")
    parser.add_argument(
        "--history",
        type=_history,
        default=1000,
        metavar="N",
        help="Values before each origin handed to the model (default 1000; 0: all)",
    )
    parser.set_defaults(handler=cmd_forecast)
