"""``pytest_forecast_mlflow.tracking.views`` in-process, on a copy of the empty template store.

What the dashboard reads comes back as plain values; MLflow's "no such model" and "no such alias"
errors, told apart by their error codes, mean "no champion"; any other MLflow error is a
``StoreReadError``.
"""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from pytest_forecast_mlflow.tracking.views import (
    Champion,
    Experiment,
    RunSummary,
    StoreReadError,
    StoreView,
    mlflow_version,
)

from .conftest import Store

pytestmark = [pytest.mark.mlflow, pytest.mark.usefixtures("hermetic")]


def test_importing_the_views_does_not_import_mlflow() -> None:
    code = "import sys, pytest_forecast_mlflow.tracking.views; assert 'mlflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


def test_experiments_runs_and_champion_come_back_as_plain_values(empty_store: Store) -> None:
    client = empty_store.client()
    experiment_id = client.create_experiment("exp")
    deleted = client.create_experiment("deleted")
    client.delete_experiment(deleted)
    run_ids = []
    for hour in range(3):
        run = client.create_run(experiment_id, start_time=1_000 + hour, tags={"forecast.model": f"m{hour}"})
        client.log_metric(run.info.run_id, "7d/rmse_mean", float(hour))
        client.set_terminated(run.info.run_id)
        run_ids.append(run.info.run_id)
    view = StoreView(empty_store.uri)

    assert [e.name for e in view.experiments()] == ["exp", "Default"]
    assert view.experiment("deleted") is None
    assert view.experiment("nope") is None
    assert view.experiment("exp") == Experiment(experiment_id, "exp")

    latest = view.latest_runs(experiment_id, limit=2)
    assert [r.run_id for r in latest] == [run_ids[2], run_ids[1]]
    newest = latest[0]
    assert isinstance(newest, RunSummary)
    assert (newest.start_time_ms, newest.status, newest.metrics["7d/rmse_mean"]) == (1_002, "FINISHED", 2.0)
    assert newest.tags["forecast.model"] == "m2"
    assert newest.run_name  # MLflow names every run

    assert view.champion("exp", "champion") is None  # no registered model
    client.create_registered_model("exp")
    assert view.champion("exp", "champion") is None  # no such alias
    version = client.create_model_version("exp", source=f"runs:/{run_ids[1]}/model", run_id=run_ids[1])
    client.set_registered_model_alias("exp", "champion", version.version)
    assert view.champion("exp", "champion") == Champion("exp", str(version.version), run_ids[1])

    assert view.end_dead_runs([experiment_id]) == []  # every run is finished


def test_an_mlflow_error_reaches_the_caller_as_a_store_read_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    view = StoreView(f"http://127.0.0.1:{port}")

    with pytest.raises(StoreReadError) as raised:
        view.experiments()

    assert raised.value.error_code  # MLflow's ErrorCode name, whatever this version calls a failed request
    assert f"127.0.0.1:{port}" in raised.value.message


def test_mlflow_version_is_the_installed_one() -> None:
    from importlib.metadata import version

    assert mlflow_version() == version("mlflow")
