"""The ``forecast-mlflow`` command: look at, serve, back up and restore the embedded MLflow store.

::

    forecast-mlflow dashboard [--experiment NAME ...] [--limit N] [--horizon H ...] [--metric M]
                              [--registered-model NAME]
    forecast-mlflow ui        [--host 127.0.0.1] [--port 5000] [--artifact-root DIR]
    forecast-mlflow backup    DEST [--force] [--artifact-root DIR]
    forecast-mlflow restore   SRC [--force] [--artifact-root DIR]
    forecast-mlflow replay    [JOURNAL ...] [--to-other-store]

Every command takes ``--tracking-uri``; without it ``MLFLOW_TRACKING_URI`` is used, else the embedded
store ``sqlite:///<current directory>/data/mlflow/mlflow.db`` with artifacts in ``mlruns`` next to it.
``replay`` is the exception: it logs each journal to the store the journal records, and a URI given
must name that store (``--to-other-store`` to log elsewhere on purpose).

``ui`` runs ``mlflow server`` in its own process group and, on Ctrl-C or SIGTERM, stops that whole
group (SIGTERM, then SIGKILL after 10 s), so no uvicorn process outlives the command. MLflow's
background job runner stays off unless ``MLFLOW_SERVER_ENABLE_JOB_EXECUTION`` is set.

Errors are one line that names the cause and the fix, never a traceback. Everything the command
prints (its own lines, MLflow's, exception texts) goes through
:func:`~pytest_forecast_mlflow.store.mask_text` with the tracking URIs in play, and MLflow's
"View run ... at: URL" lines are switched off.

Exit codes: 0 done, 1 an operation failed (store unreadable or locked, server died, disk error, a
model that replay could not log, replay refusing a store other than the journal's without
``--to-other-store``), 2 a usage error (bad arguments, a store of the wrong kind, a folder that is
not a backup, refusing to overwrite without ``--force``, a journal whose store must be given, or
given again with its credentials). mlflow is imported inside the commands that need it, so ``--help``
stays fast; ``backup`` and ``restore`` do not import it at all.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from pytest_forecast_mlflow import __version__
from pytest_forecast_mlflow.store import (
    ARTIFACTS_DIR,
    DB_NAME,
    TRACKING_URI_ENV,
    artifact_root_for,
    canonical_uri,
    default_artifact_root,
    default_tracking_uri,
    has_masked_credentials,
    local_path,
    mask_text,
    mask_uri,
    relocate,
    sqlite_path,
    validate_tracking_uri,
)

if TYPE_CHECKING:
    from pytest_forecast_mlflow.journal import Journal

PROG = "forecast-mlflow"
MANIFEST = "backup.json"
BACKUP_FORMAT = "forecast-mlflow-backup"
BACKUP_FORMAT_VERSION = 1
CHAMPION_ALIAS = "champion"
DEFAULT_METRIC = "rmse"
DEFAULT_LIMIT = 10
LOCK_TIMEOUT_S = 60.0
JOB_EXECUTION_ENV = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"
# MLflow prints "View run NAME at: <tracking URI>/#/..." when a run ends: the URI with its credentials
SUPPRESS_URL_ENV = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"

# sqlite3.SQLITE_BUSY / SQLITE_LOCKED exist as constants only from Python 3.11.
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6

TRACKING_URI_HELP = (
    f"Tracking URI: sqlite:///path/to/{DB_NAME} or http(s)://server "
    f"(default: ${TRACKING_URI_ENV}, else sqlite:///<cwd>/data/mlflow/{DB_NAME})"
)
ARTIFACT_ROOT_HELP = f"Artifact folder of the store (default: {ARTIFACTS_DIR}/ next to the database)"


class CliError(Exception):
    """A failure to report as one line: what went wrong and what to do about it."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


# --------------------------------------------------------------------------------------------- store


@dataclass(frozen=True)
class Store:
    """The tracking URI a command works on, where it came from, and its files when it is SQLite."""

    uri: str
    source: str
    db: Path | None
    artifacts: Path | None

    @property
    def shown(self) -> str:
        return mask_uri(self.uri)


def resolve_store(tracking_uri: str | None, artifact_root: str | None = None) -> Store:
    """``--tracking-uri`` > ``MLFLOW_TRACKING_URI`` > the embedded store under the current directory."""
    if tracking_uri:
        uri, source = tracking_uri, "--tracking-uri"
    elif os.environ.get(TRACKING_URI_ENV):
        uri, source = os.environ[TRACKING_URI_ENV], TRACKING_URI_ENV
    else:
        uri, source = default_tracking_uri(Path.cwd()), "default"
    try:
        validate_tracking_uri(uri, source=source)
    except ValueError as exc:
        raise CliError(str(exc), 2) from None
    db = sqlite_path(uri)
    artifacts = Path(artifact_root) if artifact_root else artifact_root_for(uri)
    return Store(
        uri=uri,
        source=source,
        db=None if db is None else db.expanduser().resolve(),
        artifacts=None if artifacts is None else artifacts.expanduser().resolve(),
    )


