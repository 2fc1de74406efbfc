"""The direction of imports: tests -> pytest_forecast_mlflow -> backtest -> numpy/pandas.

Each check runs in a fresh interpreter, because this one has long since imported pytest and pandas.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def modules_after_import(module: str, watched: list[str]) -> list[str]:
    """Import ``module`` in a fresh interpreter and return which of ``watched`` it pulled in."""
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        f"print(json.dumps([name for name in {watched!r} if name in sys.modules]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_library_imports_neither_pytest_nor_mlflow() -> None:
    loaded = modules_after_import("backtest", ["pytest", "_pytest", "mlflow", "hypothesis", "numpy", "backtest.runner"])
    # numpy and the runner prove the import really happened; the rest must stay out
    assert loaded == ["numpy", "backtest.runner"]


@pytest.mark.parametrize("module", ["pytest_forecast_mlflow", "pytest_forecast_mlflow.plugin"])
def test_the_plugin_entry_point_imports_neither_mlflow_nor_pandas(module: str) -> None:
    assert modules_after_import(module, ["mlflow", "pandas"]) == []
