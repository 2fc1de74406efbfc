"""``forecast-mlflow champion``: show the champion, its history, roll it back, promote by hand, rank versions.

::

    forecast-mlflow champion show     [--model NAME] [--alias ALIAS]
    forecast-mlflow champion history  [--model NAME] [--alias ALIAS]
    forecast-mlflow champion rollback [--model NAME] [--to VERSION] --reason TEXT [--dry-run]
    forecast-mlflow champion promote  [--model NAME] --version N --reason TEXT [--dry-run]
    forecast-mlflow champion best     [--model NAME] [--metric all/rmse_mean]

Arguments and text only: the work is :class:`~pytest_forecast_mlflow.tracking.registry.Registry` (moves,
checks, ranking) and :mod:`pytest_forecast_mlflow.tracking.history` (the record of every move). mlflow
is imported inside the commands. Exit codes: 0 done (or nothing to do), 1 refused or failed, nothing
changed, 2 usage.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, TextIO

from pytest_forecast_mlflow.cli.base import CliError, Parser, connection_for, positive_int, store_args
from pytest_forecast_mlflow.report import significant
from pytest_forecast_mlflow.settings import OPTIONS, default_of

if TYPE_CHECKING:
    from pytest_forecast_mlflow.tracking.history import AliasEvent
    from pytest_forecast_mlflow.tracking.registry import ChampionReport, Move, RankedVersion, Registry

DEFAULT_ALIAS: str = default_of("forecast_alias")
DEFAULT_RANKING = f"all/{default_of('forecast_gate_metrics')[0]}_mean"
# the variables the plugin reads the registered model (else the experiment) and the alias from
_ENV = {option.ini: option.env or "" for option in OPTIONS}
MODEL_ENVS = (_ENV["forecast_registered_model"], _ENV["mlflow_experiment"])
ALIAS_ENV = _ENV["forecast_alias"]

KIND_TEXT = {
    "bootstrap": "bootstrap (first champion, promoted by a gated session)",
    "promotion": "promotion by a gated session",
    "rollback": "rollback",
    "manual": "manual promotion (ungated)",
    "external": "external (moved outside forecast-mlflow, unrecorded)",
}


# ------------------------------------------------------------------------------------------- text


def _version(version: str | None) -> str:
    return f"v{version}" if version else "-"


def _who(event: AliasEvent) -> str:
    if event.kind == "external":
        return "?"
    who = f"{event.user}@{event.host}" if event.host else event.user or "?"
    return f"{who} (CI {event.ci})" if event.ci else who


def _when(event: AliasEvent) -> str:
    return event.time.replace("T", " ") if event.time else "unknown"


def _verdict(event: AliasEvent) -> str:
    return event.verdict if event.gated else "ungated" if event.kind in ("manual", "rollback") else "-"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Left-aligned columns two spaces apart; the last column is not padded."""
    widths = [max(len(line[k]) for line in [headers, *rows]) for k in range(len(headers) - 1)]
    return [
        "  ".join([*(cell.ljust(w) for cell, w in zip(line, widths, strict=False)), line[-1]]).rstrip()
        for line in [headers, *rows]
    ]


def format_history(name: str, alias: str, moves: Sequence[AliasEvent]) -> str:
    """Every move of the alias, newest first."""
    if not moves:
        return f"alias {alias!r} of {name} has never been set\n"
    rows = [
        [
            _when(m),
            _version(m.from_version),
            _version(m.to_version),
            m.kind,
            _who(m),
            m.commit[:12] or "-",
            _verdict(m),
            m.reason or ("no record of who or why" if m.kind == "external" else "-"),
        ]
        for m in reversed(moves)
    ]
    lines = [f"history of alias {alias!r} of {name}, newest first:"]
    lines += _table(["time (UTC)", "from", "to", "kind", "who", "commit", "verdict", "reason"], rows)
    return "\n".join(lines) + "\n"


def _data_lines(data: dict[str, str]) -> list[str]:
    """One line per data fingerprint: ``first .. last, N points (sha256 ...)``, labelled when per horizon."""
    prefixes = sorted({key[: key.index("data.")] for key in data})
    lines = []
    for prefix in prefixes:

        def get(field: str, prefix: str = prefix) -> str:
            return data.get(f"{prefix}data.{field}", "?")

        label = f"{prefix.rstrip('.')}: " if prefix else ""
        lines.append(f"{label}{get('first')} .. {get('last')}, {get('length')} points (sha256 {get('sha256')[:12]})")
    return lines or ["not recorded"]


