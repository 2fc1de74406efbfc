"""The regression gate's decision: pair a candidate's folds with the baseline's and judge them.

Pure: no MLflow here. The tracking module turns the registry's champion into a :class:`Baseline`;
workers call :func:`compare_record` per test; the controller calls :func:`decide` once.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from .records import Record


def _direction(metric: str) -> str:
    from backtest.metrics import get_metric

    return get_metric(metric).direction


@dataclass(frozen=True)
class BaselineHorizon:
    """The champion's folds at one horizon label, from its fold manifest (and metric histories)."""

    label: str
    horizon: int
    step: int
    origins: list[str]
    actuals: list[list[float]]
    fold_metrics: dict[str, list[float]]


@dataclass(frozen=True)
class Baseline:
    """The run a candidate is compared against, resolved once by the controller."""

    registered_model: str
    version: str
    how: str  # "alias champion" or "best rmse of N versions"
    run_id: str
    run_name: str
    data_sha256: str
    horizons: dict[str, BaselineHorizon] = field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.registered_model} v{self.version} ({self.how}, run {self.run_id[:8]})"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, payload: dict[str, Any] | None) -> Baseline | None:
        if not payload:
            return None
        horizons = {label: BaselineHorizon(**h) for label, h in payload["horizons"].items()}
        return cls(**{**payload, "horizons": horizons})


@dataclass(frozen=True)
class Row:
    """One gate hypothesis: a candidate's metric at one horizon against the baseline."""

    nodeid: str
    model: str
    label: str
    horizon: int
    metric: str
    direction: str
    status: str  # compared | no-baseline | no-common-folds | error
    baseline: float = math.nan
    candidate: float = math.nan
    delta_pct: float = math.nan
    statistic: float = math.nan
    p_value: float = math.nan
    p_adjusted: float = math.nan
    n_folds: int = 0
    candidate_folds: int = 0
    min_detectable_pct: float = math.nan
    method: str = "dm"
    regressed: bool = False
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    """The session's decision: ``pass``, ``fail``, ``no-baseline``, ``incomplete``, ``unavailable`` or ``off``."""

    status: str
    rows: tuple[Row, ...]
    baseline: str
    reasons: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        return self.status in ("fail", "incomplete", "unavailable", "interrupted")

    @property
    def regressions(self) -> tuple[Row, ...]:
        return tuple(row for row in self.rows if row.regressed)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "baseline": self.baseline,
            "reasons": list(self.reasons),
            "rows": [row.to_json() for row in self.rows],
        }


