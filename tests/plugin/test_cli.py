"""The ``forecast-mlflow`` command against temporary ``sqlite:///`` stores, never the user's.

Most cases call ``main([...])`` in-process; the UI case runs it in a subprocess (it serves until
Ctrl-C) and drives the installed ``forecast-mlflow`` script once. Each test copies the empty MLflow
database conftest makes once per session (``empty_store``) into a project folder under ``tmp_path``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from pytest_forecast_mlflow import backup as backup_module
from pytest_forecast_mlflow.cli import build_parser, dashboard, main
from pytest_forecast_mlflow.cli.base import resolve_store
from pytest_forecast_mlflow.cli.ui import ui_command
from pytest_forecast_mlflow.store import default_artifact_root, default_tracking_uri
from pytest_forecast_mlflow.tracking.views import Champion
from tests.mlflow_server import free_port

from .conftest import Store, make_project, run_tracked

# tests that open an MLflow store or import mlflow are marked `mlflow` one by one; the rest are pure
pytestmark = [pytest.mark.usefixtures("hermetic")]

EXPERIMENT = "usdclp"
HORIZONS = ("7d", "30d")
METRICS = ("rmse", "mae")
JOB_ENV = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"  # the ui turns it off unless set
T0_MS = 1_735_000_000_000  # a fixed start time; runs are spaced an hour apart after it


@dataclass(frozen=True)
class Project:
    root: Path
    uri: str
    db: Path
    artifacts: Path


@pytest.fixture
def project(tmp_path: Path, empty_store, monkeypatch: pytest.MonkeyPatch) -> Project:
    """A project folder, made the current directory, whose default store is an empty MLflow database."""
    root = tmp_path / "project"
    db = root / "data" / "mlflow" / "mlflow.db"
    db.parent.mkdir(parents=True)
    shutil.copyfile(empty_store.db, db)  # a copy of the schema conftest makes once per session
    monkeypatch.chdir(root)
    return Project(root=root, uri=default_tracking_uri(root), db=db, artifacts=default_artifact_root(root))


def client_for(uri: str):
    import mlflow

    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def make_experiment(project: Project, name: str = EXPERIMENT) -> str:
    client = client_for(project.uri)
    return client.create_experiment(name, artifact_location=(project.artifacts / name).as_uri())


def log_run(
    project: Project,
    experiment_id: str,
    name: str,
    *,
    hour: int,
    rmse: dict[str, float],
    verdict: str | None = "pass",
    model: str = "naive",
    role: str = "candidate",
    commit: str = "0123456789abcdef0123456789abcdef01234567",
    dirty: bool = False,
    folds: int = 3,
) -> str:
    """A finished run as the plugin writes it: convention tags, stepped fold metrics, step-less aggregates."""
    from mlflow.entities import Metric

    client = client_for(project.uri)
    tags = {
        "forecast.model": model,
        "forecast.role": role,
        "forecast.horizons": ",".join(HORIZONS),
        "forecast.session": f"session-{hour}",
        "mlflow.source.git.commit": commit,
        "git.branch": "main",
        "git.dirty": str(dirty).lower(),
        "forecast.plugin_version": "0.1.0",
    }
    if verdict is not None:
        tags["forecast.verdict"] = verdict
    start = T0_MS + hour * 3_600_000
    run = client.create_run(experiment_id, start_time=start, tags=tags, run_name=name)
    metrics = []
    for horizon in HORIZONS:
        for metric in METRICS:
            value = rmse[horizon] * (1.0 if metric == "rmse" else 0.8)
            key = f"{horizon}/{metric}"
            metrics += [Metric(key, value + fold, start, fold) for fold in range(folds)]
            mean = value + (folds - 1) / 2
            metrics += [Metric(f"{key}_{agg}", mean, start, 0) for agg in ("mean", "median", "pooled")]
    client.log_batch(run.info.run_id, metrics=metrics)
    client.log_text(run.info.run_id, f"# {name}\n", "report.md")
    client.set_terminated(run.info.run_id, end_time=start + 60_000)
    return run.info.run_id


def make_champion(project: Project, run_id: str, name: str = EXPERIMENT) -> str:
    client = client_for(project.uri)
    client.create_registered_model(name)
    version = client.create_model_version(name, source=f"runs:/{run_id}/model", run_id=run_id)
    client.set_registered_model_alias(name, "champion", version.version)
    return version.version


@pytest.fixture
def populated(project: Project) -> dict[str, str]:
    """Three runs of one experiment, the middle one the champion."""
    experiment_id = make_experiment(project)
    runs = {
        "old-run": log_run(project, experiment_id, "old-run", hour=0, rmse={"7d": 10.0, "30d": 20.0}),
        "champ-run": log_run(project, experiment_id, "champ-run", hour=1, rmse={"7d": 9.0, "30d": 18.0}),
        "new-run": log_run(
            project, experiment_id, "new-run", hour=2, rmse={"7d": 12.5, "30d": 25.0}, verdict="fail", dirty=True
        ),
    }
    make_champion(project, runs["champ-run"])
    return runs


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def run_names(db: Path) -> set[str]:
    conn = sqlite3.connect(db)
    try:
        return {row[0] for row in conn.execute("SELECT name FROM runs")}
    finally:
        conn.close()


def assert_one_line_error(err: str, *fragments: str) -> None:
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in err, err


# --------------------------------------------------------------------------------------------- store
# (masking, validation and paths are tested in test_store.py)


def test_store_and_cli_modules_do_not_import_mlflow() -> None:
    # `forecast-mlflow --help` and backup/restore start fast: no mlflow, pandas or pytest behind them
    code = (
        "import sys, pytest_forecast_mlflow.cli, pytest_forecast_mlflow.backup; "
        "loaded = [m for m in ('mlflow', 'pandas', 'pytest') if m in sys.modules]; assert not loaded, loaded"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


# ----------------------------------------------------------------------------------------- dashboard


@pytest.mark.mlflow
def test_dashboard_lists_newest_runs_first_with_aggregates_verdicts_and_champion(
    populated: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run_cli(capsys, "dashboard")

    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith("MLflow store: sqlite:///")
    title = next(line for line in lines if line.startswith("experiment usdclp"))
    assert f"champion: usdclp v1, run {populated['champ-run'][:8]})" in title
    header = next(line for line in lines if "started" in line)
    assert header.split() == ["started", "run", "model", "role", "commit", "verdict", "7d", "rmse", "30d", "rmse"]
    rows = [line for line in lines if "-run" in line]
    assert [next(name for name in ("new-run", "champ-run", "old-run") if name in row) for row in rows] == [
        "new-run",
        "champ-run",
        "old-run",
    ]
    new, champ, old = (row.split() for row in rows)
    # the _mean aggregate: value + (folds - 1) / 2 with three folds
    assert new[-4:] == ["0123456+", "fail", "13.50", "26.00"]
    assert champ[0] == "*"
    assert champ[-3:] == ["pass", "10.00", "19.00"]
    assert old[-4:] == ["0123456", "pass", "11.00", "21.00"]
    assert "* champion" in lines[-1]


def test_format_experiment_aligns_columns_and_clips_long_names() -> None:
    rows = tuple(
        dashboard.RunRow(
            run_id=f"{i}" * 32,
            run_name=name,
            start_time_ms=T0_MS,
            model="a-model-name-far-longer-than-twenty",
            role="candidate",
            commit="abcdef1",
            dirty=False,
            verdict=verdict,
            values=values,
        )
        for i, (name, verdict, values) in enumerate(
            [("r1", "pass", {"7d": 0.012345}), ("r2", "", {"7d": 0.5, "30d": 1234.5})]
        )
    )
    view = dashboard.ExperimentView("exp", rows, ("7d", "30d"), Champion("exp", "4", "1" * 32), "exp")

    title, header, first, second = dashboard.format_experiment(view, "mape", limit=10)

    assert title == "experiment exp  (champion: exp v4, run 11111111)"
    assert header.split()[-4:] == ["7d", "mape", "30d", "mape"]
    assert header.startswith("  started")
    assert first.startswith("  ")  # r1 is not the champion
    assert first.endswith("r1   a-model-name-far-l..  candidate  abcdef1  pass      0.0123         -")
    assert second.startswith("* ")
    assert second.endswith("r2   a-model-name-far-l..  candidate  abcdef1  -         0.5000      1234")
    assert len(header) == len(first) == len(second)


@pytest.mark.mlflow
def test_dashboard_filters_horizons_and_marks_a_champion_outside_the_limit(
    populated: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "dashboard", "--experiment", EXPERIMENT, "--limit", "1", "--horizon", "30d")

    assert code == 0
    assert "not among the latest 1" in out
    header = next(line for line in out.splitlines() if "started" in line)
    assert header.split()[-2:] == ["30d", "rmse"]
    assert "7d" not in header
    assert "new-run" in out
    assert "champ-run" not in out


@pytest.mark.mlflow
def test_dashboard_without_runs_or_experiments(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "dashboard")
    assert code == 0
    assert "no experiments yet" in out

    make_experiment(project, "empty-exp")
    code, out, _ = run_cli(capsys, "dashboard")
    assert code == 0
    assert "no runs yet in experiment empty-exp" in out
    assert "no 'champion' alias on registered model 'empty-exp'" in out


@pytest.mark.mlflow
def test_dashboard_on_a_missing_store_creates_nothing(project: Project, capsys: pytest.CaptureFixture[str]) -> None:
    missing = project.root / "elsewhere" / "mlflow.db"
    code, out, _ = run_cli(capsys, "dashboard", "--tracking-uri", f"sqlite:///{missing}")

    assert code == 0
    assert f"no experiments yet: {missing} does not exist" in out
    assert not missing.parent.exists()


@pytest.mark.mlflow
def test_dashboard_names_an_unknown_experiment(populated: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "dashboard", "--experiment", "nope")
    assert code == 1
    assert_one_line_error(err, "experiment 'nope' not found", "existing: Default, usdclp")


@pytest.mark.mlflow
def test_dashboard_masks_credentials_of_an_unreachable_server(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://alice:s3cret@127.0.0.1:{free_port()}")

    code, out, err = run_cli(capsys, "dashboard")

    assert code == 1
    assert_one_line_error(err, "cannot read http://***@127.0.0.1:", "(MLFLOW_TRACKING_URI)", "reachable")
    assert "s3cret" not in out + err


SLASH_HASH = "ab/cd#S3cret"  # a password holding '/' and '#', written raw: the URL's authority ends early


@pytest.mark.mlflow
@pytest.mark.parametrize("encoded", [False, True], ids=["raw", "percent-encoded"])
def test_dashboard_masks_a_password_holding_slash_and_hash(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, encoded: bool
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    password = "ab%2Fcd%23S3cret" if encoded else SLASH_HASH
    uri = f"http://alice:{password}@127.0.0.1:{free_port()}"

    code, out, err = run_cli(capsys, "dashboard", "--tracking-uri", uri)

    if encoded:
        assert code == 1
        assert_one_line_error(err, "cannot read http://***@127.0.0.1:")
    else:  # refused before any request: the host part ends inside the password, which must not be echoed
        assert code == 2
        assert_one_line_error(err, "host part cannot be parsed (the URI is not shown", "percent-encode them")
    for part in ("S3cret", "ab/cd", "ab%2F", "cd#", "alice"):
        assert part not in out + err, err


def test_every_line_the_cli_prints_is_masked(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lines the command, MLflow or an exception print, in pieces or whole, on stdout and stderr."""
    uri = "http://alice:ab%2Fcd%23S3cret@127.0.0.1:9"  # the password's raw form is masked as well
    seen_env = []

    def leaky(args, out) -> int:
        seen_env.append(os.environ.get("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"))
        out.write("View run r1 at: http://alice:ab/")  # one URL written in two pieces
        out.write("cd#S3cret@127.0.0.1:9/#/experiments/1\n")
        print(f"MLflow says http://alice:{SLASH_HASH}@127.0.0.1:9", file=sys.stderr)
        out.write(f"no newline at the end: {SLASH_HASH}")
        raise RuntimeError(f"API request to http://alice:{SLASH_HASH}@127.0.0.1:9/api/2.0/mlflow/runs/get failed")

    monkeypatch.setattr(dashboard, "cmd_dashboard", leaky)
    monkeypatch.delenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", raising=False)

    code, out, err = run_cli(capsys, "dashboard", "--tracking-uri", uri)

    assert code == 1
    assert seen_env == ["true"]  # MLflow's own "View run ... at: URL" lines are off while the command runs
    assert "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT" not in os.environ  # and the caller's environment is back
    assert out == "View run r1 at: http://***@127.0.0.1:9/#/experiments/1\nno newline at the end: ***"
    assert "MLflow says http://***@127.0.0.1:9" in err
    assert "unexpected RuntimeError: API request to http://***@127.0.0.1:9/api/2.0/mlflow/runs/get failed" in err
    for part in ("S3cret", "ab/cd", "alice"):
        assert part not in out + err