def format_show(report: ChampionReport, shown_uri: str) -> str:
    since = report.since
    how = KIND_TEXT.get(since.kind, since.kind)
    by = "" if since.kind == "external" else f" by {_who(since)}"
    reason = f': "{since.reason}"' if since.reason else ""
    own = f"verdict {report.registered_verdict or '?'} against {report.registered_baseline or '?'}"
    if since.gated:
        gate = f"verdict {since.verdict} against {since.baseline or 'none'}"
    else:
        gate = f"ungated ({since.kind}); its own session's {own}"
    git = report.git
    commit = git.get("git.commit", "")[:12] or "not recorded"
    if git.get("git.branch"):
        commit += f" (branch {git['git.branch']})"
    if git.get("git.dirty") == "true":
        commit += ", with uncommitted changes"
    rows = [
        ("version", f"v{report.version}, run {report.run_id[:8] or '?'} {report.run_name}, {report.run_status}"),
        ("since", f"{_when(since)}: {how}{by}{reason}"),
        ("gate", gate),
        *(("data", line) for line in _data_lines(report.data)),
        ("commit", commit),
    ]
    for label, values in report.aggregates.items():
        shown = "  ".join(
            f"{key.removesuffix('_mean')} {significant(value)}" for key, value in values.items() if key != "folds"
        )
        folds = values.get("folds")
        rows.append((label, f"{shown}  (means over {folds:.0f} folds)" if folds is not None else shown))
    width = max(len(key) for key, _ in rows)
    lines = [f"champion of {report.registered_model} (alias {report.alias!r}) in {shown_uri}:"]
    lines += [f"  {key.ljust(width)}  {value}" for key, value in rows]
    return "\n".join(lines) + "\n"


def format_move(move: Move) -> str:
    what = "roll back" if move.kind == "rollback" else "promote by hand"
    where = f"alias {move.alias!r} of {move.registered_model}"
    checked = f"checked: {'; '.join(move.checks)}\n" if move.checks else ""
    if move.event is None and not move.dry_run:
        return f"{where} already points at v{move.to_version}; nothing changed\n"
    if move.dry_run:
        return (
            f"dry run: would {what} {where} from {_version(move.from_version)} to v{move.to_version}\n"
            f"{checked}nothing changed (--dry-run)\n"
        )
    done = "rolled back" if move.kind == "rollback" else "promoted by hand (ungated)"
    entry = f"history entry {move.event.seq}" if move.event is not None else "history"
    return f"{done}: {where} moved from {_version(move.from_version)} to v{move.to_version} ({entry})\n{checked}"


def format_ranking(name: str, metric: str, direction: str, ranked: Sequence[RankedVersion]) -> str:
    if not ranked:
        return f"{name} has no registered versions yet\n"
    rows = []
    position = 0
    for item in ranked:
        if item.value is not None:
            position += 1
        rows.append(
            [
                str(position) if item.value is not None else "-",
                f"v{item.version}",
                significant(item.value) if item.value is not None else f"- (no {metric})",
                item.verdict or "-",
                item.run_id[:8] or "-",
                ", ".join(item.aliases) or "-",
            ]
        )
    lines = [
        f"versions of {name} ranked by {metric}, {direction} is better "
        "(a step-less aggregate over every fold of each version's backtest):"
    ]
    lines += _table(["rank", "version", metric, "verdict", "run", "aliases"], rows)
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------- commands


def _model_name(args: argparse.Namespace, registry: Registry) -> str:
    """``--model``, else the plugin's default (its registered-model, else experiment, variable), else the
    store's only registered model."""
    if args.model:
        return str(args.model)
    for variable in MODEL_ENVS:
        if os.environ.get(variable, "").strip():
            return os.environ[variable].strip()
    from pytest_forecast_mlflow.tracking.registry import registered_models

    names = registered_models(registry.client)
    if len(names) == 1:
        return names[0]
    raise CliError(
        f"name the registered model with --model (or {' / '.join(MODEL_ENVS)}); the store holds "
        f"{', '.join(names) if names else 'none yet'}",
        2,
    )


@contextlib.contextmanager
def _registry(args: argparse.Namespace) -> Iterator[tuple[Registry, str, str]]:
    """An open registry on the store of ``--tracking-uri``, the model name and the store as shown; the
    library's refusals (a TrackingError) and MLflow's errors become one-line :class:`CliError` (exit code 1)."""
    from pytest_forecast_mlflow.tracking.registry import Registry

    hint = ", or run the backtests with the plugin first"
    with connection_for(args, f"champion {args.action}", hint=hint) as connection:
        registry = Registry(connection)
        yield registry, _model_name(args, registry), store_args(args).shown


def cmd_show(args: argparse.Namespace, out: TextIO) -> int:
    with _registry(args) as (registry, name, shown):
        report = registry.describe(name, args.alias)
        out.write(format_show(report, shown))
        drift = (registry.client.get_model_version(name, report.version).tags or {}).get("forecast.drift")
        if drift:
            out.write(f"  DRIFT in live forecasts (forecast-mlflow monitor): {drift}\n")
    return 0


