"""Sessions that end badly: SIGTERM or SIGKILL while logging, and a store that must never be collected.

A session is stopped at a known point by an inner ``conftest.py`` (:data:`SLOW_LOGGING`) that makes
``RunWriter._log_dataset`` (called once a run's metrics and manifests are written) touch a marker file
and then sleep: once the marker exists, the candidate's run is open, its metrics are logged, its plots
are being drawn, and the signal is sure to land while the session writes to MLflow.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from pytest_forecast_mlflow.liveness import HOST_TAG, PID_TAG, STARTED_TAG, writer_tags
from pytest_forecast_mlflow.tracking import mark_dead_runs

from .conftest import EXPERIMENT, INNER_FLAGS, INNER_INI, Store, make_project, run_tracked

pytestmark = [pytest.mark.mlflow, pytest.mark.usefixtures("hermetic")]

MARKER_VARIABLE = "FORECAST_TEST_SLOW_LOGGING"

#: The inner conftest: with MARKER_VARIABLE set, recording the dataset input touches that file and sleeps 30 s.
SLOW_LOGGING = f"""
    import os
    import time
    from pathlib import Path


    def pytest_configure(config):
        marker = os.environ.get({MARKER_VARIABLE!r})
        if not marker:
            return
        from pytest_forecast_mlflow.tracking.runs import RunWriter

        def slow_log_dataset(self, *args, **kwargs):
            Path(marker).touch()
            time.sleep(30)

        RunWriter._log_dataset = slow_log_dataset
"""

KILLED_SUMMARY = "marked 1 run(s) KILLED whose session died without closing them: *"


@pytest.fixture
def slow_session(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """Start the inner suite in a subprocess whose logging stalls in ``_log_dataset``; return it once it is there.

    ``slow_session(store)`` returns ``(process, output)``: the process and the file its stdout and stderr
    go to (a file, not a pipe, so a chatty session never blocks on a full pipe). A process the test
    leaves behind is killed at teardown.
    """
    started: list[subprocess.Popen] = []

    def start(store: Store) -> tuple[subprocess.Popen, Path]:
        make_project(pytester)
        pytester.makeconftest(textwrap.dedent(SLOW_LOGGING))
        marker = pytester.path / "logging-dataset"
        monkeypatch.setenv(MARKER_VARIABLE, str(marker))
        output = pytester.path / "session.log"
        command = [sys.executable, "-m", "pytest", *INNER_FLAGS, "--mlflow-experiment", EXPERIMENT,
                   "--mlflow-tracking-uri", store.uri, "--mlflow-plots", "on"]  # fmt: skip
        with open(output, "wb") as sink:
            started.append(subprocess.Popen(command, cwd=pytester.path, stdout=sink, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + 120
        while not marker.exists():
            if started[-1].poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the inner session never reached _log_dataset:\n{output.read_text()}")
            time.sleep(0.1)
        return started[-1], output

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_sigterm_while_logging_ends_the_run_killed_and_keeps_every_result(
    pytester: pytest.Pytester, empty_store: Store, slow_session
) -> None:
    process, output = slow_session(empty_store)

    process.send_signal(signal.SIGTERM)
    returncode = process.wait(timeout=60)

    text = output.read_text()
    assert returncode == pytest.ExitCode.INTERRUPTED, text
    assert "interrupted while logging" in text
    assert "replay with: forecast-mlflow replay" in text
    assert "Traceback" not in text
    assert "INTERNALERROR" not in text
    (run,) = empty_store.runs()
    assert run.info.status == "KILLED"
    assert {"5d/rmse_mean", "10d/rmse_mean"} <= set(run.data.metrics)  # what was logged before the signal stays
    assert "forecast.logged" not in run.data.tags  # replay must log it again, not skip it as complete
    (journal,) = (pytester.path / "data" / "mlflow" / "journal").glob("*/journal.json")
    payload = json.loads(journal.read_text())
    assert payload["status"] == "KILLED"
    assert sorted((r["label"], len(r["origins"])) for r in payload["records"]) == [("10d", 19), ("5d", 20)]


def test_sigkill_leaves_a_running_run_that_the_next_session_marks_killed(
    pytester: pytest.Pytester, empty_store: Store, monkeypatch: pytest.MonkeyPatch, slow_session, tmp_path: Path
) -> None:
    scratch = tmp_path / "tmp"  # the sessions' temporary directory
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    process, output = slow_session(empty_store)

    process.kill()
    process.wait(timeout=60)
    left = list(scratch.glob("forecast-models-*"))
    assert len(left) == 1, left  # its candidates' model files: nobody left to remove them

    (run,) = empty_store.runs()
    assert run.info.status == "RUNNING", output.read_text()
    tags = run.data.tags
    assert tags[PID_TAG] == str(process.pid)
    assert tags[HOST_TAG] == socket.gethostname()
    assert tags[STARTED_TAG]

    monkeypatch.delenv(MARKER_VARIABLE)
    result = run_tracked(pytester, empty_store)

    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([KILLED_SUMMARY.replace("*", run.info.run_id)])
    killed, latest = empty_store.runs()
    assert killed.info.run_id == run.info.run_id
    assert killed.info.status == "KILLED"
    assert killed.data.tags["forecast.killed_reason"]
    assert latest.info.status == "FINISHED"
    assert not left[0].exists()  # the next session removed the dead one's scratch folder (and its own)
    assert not list(scratch.glob("forecast-*"))


def test_only_runs_whose_writer_is_certainly_gone_are_marked_killed(empty_store: Store) -> None:
    client = empty_store.client()
    experiment_id = client.create_experiment(EXPERIMENT)
    finished = subprocess.Popen(["true"])
    finished.wait()
    live = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import json, time\nfrom pytest_forecast_mlflow.liveness import writer_tags\n"
            "print(json.dumps(writer_tags()), flush=True)\ntime.sleep(120)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert live.stdout is not None  # stdout=PIPE
        live_tags = json.loads(live.stdout.readline())
        host = socket.gethostname()
        runs = {
            "dead": {HOST_TAG: host, PID_TAG: str(finished.pid), STARTED_TAG: "12345"},
            "pid reused": {**live_tags, STARTED_TAG: "1"},
            "live child": live_tags,
            "this process": writer_tags(),
            "other host": {HOST_TAG: f"not-{host}", PID_TAG: str(finished.pid), STARTED_TAG: "12345"},
            "no writer": {},
        }
        ids = {
            name: client.create_run(experiment_id, tags=tags, run_name=name).info.run_id for name, tags in runs.items()
        }

        killed = mark_dead_runs(client, [experiment_id])
    finally:
        live.kill()
        live.wait()

    assert sorted(killed) == sorted([ids["dead"], ids["pid reused"]])
    status = {name: client.get_run(run_id).info.status for name, run_id in ids.items()}
    assert status == {
        "dead": "KILLED",
        "pid reused": "KILLED",
        "live child": "RUNNING",
        "this process": "RUNNING",
        "other host": "RUNNING",
        "no writer": "RUNNING",
    }
    assert "forecast.killed_reason" in client.get_run(ids["dead"]).data.tags
    assert "forecast.killed_reason" not in client.get_run(ids["live child"]).data.tags


CONFTEST_WITH_MODEL = """
    import pytest

    import backtest


    def pytest_addoption(parser):
        parser.addoption("--my-flag", action="store_true")


    class ConftestNaive(backtest.Naive):
        \"\"\"A user's forecaster defined in conftest.py: it ships as code inside the logged model.\"\"\"


    @pytest.fixture
    def model():
        return ConftestNaive()
