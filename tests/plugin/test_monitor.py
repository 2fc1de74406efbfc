"""``forecast-mlflow monitor``: scoring live forecasts, the drift table, idempotent logging, the registry tag, alerts.

One copy of the champion store per module. Live forecasts of the naive champion are backfilled once at
5d and 10d over the last 100 dates of its own series; the stable case monitors them against that series,
the break case against a copy whose later values swing three times as hard (its own live experiment).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pytest_forecast_mlflow.cli.main import main
from pytest_forecast_mlflow.tracking.live import day_number

from .conftest import Store
from .test_live import write_series_csv
from .test_notify import Receiver

pytestmark = pytest.mark.usefixtures("hermetic")

MODEL = "models:/forecaster@champion"
BREAK_AT = 220


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, _champion_template: Store) -> Store:
    return _champion_template.copy_to(tmp_path_factory.mktemp("monitor"))


@pytest.fixture(scope="module")
def series_csv(tmp_path_factory: pytest.TempPathFactory, _champion_template: Store) -> Path:
    return write_series_csv(_champion_template, tmp_path_factory.mktemp("series"))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture(scope="module")
def broken_csv(series_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the series with a synthetic break: from BREAK_AT on, each day's move is tripled."""
    series = pd.read_csv(series_csv, index_col=0, parse_dates=True)["value"]
    values = series.to_numpy().copy()
    moves = np.diff(values[BREAK_AT - 1 :]) * 3.0
    values[BREAK_AT:] = values[BREAK_AT - 1] + np.cumsum(moves)
    path = tmp_path_factory.mktemp("broken") / "broken.csv"
    pd.Series(values, index=series.index, name="value").rename_axis("date").to_csv(path)
    return path


def _backfill(store: Store, csv: Path, experiment: str) -> None:
    series = pd.read_csv(csv, index_col=0, parse_dates=True)["value"]
    span = f"{series.index[200].date()}..{series.index[-1].date()}"
    for label in ("5d", "10d"):
        args = ["--series", str(csv), "--label", label, "--origin", span, "--experiment", experiment]
        assert main(["forecast", "--model", MODEL, "--tracking-uri", store.uri, *args]) == 0


@pytest.fixture(scope="module")
def stable(store: Store, series_csv: Path) -> str:
    _backfill(store, series_csv, "stable-live")
    return "stable-live"


@pytest.fixture(scope="module")
def broken(store: Store, broken_csv: Path) -> str:
    _backfill(store, broken_csv, "broken-live")
    return "broken-live"


