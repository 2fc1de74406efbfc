"""Many writers on one ``mlflow server`` backed by PostgreSQL: four pytest sessions at once, five rounds.

Each round starts four gated sessions together, each with ``--mlflow-promote``, against the server's
``http://`` URI, as four CI jobs would. Afterwards the store must hold every run and every per-fold value
of every session (counted), the champion alias must have moved only as the gate and the
concurrent-promotion rule allow (a session moves it only from the champion it was gated against), and the
alias history must hold exactly one entry per move, chained from one version to the next.

The writers are four processes forked from one that imported pytest and mlflow; each runs its five
sessions with ``pytest.main`` behind a barrier per round, and each session tracks in its own process
(mlflow is already imported, so the plugin forks no tracking child that would import it again). What the
server sees is what four CI jobs send (four clients writing at once), for a twentieth of the start-up cost
of twenty fresh interpreters. The inner project is the suite's tiny one (two horizons, about 20 folds
each, plots off).
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from pytest_forecast_mlflow.tracking.history import read_events
from tests.plugin.conftest import EXPERIMENT, INNER_FLAGS, INNER_INI, SUITE, project_files

from .conftest import PostgresServer

pytestmark = [pytest.mark.mlflow, pytest.mark.slow, pytest.mark.usefixtures("hermetic")]

WRITERS = 4
ROUNDS = 5
#: per-fold values a session logs per horizon: the inner project's folds (300 points, initial 200, step 5)
FOLDS = {"5d": 20, "10d": 19}
MARK = "=== forecast-writer round "

WRITERS_SCRIPT = '''
    """WRITERS writers forked from this process once mlflow is imported; each runs ROUNDS gated sessions, and
    every round starts together (a barrier). Each writer's output goes to writer-<k>.log."""

    import os
    import sys
    import time
    import traceback
    from pathlib import Path

    import mlflow  # noqa: F401 - imported once, before the fork: each session then tracks in its own process
    import pytest

    folder, writers, rounds, args = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4:]


    def write(me: int) -> None:
        for round_ in range(rounds):
            (folder / "barrier" / f"{round_}-{me}").touch()
            deadline = time.monotonic() + 300
            while len(list((folder / "barrier").glob(f"{round_}-*"))) < writers and time.monotonic() < deadline:
                time.sleep(0.02)
            print(f"=== forecast-writer round {round_} ===", flush=True)
            code = pytest.main(list(args))
            print(f"=== forecast-writer round {round_} exit {int(code)} ===", flush=True)


    children = []
    for me in range(writers):
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            log = os.open(folder / f"writer-{me}.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(log, 1)
            os.dup2(log, 2)
            code = 0
            try:
                write(me)
            except BaseException:
                traceback.print_exc()
                code = 1
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children.append(pid)
    sys.exit(sum(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) != 0 for pid in children))
