"""The synthetic USD/CLP sample: deterministic, valid, and the committed CSV is what the script writes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

import backtest
from backtest.synthetic import DEFAULT_SEED, synthetic_usdclp

COMMITTED = Path(__file__).resolve().parents[2] / "data" / "usdclp_synthetic.csv"


def test_same_seed_gives_the_same_values_and_another_seed_does_not() -> None:
    pd.testing.assert_series_equal(synthetic_usdclp(7), synthetic_usdclp(7))
    assert not np.array_equal(synthetic_usdclp(7).to_numpy(), synthetic_usdclp(8).to_numpy())


def test_series_looks_like_usdclp() -> None:
    series = synthetic_usdclp()
    assert series.index.equals(pd.bdate_range("2000-01-03", "2026-05-18"))
    assert series.iloc[0] == 530.0
    assert series.min() > 400
    assert series.max() < 1100
    np.testing.assert_array_equal(series.to_numpy(), series.round(2).to_numpy())
    annual_vol = np.diff(np.log(series.to_numpy())).std() * np.sqrt(252)
    assert 0.08 <= annual_vol <= 0.12


def test_committed_csv_is_what_the_script_writes_now(tmp_path: Path) -> None:
    output = tmp_path / "out" / "usdclp.csv"
    done = subprocess.run(
        [sys.executable, "-m", "backtest.synthetic", "--output", str(output), "--seed", str(DEFAULT_SEED)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert "6881 business days" in done.stderr
    assert output.read_bytes() == COMMITTED.read_bytes(), (
        "data/usdclp_synthetic.csv is stale: regenerate it with `python -m backtest.synthetic`"
    )


def test_committed_csv_passes_load_series_and_round_trips() -> None:
    loaded = backtest.load_series(COMMITTED)
    assert b"\r" not in COMMITTED.read_bytes()
    pd.testing.assert_series_equal(loaded, synthetic_usdclp(), check_freq=False)


def test_importing_the_generator_pulls_in_neither_pytest_nor_mlflow() -> None:
    code = "import sys, backtest.synthetic; print(sorted({'pytest', 'mlflow', 'torch'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