def cmd_history(args: argparse.Namespace, out: TextIO) -> int:
    with _registry(args) as (registry, name, _):
        out.write(format_history(name, args.alias, registry.history(name, args.alias)))
    return 0


def _reason(args: argparse.Namespace) -> str:
    reason = (args.reason or "").strip()
    if not reason and not args.dry_run:
        raise CliError(f"say why with --reason TEXT: it is recorded in the history ({args.action})", 2)
    return reason


def cmd_rollback(args: argparse.Namespace, out: TextIO) -> int:
    reason = _reason(args)
    to = None if args.to is None else str(args.to)
    with _registry(args) as (registry, name, _):
        out.write(format_move(registry.rollback(name, args.alias, to=to, reason=reason, dry_run=args.dry_run)))
    return 0


def cmd_promote(args: argparse.Namespace, out: TextIO) -> int:
    reason = _reason(args)
    with _registry(args) as (registry, name, _):
        move = registry.promote(name, args.alias, str(args.version), reason=reason, dry_run=args.dry_run)
        out.write(format_move(move))
    return 0


def cmd_best(args: argparse.Namespace, out: TextIO) -> int:
    from pytest_forecast_mlflow.tracking.registry import ranking_direction

    try:
        direction = ranking_direction(args.metric)
    except ValueError as exc:
        raise CliError(str(exc), 2) from None
    with _registry(args) as (registry, name, _):
        out.write(format_ranking(name, args.metric, direction, registry.rank(name, args.metric)))
    return 0


def add_parser(commands: argparse._SubParsersAction[Parser], common: Parser) -> None:
    model = Parser(add_help=False)
    model.add_argument(
        "--model",
        metavar="NAME",
        help=f"Registered model (default: ${MODEL_ENVS[0]}, else ${MODEL_ENVS[1]} as the plugin does, "
        "else the store's only registered model)",
    )
    model.add_argument(
        "--alias",
        default=os.environ.get(ALIAS_ENV) or DEFAULT_ALIAS,
        metavar="ALIAS",
        help=f"Alias marking the champion (default: ${ALIAS_ENV}, else {DEFAULT_ALIAS})",
    )
    move = Parser(add_help=False)
    move.add_argument("--reason", metavar="TEXT", help="Why; recorded in the history (required unless --dry-run)")
    move.add_argument("--dry-run", action="store_true", help="Run the checks and say what would change; change nothing")

    champion = commands.add_parser(
        "champion",
        parents=[common],
        help="The champion: show it, its history, roll back, promote by hand, rank versions",
        description="The registered version the gate compares against and a server serves "
        f"(models:/NAME@{DEFAULT_ALIAS}), and every move of its alias.",
    )
    actions = champion.add_subparsers(dest="action", metavar="ACTION", required=True)
    parents = [common, model]

    show = actions.add_parser(
        "show", parents=parents, help="The champion: version, how it got there, verdict, data, commit, aggregates"
    )
    show.set_defaults(handler=cmd_show)
    history = actions.add_parser("history", parents=parents, help="Every move of the alias, newest first")
    history.set_defaults(handler=cmd_history)

    rollback = actions.add_parser(
        "rollback",
        parents=[*parents, move],
        help="Move the alias back, after checking the version loads and forecasts",
        description="Move the alias back to the previous champion in the history (or --to VERSION) once its "
        "run FINISHED, its fold manifests exist and its model loads and forecasts. Repeated rollbacks "
        "walk further back.",
    )
    rollback.add_argument("--to", type=positive_int, metavar="VERSION", help="Version to roll back to")
    rollback.set_defaults(handler=cmd_rollback)

    promote = actions.add_parser(
        "promote",
        parents=[*parents, move],
        help="Make a version champion by hand (recorded as manual, ungated)",
        description="A deliberate promotion without a gated session, after the same checks as rollback.",
    )
    promote.add_argument("--version", type=positive_int, required=True, metavar="N", help="Version to promote")
    promote.set_defaults(handler=cmd_promote)

    best = actions.add_parser(
        "best",
        parents=parents,
        help="Rank registered versions by a step-less aggregate of their backtest",
        description="Rank the registered versions by a step-less aggregate such as 30d/rmse_mean (never by a "
        "per-fold metric, which MLflow ranks by its last fold).",
    )
    best.add_argument(
        "--metric",
        default=DEFAULT_RANKING,
        metavar="LABEL/METRIC_AGG",
        help=f"Aggregate to rank by: LABEL/METRIC_mean, _median or _pooled (default: {DEFAULT_RANKING})",
    )
    best.set_defaults(handler=cmd_best)
