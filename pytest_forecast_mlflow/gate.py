"""The regression gate's decision: pair a candidate's folds with the baseline's and judge them.

Pure: no MLflow here. The tracking module turns the registry's champion into a :class:`Baseline`;
workers call :func:`compare_record` per test; the controller calls :func:`decide` once.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .records import Record

if TYPE_CHECKING:
    from backtest.compare import Comparison
    from backtest.metrics import Direction


def _direction(metric: str) -> Direction:
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
    #: the gate metrics the champion was promoted under (version tag ``forecast.gate_metrics``)
    gate_metrics: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"{self.registered_model} v{self.version} ({self.how}, run {self.run_id[:8]})"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, payload: dict[str, Any] | None) -> Baseline | None:
        if not payload:
            return None
        horizons = {label: BaselineHorizon(**h) for label, h in payload["horizons"].items()}
        return cls(**{**payload, "horizons": horizons, "gate_metrics": tuple(payload.get("gate_metrics", ()))})

    def scope(self, metrics: tuple[str, ...]) -> set[tuple[str, str]]:
        """Every (horizon label, metric) a candidate must be compared on to replace this champion."""
        wanted = tuple(dict.fromkeys((*metrics, *self.gate_metrics)))
        return {(label, metric) for label in self.horizons for metric in wanted}


def _compared(name: str) -> property:
    """A row's number read from its comparison; NaN when nothing was compared."""
    return property(
        lambda row: math.nan if row.comparison is None else getattr(row.comparison, name),
        doc=f"The comparison's ``{name}``; NaN when nothing was compared.",
    )


#: the comparison's numbers in a row's flat JSON form, beside the row's own fields
_NUMBERS = ("baseline", "candidate", "delta_pct", "statistic", "p_value", "p_adjusted", "min_detectable_pct")
_FLAT = (*_NUMBERS, "n_folds", "regressed", "tolerance", "alpha", "lags", "variance", "dof", "persistence_p")

#: the gate methods that test (p-values, Holm's step, power); the same as ``backtest.compare.DM_METHODS``,
#: written out so that reading a row does not import the library
TESTED = ("dm", "dm-hln")
#: the gate methods that test a candidate's metric over all its horizons at once (``backtest.spa``): each
#: row keeps its own horizon's ``dm`` numbers, and its ``p_adjusted`` and ``regressed`` are the joint test's
MULTI_HORIZON = ("mh-uspa", "mh-aspa")
_KIND = {"mh-uspa": "uniform", "mh-aspa": "average"}


@dataclass(frozen=True)
class Paired:
    """A row's per-fold values that paired with the champion's by origin (both finite): what a joint
    multi-horizon test reads, kept on the rows of those methods only."""

    origins: tuple[str, ...]
    candidate: tuple[float, ...]
    baseline: tuple[float, ...]

    def to_json(self) -> dict[str, list[Any]]:
        return {"origins": list(self.origins), "candidate": list(self.candidate), "baseline": list(self.baseline)}

    @classmethod
    def from_json(cls, payload: Paired | dict[str, Any] | None) -> Paired | None:
        if payload is None or isinstance(payload, Paired):
            return payload
        return cls(
            tuple(str(o) for o in payload["origins"]),
            tuple(float(v) for v in payload["candidate"]),
            tuple(float(v) for v in payload["baseline"]),
        )


