"""``forecast-mlflow dashboard``: the latest runs of each experiment, newest first, champion marked.

The store is read through :mod:`pytest_forecast_mlflow.tracking.views`; this module turns what it
returns into text (:func:`format_dashboard` is pure, tested without MLflow).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, TextIO

from pytest_forecast_mlflow.cli.base import CliError, Parser, positive_int, store_args
from pytest_forecast_mlflow.settings import default_of
from pytest_forecast_mlflow.store import first_line

if TYPE_CHECKING:
    from pytest_forecast_mlflow.tracking.views import Champion, RunSummary


# the dashboard shows what the gate compares by default
CHAMPION_ALIAS: str = default_of("forecast_alias")
DEFAULT_METRIC: str = default_of("forecast_gate_metrics")[0]
DEFAULT_LIMIT = 10


@dataclass(frozen=True)
class RunRow:
    """One run as the dashboard shows it; ``values`` maps a horizon label to ``H/<metric>_mean``."""

    run_id: str
    run_name: str
    start_time_ms: int | None
    model: str
    role: str
    commit: str
    dirty: bool
    verdict: str
    values: dict[str, float] = field(default_factory=dict)
    status: str = "FINISHED"

    @property
    def outcome(self) -> str:
        """The verdict column: the gate verdict of a finished run, else the run's state.

        A RUNNING run is "running" (its session is still writing, or died before the dashboard could
        tell), a KILLED one "killed", a FAILED one "failed": never the "pass" its tag may hold.
        """
        if self.status in ("", "FINISHED"):
            return self.verdict or "-"
        return self.status.lower()


@dataclass(frozen=True)
class ExperimentView:
    name: str
    rows: tuple[RunRow, ...]
    horizons: tuple[str, ...]
    champion: Champion | None
    registered_model: str


def _split_horizons(tag: str | None) -> list[str]:
    return [h.strip() for h in (tag or "").split(",") if h.strip()]


def run_row(run: RunSummary, metric: str, horizons: Sequence[str]) -> RunRow:
    """The fields of ``run`` the dashboard shows, from the plugin's convention tags and aggregates."""
    tags, metrics = run.tags, run.metrics
    return RunRow(
        run_id=run.run_id,
        run_name=run.run_name,
        start_time_ms=run.start_time_ms,
        model=tags.get("forecast.model", ""),
        role=tags.get("forecast.role", ""),
        commit=tags.get("mlflow.source.git.commit", "")[:7],
        dirty=tags.get("git.dirty", "").lower() in ("true", "1", "yes"),
        verdict=tags.get("forecast.verdict", ""),
        values={h: metrics[f"{h}/{metric}_mean"] for h in horizons if f"{h}/{metric}_mean" in metrics},
        status=run.status,
    )


def _horizons_of(runs: Sequence[RunSummary], metric: str) -> list[str]:
    """Horizon labels in the order the runs' ``forecast.horizons`` tags give them, newest run first."""
    seen: list[str] = []
    for run in runs:
        labels = _split_horizons(run.tags.get("forecast.horizons"))
        if not labels:  # a run without the tag still shows its metrics
            suffix = f"/{metric}_mean"
            labels = sorted(k[: -len(suffix)] for k in run.metrics if k.endswith(suffix))
        seen.extend(h for h in labels if h not in seen)
    return seen


def _fmt_time(ms: int | None) -> str:
    return "-" if ms is None else datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M")


def _decimals(values: Sequence[float]) -> int:
    """Decimals that give the column's largest value four significant digits (0 to 6), for aligned points."""
    largest = max((abs(v) for v in values if math.isfinite(v)), default=0.0)
    if largest == 0.0:
        return 2
    return min(6, max(0, 3 - math.floor(math.log10(largest))))


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 2] + ".."