def _require_sqlite(store: Store, command: str) -> tuple[Path, Path]:
    if store.db is None or store.artifacts is None:
        raise CliError(
            f"{command} works on the embedded sqlite:/// store, but the tracking URI ({store.source}) is "
            f"the server {store.shown}; run it where the server's database lives, "
            f"or pass --tracking-uri sqlite:///path/to/{DB_NAME}",
            2,
        )
    return store.db, store.artifacts


def _store_args(args: argparse.Namespace) -> Store:
    return resolve_store(getattr(args, "tracking_uri", None), getattr(args, "artifact_root", None))


# ----------------------------------------------------------------------------------------- dashboard


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
class Champion:
    registered_model: str
    version: str
    run_id: str | None


@dataclass(frozen=True)
class ExperimentView:
    name: str
    rows: tuple[RunRow, ...]
    horizons: tuple[str, ...]
    champion: Champion | None
    registered_model: str


def _first_line(text: str) -> str:
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else ""


def _split_horizons(tag: str | None) -> list[str]:
    return [h.strip() for h in (tag or "").split(",") if h.strip()]


def run_row(run: object, metric: str, horizons: Sequence[str]) -> RunRow:
    """Flatten an ``mlflow.entities.Run`` into the fields the dashboard shows."""
    info, data = run.info, run.data  # type: ignore[attr-defined]
    tags, metrics = data.tags, data.metrics
    return RunRow(
        run_id=info.run_id,
        run_name=info.run_name or tags.get("mlflow.runName", ""),
        start_time_ms=info.start_time,
        model=tags.get("forecast.model", ""),
        role=tags.get("forecast.role", ""),
        commit=tags.get("mlflow.source.git.commit", "")[:7],
        dirty=tags.get("git.dirty", "").lower() in ("true", "1", "yes"),
        verdict=tags.get("forecast.verdict", ""),
        values={h: metrics[f"{h}/{metric}_mean"] for h in horizons if f"{h}/{metric}_mean" in metrics},
        status=info.status or "",
    )


def _horizons_of(runs: Sequence[object], metric: str) -> list[str]:
    """Horizon labels in the order the runs' ``forecast.horizons`` tags give them, newest run first."""
    seen: list[str] = []
    for run in runs:
        labels = _split_horizons(run.data.tags.get("forecast.horizons"))  # type: ignore[attr-defined]
        if not labels:  # a run without the tag still shows its metrics
            suffix = f"/{metric}_mean"
            labels = sorted(k[: -len(suffix)] for k in run.data.metrics if k.endswith(suffix))  # type: ignore[attr-defined]
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


def _champion(client: object, name: str) -> Champion | None:
    from mlflow.exceptions import MlflowException

    try:
        version = client.get_model_version_by_alias(name, CHAMPION_ALIAS)  # type: ignore[attr-defined]
    except MlflowException as exc:
        # no such registered model (RESOURCE_DOES_NOT_EXIST) or no such alias (INVALID_PARAMETER_VALUE)
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
            return None
        raise
    return Champion(registered_model=name, version=str(version.version), run_id=version.run_id)


def _experiments(client: object, names: Sequence[str] | None, shown: str) -> list[object]:
    if names:
        found = []
        for name in names:
            experiment = client.get_experiment_by_name(name)  # type: ignore[attr-defined]
            if experiment is None or experiment.lifecycle_stage != "active":
                existing = sorted(e.name for e in client.search_experiments())  # type: ignore[attr-defined]
                raise CliError(
                    f"experiment {name!r} not found in {shown}; existing: {', '.join(existing) or 'none'} "
                    f"(leave out --experiment to list them all)",
                    1,
                )
            found.append(experiment)
        return found
    return list(client.search_experiments())  # type: ignore[attr-defined]


def _end_dead_runs(client: object, experiments: Sequence[object]) -> tuple[list[str], list[str]]:
    """End as KILLED the RUNNING runs whose session was killed (SIGKILL leaves them RUNNING forever).

    Returns the ids ended, and a note when the store refused the write (a read-only user, say): the
    dashboard still shows the runs, as "running".
    """
    from mlflow.exceptions import MlflowException

    from pytest_forecast_mlflow.tracking import mark_dead_runs

    try:
        return mark_dead_runs(client, [e.experiment_id for e in experiments]), []  # type: ignore[attr-defined]
    except MlflowException as exc:
        return [], [f"note: runs of dead sessions could not be marked KILLED: {_first_line(exc.message)}"]