@dataclass(frozen=True, init=False)
class Row:
    """One gate hypothesis: a candidate's metric at one horizon against the baseline.

    ``comparison`` is the :class:`backtest.compare.Comparison` of the paired folds (Holm-adjusted by
    :func:`decide`), or None when nothing was compared (status no-baseline, unmatched, no-common-folds,
    error); its numbers read as row attributes (``row.p_value``), NaN without one. ``method`` and
    ``direction`` are the gate's, which a comparison shares. ``paired_folds`` counts the folds that
    paired when they were too few to compare. ``paired`` holds the paired per-fold values under the
    multi-horizon methods (:data:`MULTI_HORIZON`), whose decision in :func:`decide` needs every horizon's.

    A row is also built from the flat keywords of its JSON form (``Row(status=..., baseline=...,
    p_value=..., n_folds=...)``), as workers ship it, journals keep it and tests write it; a comparison
    is made of those numbers when the row was compared or carries any. Rows written before the JSON
    carried ``tolerance``, ``alpha``, ``lags``, ``variance``, ``dof`` and ``persistence_p`` leave them
    NaN, NaN, None, None, None and NaN.
    """

    nodeid: str
    model: str
    label: str
    horizon: int
    metric: str
    direction: str
    status: str  # compared | no-baseline | unmatched | no-common-folds | error
    comparison: Comparison | None = None
    method: str = "dm"
    candidate_folds: int = 0
    paired_folds: int = 0
    underpowered: bool = False
    note: str = ""
    paired: Paired | None = None

    def __init__(
        self,
        nodeid: str,
        model: str,
        label: str,
        horizon: int,
        metric: str,
        direction: str,
        status: str,
        comparison: Comparison | None = None,
        method: str = "dm",
        candidate_folds: int = 0,
        paired_folds: int = 0,
        underpowered: bool = False,
        note: str = "",
        paired: Paired | dict[str, Any] | None = None,
        **flat: Any,
    ) -> None:
        unknown = sorted(set(flat) - set(_FLAT))
        if unknown:
            raise TypeError(f"Row() got unexpected keyword argument(s): {', '.join(unknown)}")
        if flat and comparison is not None:
            raise TypeError("give a Row its comparison or the flat numbers of one, not both")
        if flat:
            comparison, paired_folds = _from_flat(flat, status, method, direction, paired_folds)
        if status == "compared" and comparison is None:
            raise ValueError("a compared row needs its comparison")
        values = dict(
            nodeid=nodeid,
            model=model,
            label=label,
            horizon=horizon,
            metric=metric,
            direction=direction,
            status=status,
            comparison=comparison,
            method=method,
            candidate_folds=candidate_folds,
            paired_folds=paired_folds,
            underpowered=underpowered,
            note=note,
            paired=Paired.from_json(paired),
        )
        for name, value in values.items():
            object.__setattr__(self, name, value)

    baseline = _compared("baseline")
    candidate = _compared("candidate")
    delta_pct = _compared("delta_pct")
    statistic = _compared("statistic")
    p_value = _compared("p_value")
    p_adjusted = _compared("p_adjusted")
    min_detectable_pct = _compared("min_detectable_pct")

    @property
    def n_folds(self) -> int:
        """The folds compared, or those that paired when too few to compare."""
        return self.paired_folds if self.comparison is None else self.comparison.n_folds

    @property
    def regressed(self) -> bool:
        """Decided: by the threshold at once, by Holm's step in :func:`decide` for ``dm``."""
        return self.comparison is not None and bool(self.comparison.regressed)

    def to_json(self) -> dict[str, Any]:
        """The flat form: the row's fields and its comparison's numbers side by side (the verdict's JSON);
        ``paired`` only on the rows that keep it."""
        c = self.comparison
        paired = {} if self.paired is None else {"paired": self.paired.to_json()}
        return {
            "nodeid": self.nodeid,
            "model": self.model,
            "label": self.label,
            "horizon": self.horizon,
            "metric": self.metric,
            "direction": self.direction,
            "status": self.status,
            "baseline": self.baseline,
            "candidate": self.candidate,
            "delta_pct": self.delta_pct,
            "statistic": self.statistic,
            "p_value": self.p_value,
            "p_adjusted": self.p_adjusted,
            "n_folds": self.n_folds,
            "candidate_folds": self.candidate_folds,
            "min_detectable_pct": self.min_detectable_pct,
            "method": self.method,
            "regressed": self.regressed,
            "underpowered": self.underpowered,
            "note": self.note,
            "tolerance": math.nan if c is None else c.tolerance,
            "alpha": math.nan if c is None else c.alpha,
            "lags": None if c is None else c.lags,
            "variance": None if c is None else c.variance,
            "dof": None if c is None else c.dof,
            "persistence_p": math.nan if c is None else c.persistence_p,
            **paired,
        }

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> Row:
        """A row from :meth:`to_json`'s form, or the flat form of earlier versions; unknown keys are ignored."""
        known = {*cls.__dataclass_fields__, *_FLAT}
        return cls(**{name: value for name, value in payload.items() if name in known})


