"""No secret in any output: a password in the tracking URI never leaves the session.

Every session here logs to ``http://alice:<password>@127.0.0.1:PORT`` (a plain ``mlflow server``
ignores the credentials) and then reads back everything the plugin produced: the terminal (stdout and
stderr), ``--forecast-report``, ``--forecast-json``, ``--junitxml``, every file of a spooled journal,
every other file the session left in its folder, and the MLflow runs' tags and params (read back over
the plain URI). One real server is shared by the module; the test that stops its server mid-session
gets one of its own.
"""

from __future__ import annotations

import http.server
import json
import os
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from mlflow import MlflowClient  # imported at collection: pytester restores sys.modules after each test

from tests.mlflow_server import free_port

from .conftest import INNER_FLAGS
from .test_server import INNER, Server

pytestmark = [pytest.mark.mlflow, pytest.mark.slow, pytest.mark.usefixtures("hermetic")]

PASSWORD = "S3cretPW"
#: A password that ends the URI's host part early when left unencoded, and its percent-encoded form.
AWKWARD_PASSWORD = "ab/cd#S3cret"
ENCODED_PASSWORD = "ab%2Fcd%23S3cret"
#: What must not appear anywhere, compared case-insensitively (``%2f`` is ``%2F``).
SECRETS = ("S3cret", "ab/cd", "ab%2Fcd", "cd#", "cd%23")

#: Like the server suite's inner project, without the test that stops the (shared) server.
KEEP_SERVER = """
import numpy as np, pandas as pd, pytest
import backtest as bt

SERIES = pd.Series(500 * np.exp(np.cumsum(np.random.default_rng(7).normal(0, 0.005, 400))),
                   index=pd.bdate_range("2020-01-01", periods=400))

@pytest.mark.parametrize("horizon", [5, 10], ids=lambda h: f"{h}d")
def test_candidate(walk_forward, horizon):
    walk_forward(bt.Naive(), SERIES, bt.WalkForward(horizon=horizon, step=5, initial=250), name="naive_candidate")
"""

REPORTS = ("--forecast-report", "report.md", "--forecast-json", "verdict.json", "--junitxml", "junit.xml")