"""

SUITE_WITH_CONFTEST_MODEL = """
    import numpy as np
    import pandas as pd

    from backtest import WalkForward


    def test_backtest(walk_forward, model):
        series = pd.Series(300 + np.random.default_rng(7).normal(0, 1, 300).cumsum(),
                           index=pd.bdate_range("2021-01-04", periods=300))
        result = walk_forward(model, series, WalkForward(horizon=5, step=5, initial=200), name="candidate")
        assert result.n_folds == 20
"""


def test_the_embedded_store_is_never_collected(pytester: pytest.Pytester, empty_store: Store) -> None:
    assert "MLFLOW_TRACKING_URI" not in os.environ  # the default store under the project is the point here
    empty_store.copy_to(pytester.path / "data" / "mlflow")  # the default store, its schema made already: faster
    pytester.makeini(INNER_INI)
    pytester.makeconftest(textwrap.dedent(CONFTEST_WITH_MODEL))
    pytester.makepyfile(test_conftest_model=textwrap.dedent(SUITE_WITH_CONFTEST_MODEL))

    first = pytester.runpytest_subprocess(*INNER_FLAGS, "--mlflow-experiment", "fx", timeout=180)

    assert first.ret == pytest.ExitCode.OK, first.stdout.str()
    first.assert_outcomes(passed=1)
    assert list((pytester.path / "data" / "mlflow").rglob("conftest.py")), (
        "the logged model did not ship conftest.py: the scenario is not the one under test"
    )

    second = pytester.runpytest_subprocess(*INNER_FLAGS, "--mlflow-experiment", "fx", "--mlflow-promote", timeout=180)

    assert second.ret == pytest.ExitCode.OK, second.stdout.str()
    second.assert_outcomes(passed=1)
    assert "ERROR collecting" not in second.stdout.str()
    second.stdout.fnmatch_lines(["registered candidate as fx v1 and moved alias 'champion' to it"])