def _from_flat(
    flat: dict[str, Any], status: str, method: str, direction: str, paired_folds: int
) -> tuple[Comparison | None, int]:
    """The comparison a flat row's numbers describe (None when it has none), and its ``paired_folds``."""
    from backtest.compare import Comparison

    numbers = {name: math.nan if flat.get(name) is None else flat[name] for name in _NUMBERS}
    if status != "compared" and all(isinstance(v, float) and math.isnan(v) for v in numbers.values()):
        return None, flat.get("n_folds", paired_folds)
    tolerance, alpha = (math.nan if flat.get(name) is None else flat[name] for name in ("tolerance", "alpha"))
    regressed = flat.get("regressed")
    if method in (*TESTED, *MULTI_HORIZON) and math.isnan(numbers["p_adjusted"]) and not regressed:
        regressed = None  # not decided yet: the Holm step sets it
    values: dict[str, Any] = dict(
        method=method,
        direction=direction,
        tolerance=tolerance,
        alpha=alpha,
        n_folds=flat.get("n_folds", 0),
        lags=flat.get("lags"),
        variance=flat.get("variance"),
        dof=flat.get("dof"),
        persistence_p=math.nan if flat.get("persistence_p") is None else flat["persistence_p"],
        regressed=regressed,
        **numbers,
    )
    return Comparison(**values), 0


@dataclass(frozen=True)
class Verdict:
    """The session's decision.

    ``pass``: every horizon and gate metric of the champion was compared on enough folds and none
    regressed. ``fail``: a regression, or a comparison the gate could not make although a champion
    exists (fail closed). ``inconclusive``: nothing regressed, but some comparison had too few folds or
    too little power to see a regression of the size that matters. ``partial``: nothing regressed, but
    the candidate did not cover every horizon and gate metric of the champion (a ``-k`` subset, say).
    ``no-baseline``: no champion exists yet. ``incomplete``: a backtest failed. ``unavailable``: the
    store or the baseline could not be read. ``interrupted`` and ``off`` say what they mean.
    Only ``pass`` and ``no-baseline`` may move the alias.
    """

    status: str
    rows: tuple[Row, ...]
    baseline: str
    reasons: tuple[str, ...] = ()
    #: reasons that belong to no single test (the store, the baseline, coverage), shown as a gate error
    session_reasons: tuple[str, ...] = ()
    #: what ``--forecast-allow-scope-change`` let through, recorded on the registered version
    overrides: tuple[str, ...] = ()

    @property
    def failed(self) -> bool:
        return self.status in ("fail", "incomplete", "unavailable", "interrupted")

    @property
    def promotable(self) -> bool:
        return self.status in ("pass", "no-baseline")

    @property
    def regressions(self) -> tuple[Row, ...]:
        return tuple(row for row in self.rows if row.regressed)

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "baseline": self.baseline,
            "reasons": list(self.reasons),
            "session_reasons": list(self.session_reasons),
            "overrides": list(self.overrides),
            "promotable": self.promotable,
            # the rows' paired fold values served the decision and stay out of what it is reported as
            "rows": [{k: v for k, v in row.to_json().items() if k != "paired"} for row in self.rows],
        }

    @classmethod
    def from_json(cls, payload: dict[str, Any] | None) -> Verdict | None:
        if not payload:
            return None
        rows = tuple(Row.from_json(row) for row in payload["rows"])
        return cls(
            payload["status"],
            rows,
            payload["baseline"],
            tuple(payload.get("reasons", ())),
            tuple(payload.get("session_reasons", ())),
            tuple(payload.get("overrides", ())),
        )


