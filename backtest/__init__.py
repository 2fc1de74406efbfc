"""Walk-forward backtesting for time-series forecasters: fold schedules, a leak-proof runner, metrics.

Pure numpy and pandas: importing it never imports pytest or mlflow.
"""

from __future__ import annotations

from .compare import Comparison, compare, holm, pair_by_origin
from .data import DataError, Fingerprint, fingerprint, load_series
from .folds import Fold, SpecificationError, WalkForward
from .metrics import METRICS, Metric, MetricContext, get_metric, register_metric, score
from .models import Drift, Forecaster, Naive, RandomWalk, SeasonalNaive, WindowMean
from .runner import DEFAULT_METRICS, BacktestResult, ModelError, run

__all__ = [
    "DEFAULT_METRICS",
    "METRICS",
    "BacktestResult",
    "Comparison",
    "DataError",
    "Drift",
    "Fingerprint",
    "Fold",
    "Forecaster",
    "Metric",
    "MetricContext",
    "ModelError",
    "Naive",
    "RandomWalk",
    "SeasonalNaive",
    "SpecificationError",
    "WalkForward",
    "WindowMean",
    "compare",
    "fingerprint",
    "holm",
    "get_metric",
    "load_series",
    "pair_by_origin",
    "register_metric",
    "run",
    "score",
]
