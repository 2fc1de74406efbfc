"""The tracking layer in-process: the pure names and values of a run, the value a session hands over, MLflow
error codes, and a connection giving MLflow's process-wide state back on close.

The params/metrics and ``SessionResult`` tests need no store; the connection tests open a temporary
``sqlite:///`` store in this process (no subprocess).
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import pickle
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy
import pandas
import pytest

from pytest_forecast_mlflow import __version__
from pytest_forecast_mlflow.gate import Baseline, BaselineHorizon, Verdict
from pytest_forecast_mlflow.records import Record, naive_reference
from pytest_forecast_mlflow.result import SessionResult
from pytest_forecast_mlflow.settings import Settings

pytestmark = pytest.mark.usefixtures("hermetic")

ORIGINS = ["2024-01-05", "2024-01-12", "2024-01-19"]
TIMESTAMP = 1_700_000_000_000
#: ORIGINS at midnight UTC, in milliseconds since the epoch
ORIGIN_MS = [1_704_412_800_000, 1_705_017_600_000, 1_705_622_400_000]


def make_record(
    *,
    label: str = "5d",
    model: str = "candidate",
    role: str = "candidate",
    rmse: tuple[float, ...] = (1.0, 2.0, 3.0),
    sha: str = "abc",
    params: dict[str, str] | None = None,
    error: str | None = None,
) -> Record:
    return Record(
        nodeid=f"test_x.py::test_{model}_{label}",
        location=("test_x.py", 1, f"test_{model}_{label}"),
        model=model,
        role=role,
        label=label,
        horizon=5,
        spec={"horizon": "5", "step": "5"},
        data={"data.sha256": sha, "data.rows": "300"},
        data_source="data/rates.csv",
        params=params if params is not None else {"k": "3"},
        origins=[] if error else list(ORIGINS),
        fold_metrics={"rmse": list(rmse), "mae": [value / 2 for value in rmse]},
        aggregates={"rmse_mean": sum(rmse) / len(rmse), "rmse_median": sorted(rmse)[len(rmse) // 2]},
        error=error,
    )


def by_key(metrics: list[tuple[str, float, int, int]]) -> dict[str, list[tuple[int, float]]]:
    out: dict[str, list[tuple[int, float]]] = {}
    for key, value, timestamp, step in metrics:
        # a per-fold value is stamped with its fold's origin date; a step-less one with the run's time
        stepped = key.rpartition("/")[2] in ("rmse", "mae")
        assert timestamp == (ORIGIN_MS[step] if stepped else TIMESTAMP), (key, step, timestamp)
        out.setdefault(key, []).append((step, value))
    return out


def test_a_fold_value_carries_its_origin_date_as_timestamp_so_the_ui_can_chart_by_date() -> None:
    from pytest_forecast_mlflow.tracking.runs import fold_metrics, origin_timestamps

    assert origin_timestamps(ORIGINS) == ORIGIN_MS
    # origins that are positions, not dates, or that predate 1970 (MLflow refuses negative timestamps)
    for origins in (["0", "1"], ["1969-12-31", "1970-01-02"], ["2024-01-05", "next week"]):
        assert origin_timestamps(origins) is None, origins
    record = make_record()
    undated = Record(**{**record.__dict__, "origins": ["0", "5", "10"]})
    assert {ts for _, _, ts, _ in fold_metrics([undated], TIMESTAMP)} == {TIMESTAMP}


# ----------------------------------------------------------------------------------------- run params


def test_params_carry_the_versions_and_each_horizons_spec() -> None:
    from pytest_forecast_mlflow.tracking import run_params

    params = run_params([make_record(label="5d"), make_record(label="10d")], mlflow_version="9.9.9")

    assert params["version.mlflow"] == "9.9.9"
    assert params["version.numpy"] == numpy.__version__
    assert params["version.pandas"] == pandas.__version__
    assert params["version.pytest-forecast-mlflow"] == __version__
    assert (params["5d.horizon"], params["10d.step"]) == ("5", "5")


def test_a_model_param_all_horizons_share_is_logged_once_and_one_that_differs_per_horizon() -> None:
    from pytest_forecast_mlflow.tracking import run_params

    records = [
        make_record(label="5d", params={"k": "3", "source": "ecb"}),
        make_record(label="10d", params={"k": "6", "source": "ecb"}),
    ]

    params = run_params(records, mlflow_version="1")

    assert {key: value for key, value in params.items() if "model." in key} == {
        "5d.model.k": "3",
        "10d.model.k": "6",
        "model.source": "ecb",
    }


def test_the_data_fingerprint_is_logged_once_for_one_series_and_per_horizon_for_several() -> None:
    from pytest_forecast_mlflow.tracking import run_params

    same = run_params([make_record(label="5d"), make_record(label="10d")], mlflow_version="1")
    assert (same["data.sha256"], same["data.source"]) == ("abc", "data/rates.csv")
    assert "5d.data.sha256" not in same

    different = run_params([make_record(label="5d", sha="a"), make_record(label="10d", sha="b")], mlflow_version="1")
    assert (different["5d.data.sha256"], different["10d.data.sha256"]) == ("a", "b")
    assert different["10d.data.source"] == "data/rates.csv"
    assert "data.sha256" not in different


# ---------------------------------------------------------------------------------------- run metrics


def test_every_fold_metric_is_a_series_stepped_by_fold_with_its_aggregates_step_less_beside_it() -> None:
    from pytest_forecast_mlflow.tracking import run_metrics

    metrics = by_key(run_metrics([make_record()], {}, None, TIMESTAMP))

    assert metrics["5d/rmse"] == [(0, 1.0), (1, 2.0), (2, 3.0)]
    assert metrics["5d/mae"] == [(0, 0.5), (1, 1.0), (2, 1.5)]
    assert metrics["5d/rmse_mean"] == [(0, 2.0)]
    assert metrics["5d/rmse_median"] == [(0, 2.0)]
    assert metrics["5d/folds"] == [(0, 3.0)]
    assert metrics["all/rmse_mean"] == [(0, 2.0)]


def test_stepped_series_come_first_each_contiguous() -> None:
    """A 1,000-value batch then rarely splits one series."""
    from pytest_forecast_mlflow.tracking import run_metrics

    keys = [key for key, *_ in run_metrics([make_record(label="5d"), make_record(label="10d")], {}, None, TIMESTAMP)]

    stepped = ["5d/rmse", "5d/mae", "10d/rmse", "10d/mae"]
    assert keys[:12] == [key for key in stepped for _ in ORIGINS]
    assert not set(keys[12:]) & set(stepped)


def test_all_means_average_the_horizons_and_skill_is_logged_per_horizon() -> None:
    from pytest_forecast_mlflow.tracking import run_metrics

    records = [make_record(label="5d", rmse=(1.0, 1.0, 1.0)), make_record(label="10d", rmse=(3.0, 3.0, 3.0))]
    skill = {"candidate 5d": {"theil_u": 0.9, "rmse_ratio": 0.8}}

    metrics = by_key(run_metrics(records, skill, None, TIMESTAMP))

    assert metrics["all/rmse_mean"] == [(0, 2.0)]
    assert (metrics["5d/theil_u"], metrics["5d/rmse_ratio"]) == ([(0, 0.9)], [(0, 0.8)])
    assert "10d/theil_u" not in metrics


def test_a_failed_backtest_logs_no_metrics() -> None:
    from pytest_forecast_mlflow.tracking import run_metrics

    metrics = by_key(
        run_metrics([make_record(label="5d"), make_record(label="10d", error="boom")], {}, None, TIMESTAMP)
    )

    assert not [key for key in metrics if key.startswith("10d/")]
    assert metrics["all/rmse_mean"] == [(0, 2.0)]


@pytest.mark.parametrize(
    ("tags", "name"),
    [
        (
            {
                "mlflow.source.git.commit": "3f2a1c9d0e",
                "git.dirty": "false",
                "forecast.started": "2026-11-27T20:55:03-03:00",
            },
            "direct_mlp 3f2a1c9 2026-11-27 20:55:03",
        ),
        (
            {
                "mlflow.source.git.commit": "3f2a1c9d0e",
                "git.dirty": "true",
                "forecast.started": "2026-11-27T20:55:03+00:00",
            },
            "direct_mlp 3f2a1c9+dirty 2026-11-27 20:55:03",
        ),
        ({"forecast.started": "2026-11-27T20:55:03+00:00"}, "direct_mlp 2026-11-27 20:55:03"),  # no git
        ({}, "direct_mlp"),  # a journal written before sessions recorded their start
    ],
)
def test_runs_are_named_by_model_commit_and_session_start(tags: dict[str, str], name: str) -> None:
    from pytest_forecast_mlflow.tracking.runs import default_run_name

    assert default_run_name("direct_mlp", tags) == name


def test_a_reference_run_is_reused_only_when_its_fingerprint_and_results_match() -> None:
    from pytest_forecast_mlflow.tracking.runs import aggregate_metrics, fingerprint

    params = {"5d.horizon": "5", "data.sha256": "abc", "version.numpy": "2.0"}
    assert fingerprint("naive", params) == fingerprint("naive", dict(reversed(list(params.items()))))
    assert fingerprint("naive", params) != fingerprint("drift", params)
    assert fingerprint("naive", params) != fingerprint("naive", {**params, "data.sha256": "abd"})
    # the results compared: the step-less metrics only, never a per-fold series
    assert all(step == 0 for _, _, _, step in aggregate_metrics([make_record(label="5d")], {}, None, TIMESTAMP))


@pytest.mark.parametrize("tested", ["dm", "dm-hln", "mh-aspa", "mh-uspa"])
def test_the_verdict_adds_the_compared_rows_of_these_records_only(tested: str) -> None:
    from pytest_forecast_mlflow.tracking import run_metrics

    def row(model: str, status: str = "compared", method: str = tested) -> SimpleNamespace:
        return SimpleNamespace(
            model=model,
            label="5d",
            metric="rmse",
            status=status,
            method=method,
            delta_pct=-4.0,
            p_adjusted=0.01,
            min_detectable_pct=3.0,
        )

    # stand-ins for a Verdict holding only what run_metrics reads: the rows
    verdict: Any = SimpleNamespace(rows=(row("candidate"), row("other"), row("candidate", status="too-few-folds")))
    metrics = by_key(run_metrics([make_record()], {}, verdict, TIMESTAMP))
    assert {key: value for key, value in metrics.items() if key.startswith("gate/")} == {
        "gate/5d/rmse_delta_pct": [(0, -4.0)],
        "gate/5d/rmse_p": [(0, 0.01)],
        "gate/5d/rmse_detectable_pct": [(0, 3.0)],
    }

    threshold: Any = SimpleNamespace(rows=(row("candidate", method="threshold"),))
    metrics = by_key(run_metrics([make_record()], {}, threshold, TIMESTAMP))
    assert [key for key in metrics if key.startswith("gate/")] == ["gate/5d/rmse_delta_pct"]


# ------------------------------------------------------------------------------- the value handed over


def test_the_naive_reference_is_the_completed_reference_named_naive_at_that_label() -> None:
    naive_5d = make_record(model="Naive", role="reference", label="5d")
    records = [
        make_record(model="naive", role="candidate", label="5d"),
        make_record(model="naive_failed", role="reference", label="5d", error="boom"),
        make_record(model="drift", role="reference", label="5d"),
        make_record(model="naive", role="reference", label="10d"),
        naive_5d,
    ]
    assert naive_reference(records, "5d") is naive_5d
    assert naive_reference(records[:3], "5d") is None


def test_a_session_result_survives_json() -> None:
    horizon = BaselineHorizon(
        label="5d",
        horizon=5,
        step=5,
        origins=list(ORIGINS),
        actuals=[[1.0]] * 3,
        fold_metrics={"rmse": [1.0, 2.0, 3.0]},
    )
    result = SessionResult(
        session_id="0123456789abcdef",
        status="KILLED",
        records=(make_record(), make_record(model="naive", role="reference")),
        outcomes={"test_x.py::test_candidate_5d": "passed"},
        verdict=Verdict("no-baseline", (), "no registered model 'fx' yet", reasons=("first",)),
        baseline=Baseline(
            registered_model="fx",
            version="3",
            how="alias champion",
            run_id="r" * 32,
            run_name="naive",
            data_sha256="abc",
            horizons={"5d": horizon},
            gate_metrics=("rmse",),
        ),
        skill={"candidate 5d": {"theil_u": 0.9}},
        tags={"git.branch": "main"},
    )

    assert SessionResult.from_json(json.loads(json.dumps(result.to_json()))) == result


# ------------------------------------------------------------------------------------------ MLflow errors


def test_mlflow_errors_are_recognised_by_code() -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_ALREADY_EXISTS, RESOURCE_DOES_NOT_EXIST

    from pytest_forecast_mlflow.tracking import error_is

    exists = MlflowException("it is there", error_code=RESOURCE_ALREADY_EXISTS)
    assert error_is(exists, RESOURCE_ALREADY_EXISTS)
    assert error_is(exists, RESOURCE_DOES_NOT_EXIST, RESOURCE_ALREADY_EXISTS)
    assert not error_is(exists, RESOURCE_DOES_NOT_EXIST)
    # the message does not count: only the code does
    assert not error_is(MlflowException("alias not found", error_code=INVALID_PARAMETER_VALUE), RESOURCE_DOES_NOT_EXIST)
    assert not error_is(ValueError("already exists"), RESOURCE_ALREADY_EXISTS)


class ReleasedDuringTheClash:
    """A registry client behaving as MLflow's SQL store when a lock's holder releases it mid-clash.

    The store answers a name clash by reading the existing model; when the holder deletes it in
    between, that read raises "does not exist" out of ``create_registered_model`` (seen on PostgreSQL
    with four sessions promoting at once).
    """

    def __init__(self, held: str) -> None:
        self.models: dict[str, dict[str, str]] = {held: {}}
        self.creates = 0

    def create_registered_model(self, name: str, tags: dict[str, str], description: str) -> None:
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST

        self.creates += 1
        if name in self.models:
            del self.models[name]  # the holder finishes between the clash and the store's read
            raise MlflowException(f"Registered Model with name={name} not found", error_code=RESOURCE_DOES_NOT_EXIST)
        self.models[name] = tags

    def delete_registered_model(self, name: str) -> None:
        del self.models[name]


def test_a_promotion_lock_released_while_the_store_reports_the_clash_is_taken_on_the_next_try() -> None:
    from pytest_forecast_mlflow.tracking.registry import LOCK_SUFFIX, Registry

    lock = f"forecaster{LOCK_SUFFIX}"
    client = ReleasedDuringTheClash(held=lock)
    registry = Registry(SimpleNamespace(client=client, settings=SimpleNamespace(timeout=5.0)))  # type: ignore[arg-type]
    with registry._promotion_lock("forecaster"):
        assert client.creates == 2
        assert client.models[lock]["forecast.writer.pid"] == str(os.getpid())
    assert lock not in client.models


# ------------------------------------------------------------------------- a connection restores MLflow


def mlflow_state() -> tuple:
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    from pytest_forecast_mlflow.tracking.connection import ENVIRONMENT

    return (
        tracking_utils._tracking_uri,
        registry_utils._registry_uri,
        {name: os.environ.get(name) for name in ENVIRONMENT},
    )


def settings_for(tmp_path: Path, uri: str) -> Settings:
    return Settings(experiment="units", tracking_uri=uri, artifact_root=tmp_path / "mlruns", rootdir=tmp_path)


@pytest.fixture
def unset_mlflow_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """None of the variables a connection sets is set before it opens."""
    from pytest_forecast_mlflow.tracking.connection import ENVIRONMENT

    for name in ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.mlflow
@pytest.mark.usefixtures("unset_mlflow_environment")
def test_closing_the_tracking_restores_mlflows_global_uris_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    from pytest_forecast_mlflow.tracking import Tracking

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "7")  # the user's own: kept, and kept afterwards
    previous = f"sqlite:///{tmp_path / 'previous.db'}"
    mlflow.set_tracking_uri(previous)  # what the process used before the plugin opened its store
    try:
        before = mlflow_state()
        uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"

        tracking = Tracking(settings_for(tmp_path, uri))
        try:
            assert (mlflow.get_tracking_uri(), mlflow.get_registry_uri()) == (uri, uri)
            assert os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "0"
            assert os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "7"
            assert os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] == "true"
        finally:
            tracking.close()

        assert mlflow_state() == before
        assert mlflow.get_tracking_uri() == previous
        assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ
    finally:
        # None is MLflow's "never set" (what Tracking.close restores); its annotation leaves None out
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]


@pytest.mark.mlflow
@pytest.mark.usefixtures("unset_mlflow_environment")
def test_a_store_that_cannot_be_opened_leaves_mlflows_state_as_found(tmp_path: Path) -> None:
    from pytest_forecast_mlflow.tracking import StoreUnavailable, Tracking

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    before = mlflow_state()

    with pytest.raises(StoreUnavailable, match="unreachable"):
        Tracking(settings_for(tmp_path, f"http://127.0.0.1:{port}"))

    assert mlflow_state() == before


@pytest.mark.mlflow
@pytest.mark.usefixtures("unset_mlflow_environment")
def test_experiments_open_on_their_runs_in_mlflows_ui_and_a_kind_set_by_hand_is_kept(
    tmp_path: Path, empty_store
) -> None:
    # MLflow 3's UI opens an experiment without mlflow.experimentKind on its GenAI overview (traces)
    from pytest_forecast_mlflow.tracking import Tracking

    client = empty_store.client()
    older = client.create_experiment("made-before-the-plugin")
    theirs = client.create_experiment("theirs", tags={"mlflow.experimentKind": "genai_development"})

    with Tracking(settings_for(tmp_path, empty_store.uri)) as tracking:
        ids = [tracking.experiment_id(name) for name in ("fresh", "made-before-the-plugin", "theirs")]

    kinds = [client.get_experiment(i).tags.get("mlflow.experimentKind") for i in ids]
    assert ids[1:] == [older, theirs]
    assert kinds == ["custom_model_development", "custom_model_development", "genai_development"]


# ------------------------------------------------------- streaming a candidate's folds while tests run


def _history(client: Any, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def complete_record(**kwargs: Any) -> Record:
    """A record with its folds' actuals and forecasts, as a finished backtest leaves it."""
    return dataclasses.replace(
        make_record(**kwargs),
        train_start=[0] * 3,
        train_stop=[200] * 3,
        last=[1.0] * 3,
        actuals=[[1.0] * 5] * 3,
        forecasts=[[1.5] * 5] * 3,
    )