def compare_record(record: Record, baseline: Baseline | None, *, metrics, tolerance, alpha, method) -> list[Row]:
    """Compare one candidate record with the baseline, metric by metric (p-values not yet adjusted)."""
    import numpy as np

    from backtest.compare import compare, pair_by_origin

    rows = []
    for metric in metrics:
        common = dict(
            nodeid=record.nodeid,
            model=record.model,
            label=record.label,
            horizon=record.horizon,
            metric=metric,
            direction=_direction(metric),
            method=method,
            candidate_folds=len(record.origins),
        )
        base = baseline.horizons.get(record.label) if baseline else None
        if baseline is None:
            rows.append(Row(**common, status="no-baseline", note="no registered baseline"))
            continue
        if base is None:
            known = ", ".join(sorted(baseline.horizons)) or "none"
            rows.append(
                Row(
                    **common,
                    status="unmatched",
                    note=f"the champion {baseline.registered_model} v{baseline.version} has no "
                    f"{record.label!r} backtest (its horizons: {known})",
                )
            )
            continue
        if metric not in base.fold_metrics:
            rows.append(
                Row(
                    **common,
                    status="unmatched",
                    note=f"the champion {baseline.registered_model} v{baseline.version} has no per-fold "
                    f"{metric} at {record.label}",
                )
            )
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
            note = (
                f"data differs from the baseline's: {int(match.sum())} of {len(ib)} folds with a common "
                "origin also have identical actuals and are compared"
            )
            ib, ic = ib[match], ic[match]
        if len(ib) < 2:
            rows.append(
                Row(
                    **common,
                    status="no-common-folds",
                    paired_folds=int(len(ib)),
                    note=(note + "; " if note else "") + f"{len(ib)} fold(s) pair with the baseline by "
                    "origin; the gate needs at least 2",
                )
            )
            continue
        base_values = np.asarray(base.fold_metrics[metric], dtype=float)[ib]
        cand_values = np.asarray(record.fold_metrics[metric], dtype=float)[ic]
        usable = np.isfinite(base_values) & np.isfinite(cand_values)
        if usable.sum() < 2:
            rows.append(
                Row(
                    **common,
                    status="no-common-folds",
                    paired_folds=int(usable.sum()),
                    note=f"fewer than 2 paired folds have a finite {metric}",
                )
            )
            continue
        joint = method in MULTI_HORIZON
        result = compare(
            cand_values[usable],
            base_values[usable],
            direction=_direction(metric),
            horizon=record.horizon,
            step=record.step,
            tolerance=tolerance,
            alpha=alpha,
            method="dm" if joint else method,  # a joint method's rows keep their horizon's own dm numbers
        )
        if result.persistent:
            drift = persistence_note(f"{record.label} {metric}", result.lags, method)
            note = f"{note}; {drift}" if note else drift
        paired = None
        if joint:
            result = replace(result, method=method)
            origins = np.asarray(record.origins, dtype=str)[ic][usable]
            paired = Paired(
                tuple(origins.tolist()), tuple(cand_values[usable].tolist()), tuple(base_values[usable].tolist())
            )
        rows.append(Row(**common, status="compared", comparison=result, note=note, paired=paired))
    return rows


def persistence_note(what: str, lags: int, method: str) -> str:
    """What a row says when its differential is correlated beyond the fold overlap (relative skill drifts)."""
    overlap = "consecutive folds" if lags == 0 else f"the overlap of {lags + 1} consecutive folds"
    if method == "dm":
        consequence = "the dm test's p-value allows for it"
    elif method in MULTI_HORIZON:
        consequence = (
            f"the {method} bootstrap keeps the dependence within its blocks of twice the overlap only, so its p-value "
            "may be too small; --forecast-method dm allows for it"
        )
    else:
        consequence = "dm-hln assumes it does not, so its p-value is too small; --forecast-method dm allows for it"
    return (
        f"{what}: which model is better drifts over stretches of origins (the loss differential stays correlated "
        f"beyond {overlap}, p < 0.01); {consequence}"
    )


SCOPE_FLAG = "--forecast-allow-scope-change"


def compare_for(record: Record, baseline: Baseline | None, settings: Any) -> list[Row]:
    """:func:`compare_record` under a session's gate settings (a :class:`~.settings.Settings`)."""
    return compare_record(
        record,
        baseline,
        metrics=settings.gate_metrics,
        tolerance=settings.tolerance,
        alpha=settings.alpha,
        method=settings.method,
    )