def test_usage_errors_mask_the_uris_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "dashboard", "--limit", f"http://alice:{SLASH_HASH}@h:1")
    assert code == 2
    assert "S3cret" not in out + err
    assert "ab/cd" not in out + err


@pytest.mark.mlflow
def test_dashboard_ends_runs_of_dead_sessions_and_never_shows_a_running_run_as_passed(
    project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    from pytest_forecast_mlflow.liveness import HOST_TAG, PID_TAG, STARTED_TAG, writer_tags

    experiment_id = make_experiment(project)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])  # a process that is certainly gone afterwards
    dead.wait()
    client = client_for(project.uri)
    runs = {}
    for name, writer in (
        ("killed-run", {HOST_TAG: socket.gethostname(), PID_TAG: str(dead.pid), STARTED_TAG: "123456"}),
        ("live-run", writer_tags()),  # this very process: alive
    ):
        tags = {"forecast.model": "naive", "forecast.role": "candidate", "forecast.verdict": "pass", **writer}
        runs[name] = client.create_run(experiment_id, start_time=T0_MS, tags=tags, run_name=name).info.run_id

    code, out, err = run_cli(capsys, "dashboard")

    assert (code, err) == (0, "")
    assert client.get_run(runs["killed-run"]).info.status == "KILLED"
    assert client.get_run(runs["live-run"]).info.status == "RUNNING"
    killed = next(line for line in out.splitlines() if "killed-run" in line)
    live = next(line for line in out.splitlines() if "live-run" in line)
    assert killed.split()[-1] == "killed"
    assert live.split()[-1] == "running"
    assert "pass" not in killed + live
    ended = runs["killed-run"][:8]
    assert f"marked 1 run(s) KILLED: their session's process ended without closing them ({ended})" in out

    code, out, _ = run_cli(capsys, "dashboard")  # already ended: nothing to mark the second time
    assert "marked" not in out