def finished(*records: Record, tags: dict[str, str] | None = None) -> SessionResult:
    """A finished session's result: ``records``, each one's test passed, nothing gated."""
    return SessionResult(
        session_id="s" * 32, status="FINISHED", records=records, outcomes={r.nodeid: "passed" for r in records},
        verdict=None, baseline=None, skill={}, tags=tags or {},
    )  # fmt: skip


@pytest.mark.mlflow
@pytest.mark.usefixtures("unset_mlflow_environment")
def test_streamed_folds_are_completed_by_the_session_end_each_value_once(tmp_path: Path, empty_store) -> None:
    from pytest_forecast_mlflow.liveness import PID_TAG
    from pytest_forecast_mlflow.tracking import Tracking

    records = (
        complete_record(label="5d"),
        complete_record(label="10d"),
        complete_record(model="naive", role="reference"),
    )
    result = finished(*records, tags={"forecast.started": "2026-11-27T20:55:03+00:00"})
    client = empty_store.client()
    with Tracking(settings_for(tmp_path, empty_store.uri)) as tracking:
        experiment_id = tracking.experiment_id("units")
        tracking.runs.writer = {PID_TAG: "4242"}  # the session's process, not the one writing
        for record in records:  # the reference is not streamed: whether it is logged is decided at the end
            tracking.runs.stream(experiment_id, record, result.session_id, result.tags)

        (opened,) = client.search_runs([experiment_id])
        assert opened.info.status == "RUNNING"  # a session killed now leaves it for the next one to mark KILLED
        assert opened.data.tags[PID_TAG] == "4242"
        assert opened.data.tags["forecast.session"] == result.session_id
        assert _history(client, opened.info.run_id, "5d/rmse") == [0, 1, 2]  # every fold, while the tests run
        assert "5d/rmse_mean" not in opened.data.metrics

        logged = {run.model: run for run in tracking.log_session(experiment_id, result)}

    assert logged["candidate"].run_id == opened.info.run_id  # completed, not logged a second time
    runs = {run.info.run_id: run for run in client.search_runs([experiment_id])}
    assert sorted(runs) == sorted(run.run_id for run in logged.values())
    candidate = runs[opened.info.run_id]
    assert candidate.info.status == "FINISHED"
    assert candidate.data.tags["forecast.logged"] == "complete"
    assert candidate.data.tags["forecast.tests.passed"] == "2"
    for key in ("5d/rmse", "5d/mae", "10d/rmse", "10d/mae"):
        assert _history(client, candidate.info.run_id, key) == [0, 1, 2], key
    assert _history(client, candidate.info.run_id, "5d/rmse_mean") == [0]
    assert _history(client, logged["naive"].run_id, "5d/rmse") == [0, 1, 2]
    plots = {item.path for item in client.list_artifacts(candidate.info.run_id, "plots")}
    # 5d drawn while the "tests" ran (its naive reference arrived), 10d (no naive reference) at the end
    assert {"plots/5d_forecast_vs_actual.png", "plots/10d_forecast_vs_actual.png"} <= plots
    assert len(plots) == 6