@pytest.fixture(autouse=True)
def _no_outside_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing from the caller's environment: no tracking URI, no credentials, no plugin setting, no
    MLflow HTTP tuning (the plugin only sets those when absent, so one would change the timeouts)."""
    for name in list(os.environ):
        if name.startswith(("FORECAST_", "MLFLOW_TRACKING_", "MLFLOW_HTTP_REQUEST_", "MLFLOW_EXPERIMENT_")):
            monkeypatch.delenv(name)
    for name in ("MLFLOW_REGISTRY_URI", "GITHUB_STEP_SUMMARY", "PYTEST_ADDOPTS", "STOP_SERVER_PID", "STOP_SERVER_PORT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, schema_db: Path) -> Iterator[Server]:
    """One real ``mlflow server`` for the module; each test logs to an experiment of its own."""
    server = Server(tmp_path_factory.mktemp("secrets-server"), schema_db)
    server.start()
    yield server
    server.stop()


def _with_credentials(uri: str, password: str) -> str:
    return uri.replace("http://", f"http://alice:{password}@", 1)


def _run(
    pytester: pytest.Pytester, experiment: str, uri: str, *args: str, inner: str = KEEP_SERVER, timeout: float = 300
) -> pytest.RunResult:
    """The inner suite in a subprocess, logging to ``experiment`` at ``uri``."""
    pytester.makepyfile(test_inner=inner)
    return pytester.runpytest_subprocess(
        *INNER_FLAGS, "--mlflow-experiment", experiment, "--mlflow-tracking-uri", uri, *args, timeout=timeout
    )


def _outputs(pytester: pytest.Pytester, result: pytest.RunResult) -> dict[str, bytes]:
    """The terminal, and every file the session left in its folder (reports, journal, anything else)."""
    outputs = {
        "stdout": result.stdout.str().encode(),
        "stderr": result.stderr.str().encode(),
    }
    for path in sorted(pytester.path.rglob("*")):
        if path.is_file() and path.name != "test_inner.py":
            outputs[str(path.relative_to(pytester.path))] = path.read_bytes()
    return outputs


def _leaks(outputs: Mapping[str, str | bytes]) -> list[str]:
    """``where: secret`` for every secret found in ``outputs`` (case-insensitively)."""
    found = []
    for where, content in outputs.items():
        text = (content if isinstance(content, bytes) else content.encode()).lower()
        found += [f"{where}: {secret!r}" for secret in SECRETS if secret.lower().encode() in text]
    return found


def _run_record(uri: str, experiment: str) -> dict[str, str]:
    """Everything MLflow holds about the experiment's runs and registered versions, as ``where -> text``."""
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment!r} on the server"
    record = {f"experiment tag {k}": f"{k}={v}" for k, v in found.tags.items()}
    record["experiment artifact location"] = found.artifact_location
    runs = client.search_runs([found.experiment_id], max_results=100)
    assert runs, f"no run in experiment {experiment!r}"
    for run in runs:
        name = run.info.run_name
        record |= {f"run {name} tag {k}": f"{k}={v}" for k, v in run.data.tags.items()}
        record |= {f"run {name} param {k}": f"{k}={v}" for k, v in run.data.params.items()}
        record |= {f"run {name} metric {k}": k for k in run.data.metrics}
        record[f"run {name} artifact uri"] = run.info.artifact_uri
    for version in client.search_model_versions(f"name='{experiment}'"):
        record |= {f"v{version.version} tag {k}": f"{k}={v}" for k, v in (version.tags or {}).items()}
        record[f"v{version.version} source"] = version.source or ""
        record[f"v{version.version} description"] = version.description or ""
    return record


def _journal(pytester: pytest.Pytester) -> Path:
    (journal,) = (pytester.path / "data" / "mlflow" / "journal").iterdir()
    return journal / "journal.json"


def test_gated_session_with_credentials_leaks_nothing(pytester: pytest.Pytester, live: Server) -> None:
    uri = _with_credentials(live.uri, PASSWORD)
    assert _leaks({"the URI itself": uri}) == ["the URI itself: 'S3cret'"]  # the detector sees the password
    result = _run(pytester, "secrets-gated", uri, "--mlflow-promote", *REPORTS)

    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*experiment 'secrets-gated' at http://*127.0.0.1*", "*moved alias 'champion'*"])
    outputs = _outputs(pytester, result)
    assert {"report.md", "verdict.json", "junit.xml"} <= outputs.keys()
    assert _leaks(outputs) == []
    terminal = result.stdout.str() + result.stderr.str()
    assert "View run" not in terminal
    assert "View experiment" not in terminal
    assert _leaks(_run_record(live.uri, "secrets-gated")) == []


def test_server_dying_mid_session_spools_without_the_password(
    pytester: pytest.Pytester,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
    schema_db: Path,
) -> None:
    server = Server(tmp_path_factory.mktemp("dying-server"), schema_db)  # its own: the session stops it
    server.start()
    assert server.process is not None
    uri = _with_credentials(server.uri, PASSWORD)
    monkeypatch.setenv("STOP_SERVER_PID", str(server.process.pid))
    monkeypatch.setenv("STOP_SERVER_PORT", str(server.port))
    try:
        spool = ("--mlflow-on-unavailable", "spool", "--mlflow-timeout", "2")
        result = _run(pytester, "secrets-midway", uri, *spool, *REPORTS, inner=INNER)
    finally:
        server.stop()

    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*logging to http://*127.0.0.1:*failed*results saved to*forecast-mlflow replay*"])
    journal = _journal(pytester)
    assert {r["label"] for r in json.loads(journal.read_text())["records"]} == {"5d", "10d"}
    assert _leaks(_outputs(pytester, result)) == []