def judge(
    rows: list[Row],
    settings: Any,
    *,
    baseline: Baseline | None,
    incomplete: list[str],
    interrupted: bool = False,
    unavailable: str | None = None,
    baseline_note: str = "none",
) -> Verdict:
    """:func:`decide` under a session's gate settings: the one decision of a live session and of replay."""
    return decide(
        rows,
        baseline=baseline,
        alpha=settings.alpha,
        method=settings.method,
        require_baseline=settings.require_baseline,
        incomplete=incomplete,
        interrupted=interrupted,
        unavailable=unavailable,
        baseline_note=baseline_note,
        metrics=settings.gate_metrics,
        min_folds=settings.min_folds,
        max_detectable_pct=settings.max_detectable,
        allow_scope_change=settings.allow_scope_change,
    )


def regression_reason(row: Row) -> str:
    """The verdict's reason for a regressed row (the terminal table shows the row itself)."""
    return f"{row.model} {row.label} {row.metric} regressed"


def fails_session(verdict: Verdict | None, settings: Any) -> bool:
    """Whether ``verdict`` fails the session: only with ``--forecast-gate fail``, and an ``inconclusive``
    verdict only with ``--forecast-inconclusive fail``. The candidate's run then ends FAILED."""
    if verdict is None or settings.gate != "fail":
        return False
    return verdict.failed or (verdict.status == "inconclusive" and settings.inconclusive == "fail")


def promotion_blocker(candidate_models: list[str], failed_tests: list[str]) -> str | None:
    """Why a promotable verdict still must not move the alias, or None: the session's own candidate tests
    failed, or it has several candidate models and only one can be champion."""
    if failed_tests:
        return (
            f"{len(failed_tests)} candidate test(s) failed ({', '.join(failed_tests)}); a model whose own "
            "tests fail is never promoted"
        )
    if len(candidate_models) > 1:
        return (
            f"this session has {len(candidate_models)} candidate models ({', '.join(candidate_models)}) and only "
            "one can be champion; promote them one session at a time (role='reference' for the others)"
        )
    return None


def _at_level(comparison: Comparison | None, alpha: float) -> Comparison:
    """A comparison read from a flat row that did not keep its level (an earlier version's, or written by
    hand) is taken at the gate's; one that kept it must match, as :func:`backtest.compare.decide` checks."""
    assert comparison is not None, "a compared row has its comparison (Row refuses one without)"
    return replace(comparison, alpha=alpha) if math.isnan(comparison.alpha) else comparison


@dataclass(frozen=True)
class Joint:
    """One multi-horizon decision: a candidate model's metric over all its compared horizons.

    ``rows`` index the decided rows it covers; ``p_value`` is None when no test could be made (``weak``
    says why), and for a single horizon it is that horizon's ``dm`` p-value (``fallback``).
    """

    model: str
    metric: str
    rows: tuple[int, ...]
    labels: tuple[str, ...]
    origins: int
    p_value: float | None
    #: the fraction of the baseline's mean, per horizon, by which the candidate was worse on common origins
    worse: tuple[float, ...] = ()
    min_detectable_pct: float = math.nan
    fallback: bool = False
    weak: tuple[str, ...] = ()


