"""The PNGs logged on a candidate's run say what they show: titles, axes, and no invented champion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import backtest
from pytest_forecast_mlflow.gate import BaselineHorizon
from pytest_forecast_mlflow.plots import figures
from pytest_forecast_mlflow.records import Record, from_result


def _record(series_name: str = "") -> Record:
    values = 100 + np.cumsum(np.random.default_rng(5).normal(0, 1, 80))
    series = pd.Series(values, index=pd.bdate_range("2024-01-01", periods=80))
    result = backtest.run(backtest.Naive(), series, backtest.WalkForward(horizon=3, step=5, initial=50))
    location = ("test_x.py", 1, "test_x")
    return from_result(
        result, nodeid="test_x.py::test_x", location=location, role="candidate", label="3d", data_source="",
        series_name=series_name,
    )  # fmt: skip


def _drawn(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, record: Record, **kwargs: Any) -> dict[str, tuple]:
    """File name -> (title, y label) of every figure ``figures`` writes."""
    from matplotlib.figure import Figure

    seen: dict[str, tuple] = {}
    save = Figure.savefig

    def spy(fig: Figure, path: Any, *args: Any, **kw: Any) -> None:
        seen[Path(path).name] = (fig.axes[0].get_title(), fig.axes[0].get_ylabel())
        save(fig, path, *args, **kw)

    monkeypatch.setattr(Figure, "savefig", spy)
    written = list(figures(record, tmp_path, **kwargs))
    assert [p.read_bytes()[:4] for p in written] == [b"\x89PNG"] * 3
    return seen


def test_a_first_run_says_it_has_no_champion_to_compare_with(monkeypatch, tmp_path) -> None:
    seen = _drawn(monkeypatch, tmp_path, _record())

    title, ylabel = seen["3d_fold_error_vs_champion.png"]
    assert title == "3d: per-fold rmse, candidate (no champion yet to compare with)"
    assert ylabel == "rmse"
    assert seen["3d_forecast_vs_actual.png"][1] == "series value"  # no name, no invented unit


def test_with_a_champion_the_plot_names_it_and_the_forecast_axis_carries_the_series_name(monkeypatch, tmp_path):
    record = _record(series_name="USD/CLP (pesos per dollar)")
    champion = BaselineHorizon(
        label="3d", horizon=3, step=5, origins=record.origins, actuals=record.actuals,
        fold_metrics={"rmse": [v * 1.1 for v in record.fold_metrics["rmse"]]},
    )  # fmt: skip

    seen = _drawn(monkeypatch, tmp_path, record, baseline=champion)

    assert seen["3d_fold_error_vs_champion.png"][0] == "3d: per-fold rmse, candidate against champion"
    assert seen["3d_forecast_vs_actual.png"][1] == "USD/CLP (pesos per dollar)"