class _HangingHandler(http.server.BaseHTTPRequestHandler):
    """``/health`` answers at once; anything else only after the server's ``release`` event (or 60 s)."""

    def _answer(self) -> None:
        self.server.requests.append((time.monotonic(), f"{self.command} {self.path}"))  # type: ignore[attr-defined]
        if self.path.split("?")[0] != "/health":
            self.server.release.wait(60)  # type: ignore[attr-defined]
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")
        except OSError:  # the client gave up waiting, as it should
            pass

    do_GET = do_POST = do_PATCH = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture
def hanging_server() -> Iterator[http.server.ThreadingHTTPServer]:
    """A server whose health check passes and whose API never answers in time; it notes each request."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _HangingHandler)
    server.daemon_threads = True
    server.release = threading.Event()  # type: ignore[attr-defined]
    server.requests = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()  # type: ignore[attr-defined]
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_hanging_api_is_given_up_within_the_timeout(
    pytester: pytest.Pytester, hanging_server: http.server.ThreadingHTTPServer
) -> None:
    uri = f"http://alice:{PASSWORD}@127.0.0.1:{hanging_server.server_address[1]}"
    started = time.monotonic()
    spool = ("--mlflow-timeout", "3", "--mlflow-on-unavailable", "spool")
    result = _run(pytester, "secrets-hanging", uri, *spool, *REPORTS[:4], timeout=120)
    ended = time.monotonic()

    requests = hanging_server.requests  # type: ignore[attr-defined]
    api = [at for at, what in requests if not what.startswith("GET /health")]
    assert api, f"the session never called the API: {requests}"
    # Interpreter and mlflow start-up (seconds, more with a cold bytecode cache and a busy machine) come
    # before the first API request; the timeout governs what follows it.
    after_hang = ended - api[0]
    print(
        f"hanging API, --mlflow-timeout 3: {ended - started:.1f} s in all, {after_hang:.1f} s from the first "
        f"API request to the end; requests: {[what for _, what in requests]}"
    )
    assert after_hang < 20, f"the session ran {after_hang:.1f} s after the API stopped answering (timeout 3 s)"
    assert ended - started < 60, f"the session took {ended - started:.1f} s against a hanging API (timeout 3 s)"
    result.assert_outcomes(passed=2, errors=1)  # the gate cannot read the champion: an error of forecast-gate
    result.stdout.fnmatch_lines(
        [
            "*results saved to *journal*; replay with: forecast-mlflow replay * --tracking-uri <the full URI> "
            "(a journal never keeps credentials)*"
        ]
    )
    outputs = _outputs(pytester, result)
    assert {"report.md", "verdict.json"} <= outputs.keys()
    assert _journal(pytester).is_file()
    assert _leaks(outputs) == []


def test_password_with_slash_and_hash_is_refused_without_echoing_it(pytester: pytest.Pytester) -> None:
    uri = f"http://alice:{AWKWARD_PASSWORD}@127.0.0.1:{free_port()}"
    assert len(_leaks({"the URI itself": uri})) == 3  # S3cret, ab/cd, cd#
    result = _run(pytester, "secrets-refused", uri, *REPORTS, timeout=120)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*host part cannot be parsed*percent-encode*"])
    assert _leaks(_outputs(pytester, result)) == []


def test_percent_encoded_password_works_and_leaks_in_neither_form(pytester: pytest.Pytester, live: Server) -> None:
    uri = _with_credentials(live.uri, ENCODED_PASSWORD)
    assert len(_leaks({"the URI itself": uri})) == 3  # S3cret, ab%2Fcd, cd%23
    result = _run(pytester, "secrets-encoded", uri, "--mlflow-promote", *REPORTS)

    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*moved alias 'champion'*"])
    outputs = _outputs(pytester, result)
    assert {"report.md", "verdict.json", "junit.xml"} <= outputs.keys()
    assert _leaks(outputs) == []
    assert _leaks(_run_record(live.uri, "secrets-encoded")) == []