def _joint_test(rows: list[Row], indices: list[int], method: str, alpha: float) -> Joint:
    """The joint test of one model's metric over the horizons of ``rows[indices]`` (see :data:`MULTI_HORIZON`)."""
    import numpy as np

    from backtest.spa import common_origins, differentials, multi_horizon_spa

    first = rows[indices[0]]
    labels = tuple(rows[i].label for i in indices)
    if len(indices) == 1:
        return Joint(first.model, first.metric, tuple(indices), labels, first.n_folds, first.p_value, fallback=True)
    paired = [rows[i].paired for i in indices]
    if any(p is None for p in paired):  # a row written without its folds cannot join a joint test
        missing = ", ".join(rows[i].label for i, p in zip(indices, paired, strict=True) if p is None)
        reason = f"the per-fold values of {missing} were not kept; rerun the session with --forecast-method {method}"
        return Joint(first.model, first.metric, tuple(indices), labels, 0, None, weak=(reason,))
    kept = [p for p in paired if p is not None]
    common = common_origins([p.origins for p in kept])
    columns = []
    for p in kept:
        position = {origin: k for k, origin in enumerate(p.origins)}
        at = [position[o] for o in common.tolist()]
        columns.append((np.asarray(p.candidate)[at], np.asarray(p.baseline)[at]))
    candidate = np.column_stack([c for c, _ in columns]) if len(common) else np.empty((0, len(kept)))
    baseline = np.column_stack([b for _, b in columns]) if len(common) else np.empty((0, len(kept)))
    comparisons = [rows[i].comparison for i in indices]
    lags = max(c.lags for c in comparisons if c is not None)
    tolerance = next((c.tolerance for c in comparisons if c is not None and not math.isnan(c.tolerance)), 0.0)
    n = len(common)
    try:
        d = differentials(candidate, baseline, direction=first.direction, tolerance=tolerance)
        test = multi_horizon_spa(d, kind=_KIND[method], deepest_lags=lags, alpha=alpha)  # type: ignore[arg-type]
    except ValueError as exc:
        reason = f"the {method} test cannot be made: {exc} (--forecast-method dm compares horizon by horizon)"
        return Joint(first.model, first.metric, tuple(indices), labels, n, None, weak=(reason,))
    return Joint(
        first.model,
        first.metric,
        tuple(indices),
        labels,
        n,
        test.p_value,
        worse=tuple(float(w) for w in d.mean(axis=0)),
        min_detectable_pct=100.0 * tolerance + 100.0 * test.min_detectable,
    )


def _joint_note(joint: Joint, method: str, p_adjusted: float, tests: int, regressed: bool) -> str:
    """The verdict's plain words for one joint decision."""
    what = f"{joint.model} {joint.metric}"
    if joint.fallback:
        return (
            f"{what}: only {joint.labels[0]} was compared, so its own dm test decides ({method} needs two horizons "
            "or more)"
        )
    p = "<0.0001" if p_adjusted < 1e-4 else f"{p_adjusted:.4f}"
    head = (
        f"{what} over {', '.join(joint.labels)} ({joint.origins} origins every horizon scored): {method} "
        f"p={p} (Holm over {tests} joint test{'s' if tests > 1 else ''}): "
    )
    where = "at every horizon" if method == "mh-uspa" else "on average"
    detectable = (
        "" if math.isnan(joint.min_detectable_pct) else f"; detectable {where}: {joint.min_detectable_pct:.1f}%"
    )
    if method == "mh-uspa":
        if regressed:
            return head + "the candidate is worse at every horizon: REGRESSED" + detectable
        return (
            head + "not shown worse at every horizon, so it passes. This test fails a candidate only when it is "
            "worse at every horizon; worse at some horizons only passes it (mh-aspa or dm find those)" + detectable
        )
    if regressed:
        return head + "the candidate is worse on the average over the horizons: REGRESSED" + detectable
    return (
        head + "not shown worse on the average over the horizons, so it passes; a horizon that got worse can be "
        "outweighed by horizons that got better (dm judges each horizon)" + detectable
    )