def run(store: Store, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["monitor", "--tracking-uri", store.uri, *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_stable_champion_is_ok_its_errors_are_logged_once_and_nobody_is_notified(
    store: Store,
    stable: str,
    series_csv: Path,
    receiver: Receiver,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ("--experiment", stable, "--series", str(series_csv), "--notify", receiver.url, "--fail-on-drift")
    code, out, err = run(store, capsys, *args)
    assert (code, err) == (0, ""), out
    lines = out.splitlines()
    assert lines[0].startswith(f"live forecasts of experiment {stable!r} against {series_csv}")
    header = lines[1].split()
    assert header == [
        *["model", "horizon", "forecasts", "scored", "live", "rmse", "backtest", "rmse", "ratio"],
        *["1-step", "lane", "full", "lane", "verdict"],
    ]
    rows = {line.split()[2]: line for line in lines[2:4]}
    # 100 origins; at 5d the last 4 are partly realized and the very last has no realized step yet
    assert "95 (+4 partial)" in rows["5d"]
    assert "90 (+9 partial)" in rows["10d"]
    assert all(row.rstrip().endswith(" ok") for row in rows.values())
    assert "partial: forecasts whose last target dates have not arrived are scored on their realized steps" in out
    assert "logged 185 new per-forecast error(s)" in out
    assert receiver.received == []

    client = store.client()
    experiment = client.get_experiment_by_name(stable)
    runs = {r.data.tags["forecast.label"]: r for r in client.search_runs([experiment.experiment_id])}
    history = client.get_metric_history(runs["5d"].info.run_id, "5d/rmse")
    assert len(history) == 95
    assert {m.step for m in history} == {day_number(str(pd.Timestamp(m.timestamp, unit="ms").date())) for m in history}
    assert runs["5d"].data.metrics["5d/drift"] == 0.0
    # both lanes decided: the one-step errors of all 99 forecasts with a realized first date, and the 95 complete
    metrics = runs["5d"].data.metrics
    assert metrics["5d/scored_one_step"] == 99
    assert 0 <= metrics["5d/drift_fast_statistic"] < metrics["5d/drift_fast_threshold"]
    assert 0 <= metrics["5d/drift_statistic"] < metrics["5d/drift_threshold"]
    assert f"{metrics['5d/drift_fast_statistic']:.1f} / {metrics['5d/drift_fast_threshold']:.1f}" in rows["5d"]
    plots = client.list_artifacts(runs["5d"].info.run_id, "plots")
    assert [(a.path, a.file_size > 10_000) for a in plots] == [("plots/5d_live_vs_backtest.png", True)]
    assert runs["5d"].data.metrics["5d/live_rmse_ratio"] == pytest.approx(float(rows["5d"].split()[8]), rel=1e-3)

    # the same data again logs nothing new, and the check's aggregates are not repeated
    code, out, _ = run(store, capsys, *args)
    assert code == 0
    assert "nothing new to log" in out
    assert len(client.get_metric_history(runs["5d"].info.run_id, "5d/rmse")) == 95
    assert len(client.get_metric_history(runs["5d"].info.run_id, "5d/drift_statistic")) == 1
    assert "forecast.drift" not in client.get_model_version("forecaster", "1").tags


def test_a_break_raises_the_alarm_tags_the_version_and_notifies_once(
    store: Store,
    broken: str,
    broken_csv: Path,
    receiver: Receiver,
    capsys: pytest.CaptureFixture[str],
) -> None:
    args = ("--experiment", broken, "--series", str(broken_csv), "--notify", receiver.url)
    code, out, err = run(store, capsys, *args)
    assert (code, err) == (0, ""), out  # drift without --fail-on-drift: reported, exit 0
    rows = {line.split()[2]: line for line in out.splitlines()[2:4]}
    assert rows["5d"].rstrip().endswith(" drift"), out
    assert "drift when either passes its threshold" in out
    assert "drift: tagged forecaster v1 forecast.drift in the registry" in out
    assert "notified 1 URL(s)" in out
    (alert,) = receiver.received
    assert "forecaster v1 5d" in alert["title"]
    assert "horizon 5d: verdict drift, ratio " in alert["message"]

    tag = store.client().get_model_version("forecaster", "1").tags["forecast.drift"]
    assert tag.startswith("5d on ")
    # the champion's 10d backtest has 19 folds, too few to learn its one-step errors from: that lane is silent
    cells = rows["10d"].split()
    assert cells[9:] == ["-", cells[10], "/", cells[12], "drift"]
    assert tag.endswith(f"1-step lane -, full lane {cells[10]} / {cells[12]} (statistic / threshold)")
    code, out, _ = run(store, capsys, "--experiment", broken, "--series", str(broken_csv), "--fail-on-drift")
    assert code == 1
    assert len(receiver.received) == 1  # no --notify this time: nothing more arrives

    assert main(["champion", "show", "--model", "forecaster", "--tracking-uri", store.uri]) == 0
    assert f"DRIFT in live forecasts (forecast-mlflow monitor): {tag}" in capsys.readouterr().out
    assert main(["dashboard", "--tracking-uri", store.uri, "--experiment", "forecaster"]) == 0
    assert "DRIFT of the champion in live forecasts: 5d on " in capsys.readouterr().out


def test_a_failed_delivery_is_a_warning_and_the_errors_are_still_logged(
    store: Store, broken: str, broken_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("--experiment", broken, "--series", str(broken_csv), "--notify", "json://127.0.0.1:9/nobody")
    code, out, err = run(store, capsys, *args, "--fail-on-drift")
    assert code == 1
    assert "rmse" in out
    assert err == (
        "forecast-mlflow monitor: warning: notification not delivered: sending to notify URL 1 (json://...) failed "
        "(the service refused it or did not answer)\n"
    )


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("--experiment", "nothing-here"), 1, "holds no live forecasts; record some with forecast-mlflow forecast"),
        (("--experiment", "x", "--metric", "directional_accuracy"), 2, "the drift test watches a loss"),
        (("--experiment", "x", "--metric", "rsme"), 2, "did you mean 'rmse'"),
    ],
)
def test_bad_input(
    store: Store,
    series_csv: Path,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    code: int,
    message: str,
) -> None:
    got, _, err = run(store, capsys, "--series", str(series_csv), *args)
    assert got == code
    assert message in err