def cmd_dashboard(args: argparse.Namespace, out: TextIO) -> int:
    store = _store_args(args)
    if store.db is not None and not store.db.exists():
        out.write(
            f"MLflow store: {store.shown}\nno experiments yet: {store.db} does not exist "
            f"(the first pytest run with the plugin creates it)\n"
        )
        return 0

    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=store.uri, registry_uri=store.uri)
    metric = args.metric
    views: list[tuple[int, ExperimentView]] = []
    try:
        experiments = _experiments(client, args.experiment, store.shown)
        killed, notes = _end_dead_runs(client, experiments)
        for experiment in experiments:
            runs = client.search_runs(
                [experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=args.limit
            )
            if not runs and not args.experiment and experiment.experiment_id == "0":
                continue  # MLflow's own empty "Default" experiment: noise, unless asked for
            horizons = args.horizon or _horizons_of(runs, metric)
            registered = args.registered_model or experiment.name
            view = ExperimentView(
                name=experiment.name,
                rows=tuple(run_row(run, metric, horizons) for run in runs),
                horizons=tuple(horizons),
                champion=_champion(client, registered),
                registered_model=registered,
            )
            newest = max((r.start_time_ms or 0 for r in view.rows), default=-1)
            views.append((newest, view))
    except MlflowException as exc:
        raise CliError(
            f"cannot read {store.shown} ({store.source}): {_first_line(exc.message)}; "
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


# ------------------------------------------------------------------------------------------------ ui


def ui_command(store: Store, host: str, port: int) -> list[str]:
    """The ``mlflow server`` command line serving ``store`` (one worker: it is a local, one-person UI)."""
    _, artifacts = _require_sqlite(store, "ui")
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        store.uri,
        "--registry-store-uri",
        store.uri,
        "--default-artifact-root",
        str(artifacts),
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
    ]


def ui_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The server's environment: ``environ``, with MLflow's background job runner off unless asked for.

    The job runner serves GenAI features (scorers, trace archival) that backtests do not use; it
    starts seven extra processes and triples the start-up time. ``MLFLOW_SERVER_ENABLE_JOB_EXECUTION``
    set in ``environ`` wins.
    """
    return {JOB_EXECUTION_ENV: "false", **environ}


def _url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    shown = f"[{shown}]" if ":" in shown and not shown.startswith("[") else shown
    return f"http://{shown}:{port}"


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        if os.name == "posix":  # as the server will: a port in TIME_WAIT is free to bind
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as exc:
            raise CliError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc} (another MLflow UI?); "
                f"stop it or pass --port {port + 1}",
                1,
            ) from None


class _Terminated(Exception):
    """SIGTERM arrived while the UI was running."""


def _signal_group(proc: subprocess.Popen, *, hard: bool) -> None:
    """SIGTERM (or SIGKILL when ``hard``) to the server, its uvicorn process and any job consumers."""
    try:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL if hard else signal.SIGTERM)
        elif hard:
            proc.kill()
        else:
            proc.send_signal(signal.CTRL_BREAK_EVENT)  # type: ignore[attr-defined]
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    if os.name != "posix":
        return False
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _stop_server(proc: subprocess.Popen) -> None:
    """Stop the server's whole process group: SIGTERM, then SIGKILL if it is still there after 10 s.

    SIGTERM rather than a forwarded SIGINT: uvicorn shuts down as gracefully on either, but on SIGINT
    MLflow's launcher prints tracebacks and its job consumers wait ~10 s for work that a UI never has.
    """
    for hard, patience in ((False, 10.0), (True, 5.0)):
        _signal_group(proc, hard=hard)
        deadline = time.monotonic() + patience
        try:
            while time.monotonic() < deadline:
                if proc.poll() is not None and not _group_alive(proc.pid):
                    return
                time.sleep(0.1)
        except KeyboardInterrupt:  # a second Ctrl-C: stop asking nicely
            continue
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def cmd_ui(args: argparse.Namespace, out: TextIO) -> int:
    store = _store_args(args)
    command = ui_command(store, args.host, args.port)
    db, _ = _require_sqlite(store, "ui")  # ui_command has checked it is one
    if not db.exists():
        raise CliError(
            f"no MLflow store at {db} ({store.source}); run the backtests with the plugin (pytest) first, "
            f"or pass --tracking-uri sqlite:///path/to/{DB_NAME}",
            1,
        )
    _check_port_free(args.host, args.port)

    url = _url(args.host, args.port)
    note = "" if args.host in ("127.0.0.1", "localhost", "::1") else f" (listening on {args.host})"
    popen: dict[str, object] = (
        {"start_new_session": True}
        if os.name == "posix"
        else {
            "creationflags": subprocess.CREATE_NEW_PROCESS_GROUP  # type: ignore[attr-defined]
        }
    )
    proc = subprocess.Popen(command, env=ui_environment(os.environ), **popen)  # type: ignore[call-overload]
    out.write(f"MLflow UI for {store.shown}: {url}{note}  (server pid {proc.pid}; Ctrl-C stops it)\n")
    out.flush()

    def on_sigterm(signum: int, frame: object) -> None:
        raise _Terminated

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_sigterm) if in_main_thread else None
    if in_main_thread:  # Ctrl-C must stop the server even when a parent (xdist, nohup) left SIGINT ignored
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        code = proc.wait()
    except (KeyboardInterrupt, _Terminated):
        _stop_server(proc)
        out.write("MLflow UI stopped\n")
        return 0
    finally:
        if in_main_thread and previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if proc.poll() is None or _group_alive(proc.pid):  # no orphaned uvicorn, whatever happened
            _stop_server(proc)
    if code != 0:
        raise CliError(f"mlflow server exited with code {code}; its messages are above", 1)
    return 0


# ------------------------------------------------------------------------------------ backup/restore


def _connect(path: Path, *, must_exist: bool) -> sqlite3.Connection:
    """A connection with a busy timeout; ``must_exist`` opens without creating (a typo stays an error)."""
    if must_exist:
        return sqlite3.connect(path.as_uri() + "?mode=rw", uri=True, timeout=LOCK_TIMEOUT_S)
    return sqlite3.connect(path, timeout=LOCK_TIMEOUT_S)


def sqlite_online_copy(src: Path, dst: Path, timeout_s: float | None = None) -> None:
    """Copy the database ``src`` into ``dst`` with SQLite's online backup API.

    The copy is one consistent snapshot even while other connections write: SQLite copies under a
    read lock, committed data only (a write transaction still open elsewhere is not included, and
    WAL content is). ``dst`` may be in use too; it is rewritten in place, under SQLite's locks.
    A store that stays locked longer than ``timeout_s`` (default ``LOCK_TIMEOUT_S``) raises ``TimeoutError``.
    """
    timeout_s = LOCK_TIMEOUT_S if timeout_s is None else timeout_s
    deadline = time.monotonic() + timeout_s

    def progress(status: int, remaining: int, total: int) -> None:
        if status in (_SQLITE_BUSY, _SQLITE_LOCKED) and time.monotonic() > deadline:
            raise TimeoutError(f"the database stayed locked for {timeout_s:g} s")

    source = _connect(src, must_exist=True)
    try:
        target = _connect(dst, must_exist=False)
        try:
            source.backup(target, pages=-1, progress=progress, sleep=0.05)
        finally:
            target.close()
    finally:
        source.close()


@dataclass(frozen=True)
class DbSummary:
    experiments: int
    runs: int


def summarize_db(path: Path) -> DbSummary:
    """Check that ``path`` is an intact MLflow database and count what it holds."""
    try:
        conn = _connect(path, must_exist=True)
        try:
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise CliError(f"{path} is damaged (sqlite quick_check: {check}); use another backup", 1)
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not {"experiments", "runs", "alembic_version"} <= tables:
                raise CliError(f"{path} is a SQLite file but not an MLflow database (no runs/experiments tables)", 1)
            experiments = conn.execute("SELECT count(*) FROM experiments WHERE lifecycle_stage = 'active'").fetchone()
            runs = conn.execute("SELECT count(*) FROM runs WHERE lifecycle_stage = 'active'").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise CliError(f"cannot read {path} as an MLflow database: {exc}", 1) from None
    return DbSummary(experiments=experiments[0], runs=runs[0])


def _copy_present(src: str, dst: str) -> object:
    try:
        return shutil.copy2(src, dst)
    except FileNotFoundError:  # removed while we copied: a temporary file, not a finished artifact
        return dst


def _count_files(root: Path) -> int:
    return sum(1 for p in root.rglob("*") if p.is_file()) if root.is_dir() else 0


def _copy_artifacts(src: Path, dst: Path) -> int:
    """Copy the artifact folder ``src`` to a new folder ``dst``; an absent ``src`` gives an empty one."""
    if src.is_dir():
        shutil.copytree(src, dst, copy_function=_copy_present)
    else:
        dst.mkdir(parents=True)
    return _count_files(dst)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _mlflow_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mlflow")
    except PackageNotFoundError:
        return "unknown"


def _remove_database(path: Path) -> None:
    for leftover in (
        path,
        path.with_name(f"{path.name}-wal"),
        path.with_name(f"{path.name}-shm"),
        path.with_name(f"{path.name}-journal"),
    ):
        _remove(leftover)


def _is_within(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


def cmd_backup(args: argparse.Namespace, out: TextIO) -> int:
    store = _store_args(args)
    db, artifacts = _require_sqlite(store, "backup")
    dest = Path(args.dest).expanduser().resolve()
    if not db.exists():
        raise CliError(f"nothing to back up: {db} does not exist ({store.source}); check --tracking-uri", 1)
    if dest.exists() and not dest.is_dir():
        raise CliError(f"DEST {dest} is a file; give a new or empty folder", 2)
    if dest / DB_NAME == db or _is_within(dest, artifacts) or dest / ARTIFACTS_DIR == artifacts:
        raise CliError(f"DEST {dest} overlaps the store it backs up ({db.parent}); choose a folder outside it", 2)
    ours = [dest / MANIFEST, dest / DB_NAME, dest / ARTIFACTS_DIR]
    if dest.exists() and any(dest.iterdir()):
        if not args.force:
            raise CliError(f"DEST {dest} is not empty; choose a new or empty folder, or pass --force to replace it", 2)
        if not (dest / MANIFEST).is_file() and any(p.exists() for p in ours[1:]):
            raise CliError(
                f"DEST {dest} holds {DB_NAME} or {ARTIFACTS_DIR}/ but no {MANIFEST}, so it is not a backup "
                f"this command made; even with --force it will not replace them: choose another folder",
                2,
            )

    try:
        dest.mkdir(parents=True, exist_ok=True)
        for path in ours:  # the manifest goes first and comes back last: it marks a complete backup
            _remove(path)
        partial_db = dest / f"{DB_NAME}.partial"
        _remove(partial_db)
        sqlite_online_copy(db, partial_db)
        summary = summarize_db(partial_db)
        partial_db.replace(dest / DB_NAME)
        # after the database: every artifact a backed-up run refers to was written before the snapshot
        partial_artifacts = dest / f"{ARTIFACTS_DIR}.partial"
        _remove(partial_artifacts)
        n_files = _copy_artifacts(artifacts, partial_artifacts)
        partial_artifacts.replace(dest / ARTIFACTS_DIR)
        manifest = {
            "format": BACKUP_FORMAT,
            "format_version": BACKUP_FORMAT_VERSION,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "source_uri": store.shown,
            "source_artifact_root": str(artifacts),
            "mlflow_version": _mlflow_version(),
            "plugin_version": __version__,
            "db_file": DB_NAME,
            "db_bytes": (dest / DB_NAME).stat().st_size,
            "artifacts_dir": ARTIFACTS_DIR,
            "artifact_files": n_files,
            "experiments": summary.experiments,
            "runs": summary.runs,
        }
        partial_manifest = dest / f"{MANIFEST}.partial"
        partial_manifest.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        partial_manifest.replace(dest / MANIFEST)
    except TimeoutError as exc:
        raise CliError(f"cannot back up {db}: {exc}; retry when the test session writing to it is done", 1) from None
    except (OSError, shutil.Error, sqlite3.Error) as exc:
        raise CliError(f"cannot back up {db} to {dest}: {_first_line(str(exc))}", 1) from None

    out.write(
        f"backed up {summary.runs} runs in {summary.experiments} experiments "
        f"({manifest['db_bytes']} bytes) and {n_files} artifact files from {store.shown} to {dest}\n"
    )
    return 0


def read_manifest(src: Path) -> dict[str, object]:
    """The manifest of the backup folder ``src``, or a ``CliError`` saying why ``src`` is not a backup."""
    hint = f"give the DEST folder of '{PROG} backup DEST'"
    if not src.is_dir():
        raise CliError(f"SRC {src} is not a folder; {hint}", 2)
    path = src / MANIFEST
    if not path.is_file():
        raise CliError(f"SRC {src} has no {MANIFEST}, so it is not a {PROG} backup (or an unfinished one); {hint}", 2)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CliError(f"cannot read {path}: {_first_line(str(exc))}; the backup is damaged, use another", 2) from None
    if not isinstance(manifest, dict) or manifest.get("format") != BACKUP_FORMAT:
        raise CliError(f"{path} is not a {PROG} backup manifest (format {BACKUP_FORMAT!r} expected); {hint}", 2)
    if manifest.get("format_version", 0) > BACKUP_FORMAT_VERSION:
        raise CliError(
            f"{path} has format version {manifest.get('format_version')}, newer than this {PROG} "
            f"({BACKUP_FORMAT_VERSION}); upgrade pytest-forecast-mlflow to restore it",
            2,
        )
    if not (src / DB_NAME).is_file():
        raise CliError(f"SRC {src} has {MANIFEST} but no {DB_NAME}: the backup is incomplete; use another", 2)
    return manifest


def _foreign_artifact_locations(db: Path, artifacts: Path) -> list[str]:
    """Artifact locations of experiments with runs that lie outside ``artifacts`` (a store moved here)."""
    conn = _connect(db, must_exist=True)
    try:
        rows = conn.execute(
            "SELECT DISTINCT e.artifact_location FROM experiments e "
            "JOIN runs r ON r.experiment_id = e.experiment_id WHERE e.lifecycle_stage = 'active'"
        ).fetchall()
    finally:
        conn.close()
    return [location for (location,) in rows if not _is_within(local_path(location), artifacts)]


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def rewrite_artifact_locations(db: Path, old_root: Path, new_root: Path) -> int:
    """Point every location under ``old_root`` in the database ``db`` at ``new_root``; returns the rows changed.

    A store keeps absolute artifact locations (``experiments.artifact_location``, ``runs.artifact_uri``,
    ``model_versions.source``/``storage_location``, ``logged_models.artifact_location``, JSON in tags).
    Every text column of every table is searched, so a location MLflow adds in a later schema moves too;
    key columns are left alone. One transaction: the database is rewritten whole or not at all.
    """
    if old_root == new_root:
        return 0
    needles = {old_root.as_posix(), old_root.as_uri()[len("file://") :]}
    conn = _connect(db, must_exist=True)
    conn.isolation_level = None
    changed = 0
    try:
        conn.execute("BEGIN IMMEDIATE")
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
                "AND sql NOT LIKE '%WITHOUT ROWID%'"
            )
        ]
        for table in tables:
            keys = {row[3] for row in conn.execute(f"PRAGMA foreign_key_list({_quoted(table)})")}
            columns = [
                row[1]
                for row in conn.execute(f"PRAGMA table_info({_quoted(table)})")
                if not row[5] and row[1] not in keys  # row[5]: part of the primary key
            ]
            if not columns:
                continue
            where = " OR ".join(f"instr({_quoted(c)}, ?) > 0" for c in columns for _ in needles)
            found = conn.execute(
                f"SELECT rowid, {', '.join(_quoted(c) for c in columns)} FROM {_quoted(table)} WHERE {where}",
                [needle for _ in columns for needle in needles],
            ).fetchall()
            for rowid, *values in found:
                moved = {
                    column: relocate(value, old_root, new_root)
                    for column, value in zip(columns, values)
                    if isinstance(value, str)
                }
                moved = {c: v for c, v in moved.items() if v != values[columns.index(c)]}
                if moved:
                    assignments = ", ".join(f"{_quoted(c)} = ?" for c in moved)
                    conn.execute(f"UPDATE {_quoted(table)} SET {assignments} WHERE rowid = ?", [*moved.values(), rowid])
                    changed += 1
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()
    return changed


def cmd_restore(args: argparse.Namespace, out: TextIO) -> int:
    store = _store_args(args)
    db, artifacts = _require_sqlite(store, "restore")
    src = Path(args.src).expanduser().resolve()
    manifest = read_manifest(src)
    if src == db.parent or src / DB_NAME == db:
        raise CliError(f"SRC {src} is the store itself; give a backup folder", 2)
    summary = summarize_db(src / DB_NAME)
    recorded_root = manifest.get("source_artifact_root")
    old_root = Path(str(recorded_root)) if recorded_root else None
    existing = db.exists() or (artifacts.is_dir() and any(artifacts.iterdir()))
    if existing and not args.force:
        raise CliError(
            f"a store already exists at {db.parent}; pass --force to replace it with the backup "
            f"(keep a copy first: {PROG} backup DEST)",
            2,
        )

    try:
        db.parent.mkdir(parents=True, exist_ok=True)
        staged = artifacts.with_name(f"{artifacts.name}.restoring")
        _remove(staged)
        n_files = _copy_artifacts(src / ARTIFACTS_DIR, staged)  # may fail: the store is untouched so far
        # the backup's locations are rewritten in a staged copy, which then replaces the database whole
        staged_db = db.with_name(f"{db.name}.restoring")
        _remove_database(staged_db)
        sqlite_online_copy(src / DB_NAME, staged_db)
        rewritten = rewrite_artifact_locations(staged_db, old_root, artifacts) if old_root is not None else 0
        sqlite_online_copy(staged_db, db)
        _remove_database(staged_db)
        replaced = artifacts.with_name(f"{artifacts.name}.replaced")
        _remove(replaced)
        if artifacts.exists():
            artifacts.replace(replaced)
        staged.replace(artifacts)
        _remove(replaced)
        foreign = _foreign_artifact_locations(db, artifacts)
    except TimeoutError as exc:
        raise CliError(f"cannot restore into {db}: {exc}; stop the sessions or UI using it and retry", 1) from None
    except (OSError, shutil.Error, sqlite3.Error) as exc:
        raise CliError(f"cannot restore {src} into {db.parent}: {_first_line(str(exc))}", 1) from None

    out.write(
        f"restored {summary.runs} runs in {summary.experiments} experiments and {n_files} artifact files "
        f"into {store.shown} (backup of {manifest.get('source_uri')} taken {manifest.get('created')})\n"
    )
    if old_root is not None and old_root != artifacts:
        out.write(f"rewrote {rewritten} rows of artifact locations from {old_root} to {artifacts}\n")
    elif old_root is None:
        out.write("note: the backup does not say where its artifacts were, so locations were not rewritten\n")
    if manifest.get("mlflow_version") not in (None, _mlflow_version()):
        out.write(
            f"note: the backup was taken with mlflow {manifest.get('mlflow_version')}, this is mlflow "
            f"{_mlflow_version()}; if MLflow reports an out-of-date schema, run: mlflow db upgrade {store.uri}\n"
        )
    if foreign:
        out.write(
            f"note: {len(foreign)} experiment(s) record artifact locations outside {artifacts} "
            f"(e.g. {foreign[0]}), which restore does not move; their runs look for artifacts there\n"
        )
    return 0


# -------------------------------------------------------------------------------------------- replay


@dataclass(frozen=True)
class ReplayTarget:
    """The store one journal is replayed into, and a line to print when it is not the recorded one."""

    store: Store
    note: str = ""


def _explicit_uri(args: argparse.Namespace) -> tuple[str, str] | None:
    """``--tracking-uri`` or ``MLFLOW_TRACKING_URI``, with its source; replay never guesses a default store."""
    if getattr(args, "tracking_uri", None):
        return args.tracking_uri, "--tracking-uri"
    if os.environ.get(TRACKING_URI_ENV):
        return os.environ[TRACKING_URI_ENV], TRACKING_URI_ENV
    return None


def replay_target(journal: Journal, explicit: tuple[str, str] | None, to_other_store: bool) -> ReplayTarget:
    """Where ``journal`` is replayed: the store it records, unless told otherwise on purpose.

    A URI given on the command line or in ``MLFLOW_TRACKING_URI`` must name the recorded store (compared
    masked, sqlite paths made absolute); another store needs ``--to-other-store``. A recorded URI whose
    credentials were masked must be given again in full. A format-1 journal records no store.
    """
    recorded = journal.destination.tracking_uri
    name = journal.folder.name
    if explicit is None:
        if recorded is None:
            raise CliError(
                f"journal {name} (format 1) does not record the store it was meant for; pass it with "
                f"--tracking-uri URI or {TRACKING_URI_ENV}",
                2,
            )
        if has_masked_credentials(recorded):
            raise CliError(
                f"journal {name} was spooled for {recorded}, and a journal never keeps credentials; pass the full "
                f"URI, credentials included, with --tracking-uri URI or {TRACKING_URI_ENV}",
                2,
            )
        return ReplayTarget(replace(resolve_store(recorded), source=f"recorded in journal {name}"))
    uri, source = explicit
    store = resolve_store(uri) if source == "--tracking-uri" else resolve_store(None)
    if recorded is None or canonical_uri(uri) == recorded:
        return ReplayTarget(store)
    if not to_other_store:
        raise CliError(
            f"journal {name} was spooled for {recorded}, but {source} names {canonical_uri(uri)}; leave "
            f"{source} out to log where the session meant to, or pass --to-other-store to log to "
            f"{canonical_uri(uri)} deliberately",
            1,
        )
    return ReplayTarget(store, f"logging to {store.shown} instead of the recorded {recorded} (--to-other-store)")


def cmd_replay(args: argparse.Namespace, out: TextIO) -> int:
    """Log spooled journals into the stores they were meant for, each exactly once."""
    from pytest_forecast_mlflow.journal import read_journal, replay

    root = Path.cwd()
    folders = [Path(j) for j in args.journals] or sorted(
        p.parent for p in (root / "data" / "mlflow" / "journal").glob("*/journal.json")
    )
    if not folders:
        out.write(f"no journal to replay under {root / 'data' / 'mlflow' / 'journal'}\n")
        return 0
    explicit = _explicit_uri(args)
    plan = []  # every journal is read and its store settled before anything is logged
    for folder in folders:
        try:
            journal = read_journal(folder)
        except (FileNotFoundError, ValueError) as exc:
            raise CliError(str(exc), 2) from None
        plan.append((journal, None if journal.replayed else replay_target(journal, explicit, args.to_other_store)))

    failed = 0
    for journal, target in plan:
        name = journal.folder.name
        if target is None:
            out.write(f"{name}: already replayed\n")
            continue
        if target.note:
            out.write(f"{name}: {target.note}\n")
        store = target.store
        artifacts = store.artifacts or default_artifact_root(journal.project_root() or root)
        try:
            result = replay(journal, journal.settings(store.uri, artifacts))
        except Exception as exc:
            sys.stderr.write(
                f"{PROG} replay: error: {name}: {_first_line(str(exc))}; the journal is kept, run "
                "replay again once the cause is fixed\n"
            )
            failed += 1
            continue
        for line in result.lines():
            out.write(f"{name}: {line}\n")
        for failure in result.failures:
            sys.stderr.write(f"{PROG} replay: error: {name}: {failure}\n")
        failed += not result.ok
        for line in result.promotion:
            out.write(f"{line}\n")
    return 1 if failed else 0


# ---------------------------------------------------------------------------------------------- main


class _Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one line that points at --help (exit code 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {mask_text(message)}; see '{self.prog} --help'\n")


class _MaskedStream(io.TextIOBase):
    """A text stream that masks credentials before they reach ``stream``, a whole line at a time.

    Lines are held until their newline (or a flush), so a URL written in pieces is still masked.
    """

    def __init__(self, stream: TextIO, secrets_from: tuple[str, ...]) -> None:
        super().__init__()
        self._stream = stream
        self._secrets = secrets_from
        self._pending = ""
        self._lock = threading.Lock()  # MLflow may log from its own threads

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            head, newline, self._pending = self._pending.rpartition("\n")
            if newline:
                self._stream.write(mask_text(head + newline, secrets_from=self._secrets))
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if self._pending:
                self._stream.write(mask_text(self._pending, secrets_from=self._secrets))
                self._pending = ""
        self._stream.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._stream, "encoding", "utf-8")


@contextlib.contextmanager
def _masked_output(argv: Sequence[str]) -> Iterator[None]:
    """Everything printed while the command runs, by it or by MLflow, passes through :func:`mask_text`.

    The secrets are those of every URI on the command line and in ``MLFLOW_TRACKING_URI``; MLflow's
    "View run ... at: URL" lines are switched off for the command's duration.
    """
    secrets = (*(arg for arg in argv if "://" in arg), os.environ.get(TRACKING_URI_ENV) or "")
    secrets = tuple(s for s in secrets if s)
    streams = sys.stdout, sys.stderr
    previous = os.environ.get(SUPPRESS_URL_ENV)
    os.environ[SUPPRESS_URL_ENV] = "true"
    sys.stdout, sys.stderr = (_MaskedStream(stream, secrets) for stream in streams)  # type: ignore[assignment]
    try:
        yield
    finally:
        for masked in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                masked.flush()
        sys.stdout, sys.stderr = streams
        if previous is None:
            os.environ.pop(SUPPRESS_URL_ENV, None)
        else:
            os.environ[SUPPRESS_URL_ENV] = previous


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _port(text: str) -> int:
    value = _positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port (1-65535)")
    return value


def build_parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)
    # SUPPRESS, so the option works before and after the subcommand without one default masking the other
    common.add_argument("--tracking-uri", default=argparse.SUPPRESS, metavar="URI", help=TRACKING_URI_HELP)
    artifact_root = _Parser(add_help=False)
    artifact_root.add_argument("--artifact-root", metavar="DIR", help=ARTIFACT_ROOT_HELP)

    parser = _Parser(
        prog=PROG,
        description="Look at, serve, back up and restore the MLflow store of pytest-forecast-mlflow.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

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
        type=_positive_int,
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

    ui = commands.add_parser(
        "ui",
        parents=[common, artifact_root],
        help="Serve the MLflow UI on the store",
        description="Run 'mlflow server' on the store until Ctrl-C.",
    )
    ui.add_argument("--host", default="127.0.0.1", help="Interface to bind (default: 127.0.0.1, this machine only)")
    ui.add_argument("--port", type=_port, default=5000, help="Port to listen on (default: 5000)")
    ui.set_defaults(handler=cmd_ui)

    backup = commands.add_parser(
        "backup",
        parents=[common, artifact_root],
        help="Consistent copy of the store, safe while it is in use",
        description=f"Copy the database (SQLite online backup), the artifacts and a {MANIFEST} manifest to DEST.",
    )
    backup.add_argument("dest", metavar="DEST", help="New or empty folder to write the backup to")
    backup.add_argument("--force", action="store_true", help="Replace the backup in a non-empty DEST")
    backup.set_defaults(handler=cmd_backup)

    restore = commands.add_parser(
        "restore",
        parents=[common, artifact_root],
        help="Put a backup back in the store's place",
        description="Restore a backup made by 'backup' into the configured store location.",
    )
    restore.add_argument("src", metavar="SRC", help="Folder written by 'backup'")
    restore.add_argument("--force", action="store_true", help="Replace an existing store")
    restore.set_defaults(handler=cmd_restore)

    replay = commands.add_parser(
        "replay",
        parents=[common],
        help="Log results spooled while the store was unavailable",
        description=(
            "Log the journals that --mlflow-on-unavailable=spool wrote (default: every pending one under "
            "data/mlflow/journal/) into the store each was meant for, exactly once: a second replay creates "
            "nothing new. --tracking-uri must name that store (give it in full when it has credentials)."
        ),
    )
    replay.add_argument("journals", nargs="*", metavar="JOURNAL", help="Journal folders (default: all pending)")
    replay.add_argument(
        "--to-other-store",
        action="store_true",
        help="Log to the store --tracking-uri names even though the journal was spooled for another one",
    )
    replay.set_defaults(handler=cmd_replay)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``forecast-mlflow``; returns the exit code instead of raising ``SystemExit``.

    Whatever the command prints, on stdout or stderr, is masked with the URIs of ``argv`` and of
    ``MLFLOW_TRACKING_URI`` as the secrets to remove.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    with _masked_output(argv):
        return _run(argv)


def _run(argv: list[str]) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) or a usage error argparse has printed (2)
        return exc.code if isinstance(exc.code, int) else 2
    handler: Callable[[argparse.Namespace, TextIO], int] = args.handler
    prefix = f"{PROG} {args.command}: error:"
    try:
        return handler(args, sys.stdout)
    except CliError as exc:
        sys.stderr.write(f"{prefix} {exc.message}\n")
        return exc.code
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG} {args.command}: interrupted\n")
        return 130
    except Exception as exc:  # the contract is one line, never a traceback
        detail = _first_line(str(exc)) or "no details"
        sys.stderr.write(f"{prefix} unexpected {type(exc).__name__}: {detail}; please report it with this line\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
