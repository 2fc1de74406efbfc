"""A gate row holds its :class:`backtest.compare.Comparison`, travels as flat JSON, and is decided by
:func:`backtest.compare.decide`: the one Holm step of the library, not a copy of it.

Rows cross two boundaries as JSON: workers ship them to the controller (``Record.comparisons``), and
journals on users' disks keep the verdict's rows, written by earlier versions in the flat form.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from backtest.compare import Comparison
from backtest.compare import decide as holm_decide
from pytest_forecast_mlflow import report
from pytest_forecast_mlflow.gate import Baseline, BaselineHorizon, Row, Verdict, compare_record, decide
from pytest_forecast_mlflow.records import Record

pytestmark = pytest.mark.usefixtures("hermetic")

ORIGINS = ["2024-01-05", "2024-01-12", "2024-01-19", "2024-01-26", "2024-02-02", "2024-02-09"]
ACTUALS = [[float(10 * k + s) for s in range(3)] for k in range(len(ORIGINS))]
BASE_RMSE = [1.0, 1.2, 0.9, 1.1, 1.0, 1.3]

# A verdict as a journal written before rows held their comparison keeps it: ``dataclasses.asdict`` of
# the flat row, every number side by side, no tolerance, alpha, lags or variance.
OLD_COMPARED: dict[str, Any] = {
    "nodeid": "test_x.py::test_3d", "model": "candidate", "label": "3d", "horizon": 3, "metric": "rmse",
    "direction": "lower", "status": "compared", "baseline": 1.0833333333333333, "candidate": 1.4083333333333334,
    "delta_pct": 30.000000000000014, "statistic": 13.858046563114685, "p_value": 1.757254265761412e-05,
    "p_adjusted": 1.757254265761412e-05, "n_folds": 6, "candidate_folds": 6, "min_detectable_pct": 6.352826439589368,
    "method": "dm", "regressed": True, "underpowered": False, "note": "",
}  # fmt: skip
OLD_UNPAIRED: dict[str, Any] = {
    "nodeid": "test_x.py::test_7d", "model": "candidate", "label": "7d", "horizon": 7, "metric": "rmse",
    "direction": "lower", "status": "no-common-folds", "baseline": math.nan, "candidate": math.nan,
    "delta_pct": math.nan, "statistic": math.nan, "p_value": math.nan, "p_adjusted": math.nan, "n_folds": 1,
    "candidate_folds": 1, "min_detectable_pct": math.nan, "method": "dm", "regressed": False,
    "underpowered": False, "note": "1 fold(s) pair with the baseline by origin; the gate needs at least 2",
}  # fmt: skip
OLD_VERDICT = {
    "status": "fail", "baseline": "fx v3 (alias champion, run 01234567)",
    "reasons": ["candidate 3d rmse regressed", "candidate 7d rmse: " + OLD_UNPAIRED["note"]],
    "session_reasons": ["candidate 7d rmse: " + OLD_UNPAIRED["note"]], "overrides": [], "promotable": False,
    "rows": [OLD_COMPARED, OLD_UNPAIRED],
}  # fmt: skip


def make_record(rmse: list[float], *, label: str = "3d") -> Record:
    return Record(
        nodeid=f"test_x.py::test_{label}",
        location=("test_x.py", 1, f"test_{label}"),
        model="candidate",
        role="candidate",
        label=label,
        horizon=3,
        step=1,
        origins=list(ORIGINS),
        actuals=[list(a) for a in ACTUALS],
        fold_metrics={"rmse": list(rmse), "mae": list(rmse)},
        data={"data.sha256": "same"},
    )


def make_baseline() -> Baseline:
    horizons = {
        label: BaselineHorizon(
            label, 3, 1, list(ORIGINS), [list(a) for a in ACTUALS], {"rmse": BASE_RMSE, "mae": BASE_RMSE}
        )
        for label in ("3d", "7d")
    }
    return Baseline("fx", "3", "alias champion", "0123456789abcdef", "naive", "same", horizons)


def rows_of(*records: Record, alpha: float = 0.05) -> list[Row]:
    baseline = make_baseline()
    return [
        row
        for record in records
        for row in compare_record(record, baseline, metrics=("rmse", "mae"), tolerance=0.0, alpha=alpha, method="dm")
    ]


def verdict_of(rows: list[Row]) -> Verdict:
    return decide(rows, baseline=make_baseline(), alpha=0.05, method="dm", require_baseline=False, incomplete=[],
                  interrupted=False, metrics=("rmse", "mae"))  # fmt: skip


def test_an_old_flat_row_reads_back_with_its_comparison() -> None:
    row = Row.from_json(OLD_COMPARED)

    assert isinstance(row.comparison, Comparison)
    assert (row.comparison.method, row.comparison.direction, row.comparison.n_folds) == ("dm", "lower", 6)
    assert math.isnan(row.comparison.alpha)  # the old form did not keep its level
    assert {name: value for name, value in row.to_json().items() if name in OLD_COMPARED} == OLD_COMPARED
    # what the controller does with a worker's row still works
    assert json.dumps(Row(**OLD_COMPARED).to_json()) == json.dumps(row.to_json())


def test_an_old_flat_row_that_compared_nothing_keeps_its_paired_folds() -> None:
    row = Row.from_json(OLD_UNPAIRED)

    assert row.comparison is None
    assert (row.n_folds, row.paired_folds, row.regressed) == (1, 1, False)
    assert math.isnan(row.p_value)
    assert report.cells(row)[7] == "1/1"


def test_an_old_journal_verdict_reads_back_and_reports_as_before() -> None:
    verdict = Verdict.from_json(json.loads(json.dumps(OLD_VERDICT)))

    assert verdict is not None
    assert [row.status for row in verdict.rows] == ["compared", "no-common-folds"]
    assert [row.label for row in verdict.regressions] == ["3d"]
    assert report.table(verdict.rows)[1].split() == [
        "candidate", "3d", "rmse", "1.083", "1.408", "+30.00%", "<0.0001", "6/6", "6.4%", "REGRESSED",
    ]  # fmt: skip
    rows = verdict.to_json()["rows"]
    assert [{name: row[name] for name in OLD_COMPARED} for row in rows][0] == OLD_COMPARED


def test_unknown_keys_of_a_newer_journal_are_ignored() -> None:
    row = Row.from_json({**OLD_COMPARED, "added_later": 1})

    assert row.p_value == OLD_COMPARED["p_value"]
    with pytest.raises(TypeError, match="unexpected keyword argument.*added_later"):
        Row(**{**OLD_COMPARED, "added_later": 1})


def test_a_row_crosses_from_worker_to_controller_whole() -> None:
    rows = rows_of(make_record([v * 1.3 for v in BASE_RMSE]), make_record(BASE_RMSE, label="7d"))

    shipped = [Row(**json.loads(json.dumps(row.to_json()))) for row in rows]

    assert [repr(row.comparison) for row in shipped] == [repr(row.comparison) for row in rows]  # NaN != NaN
    assert shipped[0].comparison is not None
    assert (shipped[0].comparison.alpha, shipped[0].comparison.lags, shipped[0].comparison.variance) == (
        0.05,
        2,
        "rectangular",
    )
    assert json.dumps(verdict_of(shipped).to_json()) == json.dumps(verdict_of(rows).to_json())  # NaN != NaN


def test_the_gate_decides_with_the_librarys_holm_step() -> None:
    rows = rows_of(make_record([v * 1.3 for v in BASE_RMSE]), make_record([1.0, 1.3, 0.9, 1.0, 1.1, 1.3], label="7d"))

    verdict = verdict_of(rows)

    comparisons = [row.comparison for row in rows if row.comparison is not None]
    assert len(comparisons) == len(rows)
    holm = holm_decide(comparisons, alpha=0.05)
    assert [row.comparison for row in verdict.rows] == holm
    assert [row.p_adjusted for row in verdict.rows] == [c.p_adjusted for c in holm]
    assert [row.regressed for row in verdict.rows] == [True, True, False, False]
    assert verdict.reasons == ("candidate 3d rmse regressed", "candidate 3d mae regressed")


def test_before_the_decision_a_dm_row_has_not_regressed() -> None:
    (row, _) = rows_of(make_record([v * 1.3 for v in BASE_RMSE]))

    assert row.comparison is not None
    assert row.comparison.regressed is None
    assert row.regressed is False
    assert math.isnan(row.p_adjusted)


def test_rows_compared_at_another_level_are_refused() -> None:
    rows = rows_of(make_record([v * 1.3 for v in BASE_RMSE]), alpha=0.1)

    with pytest.raises(ValueError, match="row 0 was compared at alpha 0.1 but decide was given alpha 0.05"):
        verdict_of(rows)


def test_a_row_takes_its_comparison_or_flat_numbers_not_both() -> None:
    (row, _) = rows_of(make_record(BASE_RMSE))
    fields: dict[str, Any] = dict(nodeid="n", model="m", label="3d", horizon=3, metric="rmse", direction="lower")

    with pytest.raises(TypeError, match="not both"):
        Row(**fields, status="compared", comparison=row.comparison, p_value=0.5)
    with pytest.raises(ValueError, match="a compared row needs its comparison"):
        Row(**fields, status="compared")
