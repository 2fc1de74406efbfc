"""Pure text: the gate's rows in, terminal lines, Markdown and JSON out; and skill against the random walk."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .gate import MULTI_HORIZON, TESTED, Row, Verdict, regression_reason
from .records import Record, naive_reference

HEADERS = ("model", "horizon", "metric", "baseline", "candidate", "delta", "p (Holm)", "folds", "detectable", "verdict")


def significant(value: float, digits: int = 4) -> str:
    """``value`` to ``digits`` significant digits, trailing zeros kept, so a column reads alike (21.50, 15.81)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


def _pct(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:+.2f}%"


def _p(row: Row) -> str:
    if row.method == "threshold":
        return "n/a"
    p = row.p_adjusted if not math.isnan(row.p_adjusted) else row.p_value
    return "-" if math.isnan(p) else ("<0.0001" if p < 1e-4 else f"{p:.4f}")


def row_verdict(row: Row) -> str:
    if row.status == "unmatched":
        return "FAIL: not in champion"
    if row.status != "compared":
        return row.status
    if row.regressed:
        return "REGRESSED"
    return "inconclusive" if row.underpowered else "ok"


def cells(row: Row) -> tuple[str, ...]:
    detectable = "-" if math.isnan(row.min_detectable_pct) else f"{row.min_detectable_pct:.1f}%"
    folds = f"{row.n_folds}/{row.candidate_folds}" if row.candidate_folds else str(row.n_folds)
    return (
        row.model,
        row.label,
        row.metric,
        significant(row.baseline),
        significant(row.candidate),
        _pct(row.delta_pct),
        _p(row),
        folds,
        detectable,
        row_verdict(row),
    )


def table(rows: Sequence[Row]) -> list[str]:
    """Fixed-width lines, header first."""
    body = [cells(row) for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(HEADERS)]
    line = lambda values: "  ".join(v.ljust(w) if i < 3 else v.rjust(w) for i, (v, w) in enumerate(zip(values, widths)))  # noqa: E731
    return [line(HEADERS), *(line(r) for r in body)]


def headline(verdict: Verdict, gate: str) -> str:
    status = verdict.status
    if status == "off":
        return "forecast gate: off (--forecast-gate off); nothing was compared"
    if status == "pass":
        text = f"PASSED against {verdict.baseline}"
        if verdict.overrides:
            text += " (scope change accepted by --forecast-allow-scope-change)"
    elif status == "inconclusive":
        text = (
            f"INCONCLUSIVE against {verdict.baseline}: no regression found, but the comparison is too weak "
            "to promote; the alias stays"
        )
    elif status == "partial":
        text = (
            f"PARTIAL against {verdict.baseline}: no regression in what ran, but not every horizon and gate "
            "metric of the champion was compared; the alias stays"
        )
    elif status == "no-baseline":
        text = f"nothing to compare against ({verdict.baseline}); the session passes ungated"
    elif status == "fail" and gate == "warn":
        text = "REGRESSION (warn mode: the session is not failed)"
    else:
        text = f"{status.upper()} against {verdict.baseline}"
    return f"forecast gate: {text}"


def _reasons(verdict: Verdict) -> list[str]:
    """The verdict's reasons that its table does not already show: a regressed row is its own reason."""
    shown = {regression_reason(row) for row in verdict.regressions}
    return [reason for reason in verdict.reasons if reason not in shown]


def _notes(verdict: Verdict) -> list[str]:
    """The rows' notes, each once; when there is no champion at all the headline says so, and its rows'
    "no registered baseline" would only repeat it."""
    return sorted(
        {
            row.note
            for row in verdict.rows
            if row.note and not (verdict.status == "no-baseline" and row.status == "no-baseline")
        }
    )


def _fixed_smoothing(row: Row) -> bool:
    """Whether the row's test used the EWC long-run variance (the ``dm`` method with enough folds)."""
    return row.comparison is not None and row.comparison.variance == "ewc"


def _test_name(row: Row) -> str:
    if row.method in MULTI_HORIZON:
        return f"{'uniform' if row.method == 'mh-uspa' else 'average'} multi-horizon SPA over all horizons"
    return "DM, fixed-smoothing" if _fixed_smoothing(row) else "DM-HLN"


def _p_legend(rows: Sequence[Row]) -> str:
    """The line under the table that says what ``p`` and ``detectable`` mean, for the tests the rows used."""
    ewc = sum(_fixed_smoothing(row) for row in rows)
    if not ewc:
        test = "Diebold-Mariano (HLN) p-value"
    else:
        test = (
            "Diebold-Mariano p-value, its variance from slow averages of the fold differences so that skill "
            "drifting over stretches of origins does not pass for a regression (fixed-smoothing EWC, Student's t"
            + ("; HLN on rows with fewer than 30 folds" if ewc < len(rows) else "")
            + "),"
        )
    return (
        f"p: one-sided {test} of 'candidate worse than baseline', Holm-adjusted; "
        "detectable: smallest regression these folds detect with 80% power"
    )