def test_format_experiment_shows_the_state_of_unfinished_runs() -> None:
    rows = tuple(
        dashboard.RunRow(
            run_id=f"{i}" * 32,
            run_name=f"r{i}",
            start_time_ms=T0_MS,
            model="m",
            role="candidate",
            commit="abcdef1",
            dirty=False,
            verdict="pass",
            status=status,
        )
        for i, status in enumerate(["FINISHED", "RUNNING", "KILLED", "FAILED"])
    )
    view = dashboard.ExperimentView("exp", rows, (), None, "exp")
    lines = dashboard.format_experiment(view, "rmse", limit=10)
    assert [line.split()[-1] for line in lines[2:]] == ["pass", "running", "killed", "failed"]


@pytest.mark.mlflow
@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("./mlruns", "--tracking-uri ./mlruns: file stores are not supported by MLflow >= 3.13"),
        ("file:///tmp/mlruns", "file stores are not supported"),
        ("ftp://bob:hunter2@host/x", "--tracking-uri ftp://***@host/x: scheme 'ftp' is not supported"),
    ],
)
def test_a_bad_tracking_uri_is_a_usage_error(
    project: Project, capsys: pytest.CaptureFixture[str], uri: str, expected: str
) -> None:
    for command in (["dashboard"], ["backup", "dest"], ["restore", "src"], ["ui"]):
        code, _, err = run_cli(capsys, *command, "--tracking-uri", uri)
        assert code == 2
        assert_one_line_error(err, expected, "use a database such as sqlite:///")
        assert "hunter2" not in err


