"""The spool and its replay: what a journal records, and ``forecast-mlflow replay`` logging it where it belongs.

Journals are written in-process from a :class:`Settings` (no MLflow needed); the end-to-end case spools a
real session against a tracking server that is not there and replays it, in subprocesses, from another
working directory into a temporary ``sqlite:///`` store.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from pytest_forecast_mlflow.cli import main
from pytest_forecast_mlflow.journal import FORMAT, PENDING, REPLAYED, read_journal, write_journal
from pytest_forecast_mlflow.records import Record
from pytest_forecast_mlflow.result import SessionResult
from pytest_forecast_mlflow.settings import Settings

from .conftest import INNER_FLAGS, Store, metric_history

# tests that open an MLflow store or import mlflow are marked `mlflow` one by one; the rest are pure
pytestmark = [pytest.mark.usefixtures("hermetic")]

PASSWORD = "pw/x#y"  # percent-encoded in the URI, as a password holding '/' and '#' must be
ENCODED = "pw%2Fx%23y"


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def settings_for(root: Path, uri: str, **changes) -> Settings:
    values = dict(
        experiment="rt",
        tracking_uri=uri,
        artifact_root=root / "data" / "mlflow" / "mlruns",
        rootdir=root,
        registered_model="rt",
        promote=True,
        register=True,
        gate="warn",
        gate_metrics=("rmse", "mae"),
        tolerance=0.02,
        alpha=0.1,
        method="threshold",
    )
    return Settings(**{**values, **changes})


def record(model_file: Path | None = None) -> Record:
    return Record(
        nodeid="test_rt.py::test_candidate",
        location=("test_rt.py", 3, "test_candidate"),
        model="lastmean",
        role="candidate",
        label="5d",
        horizon=5,
        model_file=str(model_file) if model_file else None,
        model_kind="pickle" if model_file else None,
    )


def spool(
    settings: Settings, reason: str = "store unavailable", model_file: Path | None = None, tags: dict | None = None
) -> Path:
    result = SessionResult(
        session_id="0123456789abcdef",
        status="FINISHED",
        records=(record(model_file),),
        outcomes={"test_rt.py::test_candidate": "passed"},
        tags=tags or {"git.branch": "main"},
    )
    return write_journal(settings, result, reason=reason)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ------------------------------------------------------------------------------------ what is recorded


def test_a_journal_records_its_destination_gate_and_imports_and_never_a_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "project"
    (root / "tests").mkdir(parents=True)
    monkeypatch.syspath_prepend(str(root / "tests"))
    monkeypatch.syspath_prepend(str(tmp_path / "outside"))
    uri = f"http://alice:{ENCODED}@127.0.0.1:5000"
    model = tmp_path / "model.pkl"
    model.write_bytes(b"pickled")
    reason = f"tracking server http://alice:{PASSWORD}@127.0.0.1:5000 is unreachable ({ENCODED} refused)"

    # a --mlflow-tag that quotes the URI, as users paste it into notes
    tags = {"git.branch": "main", "note": f"see http://alice:{ENCODED}@127.0.0.1:5000 ({PASSWORD})"}
    folder = spool(settings_for(root, uri), reason=reason, model_file=model, tags=tags)

    assert (folder / PENDING).stat().st_mode & 0o077 == 0, "a journal is readable by its owner alone"
    text = (folder / PENDING).read_text()
    assert PASSWORD not in text
    assert ENCODED not in text
    assert "x#y" not in text
    payload = json.loads(text)
    assert payload["format"] == FORMAT == 2
    assert payload["destination"] == {
        "tracking_uri": "http://***@127.0.0.1:5000",
        "registered_model": "rt",
        "alias": "champion",
        "register": True,
        "promote": True,
    }
    assert {k: payload["gate"][k] for k in ("gate", "gate_metrics", "tolerance", "alpha", "method")} == {
        "gate": "warn",
        "gate_metrics": ["rmse", "mae"],
        "tolerance": 0.02,
        "alpha": 0.1,
        "method": "threshold",
    }
    assert payload["imports"]["rootdir"] == str(root.resolve())
    assert "tests" in payload["imports"]["sys_path"]
    assert all(not Path(entry).is_absolute() for entry in payload["imports"]["sys_path"])
    assert payload["reason"] == "tracking server http://***@127.0.0.1:5000 is unreachable (*** refused)"
    assert payload["tags"]["note"] == "see http://***@127.0.0.1:5000 (***)"
    assert not list(folder.glob("*.tmp"))
    assert (folder / "models" / "model.pkl").read_bytes() == b"pickled"

    journal = read_journal(folder)
    assert journal.destination.tracking_uri == "http://***@127.0.0.1:5000"
    assert root.resolve() / "tests" in journal.import_paths()
    replayed = journal.settings("http://alice:pw@127.0.0.1:5000", tmp_path / "mlruns")
    assert (replayed.gate, replayed.gate_metrics, replayed.method, replayed.promote) == (
        "warn",
        ("rmse", "mae"),
        "threshold",
        True,
    )


def test_a_relative_sqlite_store_is_recorded_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    folder = spool(settings_for(tmp_path, "sqlite:///stores/mlflow.db"))
    assert read_journal(folder).destination.tracking_uri == f"sqlite:///{(tmp_path / 'stores/mlflow.db').resolve()}"


def write_format_1(folder: Path) -> Path:
    folder.mkdir(parents=True)
    payload = {
        "format": 1,
        "reason": "down",
        "written": "2025-01-01T00:00:00+0000",
        "session_id": "abc",
        "status": "FINISHED",
        "experiment": "rt",
        "run_name": None,
        "registered_model": "rt",
        "gate": "fail",
        "tags": {},
        "outcomes": {},
        "skill": {},
        "verdict": None,
        "records": [],
    }
    (folder / PENDING).write_text(json.dumps(payload))
    return folder


def test_a_format_1_journal_is_read_and_needs_an_explicit_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_format_1(tmp_path / "old-journal")
    journal = read_journal(folder)
    assert (journal.format, journal.destination.tracking_uri, journal.gate) == (1, None, {"gate": "fail"})
    assert journal.settings("sqlite:///x.db", tmp_path).registered_model == "rt"

    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, "replay", str(folder))

    assert code == 2
    assert "old-journal (format 1) does not record the store it was meant for" in err
    assert "--tracking-uri" in err
    assert err.count("\n") == 1
    assert (folder / PENDING).exists()


#: A format-2 journal as the plugin wrote it before sessions handed over one SessionResult (no "baseline"
#: key); the destination and rootdir are filled in by :func:`write_format_2`.
FORMAT_2: dict[str, Any] = {
    "format": 2,
    "reason": "store unavailable",
    "written": "2025-06-01T12:00:00+0000",
    "session_id": "feedfacecafebeef",
    "status": "FINISHED",
    "experiment": "rt",
    "run_name": None,
    "destination": {
        "tracking_uri": None,
        "registered_model": "rt",
        "alias": "champion",
        "register": False,
        "promote": False,
    },
    "gate": {
        "gate": "warn",
        "gate_metrics": ["rmse"],
        "tolerance": 0.0,
        "alpha": 0.05,
        "method": "threshold",
        "require_baseline": False,
        "min_folds": 30,
        "max_detectable": 25.0,
        "inconclusive": "pass",
        "allow_scope_change": False,
    },
    "imports": {"rootdir": None, "sys_path": []},
    "tags": {"git.branch": "main"},
    "outcomes": {"test_rt.py::test_naive": "passed"},
    "skill": {},
    "verdict": {
        "status": "off",
        "baseline": "gate off",
        "reasons": [],
        "session_reasons": [],
        "overrides": [],
        "promotable": False,
        "rows": [],
    },
    "records": [
        {
            "nodeid": "test_rt.py::test_naive",
            "location": ["test_rt.py", 3, "test_naive"],
            "model": "naive",
            "role": "reference",
            "label": "5d",
            "horizon": 2,
            "step": 5,
            "spec": {"horizon": "2"},
            "data": {"data.sha256": "abc"},
            "data_source": "",
            "params": {},
            "origins": ["2024-01-05", "2024-01-12"],
            "train_start": [0, 0],
            "train_stop": [200, 205],
            "actuals": [[1.0, 2.0], [3.0, 4.0]],
            "forecasts": [[1.5, 2.5], [3.5, 4.5]],
            "last": [1.0, 3.0],
            "fold_metrics": {"rmse": [0.5, 0.75]},
            "aggregates": {"rmse_mean": 0.625},
            "excluded": {},
            "model_file": None,
            "model_kind": None,
            "input_example": None,
            "error": None,
            "seconds": 0.0,
            "comparisons": [],
        },
    ],
}


def write_format_2(folder: Path, uri: str, rootdir: Path) -> Path:
    folder.mkdir(parents=True)
    payload = {
        **FORMAT_2,
        "destination": {**FORMAT_2["destination"], "tracking_uri": uri},
        "imports": {"rootdir": str(rootdir), "sys_path": []},
    }
    (folder / PENDING).write_text(json.dumps(payload))
    return folder


@pytest.mark.mlflow
def test_a_format_2_journal_from_before_session_results_is_read_and_replayed(
    tmp_path: Path, empty_store: Store
) -> None:
    from pytest_forecast_mlflow.journal import journal_dir, replay

    root = tmp_path / "project"
    folder = write_format_2(journal_dir(root) / "20250601T120000-feedfacecafe", empty_store.uri, root)

    journal = read_journal(folder)
    result = journal.result
    assert (journal.format, result.session_id, result.status, result.tags) == (
        2,
        "feedfacecafebeef",
        "FINISHED",
        {"git.branch": "main"},
    )
    assert result.verdict is not None
    assert (result.verdict.status, result.baseline, result.outcomes) == ("off", None, FORMAT_2["outcomes"])
    (naive,) = result.records
    assert (naive.model, naive.label, naive.fold_metrics, naive.location) == (
        "naive",
        "5d",
        {"rmse": [0.5, 0.75]},
        ("test_rt.py", 3, "test_naive"),
    )

    replayed = replay(journal, journal.settings(empty_store.uri, tmp_path / "mlruns"))

    assert replayed.ok, replayed.failures
    assert [(run.model, run.role, run.logged_now) for run in replayed.runs] == [("naive", "reference", True)]
    (run,) = empty_store.runs("rt")
    assert run.data.tags["forecast.session"] == "feedfacecafebeef"
    assert run.data.tags["git.branch"] == "main"
    assert run.data.tags["forecast.replayed_from"] == str(folder)
    assert run.data.metrics["5d/rmse_mean"] == 0.625
    assert metric_history(empty_store, run.info.run_id, "5d/rmse") == [(0, 0.5), (1, 0.75)]
    assert (folder / REPLAYED).exists()


def test_a_journal_of_an_unknown_format_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "future"
    folder.mkdir()
    (folder / PENDING).write_text(json.dumps({"format": 99}))
    code, _, err = run_cli(capsys, "replay", str(folder))
    assert code == 2
    assert "journal format 99 is not one of (1, 2)" in err


# ---------------------------------------------------------------------------------- where replay logs


def test_replay_refuses_another_store_unless_told(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    meant, other = tmp_path / "meant" / "mlflow.db", tmp_path / "other" / "mlflow.db"
    folder = spool(settings_for(tmp_path, f"sqlite:///{meant}"))
    monkeypatch.chdir(tmp_path)

    code, out, err = run_cli(capsys, "replay", str(folder), "--tracking-uri", f"sqlite:///{other}")
    assert code == 1
    assert f"was spooled for sqlite:///{meant.resolve()}, but --tracking-uri names sqlite:///{other.resolve()}" in err
    assert "--to-other-store" in err
    assert out == ""

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{other}")
    code, _, err = run_cli(capsys, "replay", str(folder))
    assert code == 1
    assert "but MLFLOW_TRACKING_URI names" in err
    assert (folder / PENDING).exists()
    assert not other.exists()
    assert not meant.exists()


@pytest.mark.mlflow
def test_replay_needs_the_full_uri_when_the_recorded_one_had_credentials(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    port = closed_port()
    folder = spool(settings_for(tmp_path, f"http://alice:{ENCODED}@127.0.0.1:{port}"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")

    code, out, err = run_cli(capsys, "replay", str(folder))
    assert code == 2
    assert f"was spooled for http://***@127.0.0.1:{port}, and a journal never keeps credentials" in err
    assert "--tracking-uri URI or MLFLOW_TRACKING_URI" in err

    # the full URI names the recorded store: replay goes ahead (and finds the server down)
    code, out, err = run_cli(
        capsys, "replay", str(folder), "--tracking-uri", f"http://alice:{ENCODED}@127.0.0.1:{port}"
    )
    assert code == 1
    assert f"http://***@127.0.0.1:{port} is unreachable" in err
    assert "the journal is kept" in err
    assert ENCODED not in out + err
    assert PASSWORD not in out + err
    assert (folder / PENDING).exists()


# --------------------------------------------------------------------------------------- end to end

RTMODELS = '''
    """The candidate's class, importable only from this project's folder."""

    import numpy as np


    class LastMean:
        """The mean of the last ``k`` points, for every step ahead."""

        def __init__(self, k: int = 5) -> None:
            self.k = k

        def fit(self, history) -> None:
            pass

        def predict(self, history, steps):
            return np.full(steps, float(np.mean(history[-self.k:])))
'''

SUITE = """
    import numpy as np
    import pandas as pd

    from backtest import WalkForward
    from rtmodels import LastMean

    SERIES = pd.Series(100 + np.cumsum(np.random.default_rng(3).normal(0, 1, 300)),
                       index=pd.bdate_range("2021-01-04", periods=300))


    def test_candidate(walk_forward):
        walk_forward(LastMean(), SERIES, WalkForward(horizon=5, step=5, initial=200), name="lastmean")
