"""The PNGs logged on a candidate's run say what they show (titles, axes, no invented champion); the process
drawing them yields to the tests and dies with the process that started it."""

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

from .conftest import process_state


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


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="process states are read from Linux's /proc")
def test_the_drawing_process_yields_to_the_tests_draws_and_dies_with_its_parent(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    from pytest_forecast_mlflow.plots import spawn

    drawing = spawn(tmp_path / "drawn")
    try:
        for _ in range(100):  # it lowers its priority first thing
            if os.getpriority(os.PRIO_PROCESS, drawing.process.pid) >= os.getpriority(os.PRIO_PROCESS, 0) + 10:
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the drawing process runs at the tests' priority")
        drawing.send([(_record(), None, None)], "rmse")
        assert [p.suffix for p in drawing.collect(timeout=120)["Naive"]] == [".png"] * 3
    finally:
        drawing.stop()

    # a session killed with SIGKILL takes its drawing with it, even while another process (here a fork of
    # the starter; in a session, say, a model's worker) still holds the drawing's stdin open
    starter = subprocess.Popen(
        [sys.executable, "-c", "import os, time\nfrom pathlib import Path\n"
         "from pytest_forecast_mlflow.plots import spawn\n"
         f"drawing = spawn(Path({str(tmp_path / 'orphan')!r}))\nkeeper = os.fork()\n"
         "if keeper == 0:\n    time.sleep(120)\n    os._exit(0)\n"
         "print(drawing.process.pid, keeper, flush=True)\ntime.sleep(120)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert starter.stdout is not None  # stdout=PIPE
    child, keeper = map(int, starter.stdout.readline().split())
    try:
        os.kill(starter.pid, signal.SIGKILL)
        starter.wait()
        for _ in range(100):
            if process_state(child) in ("Z", "X", "gone"):
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the drawing process outlived the process that started it")
    finally:
        os.kill(keeper, signal.SIGKILL)