@pytest.mark.mlflow
def test_a_bad_tracking_uri_from_the_environment_names_the_variable(
    project: Project, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "mlruns")
    code, _, err = run_cli(capsys, "dashboard")
    assert code == 2
    assert_one_line_error(err, "MLFLOW_TRACKING_URI mlruns: file stores are not supported")


def test_usage_errors_are_one_line_with_exit_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["backup"], ["dashboard", "--limit", "0"], ["ui", "--port", "70000"], ["nope"]):
        code, _, err = run_cli(capsys, *argv)
        assert code == 2
        assert_one_line_error(err, "error:", "--help")


# ------------------------------------------------------------------------------------ backup/restore


@pytest.mark.mlflow
def test_backup_is_consistent_while_another_connection_holds_a_write_transaction(
    populated: dict[str, str], project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    writer = sqlite3.connect(project.db, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("UPDATE runs SET name = 'uncommitted' WHERE name = 'old-run'")
        code, out, err = run_cli(capsys, "backup", str(tmp_path / "bk"))
    finally:
        writer.execute("ROLLBACK")
        writer.close()

    assert (code, err) == (0, ""), err
    assert "backed up 3 runs in 2 experiments" in out
    assert "3 artifact files" in out
    assert run_names(tmp_path / "bk" / "mlflow.db") == {"old-run", "champ-run", "new-run"}
    manifest = json.loads((tmp_path / "bk" / "backup.json").read_text())
    assert manifest["source_uri"] == project.uri
    assert manifest["runs"] == 3
    assert manifest["artifact_files"] == 3
    assert manifest["db_bytes"] == (tmp_path / "bk" / "mlflow.db").stat().st_size
    assert {"created", "mlflow_version"} <= manifest.keys()

    backed_up = client_for(f"sqlite:///{tmp_path / 'bk' / 'mlflow.db'}")
    experiment = backed_up.get_experiment_by_name(EXPERIMENT)
    runs = backed_up.search_runs([experiment.experiment_id])
    assert {r.info.run_name for r in runs} == {"old-run", "champ-run", "new-run"}
    assert all(r.data.metrics["30d/rmse_mean"] > 0 for r in runs)


@pytest.mark.mlflow
def test_backup_while_runs_are_being_written_has_every_committed_run(
    project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    experiment_id = make_experiment(project)
    stop = threading.Event()
    written: list[str] = []
    errors: list[Exception] = []

    def write_runs() -> None:
        try:
            while not stop.is_set():
                n = len(written)
                written.append(log_run(project, experiment_id, f"w{n}", hour=n, rmse=dict.fromkeys(HORIZONS, 1.0)))
        except Exception as exc:  # reported below, in the test's thread
            errors.append(exc)

    def wait_for(count: int) -> None:
        deadline = time.monotonic() + 20
        while len(written) < count and not errors and time.monotonic() < deadline:
            time.sleep(0.01)

    thread = threading.Thread(target=write_runs)
    thread.start()
    backups: list[tuple[int, Path]] = []  # (runs committed before the backup started, its folder)
    try:
        wait_for(3)
        first = len(written)
        # one backup takes milliseconds: repeat until the writer has committed runs while they ran
        while len(written) < first + 3 and len(backups) < 50 and not errors:
            dest = tmp_path / f"bk{len(backups)}"
            backups.append((len(written), dest))
            code, _, err = run_cli(capsys, "backup", str(dest))
            assert (code, err) == (0, ""), err
    finally:
        stop.set()
        thread.join(timeout=30)

    assert not errors, errors
    assert len(written) >= first + 3, "the writer stalled while the backups ran"
    for committed_before, dest in backups:
        conn = sqlite3.connect(dest / "mlflow.db")
        try:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            conn.close()
        assert {f"w{i}" for i in range(committed_before)} <= run_names(dest / "mlflow.db")


@pytest.mark.mlflow
def test_backup_gives_up_on_a_store_locked_too_long(
    populated: dict[str, str],
    project: Project,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(backup_module, "LOCK_TIMEOUT_S", 0.3)
    locker = sqlite3.connect(project.db, isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        code, _, err = run_cli(capsys, "backup", str(tmp_path / "bk"))
    finally:
        locker.execute("ROLLBACK")
        locker.close()

    assert code == 1
    assert_one_line_error(err, "stayed locked", "retry")
    assert not (tmp_path / "bk" / "backup.json").exists()


@pytest.mark.mlflow
def test_backup_refuses_a_non_empty_dest(
    populated: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dest = tmp_path / "bk"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")

    code, _, err = run_cli(capsys, "backup", str(dest))
    assert code == 2
    assert_one_line_error(err, "is not empty", "--force")
    assert sorted(p.name for p in dest.iterdir()) == ["notes.txt"]

    assert run_cli(capsys, "backup", str(dest), "--force")[0] == 0
    assert run_cli(capsys, "backup", str(dest), "--force")[0] == 0  # replaces its own backup
    assert sorted(p.name for p in dest.iterdir()) == ["backup.json", "mlflow.db", "mlruns", "notes.txt"]

    foreign = tmp_path / "foreign"
    (foreign / "mlruns").mkdir(parents=True)
    code, _, err = run_cli(capsys, "backup", str(foreign), "--force")
    assert code == 2
    assert_one_line_error(err, "no backup.json", "choose another folder")


@pytest.mark.mlflow
def test_backup_refuses_a_server_and_a_dest_inside_the_store(
    populated: dict[str, str], project: Project, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run_cli(capsys, "backup", "bk", "--tracking-uri", "https://u:tok@mlflow.example.com")
    assert code == 2
    assert_one_line_error(err, "https://***@mlflow.example.com", "sqlite:///")
    assert "tok" not in err

    code, _, err = run_cli(capsys, "backup", str(project.db.parent), "--force")
    assert code == 2
    assert_one_line_error(err, "overlaps the store")


@pytest.mark.mlflow
def test_restore_refuses_an_existing_store_without_force_and_replaces_it_with_force(
    populated: dict[str, str], project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backup = tmp_path / "bk"
    assert run_cli(capsys, "backup", str(backup))[0] == 0
    experiment_id = client_for(project.uri).get_experiment_by_name(EXPERIMENT).experiment_id
    log_run(project, experiment_id, "after-backup", hour=5, rmse={"7d": 1.0, "30d": 2.0})

    code, _, err = run_cli(capsys, "restore", str(backup))
    assert code == 2
    assert_one_line_error(err, "a store already exists", "--force")
    assert "after-backup" in run_names(project.db)

    code, out, err = run_cli(capsys, "restore", str(backup), "--force")
    assert (code, err) == (0, ""), err
    assert "restored 3 runs in 2 experiments and 3 artifact files" in out
    assert "note:" not in out

    client = client_for(project.uri)  # the same client cache as before: restore rewrote the live database
    runs = client.search_runs([experiment_id], order_by=["attributes.start_time DESC"])
    assert [r.info.run_name for r in runs] == ["new-run", "champ-run", "old-run"]
    assert runs[0].data.metrics["7d/rmse_mean"] == 13.5
    assert client.get_model_version_by_alias(EXPERIMENT, "champion").run_id == populated["champ-run"]
    downloaded = client.download_artifacts(populated["old-run"], "report.md", str(tmp_path))
    assert Path(downloaded).read_text() == "# old-run\n"
    assert not list(project.artifacts.parent.glob("mlruns.*"))


def stale_cells(db: Path, needle: str) -> list[tuple[str, str, str]]:
    """Every (table, column, value) in ``db`` that still mentions ``needle``."""
    conn = sqlite3.connect(db)
    try:
        found = []
        for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"):
            for column in [row[1] for row in conn.execute(f'PRAGMA table_info("{table}")')]:
                rows = conn.execute(f'SELECT "{column}" FROM "{table}" WHERE instr("{column}", ?) > 0', [needle])
                found += [(table, column, value) for (value,) in rows]
        return found
    finally:
        conn.close()


@pytest.mark.mlflow
def test_restore_into_a_new_location_rewrites_artifact_locations(
    populated: dict[str, str], project: Project, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It used to keep the old folder's absolute locations: new runs wrote there, and failed once it was gone."""
    foreign = client_for(project.uri).create_experiment("foreign", artifact_location=(tmp_path / "elsewhere").as_uri())
    log_run(project, foreign, "foreign-run", hour=3, rmse={"7d": 1.0, "30d": 2.0})
    assert run_cli(capsys, "backup", str(tmp_path / "bk"))[0] == 0
    backup_db = (tmp_path / "bk" / "mlflow.db").read_bytes()
    target = tmp_path / "moved" / "mlflow.db"

    code, out, err = run_cli(capsys, "restore", str(tmp_path / "bk"), "--tracking-uri", f"sqlite:///{target}")

    assert (code, err) == (0, ""), err
    # 3 runs and their experiment in usdclp; the foreign experiment and its run stay where they are
    assert f"rewrote 4 rows of artifact locations from {project.artifacts} to {target.parent / 'mlruns'}" in out
    assert "note: 1 experiment(s) record artifact locations outside" in out
    assert "elsewhere" in out
    assert run_names(target) == {"old-run", "champ-run", "new-run", "foreign-run"}
    assert stale_cells(target, str(project.artifacts)) == []
    assert (tmp_path / "bk" / "mlflow.db").read_bytes() == backup_db  # the backup itself is untouched
    assert not list(target.parent.glob("mlflow.db.*"))

    shutil.rmtree(project.artifacts)  # the old folder is gone: the restored store does not need it
    client = client_for(f"sqlite:///{target}")
    (tmp_path / "dl").mkdir()  # MLflow 2.x wants an existing destination
    import mlflow

    # by the run's recorded location (MLflow 2.x caches a run's artifact repository by run id in-process,
    # from when this process logged it; a user restores in a new process)
    location = client.get_run(populated["old-run"]).info.artifact_uri
    downloaded = mlflow.artifacts.download_artifacts(
        artifact_uri=f"{location}/report.md", dst_path=str(tmp_path / "dl")
    )
    assert Path(downloaded).read_text() == "# old-run\n"
    assert Path(downloaded).is_file()
    assert client.get_run(populated["new-run"]).info.artifact_uri.startswith((target.parent / "mlruns").as_uri())


@pytest.mark.mlflow
@pytest.mark.slow
def test_a_restored_store_gates_against_its_champion_after_the_original_is_gone(
    pytester: pytest.Pytester, empty_store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_project(pytester)
    original = empty_store  # its artifacts go to mlruns/ next to it, as for the embedded store
    first = run_tracked(pytester, original, "--mlflow-promote")
    assert first.ret == pytest.ExitCode.OK, first.stdout.str()
    assert run_cli(capsys, "backup", str(tmp_path / "bk"), "--tracking-uri", original.uri)[0] == 0
    restored = Store(tmp_path / "restored" / "mlflow.db")

    code, out, err = run_cli(capsys, "restore", str(tmp_path / "bk"), "--tracking-uri", restored.uri)

    assert (code, err) == (0, ""), err
    assert "rewrote " in out
    assert "note:" not in out
    shutil.rmtree(original.db.parent)
    assert stale_cells(restored.db, str(original.db.parent)) == []

    second = run_tracked(pytester, restored)

    assert second.ret == pytest.ExitCode.OK, second.stdout.str()
    second.stdout.fnmatch_lines(["*forecast gate: PASSED against forecaster v1*"])
    latest = restored.latest()
    assert latest.info.artifact_uri.startswith((restored.db.parent / "mlruns").as_uri())
    assert list((restored.db.parent / "mlruns").rglob("manifests/5d.json"))
    assert not original.db.parent.exists()


@pytest.mark.mlflow
def test_restore_rejects_a_folder_that_is_not_a_backup(project: Project, tmp_path: Path, capsys) -> None:
    not_backup = tmp_path / "not-a-backup"
    not_backup.mkdir()
    shutil.copyfile(project.db, not_backup / "mlflow.db")

    code, _, err = run_cli(capsys, "restore", str(not_backup), "--force")
    assert code == 2
    assert_one_line_error(err, "has no backup.json", "forecast-mlflow backup DEST")

    code, _, err = run_cli(capsys, "restore", str(tmp_path / "missing"))
    assert code == 2
    assert_one_line_error(err, "is not a folder")

    (not_backup / "backup.json").write_text(json.dumps({"format": "forecast-mlflow-backup", "format_version": 1}))
    (not_backup / "mlflow.db").unlink()
    code, _, err = run_cli(capsys, "restore", str(not_backup), "--force")
    assert code == 2
    assert_one_line_error(err, "no mlflow.db", "incomplete")


# ------------------------------------------------------------------------------------------------ ui


def non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))  # no packet is sent; this picks the outward interface
        except OSError:
            return None
        address = probe.getsockname()[0]
    return None if address.startswith("127.") else address


@pytest.mark.mlflow
def test_ui_binds_loopback_by_default(project: Project) -> None:
    args = build_parser().parse_args(["ui"])
    assert (args.host, args.port) == ("127.0.0.1", 5000)
    command = ui_command(resolve_store(None), args.host, args.port)
    assert command[:4] == [sys.executable, "-m", "mlflow", "server"]
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert command[command.index("--backend-store-uri") + 1] == project.uri
    assert command[command.index("--default-artifact-root") + 1] == str(project.artifacts)


def test_ui_refuses_a_server_uri_and_a_missing_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "ui", "--tracking-uri", "https://mlflow.example.com")
    assert code == 2
    assert_one_line_error(err, "works on the embedded sqlite:/// store")

    code, _, err = run_cli(capsys, "ui", "--tracking-uri", f"sqlite:///{tmp_path}/none/mlflow.db")
    assert code == 1
    assert_one_line_error(err, "no MLflow store at", "run the backtests")


@pytest.mark.mlflow
@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix", reason="stops the server through POSIX process groups")
def test_ui_serves_the_store_on_loopback_until_ctrl_c(populated: dict[str, str], project: Project) -> None:
    port = free_port()
    log_path = project.root / "ui.log"
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", JOB_ENV)}
    script = Path(sys.executable).with_name("forecast-mlflow")
    assert script.exists(), "install the project (pip install -e .) so the forecast-mlflow script exists"
    starter = "import sys; from pytest_forecast_mlflow.cli import main; sys.exit(main(sys.argv[1:]))"
    server_pid = None
    with log_path.open("w") as log:
        ui = subprocess.Popen(
            [sys.executable, "-c", starter, "ui", "--port", str(port)],
            cwd=project.root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline, status = time.monotonic() + 60, None
        while time.monotonic() < deadline and ui.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    status = response.status
                    break
            except OSError:
                time.sleep(0.3)
        log_text = log_path.read_text()
        assert status == 200, f"the UI did not answer within 60 s:\n{log_text}"
        assert f"http://127.0.0.1:{port}" in log_text
        server_pid = int(log_text.split("server pid ", 1)[1].split(";", 1)[0])

        outside = non_loopback_address()
        if outside is not None:
            with pytest.raises(OSError):
                socket.create_connection((outside, port), timeout=2).close()

        # the installed script, against the server, with credentials that must never be printed
        dashboard = subprocess.run(
            [str(script), "dashboard", "--tracking-uri", f"http://alice:s3cret@127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert dashboard.returncode == 0, dashboard.stderr
        assert f"MLflow store: http://***@127.0.0.1:{port}" in dashboard.stdout
        assert "champ-run" in dashboard.stdout
        assert "s3cret" not in dashboard.stdout + dashboard.stderr

        ui.send_signal(signal.SIGINT)  # Ctrl-C, to the command only: it must stop the server's group
        assert ui.wait(timeout=90) == 0  # SIGTERM, then SIGKILL after 10 s; slow under a loaded machine
        log_text = log_path.read_text()
        assert "MLflow UI stopped" in log_text
        assert "Traceback" not in log_text
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and group_alive(server_pid):
            time.sleep(0.1)
        assert not group_alive(server_pid), "the server outlived the command"
    finally:
        for pgid in (ui.pid, server_pid):
            if pgid is not None and group_alive(pgid):
                os.killpg(pgid, signal.SIGKILL)
        ui.wait(timeout=10)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True