def format_experiment(view: ExperimentView, metric: str, limit: int) -> list[str]:
    """The lines of one experiment: a title with the champion, then a fixed-width table of runs.

    Text columns are left-aligned; each horizon column is right-aligned with one number of decimals.
    """
    champ = view.champion
    if champ is None:
        title = f"experiment {view.name}  (no {CHAMPION_ALIAS!r} alias on registered model {view.registered_model!r})"
    else:
        where = "" if any(r.run_id == champ.run_id for r in view.rows) else f", not among the latest {limit}"
        run = champ.run_id[:8] if champ.run_id else "?"
        title = (
            f"experiment {view.name}  ({CHAMPION_ALIAS}: {champ.registered_model} v{champ.version}, run {run}{where})"
        )
    if champ is not None and champ.drift:
        title += f"\n  DRIFT of the champion in live forecasts: {champ.drift}"
    if not view.rows:
        return [title, f"  no runs yet in experiment {view.name}"]

    text_headers = ["started", "run", "model", "role", "commit", "verdict"]
    text = [
        [
            _fmt_time(row.start_time_ms),
            _clip(row.run_name or row.run_id[:8], 28),
            _clip(row.model or "-", 20),
            row.role or "-",
            (row.commit + ("+" if row.dirty else "")) or "-",
            row.outcome,
        ]
        for row in view.rows
    ]
    numbers = []
    for horizon in view.horizons:
        column = [row.values.get(horizon) for row in view.rows]
        places = _decimals([v for v in column if v is not None])
        numbers.append(["-" if v is None else f"{v:.{places}f}" for v in column])
    headers = text_headers + [f"{h} {metric}" for h in view.horizons]
    cells = [[*text[i], *(col[i] for col in numbers)] for i in range(len(view.rows))]
    widths = [max(len(line[k]) for line in [headers, *cells]) for k in range(len(headers))]

    def render(mark: str, line: Sequence[str]) -> str:
        parts = [
            c.ljust(w) if k < len(text_headers) else c.rjust(w)
            for k, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        return f"{mark} " + "  ".join(parts).rstrip()

    lines = [title, render(" ", headers)]
    for row, line in zip(view.rows, cells, strict=True):
        lines.append(render("*" if champ is not None and row.run_id == champ.run_id else " ", line))
    return lines


def format_dashboard(
    shown_uri: str,
    views: Sequence[ExperimentView],
    metric: str,
    limit: int,
    killed: Sequence[str] = (),
    notes: Sequence[str] = (),
) -> str:
    """The whole dashboard as text: pure, so it is tested without MLflow.

    ``killed`` are the runs this dashboard found RUNNING with their session's process gone, and ended;
    ``notes`` go last, as they are.
    """
    lines = [f"MLflow store: {shown_uri}"]
    for view in views:
        lines.append("")
        lines.extend(format_experiment(view, metric, limit))
    if any(view.rows for view in views):
        lines += ["", f"* {CHAMPION_ALIAS}   + uncommitted changes   {metric}: mean over folds (H/{metric}_mean)"]
    if killed:
        ids = ", ".join(run_id[:8] for run_id in killed)
        lines.append(f"marked {len(killed)} run(s) KILLED: their session's process ended without closing them ({ids})")
    lines.extend(notes)
    return "\n".join(lines) + "\n"


def cmd_dashboard(args: argparse.Namespace, out: TextIO) -> int:
    store = store_args(args)
    if store.db is not None and not store.db.exists():
        out.write(
            f"MLflow store: {store.shown}\nno experiments yet: {store.db} does not exist "
            f"(the first pytest run with the plugin creates it)\n"
        )
        return 0

    from pytest_forecast_mlflow.tracking.views import StoreReadError, StoreView

    view_of = StoreView(store.uri)
    metric = args.metric
    views: list[tuple[int, ExperimentView]] = []
    try:
        if args.experiment:
            experiments = []
            for name in args.experiment:
                experiment = view_of.experiment(name)
                if experiment is None:
                    existing = sorted(e.name for e in view_of.experiments())
                    raise CliError(
                        f"experiment {name!r} not found in {store.shown}; existing: {', '.join(existing) or 'none'} "
                        f"(leave out --experiment to list them all)",
                        1,
                    )
                experiments.append(experiment)
        else:
            experiments = view_of.experiments()
        # runs of sessions killed with SIGKILL stay RUNNING forever: end them as KILLED
        try:
            killed, notes = view_of.end_dead_runs([e.experiment_id for e in experiments]), []
        except StoreReadError as exc:  # a read-only user, say: the runs still show, as "running"
            killed, notes = [], [f"note: runs of dead sessions could not be marked KILLED: {first_line(exc.message)}"]
        for experiment in experiments:
            runs = view_of.latest_runs(experiment.experiment_id, args.limit)
            if not runs and not args.experiment and experiment.experiment_id == "0":
                continue  # MLflow's own empty "Default" experiment: noise, unless asked for
            horizons = args.horizon or _horizons_of(runs, metric)
            registered = args.registered_model or experiment.name
            view = ExperimentView(
                name=experiment.name,
                rows=tuple(run_row(run, metric, horizons) for run in runs),
                horizons=tuple(horizons),
                champion=view_of.champion(registered, CHAMPION_ALIAS),
                registered_model=registered,
            )
            newest = max((r.start_time_ms or 0 for r in view.rows), default=-1)
            views.append((newest, view))
    except StoreReadError as exc:
        raise CliError(
            f"cannot read {store.shown} ({store.source}): {first_line(exc.message)}; "
            f"check the tracking URI and that the store or server is reachable",
            1,
        ) from None

    if not views:
        out.write(
            f"MLflow store: {store.shown}\nno experiments yet in {store.shown}; "
            f"run the backtests with the plugin (pytest) to create one\n"
        )
        return 0
    views.sort(key=lambda item: item[0], reverse=True)  # stable: experiments with no runs keep their order
    out.write(format_dashboard(store.shown, [view for _, view in views], metric, args.limit, killed, notes))
    return 0


def add_parser(commands: argparse._SubParsersAction[Parser], common: Parser) -> None:
    dashboard = commands.add_parser(
        "dashboard",
        parents=[common],
        help="Latest runs per experiment, champion marked",
        description=(
            f"The latest runs of each experiment, newest first, with the per-horizon mean of a metric; "
            f"the run holding the registered model's {CHAMPION_ALIAS!r} alias is marked *."
        ),
    )
    dashboard.add_argument(
        "--experiment", action="extend", nargs="+", metavar="NAME", help="Experiments to show (default: all)"
    )
    dashboard.add_argument(
        "--limit",
        type=positive_int,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"Runs per experiment (default: {DEFAULT_LIMIT})",
    )
    dashboard.add_argument(
        "--horizon",
        action="extend",
        nargs="+",
        metavar="H",
        help="Horizon labels to show, e.g. 30d (default: those the runs were tagged with)",
    )
    dashboard.add_argument(
        "--metric", default=DEFAULT_METRIC, metavar="M", help=f"Metric whose mean is shown (default: {DEFAULT_METRIC})"
    )
    dashboard.add_argument(
        "--registered-model",
        metavar="NAME",
        help=f"Registered model holding the {CHAMPION_ALIAS!r} alias (default: the experiment's name)",
    )
    dashboard.set_defaults(handler=cmd_dashboard)