def compare_record(record: Record, baseline: Baseline | None, *, metrics, tolerance, alpha, method) -> list[Row]:
    """Compare one candidate record with the baseline, metric by metric (p-values not yet adjusted)."""
    import numpy as np

    from backtest.compare import compare, pair_by_origin

    rows = []
    for metric in metrics:
        common = dict(nodeid=record.nodeid, model=record.model, label=record.label, horizon=record.horizon,
                      metric=metric, direction=_direction(metric), method=method,
                      candidate_folds=len(record.origins))
        base = baseline.horizons.get(record.label) if baseline else None
        if baseline is None:
            rows.append(Row(**common, status="no-baseline", note="no registered baseline"))
            continue
        if base is None:
            rows.append(Row(**common, status="no-baseline",
                            note=f"baseline run {baseline.run_id[:8]} has no {record.label} manifest"))
            continue
        if metric not in base.fold_metrics:
            rows.append(Row(**common, status="no-baseline",
                            note=f"baseline run {baseline.run_id[:8]} has no {record.label}/{metric} values"))
            continue
        if metric not in record.fold_metrics:
            rows.append(Row(**common, status="error", note=f"the backtest did not compute {metric}"))
            continue
        ib, ic = pair_by_origin(np.asarray(base.origins), np.asarray(record.origins))
        note = ""
        same_data = baseline.data_sha256 == record.data.get("data.sha256")
        if not same_data and len(ib):
            base_actuals = np.asarray(base.actuals, dtype=float)[ib]
            cand_actuals = np.asarray(record.actuals, dtype=float)[ic]
            if base_actuals.shape == cand_actuals.shape:
                match = np.all(np.isclose(base_actuals, cand_actuals, rtol=1e-9, atol=1e-12), axis=1)
            else:
                match = np.zeros(len(ib), dtype=bool)
            note = (f"data differs from the baseline's: {int(match.sum())} of {len(ib)} folds with a common "
                    "origin also have identical actuals and are compared")
            ib, ic = ib[match], ic[match]
        if len(ib) < 2:
            rows.append(Row(**common, status="no-common-folds", n_folds=int(len(ib)),
                            note=(note + "; " if note else "") + f"{len(ib)} fold(s) pair with the baseline by "
                            "origin; the gate needs at least 2"))
            continue
        base_values = np.asarray(base.fold_metrics[metric], dtype=float)[ib]
        cand_values = np.asarray(record.fold_metrics[metric], dtype=float)[ic]
        usable = np.isfinite(base_values) & np.isfinite(cand_values)
        if usable.sum() < 2:
            rows.append(Row(**common, status="no-common-folds", n_folds=int(usable.sum()),
                            note=f"fewer than 2 paired folds have a finite {metric}"))
            continue
        result = compare(cand_values[usable], base_values[usable], direction=_direction(metric),
                         horizon=record.horizon, step=record.step, tolerance=tolerance, alpha=alpha, method=method)
        rows.append(Row(**common, status="compared", baseline=result.baseline, candidate=result.candidate,
                        delta_pct=result.delta_pct, statistic=result.statistic, p_value=result.p_value,
                        n_folds=result.n_folds, min_detectable_pct=result.min_detectable_pct,
                        regressed=bool(result.regressed) if method == "threshold" else False, note=note))
    return rows


def decide(
    rows: list[Row],
    *,
    baseline: Baseline | None,
    alpha: float,
    method: str,
    require_baseline: bool,
    incomplete: list[str],
    interrupted: bool,
    unavailable: str | None = None,
    baseline_note: str = "none",
) -> Verdict:
    """Holm-adjust the compared rows and decide the session's verdict."""
    import dataclasses

    import numpy as np

    from backtest.compare import holm

    compared = [i for i, row in enumerate(rows) if row.status == "compared"]
    decided = list(rows)
    if method == "dm" and compared:
        adjusted = holm(np.array([rows[i].p_value for i in compared]))
        for i, p in zip(compared, adjusted):
            decided[i] = dataclasses.replace(rows[i], p_adjusted=float(p), regressed=bool(p < alpha))
    reasons = []
    description = baseline.describe() if baseline else baseline_note
    if unavailable:
        return Verdict("unavailable", tuple(decided), description, (unavailable,))
    if interrupted:
        return Verdict("interrupted", tuple(decided), description, ("the session was interrupted; no verdict",))
    if incomplete:
        reasons.append("backtests failed or produced no result: " + ", ".join(incomplete))
    regressions = [row for row in decided if row.regressed]
    for row in regressions:
        reasons.append(f"{row.model} {row.label} {row.metric} regressed")
    missing = [row for row in decided if row.status in ("no-baseline", "no-common-folds", "error")]
    hard = [row for row in missing if row.status in ("no-common-folds", "error")]
    for row in hard:
        reasons.append(f"{row.model} {row.label} {row.metric}: {row.note}")
    if require_baseline:
        for row in missing:
            if row.status == "no-baseline":
                reasons.append(f"{row.model} {row.label} {row.metric}: {row.note} (--forecast-require-baseline)")
    if reasons:
        only_incomplete = incomplete and not regressions and not hard and not (
            require_baseline and any(row.status == "no-baseline" for row in missing)
        )
        return Verdict("incomplete" if only_incomplete else "fail", tuple(decided), description, tuple(reasons))
    if not rows:
        return Verdict("no-baseline" if baseline is None else "pass", tuple(decided), description,
                       ("no candidate backtest ran",))
    if baseline is None or all(row.status == "no-baseline" for row in decided):
        return Verdict("no-baseline", tuple(decided), description)
    return Verdict("pass", tuple(decided), description)
