"""The plugin against a real ``mlflow server`` over HTTP: logging, outages, spooling and replay.

The server runs on 127.0.0.1 with a SQLite backend in a temporary folder, started per test that
needs it. Unreachable servers (refused, unknown host, silent) must be detected within seconds, not
after MLflow's default four minutes of retries.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient  # imported at collection: pytester restores sys.modules after each test

from tests.mlflow_server import MlflowServer, free_port

from .conftest import assert_quiet

pytestmark = [pytest.mark.mlflow, pytest.mark.slow]

INNER = """
import os, signal, socket, time
import numpy as np, pandas as pd, pytest
import backtest as bt

SERIES = pd.Series(500 * np.exp(np.cumsum(np.random.default_rng(7).normal(0, 0.005, 400))),
                   index=pd.bdate_range("2020-01-01", periods=400))

@pytest.mark.parametrize("horizon", [5, 10], ids=lambda h: f"{h}d")
def test_candidate(walk_forward, horizon):
    walk_forward(bt.Naive(), SERIES, bt.WalkForward(horizon=horizon, step=5, initial=250), name="naive_candidate")

def test_zz_stop_server():
    # the whole process group: MLflow 2.x serves from gunicorn children that outlive the CLI process
    # (the CLI process stays a zombie of the outer test until reaped, so wait for the port instead)
    pid = os.environ.get("STOP_SERVER_PID")
    if pid:
        os.killpg(int(pid), signal.SIGTERM)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", int(os.environ["STOP_SERVER_PORT"])), timeout=1).close()
            except OSError:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the mlflow server still accepts connections 20 s after SIGTERM")
"""


class Server(MlflowServer):
    """A real ``mlflow server`` on 127.0.0.1 with a SQLite backend (see tests/mlflow_server.py)."""

    def __init__(self, folder: Path, template: Path | None = None) -> None:
        super().__init__(folder, template=template)


@pytest.fixture
def new_server(tmp_path_factory, schema_db):
    """Make a server (not started) in a folder of its own, its database a copy of the empty template."""
    return lambda name="mlflow-server": Server(tmp_path_factory.mktemp(name), schema_db)


@pytest.fixture
def server(new_server):
    srv = new_server()
    srv.start()
    yield srv
    srv.stop()


def _client(uri: str):
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _runs(uri: str, experiment: str):
    client = _client(uri)
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id], max_results=1000)


def _run(pytester, *args, env=None, timeout=300):
    pytester.makepyfile(test_inner=INNER)
    for key, value in (env or {}).items():
        os.environ[key] = value
    try:
        return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=timeout)
    finally:
        for key in env or {}:
            os.environ.pop(key, None)


def test_logs_to_a_real_server_over_http(pytester, server):
    result = _run(pytester, "--mlflow-experiment", "remote", "--mlflow-tracking-uri", server.uri, "--mlflow-promote")
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines([f"*experiment 'remote' at {server.uri}*", "*moved alias 'champion'*"])
    (run,) = _runs(server.uri, "remote")
    assert run.info.status == "FINISHED"
    assert len(_client(server.uri).get_metric_history(run.info.run_id, "5d/rmse")) == run.data.metrics["5d/folds"]
    assert _client(server.uri).get_model_version_by_alias("remote", "champion").run_id == run.info.run_id

    # 29-30 folds a horizon: the promotion guard's 30-fold minimum is lowered for this small suite
    again = _run(
        pytester, "--mlflow-experiment", "remote", "--mlflow-tracking-uri", server.uri, "-o", "forecast_min_folds=10"
    )
    assert again.ret == pytest.ExitCode.OK
    again.stdout.fnmatch_lines(["*forecast gate: PASSED against remote v1*"])
    assert_quiet(result)  # over HTTP the champion's artifacts are really downloaded: no progress bars
    assert_quiet(again)


@pytest.mark.parametrize(
    "uri",
    [
        pytest.param("refused", id="refused"),
        pytest.param("http://no-such-host.invalid:5000", id="unknown-host"),
        pytest.param("silent", id="timing-out"),
    ],
)
def test_unreachable_server_is_reported_within_seconds(pytester, uri):
    silent = None
    if uri == "refused":
        uri = f"http://127.0.0.1:{free_port()}"
    elif uri == "silent":  # accepts connections, never answers
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        uri = f"http://127.0.0.1:{silent.getsockname()[1]}"
    started = time.monotonic()
    try:
        result = _run(pytester, "--mlflow-experiment", "down", "--mlflow-tracking-uri", uri, "--mlflow-timeout", "3")
    finally:
        if silent:
            silent.close()
    elapsed = time.monotonic() - started
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*tracking server http://*unreachable*--mlflow-on-unavailable=spool*"])
    assert elapsed < 30, f"took {elapsed:.1f} s to notice the server is down"


def test_server_down_at_start_spools_and_replays_exactly_once(pytester, new_server):
    srv = new_server("later-server")
    result = _run(
        pytester,
        "--mlflow-experiment",
        "spooled",
        "--mlflow-tracking-uri",
        srv.uri,
        "--mlflow-on-unavailable",
        "spool",
        "--mlflow-timeout",
        "2",
        "--forecast-gate",
        "warn",
    )
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*results saved to *journal*; replay with: forecast-mlflow replay*"])
    (journal,) = (pytester.path / "data" / "mlflow" / "journal").iterdir()
    payload = json.loads((journal / "journal.json").read_text())
    assert {r["label"] for r in payload["records"]} == {"5d", "10d"}

    srv.start()
    try:
        _replay_twice_and_check(journal, srv.uri, "spooled")
    finally:
        srv.stop()


def test_server_stopped_mid_session_loses_nothing(pytester, server):
    result = _run(
        pytester,
        "--mlflow-experiment",
        "midway",
        "--mlflow-tracking-uri",
        server.uri,
        "--mlflow-on-unavailable",
        "spool",
        "--mlflow-timeout",
        "2",
        env={"STOP_SERVER_PID": str(server.process.pid), "STOP_SERVER_PORT": str(server.port)},
    )
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.stdout.fnmatch_lines(["*logging to http://127.0.0.1:*failed*results saved to*forecast-mlflow replay*"])
    (journal,) = (pytester.path / "data" / "mlflow" / "journal").iterdir()
    server.start()  # the same store, back up
    _replay_twice_and_check(journal, server.uri, "midway")


def test_server_stopped_mid_session_fails_without_spool(pytester, server):
    result = _run(
        pytester,
        "--mlflow-experiment",
        "midway",
        "--mlflow-tracking-uri",
        server.uri,
        "--mlflow-timeout",
        "2",
        env={"STOP_SERVER_PID": str(server.process.pid), "STOP_SERVER_PORT": str(server.port)},
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["ERROR: logging to http://127.0.0.1:*failed*results saved to*"])


def _replay_twice_and_check(journal: Path, uri: str, experiment: str) -> None:
    command = [sys.executable, "-m", "pytest_forecast_mlflow.cli", "replay", str(journal), "--tracking-uri", uri]
    first = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    assert "logged as run" in first.stdout
    (run,) = _runs(uri, experiment)
    histories = {key: len(_client(uri).get_metric_history(run.info.run_id, key)) for key in ("5d/rmse", "10d/rmse")}
    assert histories == {"5d/rmse": run.data.metrics["5d/folds"], "10d/rmse": run.data.metrics["10d/folds"]}

    second = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert "already replayed" in second.stdout
    assert len(_runs(uri, experiment)) == 1
