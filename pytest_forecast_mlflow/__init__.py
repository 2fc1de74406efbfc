"""pytest-forecast-mlflow: walk-forward backtests as pytest tests, tracked and gated in MLflow."""

from __future__ import annotations

__version__ = "0.1.0"
