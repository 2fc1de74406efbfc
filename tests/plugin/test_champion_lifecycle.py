"""The champion's lifecycle end to end: gate -> promote -> roll back -> gate again -> serve.

One scenario on one store, because each step needs the one before: the champion store's v1 (the
naive candidate, bootstrapped by a gated session), a gated session promoting an improved v2, a
rollback to v1 from the command line, a session gated against v1 that promotes v3, and the history
of all four moves. Then v3, an AR(1) whose class lives in the inner project (not in site-packages), is
served by a real ``mlflow models serve`` on 127.0.0.1 and must answer what the same version forecasts
in-process.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from pytest_forecast_mlflow.cli import main
from tests.mlflow_server import free_port

from .conftest import EXPERIMENT, LEAKY_VARIABLES, Store, make_project, run_tracked

pytestmark = [pytest.mark.mlflow, pytest.mark.slow, pytest.mark.usefixtures("hermetic")]


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[object]:
    """Start ``mlflow models serve`` for a model URI in its own process group; the whole group is
    stopped at teardown (uvicorn runs as a child of the mlflow command)."""
    started: list[subprocess.Popen[bytes]] = []

    def start(uri: str, store: Store) -> str:
        port = free_port()
        elsewhere = tmp_path / "server"  # not the project: its modules must come from the model's code
        elsewhere.mkdir()
        env = {k: v for k, v in os.environ.items() if k not in LEAKY_VARIABLES | {"PYTHONPATH"}}
        env["MLFLOW_TRACKING_URI"] = store.uri
        scripts = Path(sys.executable).parent  # mlflow, and the uvicorn it execs, as a user's venv has them
        env["PATH"] = os.pathsep.join([str(scripts), env.get("PATH", "")])
        command = [str(scripts / "mlflow"), "models", "serve", "-m", uri, "--env-manager", "local", "-h", "127.0.0.1"]
        log = (elsewhere / "server.log").open("wb")
        process = subprocess.Popen(
            [*command, "-p", str(port)], cwd=elsewhere, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        started.append(process)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert process.poll() is None, (elsewhere / "server.log").read_text()
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=2):
                    return url
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.2)
        pytest.fail(f"the model server did not answer within 120 s:\n{(elsewhere / 'server.log').read_text()}")

    yield start
    for process in started:
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(process.pid, sig)
                process.wait(timeout=wait)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue


def history(capsys: pytest.CaptureFixture[str], store: Store) -> list[tuple[str, ...]]:
    """(from, to, kind, verdict) of each move, newest first, as ``champion history`` prints them."""
    capsys.readouterr()
    assert main(["champion", "history", "--model", EXPERIMENT, "--tracking-uri", store.uri]) == 0
    rows = [re.split(r"\s{2,}", line) for line in capsys.readouterr().out.splitlines()[2:]]
    return [(row[1], row[2], row[3], row[6]) for row in rows]


def test_roll_back_then_the_gate_follows_and_the_champion_serves(
    pytester: pytest.Pytester,
    champion_store: Store,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    serve,
) -> None:
    make_project(pytester)
    monkeypatch.setenv("FORECAST_E2E_MODELS", "5d=improved,10d=improved")

    promoted = run_tracked(pytester, champion_store, "--mlflow-promote")  # gate: v2 beats v1
    assert promoted.ret == pytest.ExitCode.OK, promoted.stdout.str()
    promoted.stdout.fnmatch_lines([f"registered candidate as {EXPERIMENT} v2 and moved alias 'champion' to it"])

    capsys.readouterr()  # what pytester printed about the run
    code = main(["champion", "rollback", "--model", EXPERIMENT, "--reason", "v2 misbehaves in production",
                 "--tracking-uri", champion_store.uri])  # fmt: skip
    out, err = capsys.readouterr()
    assert (code, err) == (0, ""), err
    assert out.startswith(f"rolled back: alias 'champion' of {EXPERIMENT} moved from v2 to v1 (history entry 3)")

    gated = run_tracked(pytester, champion_store, "--mlflow-promote")  # the next session compares with v1

    assert gated.ret == pytest.ExitCode.OK, gated.stdout.str()
    gated.assert_outcomes(passed=2)
    gated.stdout.fnmatch_lines(
        [
            f"forecast gate: PASSED against {EXPERIMENT} v1 (alias champion, run *)",
            f"registered candidate as {EXPERIMENT} v3 and moved alias 'champion' to it",
        ]
    )
    assert history(capsys, champion_store) == [
        ("v1", "v3", "promotion", "pass"),
        ("v2", "v1", "rollback", "ungated"),
        ("v1", "v2", "promotion", "pass"),
        ("-", "v1", "bootstrap", "no-baseline"),
    ]

    # the champion (v3, the project's own AR(1) class) served by MLflow's scoring server
    url = serve(f"models:/{EXPERIMENT}@champion", champion_store)
    history_values = [300.0 + 0.5 * k for k in range(30)]
    body = json.dumps({"dataframe_records": [{"label": "10d", "history": history_values}]}).encode()
    request = urllib.request.Request(
        f"{url}/invocations", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        (answer,) = json.load(response)["predictions"]

    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", champion_store.uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", champion_store.uri)
    in_process = mlflow.pyfunc.load_model(f"models:/{EXPERIMENT}/3").predict(
        pd.DataFrame({"label": ["10d"], "history": [history_values]})
    )
    assert answer["label"] == "10d"
    assert len(answer["forecast"]) == 10
    assert answer["forecast"] == pytest.approx(list(in_process["forecast"][0]), rel=1e-12)
    assert answer["forecast"] != [history_values[-1]] * 10  # the AR(1), not the random walk of v1
