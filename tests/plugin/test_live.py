"""Live forecasts: ``forecast-mlflow forecast`` and ``log_forecast`` against a temporary store holding a champion.

One copy of the champion store (the naive candidate, horizons 5d and 10d) serves the whole module; each
test records into its own live experiment.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pytest_forecast_mlflow.cli.main import main
from pytest_forecast_mlflow.tracking.live import LiveForecast, ModelRef, histories, predict

from .conftest import Store

pytestmark = pytest.mark.usefixtures("hermetic")

MODEL = "models:/forecaster@champion"


@pytest.fixture(scope="module")
def live_store(tmp_path_factory: pytest.TempPathFactory, _champion_template: Store) -> Store:
    return _champion_template.copy_to(tmp_path_factory.mktemp("live"))


def write_series_csv(template: Store, folder: Path) -> Path:
    """The inner project's base series (the champion's own data) as a date,value CSV in ``folder``."""
    sys.path.insert(0, str(template.db.parent))
    try:
        from forecast_e2e.models import make_series
    finally:
        sys.path.remove(str(template.db.parent))
    path = folder / "series.csv"
    make_series().rename_axis("date").rename("value").to_csv(path)
    return path


@pytest.fixture(scope="module")
def series_csv(tmp_path_factory: pytest.TempPathFactory, _champion_template: Store) -> Path:
    return write_series_csv(_champion_template, tmp_path_factory.mktemp("series"))


def forecast(store: Store, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["forecast", "--model", MODEL, "--tracking-uri", store.uri, *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_range_of_origins_is_backfilled_in_one_call_and_not_twice(
    live_store: Store, series_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    series = pd.read_csv(series_csv, index_col=0, parse_dates=True)["value"]
    start, end = series.index[200], series.index[279]
    args = ("--series", str(series_csv), "--label", "5d", "--experiment", "backfill")
    code, out, err = forecast(live_store, *args, "--origin", f"{start.date()}..{end.date()}", capsys=capsys)
    assert (code, err) == (0, "")
    assert f"recorded 80 forecast(s) of forecaster v1 at 5d (horizon 5) from {start.date()} .. {end.date()}" in out

    client = live_store.client()
    experiment = client.get_experiment_by_name("backfill")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "live forecaster v1 5d"
    assert run.data.tags["forecast.role"] == "live"
    assert (run.data.tags["forecast.live.version"], run.data.tags["forecast.label"]) == ("1", "5d")
    assert run.data.metrics["5d/forecasts"] == 80
    history = client.get_metric_history(run.info.run_id, "5d/forecast_last")
    assert len(history) == 80
    # step = the origin's day number, timestamp = the origin date: the UI reads forecasts by date
    first = min(history, key=lambda m: m.step)
    assert pd.Timestamp(first.timestamp, unit="ms") == start
    # the naive champion forecasts the origin's value: data up to and including the origin
    assert first.value == pytest.approx(series[start])

    # again, and overlapping: only the new origins are recorded
    code, out, _ = forecast(live_store, *args, "--origin", f"{start.date()}..{end.date()}", capsys=capsys)
    assert (code, out) == (0, "nothing new: 80 forecast(s) already recorded in experiment 'backfill'\n")
    code, out, _ = forecast(live_store, *args, "--origin", str(series.index[285].date()), capsys=capsys)
    assert code == 0
    assert "recorded 1 forecast(s)" in out
    assert "forecast: " in out
    assert len(client.get_metric_history(run.info.run_id, "5d/forecast_last")) == 81


def test_a_forecast_never_sees_data_after_its_origin(
    live_store: Store, series_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same origin on the true series and on one whose later values are wrecked gives the same forecast."""
    series = pd.read_csv(series_csv, index_col=0, parse_dates=True)["value"]
    origin = series.index[250]
    tampered = series.copy()
    tampered[tampered.index > origin] *= 10.0
    tampered_csv = tmp_path / "tampered.csv"
    tampered.to_csv(tampered_csv)
    from pytest_forecast_mlflow import log_forecast

    kept = log_forecast(
        MODEL, series_csv, label="10d", origin=str(origin.date()), experiment="peek-a", tracking_uri=live_store.uri
    )
    wrecked = log_forecast(
        MODEL, tampered_csv, label="10d", origin=str(origin.date()), experiment="peek-b", tracking_uri=live_store.uri
    )
    assert len(kept) == len(wrecked) == 1
    assert kept[0].values == wrecked[0].values
    assert (kept[0].origin, kept[0].version, kept[0].horizon) == (str(origin.date()), "1", 10)
    # and the histories handed to the model stop at the origin, whatever the series holds after it
    (handed,) = histories(tampered, [origin], limit=0)
    assert handed == series[:origin].tolist()


def test_an_interval_is_recorded_when_the_model_gives_one() -> None:
    class WithInterval:
        def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
            last = [h[-1] for h in frame["history"]]
            return pd.DataFrame(
                {
                    "forecast": [[v] * 3 for v in last],
                    "lower": [[v - 1] * 3 for v in last],
                    "upper": [[v + 1] * 3 for v in last],
                }
            )

    series = pd.Series(np.arange(10.0), index=pd.bdate_range("2025-01-01", periods=10))
    (fc,) = predict(WithInterval(), series, [series.index[4]], label="3d", horizon=3, ref=ModelRef("m", "2"))
    assert fc == LiveForecast("2025-01-07", "3d", 3, "m", "2", (4.0, 4.0, 4.0), (3.0, 3.0, 3.0), (5.0, 5.0, 5.0))
    assert LiveForecast.from_json(fc.to_json()) == fc


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("--label", "5d", "--origin", "2030-01-01"), 2, "is after the series' last date"),
        (("--label", "5d", "--origin", "2030-01-01..2030-02-01"), 2, "no date of the series falls in"),
        (("--label", "5d", "--origin", "soon"), 2, "is not a date"),
        (("--label", "7d"), 1, "has no horizon '7d'; its backtest has 5d, 10d"),
    ],
)
def test_bad_input_is_one_line_naming_the_fix(
    live_store: Store,
    series_csv: Path,
    capsys: pytest.CaptureFixture[str],
    args: tuple[str, ...],
    code: int,
    message: str,
) -> None:
    got, out, err = forecast(live_store, "--series", str(series_csv), "--experiment", "bad", *args, capsys=capsys)
    assert got == code
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_a_model_uri_that_is_not_a_registered_model_is_a_usage_error(
    live_store: Store, series_csv: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["forecast", "--model", "runs:/abc/model", "--series", str(series_csv), "--label", "5d"])
    assert code == 2
    assert "write models:/NAME@champion" in capsys.readouterr().err
