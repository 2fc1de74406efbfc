"""Refit blocks on worker processes and on a Dask cluster: the same folds, forecasts, metrics and progress
as one process, for a seeded torch model, with no look-ahead on any worker.

One real ``distributed.LocalCluster`` (two worker processes, one thread each) serves the whole module.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib  # type: ignore[import-untyped]
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from backtest import BacktestResult, ModelError, WalkForward, run
from tests.dask_cluster import local_cluster

OFFSET = 1000.0  # the value at position p is OFFSET + p, so a value says where in the series it came from
LOOKBACK = 4


class SeededTorch:
    """A tiny torch regressor on the last ``LOOKBACK`` values, refit with randomness at every refit.

    The seed is derived inside ``fit`` from the training window alone, so a block gives the same forecasts
    in any process. Every call appends what it was shown (the largest position in its history) and what it
    answered to a file in ``log_dir``, one per process, so the test can check every worker.
    """

    def __init__(self, log_dir: Path, steps: int, fail_at: int | None = None) -> None:
        self.log_dir, self.steps, self.fail_at = log_dir, steps, fail_at

    def _log(self, line: str) -> None:
        import os

        with open(self.log_dir / f"{os.getpid()}.log", "a") as out:
            out.write(line + "\n")

    def fit(self, history: np.ndarray) -> None:
        seed = zlib.crc32(history.tobytes())
        generator = torch.Generator().manual_seed(seed)
        previous = torch.get_num_threads()
        torch.set_num_threads(1)  # reductions must not depend on the core count of the process
        try:
            self.net = nn.Linear(LOOKBACK, self.steps)
            with torch.no_grad():
                for weight in self.net.parameters():
                    weight.copy_(torch.randn(weight.shape, generator=generator) * 0.01)
            scaled = torch.tensor(np.diff(history), dtype=torch.float32)
            windows = scaled.unfold(0, LOOKBACK + self.steps, 1)
            inputs, targets = windows[:, :LOOKBACK], windows[:, LOOKBACK:]
            for _ in range(5):  # a few steps of SGD on a random half of the windows
                pick = torch.randperm(len(windows), generator=generator)[: len(windows) // 2]
                loss = ((self.net(inputs[pick]) - targets[pick]) ** 2).mean()
                self.net.zero_grad()
                loss.backward()
                with torch.no_grad():
                    for weight in self.net.parameters():
                        assert weight.grad is not None
                        weight.sub_(0.01 * weight.grad)
        finally:
            torch.set_num_threads(previous)
        self._log(f"fit {int(history.max() - OFFSET)}")

    def predict(self, history: np.ndarray, steps: int) -> np.ndarray:
        if self.fail_at is not None and int(history.max() - OFFSET) == self.fail_at:
            raise ArithmeticError("no forecast today")
        with torch.no_grad():
            moves = self.net(torch.tensor(np.diff(history[-LOOKBACK - 1 :]), dtype=torch.float32)).double().numpy()
        forecast = history[-1] + np.cumsum(moves[:steps])
        self._log(f"predict {int(history.max() - OFFSET)} {float(forecast[0])!r}")
        return forecast


SPEC = WalkForward(horizon=3, step=2, initial=40, refit=3)
SERIES = pd.Series(OFFSET + np.arange(100.0), index=pd.bdate_range("2024-01-01", periods=100))


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Any]:
    pytest.importorskip("distributed")  # a declared test dependency: missing means a broken venv
    with local_cluster() as client:
        yield client


def backtest_in(where: str, model: SeededTorch, calls: list[tuple[int, int]]) -> BacktestResult:
    def progress(done: int, total: int) -> None:
        calls.append((done, total))

    if where == "dask":
        with joblib.parallel_config(backend="dask"):
            return run(model, SERIES, SPEC, n_jobs=2, progress=progress)
    return run(model, SERIES, SPEC, n_jobs=1 if where == "one process" else 2, progress=progress)


def seen(log_dir: Path) -> tuple[list[int], dict[float, int]]:
    """What the model was shown, from every process's log: the last position of each fit's window, and,
    per forecast (keyed by its first value), the last position of the history it forecast from."""
    fits, forecasts = [], {}
    for path in log_dir.glob("*.log"):
        for kind, last, *answer in (line.split() for line in path.read_text().splitlines()):
            if kind == "fit":
                fits.append(int(last))
            else:
                forecasts[float(answer[0])] = int(last)
    return sorted(fits), forecasts


def test_one_process_two_workers_and_a_dask_cluster_agree_bit_for_bit_and_never_look_ahead(
    dask_client: Any, tmp_path: Path
) -> None:
    results, progress = {}, {}
    for where in ("one process", "two workers", "dask"):
        log_dir = tmp_path / where.replace(" ", "-")
        log_dir.mkdir()
        calls: list[tuple[int, int]] = []
        result = backtest_in(where, SeededTorch(log_dir, steps=SPEC.horizon), calls)
        results[where], progress[where] = result, calls

        origins = (result.train_stop - 1).tolist()  # positions of the last point each fold may see
        fits, forecasts = seen(log_dir)
        assert fits == [origins[k] for k in np.flatnonzero(result.refit)]
        assert len(forecasts) == result.n_folds  # every forecast distinct: the seeds differ per block
        assert [forecasts[float(first)] for first in result.forecasts[:, 0]] == origins
        if where != "one process":
            assert len(list(log_dir.glob("*.log"))) >= 2, f"{where}: every block ran in the same process"

    alone = results["one process"]
    assert alone.n_folds == 29
    for where in ("two workers", "dask"):
        other = results[where]
        assert other.origins.equals(alone.origins)
        assert other.train_stop.tobytes() == alone.train_stop.tobytes()
        assert other.forecasts.tobytes() == alone.forecasts.tobytes()
        assert {k: v.tobytes() for k, v in other.fold_metrics.items()} == {
            k: v.tobytes() for k, v in alone.fold_metrics.items()
        }
        assert other.pooled == alone.pooled
    blocks = [(end, 29) for end in (*range(3, 29, 3), 29)]
    assert progress == {"one process": blocks, "two workers": blocks, "dask": blocks}


def test_an_error_on_a_dask_worker_names_the_fold_and_its_origin(dask_client: Any, tmp_path: Path) -> None:
    model = SeededTorch(tmp_path, steps=SPEC.horizon, fail_at=55)  # fold 8: origin at position 55
    with (
        joblib.parallel_config(backend="dask"),
        pytest.raises(ModelError, match=r"^fold 8 \(origin 2024-03-18 00:00:00\): ArithmeticError: no forecast today"),
    ):
        run(model, SERIES, SPEC, n_jobs=2)


def test_the_dask_cluster_sets_no_malloc_trim_threshold_here_or_on_its_workers(dask_client: Any) -> None:
    # Dask's default (65536) would leak into this process's environment and every process started after
    # it, and costs torch's fits about 1.7x their CPU (tests/dask_cluster.py)
    assert "MALLOC_TRIM_THRESHOLD_" not in os.environ
    on_workers = dask_client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_"))
    assert list(on_workers.values()) == [None, None]


def test_progress_must_be_callable() -> None:
    with pytest.raises(TypeError, match=r"^progress must be None or a callable progress\(done, total\), got 3"):
        run(SeededTorch(Path("."), steps=3), SERIES, SPEC, progress=3)  # type: ignore[arg-type]
