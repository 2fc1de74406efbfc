"""The pure parts of the gate: ``gate.compare_record`` / ``gate.decide`` and the ``report`` renderers.

No pytest session and no MLflow here: records, baselines and rows are built by hand, so every number
in an assertion can be checked with a pencil.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from pytest_forecast_mlflow import report
from pytest_forecast_mlflow.gate import Baseline, BaselineHorizon, Row, Verdict, compare_record, decide
from pytest_forecast_mlflow.records import Record

pytestmark = pytest.mark.usefixtures("hermetic")

ORIGINS = ["2024-01-05", "2024-01-12", "2024-01-19", "2024-01-26", "2024-02-02", "2024-02-09"]
ACTUALS = [[float(10 * k + s) for s in range(3)] for k in range(len(ORIGINS))]
BASE_RMSE = [1.0, 1.2, 0.9, 1.1, 1.0, 1.3]


def make_record(
    *,
    rmse=BASE_RMSE,
    origins=ORIGINS,
    actuals=ACTUALS,
    sha="same",
    label="3d",
    metrics=("rmse",),
    model="candidate",
) -> Record:
    return Record(
        nodeid=f"test_x.py::test_{label}",
        location=("test_x.py", 1, f"test_{label}"),
        model=model,
        role="candidate",
        label=label,
        horizon=3,
        step=1,
        origins=list(origins),
        actuals=[list(a) for a in actuals],
        fold_metrics={name: list(rmse) for name in metrics},
        data={"data.sha256": sha},
    )


def make_baseline(*, rmse=BASE_RMSE, origins=ORIGINS, actuals=ACTUALS, sha="same", label="3d") -> Baseline:
    horizon = BaselineHorizon(
        label=label,
        horizon=3,
        step=1,
        origins=list(origins),
        actuals=[list(a) for a in actuals],
        fold_metrics={"rmse": list(rmse)},
    )
    return Baseline(
        registered_model="fx",
        version="3",
        how="alias champion",
        run_id="0123456789abcdef",
        run_name="naive",
        data_sha256=sha,
        horizons={label: horizon},
    )


def compare(record: Record, baseline: Baseline | None, *, metrics=("rmse",), tolerance=0.0, method="dm") -> list[Row]:
    return compare_record(record, baseline, metrics=metrics, tolerance=tolerance, alpha=0.05, method=method)


def row(p_value: float, *, label="3d", metric="rmse", status="compared", method="dm", regressed=False) -> Row:
    return Row(
        nodeid=f"test_x.py::test_{label}",
        model="candidate",
        label=label,
        horizon=3,
        metric=metric,
        direction="lower",
        status=status,
        baseline=1.0,
        candidate=1.1,
        delta_pct=10.0,
        p_value=p_value,
        n_folds=6,
        candidate_folds=6,
        method=method,
        regressed=regressed,
    )


def judge(
    rows, *, baseline=True, require_baseline=False, incomplete=(), interrupted=False, unavailable=None, method="dm"
) -> Verdict:
    return decide(
        list(rows),
        baseline=make_baseline() if baseline else None,
        alpha=0.05,
        method=method,
        require_baseline=require_baseline,
        incomplete=list(incomplete),
        interrupted=interrupted,
        unavailable=unavailable,
        baseline_note="no registered model 'fx' yet",
    )


# -- compare_record ----------------------------------------------------------------------------------


def test_without_a_baseline_every_metric_is_a_no_baseline_row() -> None:
    rows = compare(make_record(metrics=("rmse", "mae")), None, metrics=("rmse", "mae"))

    assert [(r.metric, r.status, r.note) for r in rows] == [
        ("rmse", "no-baseline", "no registered baseline"),
        ("mae", "no-baseline", "no registered baseline"),
    ]
    assert all(r.candidate_folds == 6 and r.n_folds == 0 and math.isnan(r.candidate) for r in rows)


def test_a_horizon_or_metric_the_baseline_lacks_is_named() -> None:
    other_label = compare(make_record(label="7d"), make_baseline(label="3d"))
    missing_metric = compare(make_record(metrics=("rmse", "mae")), make_baseline(), metrics=("mae",))

    assert other_label[0].status == "unmatched"  # a champion exists: the gate fails closed on it
    assert other_label[0].note == "the champion fx v3 has no '7d' backtest (its horizons: 3d)"
    assert missing_metric[0].status == "unmatched"
    assert missing_metric[0].note == "the champion fx v3 has no per-fold mae at 3d"


def test_a_metric_the_backtest_did_not_compute_is_an_error_row() -> None:
    (result,) = compare(make_record(metrics=("mae",)), make_baseline())

    assert (result.status, result.note) == ("error", "the backtest did not compute rmse")


def test_identical_folds_compare_equal() -> None:
    (result,) = compare(make_record(), make_baseline())

    assert result.status == "compared"
    assert result.baseline == pytest.approx(sum(BASE_RMSE) / 6)
    assert result.candidate == result.baseline
    assert result.delta_pct == 0.0
    assert result.p_value == 1.0
    assert (result.n_folds, result.candidate_folds) == (6, 6)
    assert result.regressed is False  # the DM decision waits for Holm in decide()
    assert math.isnan(result.p_adjusted)


def test_folds_pair_by_origin_not_by_position() -> None:
    # the candidate's series grew by two origins at the end and lost the first: 5 - 1 = 4 common folds,
    # and position k of the candidate is origin k + 1 of the baseline
    origins = ORIGINS[1:] + ["2024-02-16", "2024-02-23"]
    rmse = BASE_RMSE[1:] + [50.0, 50.0]
    (result,) = compare(make_record(origins=origins, rmse=rmse, actuals=ACTUALS[1:] + [[0.0] * 3] * 2), make_baseline())

    assert (result.n_folds, result.candidate_folds) == (5, 7)
    assert result.candidate == pytest.approx(sum(BASE_RMSE[1:]) / 5)  # the two new folds are not compared
    assert result.delta_pct == pytest.approx(0.0)


def test_other_data_compares_only_folds_with_identical_actuals_and_says_so() -> None:
    revised = [list(a) for a in ACTUALS]
    revised[2][1] += 0.5  # one revised value changes one fold's actuals
    rmse = list(BASE_RMSE)
    rmse[2] = 99.0  # ...and that fold's candidate value is not comparable

    (same_actuals,) = compare(make_record(sha="new"), make_baseline(sha="old"))
    (one_revised,) = compare(make_record(sha="new", actuals=revised, rmse=rmse), make_baseline(sha="old"))

    assert same_actuals.status == "compared"
    assert same_actuals.note == (
        "data differs from the baseline's: 6 of 6 folds with a common origin also have "
        "identical actuals and are compared"
    )
    assert one_revised.status == "compared"
    assert one_revised.n_folds == 5
    assert one_revised.note.startswith("data differs from the baseline's: 5 of 6 folds")
    assert one_revised.candidate == pytest.approx((sum(BASE_RMSE) - BASE_RMSE[2]) / 5)


def test_fewer_than_two_common_folds_cannot_be_compared() -> None:
    (no_overlap,) = compare(make_record(origins=[f"2030-01-0{k + 1}" for k in range(6)]), make_baseline())
    (one_overlap,) = compare(
        make_record(origins=[ORIGINS[-1]] + [f"2030-01-0{k + 1}" for k in range(5)]), make_baseline()
    )

    assert no_overlap.status == "no-common-folds"
    assert no_overlap.note == "0 fold(s) pair with the baseline by origin; the gate needs at least 2"
    assert (one_overlap.status, one_overlap.n_folds) == ("no-common-folds", 1)


def test_threshold_decides_on_the_means_with_the_tolerance() -> None:
    worse = [v * 1.1 for v in BASE_RMSE]  # 10% worse on every fold

    (strict,) = compare(make_record(rmse=worse), make_baseline(), method="threshold")
    (tolerant,) = compare(make_record(rmse=worse), make_baseline(), method="threshold", tolerance=0.15)

    assert strict.regressed is True
    assert strict.delta_pct == pytest.approx(10.0)
    assert math.isnan(strict.p_value)
    assert tolerant.regressed is False


def test_higher_is_better_metrics_regress_downwards() -> None:
    record = make_record(metrics=("directional_accuracy",), rmse=[0.5] * 6)
    baseline = make_baseline()
    horizon = baseline.horizons["3d"]
    horizon.fold_metrics["directional_accuracy"] = [0.6] * 6

    (result,) = compare(record, baseline, metrics=("directional_accuracy",), method="threshold")

    assert result.direction == "higher"
    assert result.regressed is True
    assert result.delta_pct == pytest.approx(-100 / 6)


# -- decide ------------------------------------------------------------------------------------------


def test_holm_adjusts_across_every_compared_row() -> None:
    # each raw p is below alpha, but two hypotheses were tested: 2 x 0.03 = 0.06 and max(0.06, 0.04)
    verdict = judge([row(0.03, label="3d"), row(0.04, label="7d")])

    assert [r.p_adjusted for r in verdict.rows] == pytest.approx([0.06, 0.06])
    assert verdict.regressions == ()
    assert verdict.status == "pass"
    assert not verdict.failed


def test_holm_flags_the_rows_that_survive_the_correction() -> None:
    verdict = judge([row(0.01, label="3d"), row(0.04, label="7d", metric="mae"), row(0.5, label="7d")])

    assert [r.p_adjusted for r in verdict.rows] == pytest.approx([0.03, 0.08, 0.5])
    assert [r.regressed for r in verdict.rows] == [True, False, False]
    assert verdict.status == "fail"
    assert verdict.reasons == ("candidate 3d rmse regressed",)


def test_rows_that_were_not_compared_are_not_in_the_family() -> None:
    verdict = judge([row(0.03), row(math.nan, label="7d", status="no-baseline")])

    assert verdict.rows[0].p_adjusted == pytest.approx(0.03)  # one test, not two
    assert verdict.rows[0].regressed is True
    assert math.isnan(verdict.rows[1].p_adjusted)


def test_threshold_rows_keep_their_own_decision() -> None:
    verdict = judge([row(math.nan, method="threshold", regressed=True)], method="threshold")

    assert verdict.status == "fail"
    assert math.isnan(verdict.rows[0].p_adjusted)


def test_no_baseline_passes_ungated_unless_a_baseline_is_required() -> None:
    rows = [row(math.nan, status="no-baseline")]

    ungated = judge(rows, baseline=False)
    required = judge(rows, baseline=False, require_baseline=True)

    assert ungated.status == "no-baseline"
    assert not ungated.failed
    assert ungated.baseline == "no registered model 'fx' yet"
    assert required.status == "fail"
    assert required.failed
    assert required.reasons[0].endswith("(--forecast-require-baseline)")


def test_no_candidate_at_all_is_said() -> None:
    verdict = judge([], baseline=False)

    assert verdict.status == "no-baseline"
    assert verdict.reasons == ("no candidate backtest ran",)


def test_folds_that_cannot_be_paired_fail_the_gate() -> None:
    rows = [
        row(0.9),
        Row(
            nodeid="n",
            model="candidate",
            label="7d",
            horizon=7,
            metric="rmse",
            direction="lower",
            status="no-common-folds",
            note="0 fold(s) pair with the baseline by origin",
        ),
    ]

    verdict = judge(rows)

    assert verdict.status == "fail"
    assert verdict.reasons == ("candidate 7d rmse: 0 fold(s) pair with the baseline by origin",)


def test_a_backtest_without_result_makes_the_verdict_incomplete() -> None:
    verdict = judge([row(0.9)], incomplete=["candidate 7d"])

    assert verdict.status == "incomplete"
    assert verdict.failed


def test_a_backtest_without_result_fails_the_gate_and_is_named() -> None:
    verdict = judge([row(0.9)], incomplete=["candidate 7d"])

    assert verdict.failed
    assert verdict.reasons == ("backtests failed or produced no result: candidate 7d",)


def test_an_interrupted_session_gives_no_verdict_even_with_regressions() -> None:
    verdict = judge([row(0.001)], interrupted=True)

    assert verdict.status == "interrupted"
    assert verdict.failed
    assert verdict.reasons == ("the session was interrupted; no verdict",)


def test_an_unreadable_baseline_fails_closed() -> None:
    verdict = judge([], unavailable="the baseline cannot be read: run 0123 is deleted")

    assert verdict.status == "unavailable"
    assert verdict.failed
    assert verdict.reasons == ("the baseline cannot be read: run 0123 is deleted",)


# -- report ------------------------------------------------------------------------------------------


def decided(*rows: Row, **kwargs) -> Verdict:
    """A verdict on these rows, against the baseline of ``make_baseline``."""
    return judge(rows, **kwargs)


def test_table_aligns_columns_and_shows_missing_numbers_as_dashes() -> None:
    lines = report.table(decided(row(0.00001), row(math.nan, label="30d", status="no-baseline")).rows)

    assert lines[0].split() == [
        "model",
        "horizon",
        "metric",
        "baseline",
        "candidate",
        "delta",
        "p",
        "(Holm)",
        "folds",
        "detectable",
        "verdict",
    ]
    assert lines[1].split() == [
        "candidate", "3d", "rmse", "1.000", "1.100", "+10.00%", "<0.0001", "6/6", "-", "REGRESSED",
    ]  # fmt: skip
    assert lines[2].split() == ["candidate", "30d", "rmse", "1.000", "1.100", "+10.00%", "-", "6/6", "-", "no-baseline"]
    assert len({len(line) for line in lines}) == 1


def test_table_of_threshold_rows_has_no_p_value() -> None:
    (_, line) = report.table([row(math.nan, method="threshold", regressed=False)])

    assert line.split()[6] == "n/a"
    assert line.split()[-1] == "ok"


def test_table_without_rows_is_the_header() -> None:
    (header,) = report.table([])

    assert header.split()[:3] == ["model", "horizon", "metric"]


def test_markdown_is_a_table_with_notes_and_no_reason_repeating_it() -> None:
    odd = Row(
        nodeid="n",
        model="a|b",
        label="3d",
        horizon=3,
        metric="rmse",
        direction="lower",
        status="compared",
        baseline=2.0,
        candidate=2.5,
        delta_pct=25.0,
        p_value=0.001,
        n_folds=6,
        note="data differs",
    )

    verdict = decided(odd)
    text = report.markdown(verdict, "fail")

    lines = text.splitlines()
    assert lines[0] == "### forecast gate: FAIL against fx v3 (alias champion, run 01234567)"
    assert lines[2] == "| " + " | ".join(report.HEADERS) + " |"
    assert lines[3] == "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"
    assert lines[4] == "| a\\|b | 3d | rmse | 2.000 | 2.500 | +25.00% | 0.0010 | 6 | - | REGRESSED |"
    assert "- a|b 3d rmse regressed" not in lines  # the REGRESSED row says it; no reason line repeats the table
    assert verdict.reasons == ("a|b 3d rmse regressed",)  # scripts still read it in the JSON
    assert "- note: data differs" in lines
    assert text.endswith("\n")


def test_markdown_without_rows_has_no_table() -> None:
    text = report.markdown(judge([], baseline=False), "fail")

    assert text == (
        "### forecast gate: nothing to compare against (no registered model 'fx' yet); the session "
        "passes ungated\n\n- no candidate backtest ran\n"
    )


def _strict_json(text: str):
    def refuse(constant: str):
        raise AssertionError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_json_is_strict_json_with_null_for_missing_numbers() -> None:
    verdict = decided(row(0.01), row(math.nan, label="30d", status="no-baseline"))
    infinite = Row(
        nodeid="n",
        model="m",
        label="1d",
        horizon=1,
        metric="rmse",
        direction="lower",
        status="compared",
        min_detectable_pct=math.inf,
        p_value=0.5,
    )

    payload = _strict_json(report.to_json(verdict, "warn", {"experiment": "fx", "session": "abc"}))
    with_inf = _strict_json(report.to_json(decided(infinite), "fail"))

    assert payload["gate"] == "warn"
    assert payload["status"] == "fail"
    assert payload["experiment"] == "fx"
    assert payload["session"] == "abc"
    assert payload["baseline"] == "fx v3 (alias champion, run 01234567)"
    assert payload["reasons"] == ["candidate 3d rmse regressed"]
    first, second = payload["rows"]
    assert (first["label"], first["status"], first["regressed"]) == ("3d", "compared", True)
    assert first["p_adjusted"] == pytest.approx(0.01)
    assert second["p_value"] is None
    assert second["p_adjusted"] is None
    assert with_inf["rows"][0]["min_detectable_pct"] is None


def test_failure_message_names_metric_numbers_and_baseline() -> None:
    (regressed,) = decided(row(0.001)).rows

    message = report.failure_message(regressed, "fx v3 (alias champion, run 01234567)")

    assert message == (
        "forecast regression at 3d on rmse: candidate 1.100 vs baseline 1.000 (+10.00%), p=0.0010 (Holm-adjusted, "
        "one-sided DM-HLN) over 6 paired folds; baseline fx v3 (alias champion, run 01234567)"
    )


def test_failure_message_of_the_threshold_method_has_no_p() -> None:
    message = report.failure_message(row(math.nan, method="threshold", regressed=True), "fx v3")

    assert "p=" not in message
    assert message.startswith("forecast regression at 3d on rmse: candidate 1.100 vs baseline 1.000 (+10.00%) over 6")


@pytest.mark.parametrize(
    ("verdict", "gate", "expected"),
    [
        (Verdict("pass", (), "fx v3"), "fail", "forecast gate: PASSED against fx v3"),
        (
            Verdict("no-baseline", (), "no registered model 'fx' yet"),
            "fail",
            "forecast gate: nothing to compare against (no registered model 'fx' yet); the session passes ungated",
        ),
        (Verdict("fail", (), "fx v3"), "fail", "forecast gate: FAIL against fx v3"),
        (Verdict("fail", (), "fx v3"), "warn", "forecast gate: REGRESSION (warn mode: the session is not failed)"),
        (Verdict("interrupted", (), "fx v3"), "fail", "forecast gate: INTERRUPTED against fx v3"),
    ],
)
def test_headline(verdict: Verdict, gate: str, expected: str) -> None:
    assert report.headline(verdict, gate) == expected


def test_terminal_lines_explain_p_only_for_the_dm_method() -> None:
    dm = report.terminal_lines(decided(row(0.5)), "fail")
    threshold = report.terminal_lines(decided(row(math.nan, method="threshold"), method="threshold"), "fail")

    assert dm[0] == "forecast gate: PASSED against fx v3 (alias champion, run 01234567)"
    assert dm[-1].startswith("p: one-sided Diebold-Mariano (HLN) p-value")
    assert not any(line.startswith("p: ") for line in threshold)


# -- skill against the random walk -------------------------------------------------------------------


def skilled(role: str, model: str, forecasts: list[list[float]], *, label: str = "3d") -> Record:
    """A backtest of ACTUALS whose no-change forecast from each origin is ``actual[0] - 1``."""
    errors = [np.sqrt(np.mean((np.asarray(f) - np.asarray(a)) ** 2)) for f, a in zip(forecasts, ACTUALS)]
    return Record(
        nodeid=f"test_x.py::test_{label}",
        location=("test_x.py", 1, "t"),
        model=model,
        role=role,
        label=label,
        horizon=3,
        origins=list(ORIGINS),
        actuals=[list(a) for a in ACTUALS],
        forecasts=[list(f) for f in forecasts],
        last=[a[0] - 1.0 for a in ACTUALS],
        aggregates={"rmse_mean": float(np.mean(errors))},
    )


NAIVE_FORECASTS = [[a[0] - 1.0] * 3 for a in ACTUALS]


def test_skill_of_the_no_change_forecast_is_one_and_of_a_perfect_one_zero() -> None:
    naive = skilled("reference", "Naive", NAIVE_FORECASTS)
    records = [skilled("candidate", "copycat", NAIVE_FORECASTS), skilled("candidate", "oracle", ACTUALS), naive]

    found = report.skill(records)

    assert found["copycat 3d"] == pytest.approx({"theil_u": 1.0, "rmse_ratio": 1.0})
    assert found["oracle 3d"] == pytest.approx({"theil_u": 0.0, "rmse_ratio": 0.0})
    assert set(found) == {"copycat 3d", "oracle 3d"}  # references are the yardstick, not judged


def test_skill_theil_u_is_pooled_rmse_over_the_no_change_rmse() -> None:
    close = [[a[0] + 0.5 * k, a[1] - 0.5, a[2] + 0.25] for k, a in enumerate(ACTUALS)]
    candidate = skilled("candidate", "c", close)
    errors = np.asarray(close) - np.asarray(ACTUALS)
    naive_errors = (np.asarray(ACTUALS)[:, :1] - 1.0) - np.asarray(ACTUALS)

    found = report.skill([candidate])["c 3d"]

    assert found["theil_u"] == pytest.approx(np.sqrt(np.mean(errors**2) / np.mean(naive_errors**2)))
    assert math.isnan(found["rmse_ratio"])  # no naive reference ran at 3d
    assert report.skill_lines({"c 3d": found})[1] == f"  c 3d: Theil's U {found['theil_u']:.3f}"


@pytest.mark.parametrize(
    ("value", "shown"),
    [(21.5, "21.50"), (15.8125, "15.81"), (1.0, "1.000"), (1234.4, "1234"), (0.00012345, "0.0001234"), (0.0, "0")],
)
def test_table_numbers_keep_four_significant_digits_with_their_trailing_zeros(value: float, shown: str) -> None:
    assert report.significant(value) == shown


def test_a_tiny_p_value_reads_p_below_not_p_equals_below() -> None:
    (regressed,) = decided(row(1e-9)).rows
    message = report.failure_message(regressed, "fx v3")
    assert ", p<0.0001 (Holm-adjusted" in message
    assert "p=<" not in message


def test_without_any_champion_the_rows_do_not_repeat_what_the_headline_says() -> None:
    rows = compare(make_record(metrics=("rmse", "mae")), None, metrics=("rmse", "mae"))
    verdict = judge(rows, baseline=False)

    lines = report.terminal_lines(verdict, "fail")
    assert verdict.status == "no-baseline"
    assert (
        lines[0]
        == "forecast gate: nothing to compare against (no registered model 'fx' yet); the session passes ungated"
    )
    assert not any(line.startswith("note:") for line in lines)
    assert "- note:" not in report.markdown(verdict, "fail")
