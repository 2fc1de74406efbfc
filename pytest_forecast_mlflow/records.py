"""Plain, JSON-able records that cross process and module lines.

A :class:`Record` is one backtest run inside one test: what xdist workers ship to the controller, what
the tracking module logs, and what the gate compares. Built from a :class:`backtest.BacktestResult`
only inside :func:`from_result`, so importing this module costs nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. /]")


def sanitize(name: str) -> str:
    """Make a label safe as an MLflow metric, parameter or artifact name component."""
    cleaned = _UNSAFE.sub("_", str(name)).strip(" /") or "_"
    return cleaned.replace("/", "_").replace("..", "_")[:200]


#: label names that would collide with the plugin's own metric, parameter or artifact names
RESERVED_LABELS = frozenset({"all", "gate", "model", "data", "version", "forecast", "manifests", "plots"})


def check_label(label: str) -> str:
    """A horizon label as it will appear in metric, parameter and artifact names, or ``ValueError``.

    Characters MLflow does not accept become ``_`` (``x/5`` -> ``x_5``); what cannot be made a name is
    refused: a label must start with a letter or digit (``.`` or ``..`` would make path-like keys MLflow
    rejects), and names the plugin uses itself (``all/rmse_mean``, ``gate/...``, ``model.*``) are taken.
    """
    cleaned = sanitize(label)
    if not cleaned[0].isalnum():
        raise ValueError(
            f"label {label!r} cannot name a horizon: a label must start with a letter or digit, "
            "e.g. label='30d' or label='30d_tuned'"
        )
    if cleaned.lower() in RESERVED_LABELS:
        raise ValueError(
            f"label {label!r} is reserved: the plugin logs its own {cleaned.lower()!r} names beside the horizons' "
            f"({', '.join(sorted(RESERVED_LABELS))} are taken); choose another, e.g. label='{cleaned}_h'"
        )
    return cleaned


@dataclass
class Record:
    """One walk-forward backtest executed by one test (a candidate or a reference model)."""

    nodeid: str
    location: tuple[str, int | None, str]
    model: str
    role: str
    label: str
    horizon: int = 0
    step: int = 1
    spec: dict[str, str] = field(default_factory=dict)
    data: dict[str, str] = field(default_factory=dict)
    data_source: str = ""
    #: the series' name (``pandas.Series.name``), e.g. with its units: the y axis of the forecast plot
    series_name: str = ""
    params: dict[str, str] = field(default_factory=dict)
    origins: list[str] = field(default_factory=list)
    train_start: list[int] = field(default_factory=list)
    train_stop: list[int] = field(default_factory=list)
    actuals: list[list[float]] = field(default_factory=list)
    forecasts: list[list[float]] = field(default_factory=list)
    last: list[float] = field(default_factory=list)
    fold_metrics: dict[str, list[float]] = field(default_factory=dict)
    aggregates: dict[str, float] = field(default_factory=dict)
    excluded: dict[str, int] = field(default_factory=dict)
    #: the quantile levels the model forecast (sorted), and, for its outermost symmetric interval, the
    #: nominal level and the coverage at each step ahead pooled over folds (the coverage plot)
    levels: list[float] = field(default_factory=list)
    nominal: float | None = None
    coverage_by_step: list[float] = field(default_factory=list)
    model_file: str | None = None
    model_kind: str | None = None
    input_example: list[list[float]] | None = None
    error: str | None = None
    seconds: float = 0.0
    comparisons: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.origins)

    def manifest(self) -> dict[str, Any]:
        """The per-horizon fold manifest logged as an artifact, from which later runs pair folds."""
        return {
            "format": 1,
            "model": self.model,
            "label": self.label,
            "horizon": self.horizon,
            "step": self.step,
            "spec": self.spec,
            "data": self.data,
            "folds": [
                {
                    "fold": k,
                    "origin": origin,
                    "train": [self.train_start[k], self.train_stop[k]],
                    "last": self.last[k],
                    "actuals": self.actuals[k],
                    "forecasts": self.forecasts[k],
                    "metrics": {name: values[k] for name, values in self.fold_metrics.items()},
                }
                for k, origin in enumerate(self.origins)
            ],
        }

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> Record:
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in payload.items() if k in known}
        data["location"] = tuple(data["location"])
        return cls(**data)


def naive_reference(records: Iterable[Record], label: str) -> Record | None:
    """The session's naive reference at ``label``: a completed reference model whose name starts with "naive"."""
    found = (r for r in records if r.label == label and r.role == "reference" and r.ok)
    return next((r for r in found if r.model.lower().startswith("naive")), None)


def from_result(
    result: Any, *, nodeid: str, location: tuple, role: str, label: str, data_source: str, series_name: str = ""
) -> Record:
    """Flatten a :class:`backtest.BacktestResult` into a :class:`Record`."""
    import numpy as np

    interval = result.coverage_by_step()
    return Record(
        nodeid=nodeid,
        location=tuple(location),
        model=result.model,
        role=role,
        label=label,
        horizon=result.horizon,
        step=result.spec.step,
        spec=result.spec.as_params(),
        data=result.data.as_params(),
        data_source=data_source,
        series_name=series_name,
        params={sanitize(k): str(v)[:500] for k, v in result.params.items()},
        origins=[_iso(origin) for origin in result.origins],
        train_start=np.asarray(result.train_start).tolist(),
        train_stop=np.asarray(result.train_stop).tolist(),
        actuals=result.actuals.tolist(),
        forecasts=result.forecasts.tolist(),
        last=result.last.tolist(),
        fold_metrics={name: values.tolist() for name, values in result.fold_metrics.items()},
        aggregates=result.aggregates(),
        excluded=dict(result.excluded),
        levels=list(result.levels),
        nominal=None if interval is None else float(interval[0]),
        coverage_by_step=[] if interval is None else interval[1].tolist(),
    )


def _iso(value: Any) -> str:
    isoformat = getattr(value, "isoformat", None)
    if isoformat is None:
        return str(value)
    text = isoformat()
    return text[:10] if text.endswith("T00:00:00") else text