@pytest.mark.mlflow
@pytest.mark.usefixtures("unset_mlflow_environment")
def test_a_model_that_cannot_be_logged_fails_its_run_and_keeps_every_metric(tmp_path: Path, empty_store) -> None:
    from pytest_forecast_mlflow.tracking import Tracking

    damaged = tmp_path / "model.pkl"
    damaged.write_bytes(b"not a pickle")
    record = dataclasses.replace(complete_record(), model_file=str(damaged))
    result = finished(record)
    client = empty_store.client()
    with Tracking(settings_for(tmp_path, empty_store.uri)) as tracking:
        experiment_id = tracking.experiment_id("units")
        tracking.runs.stream(experiment_id, record, result.session_id, result.tags)
        (logged,) = tracking.log_session(experiment_id, result)

    assert (logged.model_uri, logged.error is not None) == (None, True)
    run = client.get_run(logged.run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["forecast.model_error"].startswith("UnpicklingError")
    assert _history(client, logged.run_id, "5d/rmse") == [0, 1, 2]
    assert run.data.metrics["5d/rmse_mean"] == 2.0
    if hasattr(client, "search_logged_models"):  # MLflow 3: the model it began is marked failed, not left pending
        (model,) = client.search_logged_models(experiment_ids=[experiment_id])
        assert (model.source_run_id, str(model.status)) == (logged.run_id, "FAILED")


@pytest.mark.mlflow
@pytest.mark.usefixtures("unset_mlflow_environment")
def test_a_streamed_run_the_session_never_completes_ends_without_being_marked_complete(
    tmp_path: Path, empty_store
) -> None:
    from pytest_forecast_mlflow.tracking import Tracking

    with Tracking(settings_for(tmp_path, empty_store.uri)) as tracking:
        experiment_id = tracking.experiment_id("units")
        tracking.runs.stream(experiment_id, complete_record(), "s" * 32, {})
        tracking.runs.abandon("KILLED")

    (run,) = empty_store.client().search_runs([experiment_id])
    assert run.info.status == "KILLED"
    assert "forecast.logged" not in run.data.tags  # a replay deletes it and logs the session again


#: opens the tracking service the way a session does, from a process that has not imported mlflow
FORKED_SERVICE = """
import sys
from pathlib import Path

from pytest_forecast_mlflow.settings import Settings
from pytest_forecast_mlflow.tracking.agent import Forked, open_service

root = Path(sys.argv[1])
for uri in sys.argv[2:]:
    settings = Settings(experiment="units", registered_model="units", tracking_uri=uri, artifact_root=root / "mlruns",
                        rootdir=root)
    service = open_service(settings)
    assert isinstance(service, Forked), service
    opening = service.request("open")
    baseline = service.request("resolve_baseline")
    try:
        print("opened", opening.result(), baseline.result()[1])
    except Exception as exc:
        print("failed", type(exc).__name__, exc)
    service.close()
print("mlflow imported here:", "mlflow" in sys.modules)
"""


@pytest.mark.mlflow
def test_the_store_is_worked_in_a_child_process_whose_errors_arrive_as_themselves(
    tmp_path: Path, empty_store, unset_mlflow_environment
) -> None:
    import subprocess
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{probe.getsockname()[1]}"

    done = subprocess.run(
        [sys.executable, "-c", FORKED_SERVICE, str(tmp_path), empty_store.uri, down],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr
    opened, failed, imported = done.stdout.splitlines()
    assert opened == "opened 1 no registered model 'units' yet"
    # the session maps these kinds to its messages (a usage error, or a journal with --mlflow-on-unavailable=spool)
    assert failed.startswith(f"failed StoreUnavailable tracking server {down} is unreachable")
    assert imported == "mlflow imported here: False"  # the session's own process never pays for it


BUSY_CHILD = """
import sys
import time
from pathlib import Path

from pytest_forecast_mlflow.settings import Settings
from pytest_forecast_mlflow.tracking import agent

released = Path(sys.argv[1]) / "released"  # the child never opens the store: no request asks it to
original = agent.Service.handle


def handle(self, method, args):  # the fork inherits it: "hold" keeps the child busy until the file exists
    if method == "hold":
        deadline = time.monotonic() + 30
        while not released.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        return "released" if released.exists() else "still held: the session waited on the pipe"
    if method == "size":
        return len(args[0])
    return original(self, method, args)


agent.Service.handle = handle
root = Path(sys.argv[1])
settings = Settings(experiment="units", tracking_uri="sqlite:///unused.db", artifact_root=root, rootdir=root)
service = agent.open_service(settings)
assert isinstance(service, agent.Forked), service
held = service.request("hold")
sizes = [service.request("size", bytes(2_000_000)) for _ in range(3)]  # a pipe holds 64 kB
released.touch()  # reached only once the three requests are sent
print(held.result(), [size.result() for size in sizes])
service.close()
"""


def test_a_busy_tracking_process_never_makes_the_session_wait_to_hand_over_a_record(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", BUSY_CHILD, str(tmp_path)], capture_output=True, text=True, timeout=120, check=False
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "released [2000000, 2000000, 2000000]"


def test_a_record_the_tracking_process_received_is_handed_over_again_as_a_reference() -> None:
    from pytest_forecast_mlflow.tracking import agent

    # a 90-day horizon's 500 folds, each its own lists
    streamed = dataclasses.replace(
        complete_record(label="90d"),
        actuals=[[1.0] * 90 for _ in range(500)],
        forecasts=[[1.5] * 90 for _ in range(500)],
    )
    merged = complete_record(label="10d")  # from an xdist worker: never streamed
    result = finished(streamed, merged)
    twin = dataclasses.replace(streamed)  # equal, but not the object sent: it may differ, so it travels whole

    def pickled(message: Any, shipped: dict[int, tuple[int, Any]]) -> bytes:
        buffer = io.BytesIO()
        agent._Pickler(buffer, shipped).dump(message)
        return buffer.getvalue()

    shipped = {id(streamed): (0, streamed)}
    whole, referring = pickled(result, {}), pickled(result, shipped)
    assert len(referring) < 3_000 < 700_000 < len(whole)

    received = [pickle_copy(streamed)]  # what the child unpickled from the stream request
    restored = agent._Unpickler(referring, received).load()
    assert restored.records[0] is received[0]
    assert restored.records[1] == merged
    assert restored.records[1] is not merged
    assert agent._Unpickler(pickled(twin, shipped), received).load() is not received[0]
    with pytest.raises(RuntimeError, match="refers to one the tracking process received"):
        pickle.loads(referring)  # only the child's unpickler knows what the reference stands for


def pickle_copy(value: Any) -> Any:
    return pickle.loads(pickle.dumps(value))
