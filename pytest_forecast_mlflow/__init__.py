"""pytest-forecast-mlflow: walk-forward backtests as pytest tests, tracked and gated in MLflow."""

from __future__ import annotations

# The one place the version is written: pyproject.toml reads it ([tool.setuptools.dynamic]).
__version__ = "0.1.0"

__all__ = ["__version__", "log_forecast"]


def __getattr__(name: str):
    """``log_forecast`` is imported on first use: importing the package (as pytest does) never imports mlflow."""
    if name == "log_forecast":
        from pytest_forecast_mlflow.tracking.live import log_forecast

        return log_forecast
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
