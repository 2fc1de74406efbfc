"""PNG figures per horizon: forecasts against actuals, per-fold error against the champion, error by step.

Drawn with matplotlib's object-oriented API (``Figure`` + Agg), so no global pyplot state is touched.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .records import Record, sanitize


def _dates(origins: list[str]):
    import pandas as pd

    parsed = pd.to_datetime(pd.Index(origins), errors="coerce")
    return parsed if not parsed.isna().any() else np.arange(len(origins))


def figures(
    record: Record, folder: Path, *, baseline=None, reference: Record | None = None, metric: str = "rmse"
) -> Iterator[Path]:
    """Write the three PNGs of one horizon into ``folder`` and yield their paths."""
    from matplotlib.figure import Figure

    label = sanitize(record.label)
    actuals = np.asarray(record.actuals, dtype=float)
    forecasts = np.asarray(record.forecasts, dtype=float)
    x = _dates(record.origins)

    fig = Figure(figsize=(10, 4), dpi=100)
    ax = fig.subplots()
    ax.plot(x, actuals[:, -1], color="black", linewidth=1, label=f"actual at origin + {record.horizon}")
    ax.plot(x, forecasts[:, -1], color="tab:blue", linewidth=1, label=f"{record.model} forecast")
    if reference is not None and len(reference.origins) == len(record.origins):
        ax.plot(
            x,
            np.asarray(reference.forecasts)[:, -1],
            color="tab:gray",
            linewidth=0.8,
            linestyle="--",
            label=f"{reference.model} forecast",
        )
    ax.set_title(f"{record.model} {record.label}: {record.horizon}-step forecast against actual, by origin")
    ax.set_xlabel("forecast origin")
    ax.set_ylabel(record.series_name or "series value")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    path = folder / f"{label}_forecast_vs_actual.png"
    fig.savefig(path)
    yield path

    if metric not in record.fold_metrics:  # the backtest was scored without the gate metric
        metric = next(iter(record.fold_metrics))
    fig = Figure(figsize=(10, 4), dpi=100)
    ax = fig.subplots()
    ax.plot(x, record.fold_metrics[metric], color="tab:blue", linewidth=1, label=f"{record.model} (candidate)")
    if baseline is not None and metric in baseline.fold_metrics:
        index = {origin: k for k, origin in enumerate(baseline.origins)}
        paired = [baseline.fold_metrics[metric][index[o]] if o in index else np.nan for o in record.origins]
        ax.plot(x, paired, color="tab:orange", linewidth=1, label="champion")
    if reference is not None and len(reference.origins) == len(record.origins) and metric in reference.fold_metrics:
        ax.plot(
            x,
            reference.fold_metrics[metric],
            color="tab:gray",
            linewidth=0.8,
            linestyle="--",
            label=f"{reference.model}",
        )
    against = "candidate against champion" if baseline is not None else "candidate (no champion yet to compare with)"
    ax.set_title(f"{record.label}: per-fold {metric}, {against}")
    ax.set_xlabel("forecast origin")
    ax.set_ylabel(metric)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    path = folder / f"{label}_fold_error_vs_champion.png"
    fig.savefig(path)
    yield path

    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.subplots()
    steps = np.arange(1, record.horizon + 1)
    ax.plot(steps, np.sqrt(np.mean((forecasts - actuals) ** 2, axis=0)), marker=".", label=record.model)
    if reference is not None and len(reference.origins) == len(record.origins):
        ref_errors = np.asarray(reference.forecasts) - np.asarray(reference.actuals)
        ax.plot(
            steps,
            np.sqrt(np.mean(ref_errors**2, axis=0)),
            marker=".",
            linestyle="--",
            color="tab:gray",
            label=reference.model,
        )
    ax.set_title(f"{record.label}: RMSE by step ahead")
    ax.set_xlabel("steps ahead")
    ax.set_ylabel("RMSE (pooled over folds)")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    path = folder / f"{label}_error_by_step.png"
    fig.savefig(path)
    yield path
