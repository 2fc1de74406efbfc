"""The USD/CLP replay script's own pieces, end to end on the inner project's short series, so it cannot rot.

``tests/benchmarks/replay_usdclp_live.py`` makes its champion with the main job (20 s of torch); here the
session's champion store stands in for it (the naive model, 5d). Live forecasts of the last 100 dates are
backfilled through the script's functions, monitored as of the end, and checked day by day: the stable
series never alarms, a copy with every move tripled from day 220 on does, after the break.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from backtest.data import load_series
from tests.benchmarks import replay_usdclp_live as replay

from .conftest import Store
from .test_live import write_series_csv

pytestmark = pytest.mark.usefixtures("hermetic")

MODEL = "models:/forecaster@champion"
BREAK_AT = 220


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory, _champion_template: Store) -> pd.Series:
    return load_series(write_series_csv(_champion_template, tmp_path_factory.mktemp("replay-series")))


def test_inject_break_multiplies_every_move_from_its_date_and_keeps_the_past(series: pd.Series) -> None:
    start = str(series.index[BREAK_AT].date())
    broken = replay.inject_break(series, start, 3.0)
    pd.testing.assert_series_equal(broken[:BREAK_AT], series[:BREAK_AT])
    assert broken.diff()[BREAK_AT:].to_numpy() == pytest.approx(3.0 * series.diff()[BREAK_AT:].to_numpy())
    assert replay.business_days(series.index, start, series.index[BREAK_AT + 4]) == 5
    with pytest.raises(ValueError, match="not inside the series"):
        replay.inject_break(series, "1999-01-01", 2.0)


def test_a_stable_series_never_alarms_and_a_break_does_after_it(
    champion_store: Store, series: pd.Series, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = champion_store
    start = str(series.index[200].date())
    stable_csv = replay.write_series(series, tmp_path / "stable.csv")
    replay.backfill(store.uri, MODEL, stable_csv, ["5d"], start, "stable-live")
    assert replay.monitor(store.uri, "stable-live", stable_csv) == 0
    assert " ok" in capsys.readouterr().out
    (plot,) = replay.plot_paths(store.uri, "stable-live").values()
    assert plot.endswith("plots/5d_live_vs_backtest.png")
    assert Path(plot).stat().st_size > 10_000

    (stable,) = replay.daily_checks(store.uri, "stable-live", series)
    # a check on every date from the first forecast's first target date to the end, both lanes deciding
    assert (stable.label, len(stable.dates), stable.dates[-1]) == ("5d", 99, series.index[-1])
    assert "-" not in (stable.results[-1].lane_text("1-step"), stable.results[-1].lane_text("full"))
    assert stable.alarms() == []
    assert "5d: first alarm never (1-step lane never, full lane never); 0 day(s) in drift" in replay.describe_daily(
        [stable]
    )

    break_date = str(series.index[BREAK_AT].date())
    broken = replay.inject_break(series, break_date, 3.0)
    broken_csv = replay.write_series(broken, tmp_path / "broken.csv")
    replay.backfill(store.uri, MODEL, broken_csv, ["5d"], start, "broken-live")
    (checked,) = replay.daily_checks(store.uri, "broken-live", broken)
    alarms = checked.alarms()
    assert alarms, "the break was not detected"
    assert alarms[0] > pd.Timestamp(break_date), alarms
    assert alarms[0] == min(checked.alarms("1-step")[:1] + checked.alarms("full")[:1])  # the first lane to pass
    text = replay.describe_break([checked], series.index, break_date)
    delay = replay.business_days(series.index, break_date, alarms[0])
    assert f"5d: first alarm after the break, business days (date): monitor {delay} ({alarms[0].date()})" in text
    assert "0 day(s) in drift before it" in text