def terminal_lines(verdict: Verdict, gate: str) -> list[str]:
    lines = [headline(verdict, gate)]
    if verdict.rows:
        lines += table(verdict.rows)
    lines += [f"note: {note}" for note in _notes(verdict)]
    lines += [f"reason: {reason}" for reason in _reasons(verdict)]
    compared = [row for row in verdict.rows if row.status == "compared"]
    if compared and verdict.rows[0].method in TESTED:
        lines.append(_p_legend(compared))
    elif compared and verdict.rows[0].method in MULTI_HORIZON:
        lines.append(
            "p: the joint test's one-sided p-value of the candidate's metric over all its horizons (Quaedvlieg 2021, "
            "block bootstrap), Holm-adjusted over models and metrics; detectable: each horizon's own dm test's"
        )
    return lines


def failure_message(row: Row, baseline: str) -> str:
    """What a regressed horizon's test says."""
    shown = _p(row)
    p = (
        ""
        if row.method == "threshold"
        else f", p{'' if shown.startswith('<') else '='}{shown} (Holm-adjusted, one-sided {_test_name(row)})"
    )
    return (
        f"forecast regression at {row.label} on {row.metric}: candidate {significant(row.candidate)} vs baseline "
        f"{significant(row.baseline)} ({_pct(row.delta_pct)}){p} over {row.n_folds} paired folds; baseline {baseline}"
    )


def markdown(verdict: Verdict, gate: str) -> str:
    out = [f"### {headline(verdict, gate)}", ""]
    if verdict.rows:
        out.append("| " + " | ".join(HEADERS) + " |")
        out.append("|" + "|".join("---" if i < 3 else "---:" for i in range(len(HEADERS))) + "|")
        out += ["| " + " | ".join(c.replace("|", "\\|") for c in cells(row)) + " |" for row in verdict.rows]
        out.append("")
    out += [f"- {reason}" for reason in _reasons(verdict)]
    out += [f"- note: {note}" for note in _notes(verdict)]
    return "\n".join(out).rstrip() + "\n"


def to_json(verdict: Verdict, gate: str, extra: dict[str, Any] | None = None) -> str:
    payload = {"gate": gate, **verdict.to_json(), **(extra or {})}
    return json.dumps(_finite(payload), indent=2, sort_keys=True, allow_nan=False, default=str) + "\n"


def _finite(value: Any) -> Any:
    """NaN and inf become null: JSON has no such numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def skill(records: list[Record]) -> dict[str, dict[str, float]]:
    """Candidate skill against the random walk per horizon: RMSE ratio to the naive reference, Theil's U.

    Theil's U (U2) is the candidate's pooled RMSE over the pooled RMSE of the no-change forecast from
    the same origins; the RMSE ratio divides mean per-fold RMSEs by a naive reference model's, when
    one ran at that horizon. Below 1 beats the random walk.
    """
    out: dict[str, dict[str, float]] = {}
    for record in records:
        if record.role != "candidate" or not record.ok:
            continue
        actuals = np.asarray(record.actuals, dtype=float)
        errors = np.asarray(record.forecasts, dtype=float) - actuals
        naive_errors = np.asarray(record.last, dtype=float)[:, None] - actuals
        values = {"theil_u": float(np.sqrt(np.mean(errors**2)) / np.sqrt(np.mean(naive_errors**2)))}
        naive = naive_reference(records, record.label)
        if naive is not None and "rmse_mean" in naive.aggregates and "rmse_mean" in record.aggregates:
            values["rmse_ratio"] = record.aggregates["rmse_mean"] / naive.aggregates["rmse_mean"]
        else:
            values["rmse_ratio"] = float("nan")
        out[f"{record.model} {record.label}"] = values
    return out


def skill_lines(skill: dict[str, dict[str, float]]) -> list[str]:
    """Candidate skill against the random walk, one number per model and horizon: Theil's U.

    Only U is shown: it pools every fold and step of the candidate against the no-change forecast from
    the same origins, needs no reference run, and is the skill the README reports. The logged
    ``rmse_ratio`` (mean per-fold RMSE over a naive reference run's) is a different aggregate and can
    fall on the other side of 1 when the two are that close; two numbers disagreeing there only misled.
    """
    if not skill:
        return []
    lines = ["skill against the random walk (Theil's U: pooled RMSE over the no-change forecast's; < 1 beats it):"]
    lines += [f"  {key}: Theil's U {values['theil_u']:.3f}" for key, values in skill.items()]
    return lines
