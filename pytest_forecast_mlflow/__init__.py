"""pytest-forecast-mlflow: walk-forward backtests as pytest tests, tracked and gated in MLflow."""

from __future__ import annotations

# The one place the version is written: pyproject.toml reads it ([tool.setuptools.dynamic]).
__version__ = "0.1.0"