"""


def replay_command(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest_forecast_mlflow.cli", "replay", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def spool_session(pytester: pytest.Pytester, down: str) -> pytest.RunResult:
    """The rt suite against an unreachable server, spooled to a journal, asking to be promoted."""
    return pytester.runpytest_subprocess(
        *INNER_FLAGS,
        "--mlflow-experiment",
        "rt",
        "--mlflow-tracking-uri",
        down,
        "--mlflow-on-unavailable",
        "spool",
        "--mlflow-timeout",
        "2",
        "--forecast-gate",
        "warn",
        "--mlflow-promote",
        timeout=180,
    )


@pytest.mark.mlflow
@pytest.mark.slow
def test_a_spooled_session_replays_from_anywhere_with_its_own_model_classes(
    pytester: pytest.Pytester, empty_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini("[pytest]\n")
    pytester.makepyfile(rtmodels=textwrap.dedent(RTMODELS), test_rt=textwrap.dedent(SUITE))
    down = f"http://alice:{ENCODED}@127.0.0.1:{closed_port()}"
    result = spool_session(pytester, down)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    (journal,) = (pytester.path / "data" / "mlflow" / "journal").iterdir()
    assert ENCODED not in (journal / PENDING).read_text()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    args = (str(journal), "--tracking-uri", empty_store.uri, "--to-other-store")

    # the model's class cannot be imported: replay fails loudly and keeps the journal
    hidden = pytester.path / "rtmodels.py.hidden"
    (pytester.path / "rtmodels.py").rename(hidden)
    failed = replay_command(*args, cwd=elsewhere)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "lastmean: the model could not be logged" in failed.stderr
    assert "rtmodels" in failed.stderr
    assert "logged as run" not in failed.stdout
    assert (journal / PENDING).exists()
    hidden.rename(pytester.path / "rtmodels.py")

    # from another directory, the recorded rootdir puts rtmodels back within reach
    done = replay_command(*args, cwd=elsewhere)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "lastmean: logged as run" in done.stdout
    assert "instead of the recorded http://***@127.0.0.1:" in done.stdout
    # the promotion asked for during the outage is carried out through the gate: no champion yet, so it
    # bootstraps one, as the session itself would have
    promotion = [line for line in done.stdout.splitlines() if "PROMOTED" in line]
    assert len(promotion) == 1, done.stdout
    assert promotion[0].startswith("PROMOTED: "), done.stdout
    assert "registered as rt v1 and alias 'champion' moved to it (gate verdict at replay: no-baseline)" in promotion[0]
    assert ENCODED not in done.stdout + done.stderr
    assert "View run" not in done.stdout
    assert (journal / REPLAYED).exists()
    assert not (journal / PENDING).exists()

    (run,) = empty_store.runs("rt")
    assert run.info.status == "FINISHED"
    assert run.data.tags["forecast.logged"] == "complete"
    assert "forecast.model_error" not in run.data.tags
    import mlflow
    import pandas as pd

    monkeypatch.setenv("MLFLOW_TRACKING_URI", empty_store.uri)
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    forecast = model.predict(pd.DataFrame({"label": ["5d"], "history": [[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]]}))
    assert forecast["forecast"][0] == pytest.approx([4.0] * 5)

    again = replay_command(*args, cwd=elsewhere)
    assert again.returncode == 0, again.stderr
    assert "already replayed" in again.stdout
    assert len(empty_store.runs("rt")) == 1

    # a second outage: the same model, 20 folds a horizon. At replay the gate compares it with the v1 it
    # now finds, calls 20 folds inconclusive (the default minimum is 30), and the alias stays
    second = spool_session(pytester, down)
    assert second.ret == pytest.ExitCode.OK, second.stdout.str()
    (later,) = [p for p in (pytester.path / "data" / "mlflow" / "journal").iterdir() if p != journal]
    refused = replay_command(str(later), "--tracking-uri", empty_store.uri, "--to-other-store", cwd=elsewhere)
    assert refused.returncode == 0, refused.stdout + refused.stderr
    assert "replay gate: forecast gate: INCONCLUSIVE against rt v1" in refused.stdout
    (line,) = [line for line in refused.stdout.splitlines() if "PROMOTED" in line]
    assert line.startswith("NOT PROMOTED: "), refused.stdout
    assert "alias 'champion' NOT moved: gate verdict inconclusive" in line
    client = empty_store.client()
    assert str(client.get_model_version_by_alias("rt", "champion").version) == "1"
    shutil.rmtree(elsewhere)
    assert os.listdir(journal / "models")


def test_a_journal_is_replayed_by_one_process_at_a_time(tmp_path: Path) -> None:
    """A second replay while the first runs would log every run twice: it is refused, naming why."""
    import fcntl

    from pytest_forecast_mlflow.journal import ReplayBusy, replay

    folder = spool(settings_for(tmp_path / "project", f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"))
    journal = read_journal(folder)
    with open(folder / ".replay.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(ReplayBusy, match="is being replayed by another process right now"):
            replay(journal, journal.settings(f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}", tmp_path / "mlruns"))
    assert (folder / PENDING).exists()