'''


def _sessions(output: str) -> list[tuple[int, int, str]]:
    """``(round, exit code, output)`` of each session a writer ran."""
    found = re.findall(rf"{MARK}(\d+) ===\n(.*?){MARK}\1 exit (-?\d+) ===", output, flags=re.DOTALL)
    return [(int(round_), int(code), text) for round_, text, code in found]


def _gated_against(text: str) -> str | None:
    """The champion version a session was gated against; None when there was none yet."""
    if "forecast gate: nothing to compare against" in text:
        return None
    match = re.search(rf"forecast gate: PASSED against {EXPERIMENT} v(\d+) \(alias champion", text)
    assert match, f"the session was neither gated against a champion nor bootstrapping:\n{text}"
    return match.group(1)


def test_four_sessions_at_once_five_rounds_on_postgresql(tmp_path: Path, pg_server: PostgresServer) -> None:
    for name, source in project_files().items():
        (tmp_path / f"{name}.py").parent.mkdir(exist_ok=True)
        (tmp_path / f"{name}.py").write_text(source)
    (tmp_path / "pytest.ini").write_text(INNER_INI)
    (tmp_path / "writers.py").write_text(textwrap.dedent(WRITERS_SCRIPT))
    (tmp_path / "barrier").mkdir()
    # the writers imported mlflow, and with it anyio, whose pytest plugin pytest then cannot rewrite (and says so)
    session_args = [*INNER_FLAGS, "-p", "no:xdist", "-W", "ignore::pytest.PytestAssertRewriteWarning"]
    session_args += ["--mlflow-experiment", EXPERIMENT]
    session_args += ["--mlflow-tracking-uri", pg_server.uri, "--mlflow-promote", SUITE]
    done = subprocess.run(
        [sys.executable, "writers.py", str(tmp_path), str(WRITERS), str(ROUNDS), *session_args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    logs = [tmp_path / f"writer-{k}.log" for k in range(WRITERS)]
    outputs = [log.read_text() if log.exists() else "(the writer never started)" for log in logs]

    # no error: every writer ran every round, every session passed its two tests
    assert done.returncode == 0, (done.stdout, done.stderr, outputs)
    sessions = [session for output in outputs for session in _sessions(output)]
    assert sorted(Counter(round_ for round_, _, _ in sessions).items()) == [(r, WRITERS) for r in range(ROUNDS)]
    for _, code, text in sessions:
        assert code == 0, text
        assert "2 passed" in text, text
        assert "warnings summary" not in text, text

    # each session either moved the alias from the champion it was gated against, or was refused because
    # another session had moved it since (the concurrent-promotion rule); the first to move in a round wins
    moves: dict[str, str | None] = {}  # version moved to -> version moved from
    for round_ in range(ROUNDS):
        moved_this_round = 0
        for _, _, text in (s for s in sessions if s[0] == round_):
            registered = re.search(rf"registered candidate as {EXPERIMENT} v(\d+)", text)
            assert registered, text
            version, against = registered.group(1), _gated_against(text)
            if f"v{version} and moved alias 'champion' to it" in text:
                moves[version] = against
                moved_this_round += 1
            else:
                was = f"v{against}" if against else "no champion"
                assert f"NOT moved: the champion changed while this session ran (gated against {was}, now v" in text
        assert moved_this_round >= 1, f"round {round_}: nobody moved the alias"

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=pg_server.uri, registry_uri=pg_server.uri)

    # no lost run or metric
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    assert len(runs) == WRITERS * ROUNDS
    assert all(run.info.status == "FINISHED" for run in runs)
    # artifacts went through the server's proxy into its --artifacts-destination, never to a client's path
    assert all(run.info.artifact_uri.startswith("mlflow-artifacts:/") for run in runs)
    assert len({path.parent for path in (pg_server.folder / "artifacts").rglob("MLmodel")}) == WRITERS * ROUNDS
    for run in runs:
        for label, folds in FOLDS.items():
            steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, f"{label}/rmse"))
            assert steps == list(range(folds)), (run.info.run_id, label)
    # and they are in PostgreSQL, as the server wrote them
    per_fold = "SELECT key, count(*) FROM metrics WHERE key IN ('5d/rmse', '10d/rmse') GROUP BY key"
    assert dict(pg_server.cluster.query(per_fold)) == {f"{k}/rmse": n * WRITERS * ROUNDS for k, n in FOLDS.items()}
    assert pg_server.cluster.query("SELECT count(*) FROM runs WHERE status = 'FINISHED'") == [(WRITERS * ROUNDS,)]
    versions = client.search_model_versions(f"name='{EXPERIMENT}'", max_results=1000)
    assert sorted(int(v.version) for v in versions) == list(range(1, WRITERS * ROUNDS + 1))
    assert sorted(str(v.run_id) for v in versions) == sorted(run.info.run_id for run in runs)

    # the history: one entry per move, chained, ending where the alias points; the promotion lock released
    events = read_events(client, EXPERIMENT)
    assert [event.seq for event in events] == list(range(1, len(moves) + 1))
    assert {event.to_version: event.from_version for event in events} == moves
    assert [event.from_version for event in events] == [None] + [event.to_version for event in events[:-1]]
    assert [event.kind for event in events] == ["bootstrap"] + ["promotion"] * (len(events) - 1)
    assert client.get_registered_model(EXPERIMENT).aliases == {"champion": events[-1].to_version}
    assert [m.name for m in client.search_registered_models()] == [EXPERIMENT]