def _decide_jointly(
    rows: list[Row], compared: list[int], alpha: float, method: str, min_folds: int, max_detectable_pct: float
) -> tuple[list[Row], list[Joint]]:
    """One joint test per candidate model and metric, Holm over those tests; each row takes its test's
    adjusted p-value and is REGRESSED when the test rejects and the candidate is worse at that horizon."""
    from backtest.compare import holm

    groups: dict[tuple[str, str], list[int]] = {}
    for i in compared:
        groups.setdefault((rows[i].model, rows[i].metric), []).append(i)
    joints = [_joint_test(rows, indices, method, alpha) for indices in groups.values()]
    tested = [j for j in joints if j.p_value is not None]
    adjusted = dict(zip(map(id, tested), holm([j.p_value for j in tested]).tolist(), strict=True)) if tested else {}
    decided = list(rows)
    out = []
    for joint in joints:
        weak = list(joint.weak)
        p_adjusted = adjusted.get(id(joint), math.nan)
        regressed = bool(p_adjusted < alpha)
        if joint.p_value is not None and not joint.fallback:
            if joint.origins < min_folds:
                weak.append(f"{joint.origins} origins every horizon scored (need {min_folds}, --forecast-min-folds)")
            if joint.min_detectable_pct > max_detectable_pct:
                weak.append(
                    f"smallest detectable regression {joint.min_detectable_pct:.0f}% (need <= {max_detectable_pct:g}%, "
                    "--forecast-max-detectable)"
                )
        note = "" if joint.p_value is None else _joint_note(joint, method, p_adjusted, len(tested), regressed)
        for k, i in enumerate(joint.rows):
            row = rows[i]
            assert row.comparison is not None  # a compared row has its comparison
            worse = joint.worse[k] > 0 if joint.worse else True
            hit = regressed and (worse or joint.fallback)
            notes = "; ".join(part for part in (row.note, note if k == 0 else "") if part)  # the joint's once
            decided[i] = replace(
                row, comparison=replace(row.comparison, p_adjusted=p_adjusted, regressed=hit), note=notes
            )
        out.append(replace(joint, weak=tuple(weak)))
    return decided, out


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
    metrics: tuple[str, ...] = ("rmse",),
    min_folds: int = 2,
    max_detectable_pct: float = math.inf,
    allow_scope_change: bool = False,
) -> Verdict:
    """Holm-adjust the compared rows and decide the session's verdict (see :class:`Verdict`).

    The Holm step is :func:`backtest.compare.decide` over the rows' comparisons; what is the gate's own
    follows: power, coverage of the champion's scope, the statuses that compared nothing, the reasons.

    Under a multi-horizon method (``mh-uspa``, ``mh-aspa``) the family is one joint test per candidate
    model and metric over all its compared horizons, on the origins every horizon scored (a model with
    one horizon falls back to that horizon's ``dm`` test). A rejected joint test marks REGRESSED the
    horizons where the candidate is worse; ``min_folds`` and ``max_detectable_pct`` apply to the joint
    test (its common origins, its own detectable regression), and a joint test that cannot be made (too
    few common origins for its blocks) makes the verdict inconclusive, with the cause and the fix.

    Once a champion exists the gate fails closed: a horizon or metric it cannot compare is a failure,
    not a pass, and a candidate that leaves out a horizon or metric of the champion is never promoted,
    unless ``allow_scope_change`` accepts both deliberately (the verdict's ``overrides`` say what).
    """
    from backtest.compare import decide as holm_decide

    compared = [i for i, row in enumerate(rows) if row.status == "compared"]
    decided = list(rows)
    joints: list[Joint] = []
    if method in TESTED and compared:
        family = [_at_level(rows[i].comparison, alpha) for i in compared]
        for i, comparison in zip(compared, holm_decide(family, alpha), strict=True):
            decided[i] = replace(rows[i], comparison=comparison)
    elif method in MULTI_HORIZON and compared:
        decided, joints = _decide_jointly(rows, compared, alpha, method, min_folds, max_detectable_pct)
    weak_joint = {i for joint in joints if joint.weak for i in joint.rows}
    in_joint = {i for joint in joints if not joint.fallback for i in joint.rows}
    for i in compared:
        row = decided[i]
        weak = (
            i in weak_joint
            if i in in_joint
            else row.n_folds < min_folds
            or (method in (*TESTED, *MULTI_HORIZON) and row.min_detectable_pct > max_detectable_pct)
        )
        decided[i] = replace(row, underpowered=bool(weak and not row.regressed))
    description = baseline.describe() if baseline else baseline_note
    if unavailable:
        return Verdict("unavailable", tuple(decided), description, (unavailable,), (unavailable,))
    if interrupted:
        reason = "the session was interrupted; no verdict"
        return Verdict("interrupted", tuple(decided), description, (reason,), (reason,))

    failures: list[str] = []  # each fails the session
    untied: list[str] = []  # the failures no single test's report carries
    overrides: list[str] = []
    if incomplete:
        failures.append("backtests failed or produced no result: " + ", ".join(incomplete))
    for row in decided:
        if row.regressed:
            failures.append(regression_reason(row))
    for row in decided:
        if row.status in ("no-common-folds", "error"):
            reason = f"{row.model} {row.label} {row.metric}: {row.note}"
            failures.append(reason)
            untied.append(reason)
        elif row.status == "unmatched":
            what = f"{row.model} {row.label} {row.metric}: {row.note}"
            if allow_scope_change:
                overrides.append(f"{row.label} {row.metric} ungated (not in the champion)")
                continue
            reason = (
                f"{what}; the gate fails closed. Use the champion's labels and metrics, or pass "
                f"{SCOPE_FLAG} to accept the change deliberately (recorded on the version)"
            )
            failures.append(reason)
            untied.append(reason)
        elif row.status == "no-baseline" and require_baseline:
            reason = f"{row.model} {row.label} {row.metric}: {row.note} (--forecast-require-baseline)"
            failures.append(reason)
            untied.append(reason)

    blockers: list[str] = []  # each keeps the alias where it is, without failing the session
    if baseline is not None:
        covered = {(row.label, row.metric) for row in decided if row.status == "compared"}
        missing = sorted(
            baseline.scope(tuple(metrics))
            - covered
            - {(r.label, r.metric) for r in decided if r.status in ("no-common-folds", "error")}
        )
        if missing and allow_scope_change:
            overrides.append("not compared: " + ", ".join(f"{label} {metric}" for label, metric in missing))
        elif missing:
            names = ", ".join(f"{label} {metric}" for label, metric in missing)
            blockers.append(
                f"the candidate was not compared on every horizon and gate metric of the champion {description}: "
                f"missing {names}. It is never promoted that way; run every horizon (no -k subset) with "
                f"--forecast-gate-metrics {','.join(dict.fromkeys((*metrics, *baseline.gate_metrics)))}, or pass "
                f"{SCOPE_FLAG} to promote it deliberately"
            )
    weak = [row for row in decided if row.underpowered]
    for joint in reversed(joints):
        if joint.weak and not any(decided[i].regressed for i in joint.rows):
            fix = "" if joint.p_value is None else ". Add origins (a smaller step, a longer history)"
            blockers.insert(
                0,
                f"{joint.model} {joint.metric} over {', '.join(joint.labels)}: inconclusive, "
                f"{' and '.join(joint.weak)}: a regression of the size that matters could pass unseen, so the alias "
                f"stays{fix}",
            )
    for row in reversed([row for i, row in enumerate(decided) if row.underpowered and i not in in_joint]):
        short = []
        if row.n_folds < min_folds:
            short.append(f"{row.n_folds} paired folds (need {min_folds}, --forecast-min-folds)")
        if method in (*TESTED, *MULTI_HORIZON) and row.min_detectable_pct > max_detectable_pct:
            detectable = "infinite" if math.isinf(row.min_detectable_pct) else f"{row.min_detectable_pct:.0f}%"
            short.append(
                f"smallest detectable regression {detectable} (need <= {max_detectable_pct:g}%, "
                "--forecast-max-detectable)"
            )
        blockers.insert(
            0,
            f"{row.model} {row.label} {row.metric}: inconclusive, {' and '.join(short)}: a regression of the size "
            "that matters could pass unseen, so the alias stays. Add origins (a smaller step, a longer history)",
        )

    if failures:
        only_incomplete = len(failures) == 1 and bool(incomplete)
        status = "incomplete" if only_incomplete else "fail"
        return Verdict(status, tuple(decided), description, tuple(failures + blockers), tuple(untied), tuple(overrides))
    if weak:
        return Verdict("inconclusive", tuple(decided), description, tuple(blockers), tuple(blockers), tuple(overrides))
    if blockers:
        return Verdict("partial", tuple(decided), description, tuple(blockers), (), tuple(overrides))
    if not rows:
        return Verdict(
            "no-baseline" if baseline is None else "partial",
            tuple(decided),
            description,
            ("no candidate backtest ran",),
        )
    if baseline is None:
        return Verdict("no-baseline", tuple(decided), description)
    return Verdict("pass", tuple(decided), description, (), (), tuple(overrides))
