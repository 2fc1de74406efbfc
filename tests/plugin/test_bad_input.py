"""The catalogue of bad input, seen through the plugin: each ends in a clear message, never INTERNALERROR.

Each inner test feeds one kind of bad data, specification or model to ``walk_forward`` with the
plugin switched on (a temporary SQLite store). The test fails, its message names the cause and the
fix, the session still logs what it could, and no INTERNALERROR appears.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest
from mlflow import MlflowClient  # imported at collection: pytester restores sys.modules after each test

pytestmark = pytest.mark.mlflow

INNER = r"""
import numpy as np, pandas as pd, pytest
import backtest as bt

def good(n=300):
    return pd.Series(500 + np.cumsum(np.random.default_rng(1).normal(0, 1, n)),
                     index=pd.bdate_range("2020-01-01", periods=n))

def csv(tmp_path, text):
    path = tmp_path / "series.csv"
    path.write_text(text)
    return path

SPEC = bt.WalkForward(horizon=5, step=5, initial=200)

@pytest.mark.parametrize("text", [
    "date,value\n2024-01-01,1\n2024-01-02,nan\n",
    "date,value\n2024-01-01,1\n2024-01-02,inf\n",
    "date,value\n2024-01-01,1\n2024-01-02,-3\n",
    "date,value\n2024-01-01,1\n2024-01-02,abc\n",
    "date,value\n2024-01-02,1\n2024-01-01,2\n",
    "date,value\n2024-01-01,1\n2024-01-01,2\n",
    "",
    "day,price\n2024-01-01,1\n",
], ids=["nan", "inf", "negative", "non-numeric", "unsorted", "duplicate", "empty", "misnamed-columns"])
def test_bad_data(walk_forward, tmp_path, text):
    walk_forward(bt.Naive(), bt.load_series(csv(tmp_path, text), positive=True), SPEC)

def test_series_too_short(walk_forward):
    walk_forward(bt.Naive(), good(100), SPEC)

@pytest.mark.parametrize("field", ["horizon", "step"])
def test_horizon_or_step_below_one(walk_forward, field):
    walk_forward(bt.Naive(), good(), bt.WalkForward(**{"horizon": 5, "step": 5, "initial": 200, field: 0}))

class Bad:
    def __init__(self, mode): self.mode = mode; self.name = f"bad_{mode}"
    def fit(self, history): pass
    def predict(self, history, steps):
        if self.mode == "length": return np.zeros(steps + 1)
        if self.mode == "nan": return np.full(steps, np.nan)
        if self.mode == "inf": return np.full(steps, np.inf)
        if self.mode == "raises": raise RuntimeError("model exploded")
        if self.mode == "mutates":
            history[-1] = 0.0
            return np.zeros(steps)

@pytest.mark.parametrize("mode", ["length", "nan", "inf", "raises", "mutates"])
def test_bad_model(walk_forward, mode):
    walk_forward(Bad(mode), good(), SPEC)
"""

EXPECTED = {  # test id -> its error line (fnmatch)
    "test_bad_data[[]nan[]]": "*missing (NaN) value(s) at 2024-01-02*drop or fill*",
    "test_bad_data[[]inf[]]": "*infinite value(s) at 2024-01-02*",
    "test_bad_data[[]negative[]]": "*zero or negative value(s) at 2024-01-02*",
    "test_bad_data[[]non-numeric[]]": "*non-numeric value(s) at line(s) 3 (abc)*every value must be a number*",
    "test_bad_data[[]unsorted[]]": "*dates are not sorted*sort the rows by date*",
    "test_bad_data[[]duplicate[]]": "*duplicate date(s) 2024-01-01*keep one row per date*",
    "test_bad_data[[]empty[]]": "*the file is empty*",
    "test_bad_data[[]misnamed-columns[]]": "*missing column(s) 'date', 'value'; found [[]'day', 'price'[]]*",
    "test_series_too_short": "*series has 100 points; initial 200 + gap 0 + horizon 5 needs at least 205*",
    "test_horizon_or_step_below_one[[]horizon[]]": "*horizon must be a whole number >= 1, got 0*",
    "test_horizon_or_step_below_one[[]step[]]": "*step must be a whole number >= 1, got 0*",
    "test_bad_model[[]length[]]": "*fold 0 (origin 2020-10-06*forecast has shape (6,), expected (5,)*",
    "test_bad_model[[]nan[]]": "*fold 0 (origin 2020-10-06*NaN/inf*",
    "test_bad_model[[]inf[]]": "*fold 0 (origin 2020-10-06*NaN/inf*",
    "test_bad_model[[]raises[]]": "*fold 0 (origin 2020-10-06*RuntimeError: model exploded*",
    "test_bad_model[[]mutates[]]": "*fold 0 (origin 2020-10-06*modify the history*copy them first*",
}


def test_every_bad_input_fails_its_test_with_a_clear_message(pytester, empty_store):
    # empty_store (session-scoped template) sets MLflow's SQLAlchemy machinery up before pytester's
    # sys.modules snapshot, so reading the runs back here does not leave half-imported modules behind
    pytester.makepyfile(test_inner=INNER)
    uri = empty_store.uri
    result = pytester.runpytest_subprocess(
        "-p",
        "no:cacheprovider",
        "--tb=line",
        "--mlflow-experiment",
        "bad",
        "--mlflow-tracking-uri",
        uri,
        "--forecast-gate",
        "off",
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=len(EXPECTED))
    assert "INTERNALERROR" not in result.stdout.str() + result.stderr.str()
    # the tests fail in order, each with its own error line
    result.stdout.fnmatch_lines([f"*{message}" for message in EXPECTED.values()])
    # what ran is still logged: each bad model's run ends FAILED and names its error
    result.stdout.fnmatch_lines(["*logged candidate bad_raises: run *"])
    client = MlflowClient(tracking_uri=uri)
    runs = {
        run.data.tags["forecast.model"]: run
        for run in client.search_runs([client.get_experiment_by_name("bad").experiment_id])
    }
    for mode, fragment in [
        ("length", "expected (5,)"),
        ("nan", "NaN/inf"),
        ("inf", "NaN/inf"),
        ("raises", "RuntimeError: model exploded"),
        ("mutates", "modify the history"),
    ]:
        run = runs[f"bad_{mode}"]
        assert run.info.status == "FAILED", mode
        assert fragment in run.data.tags["forecast.errors"], mode


def test_a_store_with_an_out_of_date_schema_names_the_upgrade_command(pytester, tmp_path):
    db = tmp_path / "old.db"
    uri = f"sqlite:///{db}"
    # create a current store, then pretend it predates the newest migration
    subprocess.run(
        [sys.executable, "-c", f"import mlflow; mlflow.MlflowClient({uri!r}).search_experiments()"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    with sqlite3.connect(db) as connection:
        connection.execute("update alembic_version set version_num = '451aebb31d03'")
    pytester.makepyfile(test_inner="def test_nothing(): pass")
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--mlflow-experiment", "old", "--mlflow-tracking-uri", uri
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{uri}*out-of-date schema*mlflow db upgrade {uri}*"])
    assert "INTERNALERROR" not in result.stderr.str()
