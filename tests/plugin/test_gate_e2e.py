"""The regression gate end to end: the registry's champion is the baseline, candidates pass or fail.

Each test gets its own copy of a store (``empty_store``, or ``champion_store`` whose registered model
``forecaster`` has v1 under alias ``champion``: the naive candidate on the base series), runs the inner
suite in a subprocess, and checks what a user reads, the exit code, and what the registry holds after.
The candidate at a horizon, and its data, are chosen with FORECAST_E2E_MODELS / FORECAST_E2E_DATA
(see conftest). On this mean-reverting series "degraded" (naive x 1.01) is clearly worse at both
horizons, "improved" (an AR(1)) clearly better.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from .conftest import EXPERIMENT, NODE_5D, NODE_10D, Store, assert_quiet, make_project, run_tracked

pytestmark = [pytest.mark.mlflow, pytest.mark.usefixtures("hermetic")]

BASELINE = f"{EXPERIMENT} v1 (alias champion, run *)"
TABLE_HEADER = "model      horizon  metric  baseline  candidate * delta  p (Holm)  folds  detectable * verdict"


def champion(store: Store) -> tuple[str, str]:
    """The champion's version number (as text: MLflow 2 and 3 differ) and run id."""
    version = store.client().get_model_version_by_alias(EXPERIMENT, "champion")
    return str(version.version), version.run_id


def load_champion(store: Store, monkeypatch: pytest.MonkeyPatch):
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", store.uri)
    return mlflow.pyfunc.load_model(f"models:/{EXPERIMENT}@champion")


def junit_properties(path: Path) -> dict[str, list[dict[str, str]]]:
    """Each testcase's properties, by test name (a name may appear more than once)."""
    cases: dict[str, list[dict[str, str]]] = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        properties = {p.get("name", ""): p.get("value", "") for p in case.iter("property")}
        cases.setdefault(case.get("name", ""), []).append(properties)
    return cases


def test_a_first_session_has_nothing_to_compare_and_promotion_makes_it_champion(
    pytester: pytest.Pytester, empty_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_project(pytester)

    result = run_tracked(pytester, empty_store, "--mlflow-promote")

    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "*= forecast-mlflow =*",
            f"forecast gate: nothing to compare against (no registered model '{EXPERIMENT}' yet); the session passes "
            "ungated",
            TABLE_HEADER,
            "candidate  5d       rmse  *  -  *  -  *  -  *  -   0/20  *  -  no-baseline",
            "candidate  10d      rmse  *  -  *  -  *  -  *  -   0/19  *  -  no-baseline",
            f"registered candidate as {EXPERIMENT} v1 and moved alias 'champion' to it",
        ]
    )
    result.stdout.no_fnmatch_line("note: no registered baseline")  # the headline already says it
    assert sum("moved alias 'champion'" in line for line in result.stdout.lines) == 1  # each line once
    (run,) = empty_store.runs()
    assert champion(empty_store) == ("1", run.info.run_id)
    tags = empty_store.client().get_model_version(EXPERIMENT, "1").tags
    assert (tags["forecast.verdict"], tags["forecast.promoted"]) == ("no-baseline", "true")

    model = load_champion(empty_store, monkeypatch)
    forecast = model.predict(pd.DataFrame({"label": ["5d", "10d"], "history": [[1.0, 2.0, 3.0], [4.0, 5.0]]}))
    assert list(forecast["label"]) == ["5d", "10d"]
    assert list(forecast["forecast"]) == [[3.0] * 5, [5.0] * 10]  # the random walk repeats the last value


def test_an_identical_rerun_passes_and_writes_its_reports(
    pytester: pytest.Pytester, champion_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_project(pytester)
    step_summary = pytester.path / "step-summary.md"
    step_summary.write_text("# earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))

    result = run_tracked(
        pytester,
        champion_store,
        "--junitxml=junit.xml",
        "--forecast-report=out/gate.md",
        "--forecast-json=out/gate.json",
    )

    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=2)
    # the header does not wait for the baseline (read while the tests run): the summary names it
    result.stdout.fnmatch_lines(["forecast-mlflow: commit *; gate fail (dm, *)"])
    assert_quiet(result)
    artifacts = {a.path for a in champion_store.client().list_artifacts(champion_store.latest().info.run_id)}
    assert "manifests" in artifacts
    assert "plots" not in artifacts  # mlflow_plots = off in the inner ini: nothing drawn, the rest logged
    result.stdout.fnmatch_lines(
        [
            f"forecast gate: PASSED against {BASELINE}",
            TABLE_HEADER,
            "candidate  5d       rmse  * +0.00%    1.0000  20/20 * ok",
            "candidate  10d      rmse  * +0.00%    1.0000  19/19 * ok",
        ]
    )

    cases = junit_properties(pytester.path / "junit.xml")
    (five,) = cases["test_backtest[5]"]
    assert {
        k: five[k]
        for k in (
            "forecast.5d.rmse.status",
            "forecast.5d.rmse.folds",
            "forecast.5d.rmse.delta_pct",
            "forecast.5d.rmse.p_unadjusted",
        )
    } == {
        "forecast.5d.rmse.status": "compared",
        "forecast.5d.rmse.folds": "20",
        "forecast.5d.rmse.delta_pct": "0.0",
        "forecast.5d.rmse.p_unadjusted": "1.0",
    }
    assert float(five["forecast.5d.rmse.baseline"]) == float(five["forecast.5d.rmse.candidate"]) > 0
    (ten,) = cases["test_backtest[10]"]
    assert ten["forecast.10d.rmse.folds"] == "19"

    markdown = (pytester.path / "out" / "gate.md").read_text()
    assert markdown.startswith(f"### forecast gate: PASSED against {EXPERIMENT} v1 (alias champion, run ")
    assert "| candidate | 5d | rmse |" in markdown
    assert step_summary.read_text() == "# earlier step\n" + markdown + "\n"

    payload = json.loads((pytester.path / "out" / "gate.json").read_text())
    assert (payload["status"], payload["gate"], payload["experiment"]) == ("pass", "fail", EXPERIMENT)
    assert [(row["nodeid"], row["status"], row["regressed"]) for row in payload["rows"]] == [
        (NODE_5D, "compared", False),
        (NODE_10D, "compared", False),
    ]

    run = champion_store.latest()
    assert run.data.tags["forecast.verdict"] == "pass"
    assert run.data.tags["forecast.baseline"].startswith(f"{EXPERIMENT} v1 (alias champion")
    assert run.data.metrics["gate/5d/rmse_delta_pct"] == 0.0
    assert run.data.metrics["gate/10d/rmse_p"] == 1.0


def test_with_the_gate_off_promotion_registers_but_never_moves_the_alias(
    pytester: pytest.Pytester, champion_store: Store
) -> None:
    make_project(pytester)

    result = run_tracked(pytester, champion_store, "--mlflow-promote", "--forecast-gate", "off")

    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            f"registered candidate as {EXPERIMENT} v2; alias 'champion' NOT moved: promotion "
            "needs a passing gate verdict and the gate is off (--forecast-gate off)"
        ]
    )
    assert champion(champion_store)[0] == "1"


def test_a_degraded_candidate_fails_the_horizon_that_regressed(
    pytester: pytest.Pytester, champion_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_project(pytester)
    monkeypatch.setenv("FORECAST_E2E_MODELS", "10d=degraded")

    result = run_tracked(pytester, champion_store, "--mlflow-promote", "--forecast-json=gate.json")

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    # each test is counted once: test_backtest[10] ran and passed; the gate's verdict is the one error
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*= ERRORS =*",
            "*_ ERROR at setup of forecast-gate _*",
            "forecast gate: 10d rmse regressed (test_backtest[[]10])",
            "forecast regression at 10d on rmse: candidate * vs baseline * (+*%), p=0.0* (Holm-adjusted, one-sided "
            f"DM-HLN) over 19 paired folds; baseline {BASELINE}",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*= forecast-mlflow =*",
            f"forecast gate: FAIL against {BASELINE}",
            TABLE_HEADER,
            "candidate  5d       rmse  * +0.00%    1.0000  20/20 * ok",
            "candidate  10d      rmse  * +*%    0.0*  19/19 * REGRESSED",
            "p: one-sided Diebold-Mariano*",
            f"registered candidate as {EXPERIMENT} v2; alias 'champion' NOT moved: gate verdict fail; only pass (or no "
            "champion yet) promotes",
        ]
    )
    result.stdout.no_fnmatch_line("reason: *")  # the REGRESSED row is the reason; no line repeats it
    # the short summary names the regressed horizon and its test, and no test is reported failed
    result.stdout.fnmatch_lines(
        ["ERROR forecast-gate - forecast gate: 10d rmse regressed (test_backtest[[]10])", "*= 2 passed, 1 error in *"]
    )
    result.stdout.no_fnmatch_line("FAILED *")

    assert champion(champion_store)[0] == "1"
    assert champion_store.client().get_model_version(EXPERIMENT, "2").tags["forecast.verdict"] == "fail"
    champion_run, run = champion_store.runs()[-2:]
    assert (run.info.status, run.data.tags["forecast.verdict"]) == ("FAILED", "fail")
    # runs are named <model> <short commit> <session start> (no git here), so the UI tells sessions apart
    for named in (champion_run, run):
        assert re.fullmatch(r"candidate \d{4}-\d\d-\d\d \d\d:\d\d:\d\d", named.info.run_name), named.info.run_name
    assert champion_run.info.run_name != run.info.run_name
    payload = json.loads((pytester.path / "gate.json").read_text())
    assert payload["status"] == "fail"
    assert [(row["label"], row["regressed"]) for row in payload["rows"]] == [("5d", False), ("10d", True)]
    ten = payload["rows"][1]
    assert ten["candidate"] > ten["baseline"] * 1.2
    assert ten["p_adjusted"] < 0.05


@pytest.mark.slow
def test_the_junit_report_of_a_regression_carries_the_holm_p_value(
    pytester: pytest.Pytester, champion_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_project(pytester)
    monkeypatch.setenv("FORECAST_E2E_MODELS", "10d=degraded")

    result = run_tracked(pytester, champion_store, "--junitxml=junit.xml")

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    cases = junit_properties(pytester.path / "junit.xml")
    gate = {k: v for case in cases["forecast-gate"] for k, v in case.items()}
    assert float(gate["forecast.10d.rmse.p_holm"]) < 0.05
    assert (gate["forecast.10d.rmse.verdict"], gate["forecast.10d.rmse.test"]) == ("regressed", NODE_10D)
    assert gate["forecast.verdict"] == "fail"
    assert "forecast.5d.rmse.p_holm" not in gate  # only the regressed horizon
    # the regressed horizon's own testcase: reported once, passed, with its comparison
    ten = {k: v for case in cases["test_backtest[10]"] for k, v in case.items()}
    assert ten["forecast.10d.rmse.status"] == "compared"
    assert float(ten["forecast.10d.rmse.delta_pct"]) > 20
    assert len(cases["test_backtest[10]"]) == 1


def test_warn_mode_reports_the_regression_without_failing(
    pytester: pytest.Pytester, champion_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_project(pytester)
    monkeypatch.setenv("FORECAST_E2E_MODELS", "10d=degraded")
    monkeypatch.setenv("FORECAST_GATE", "warn")  # the environment variable, for once

    result = run_tracked(pytester, champion_store, "--mlflow-register")

    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "forecast-mlflow: commit *; gate warn (dm, *",
            "*= forecast-mlflow =*",
            "forecast gate: REGRESSION (warn mode: the session is not failed)",
            TABLE_HEADER,
            "candidate  5d       rmse  * ok",
            "candidate  10d      rmse  * +*%    0.0*  19/19 * REGRESSED",
            "p: one-sided Diebold-Mariano*",
            f"registered candidate as {EXPERIMENT} v2",
        ]
    )
    result.stdout.no_fnmatch_line("reason: *")
    result.stdout.no_fnmatch_line("*FAILED*")
    assert champion(champion_store)[0] == "1"  # registering never moves the alias
    assert champion_store.latest().data.tags["forecast.verdict"] == "fail"


def test_an_improved_candidate_passes_and_is_promoted(
    pytester: pytest.Pytester, champion_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_project(pytester)
    monkeypatch.setenv("FORECAST_E2E_MODELS", "5d=improved,10d=improved")

    result = run_tracked(pytester, champion_store, "--mlflow-promote")

    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            f"forecast gate: PASSED against {BASELINE}",
            TABLE_HEADER,
            "candidate  5d       rmse  * -*%    1.0000  20/20 * ok",
            "candidate  10d      rmse  * -*%    1.0000  19/19 * ok",
            f"registered candidate as {EXPERIMENT} v2 and moved alias 'champion' to it",
        ]
    )
    assert champion(champion_store) == ("2", champion_store.latest().info.run_id)

    # the champion is the AR(1) as last fit (on every point but the last fold's), from the inner module
    from forecast_e2e.models import MeanReverting, make_series

    series = make_series().to_numpy()
    history = series[-40:]
    model = load_champion(champion_store, monkeypatch)
    forecast = model.predict(pd.DataFrame({"label": ["5d"], "history": [history.tolist()]}))
    expected = MeanReverting()
    expected.fit(series[:295])
    np.testing.assert_allclose(forecast["forecast"][0], expected.predict(history, 5))


def test_the_threshold_method_compares_means_of_every_gate_metric(
    pytester: pytest.Pytester, champion_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_project(pytester)
    monkeypatch.setenv("FORECAST_E2E_MODELS", "10d=degraded")

    result = run_tracked(
        pytester, champion_store, "--forecast-method", "threshold", "--forecast-gate-metrics", "rmse,mae"
    )

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "forecast-mlflow: commit *; gate fail (threshold, metrics rmse,mae, tolerance 0, alpha 0.05, min folds 10, "
            "max detectable 60%)",
            f"forecast gate: FAIL against {BASELINE}",
            TABLE_HEADER,
            "candidate  5d       rmse  * +0.00%       n/a  20/20 * ok",
            "candidate  5d       mae   * +0.00%       n/a  20/20 * ok",
            "candidate  10d      rmse  * +*%       n/a  19/19 * REGRESSED",
            "candidate  10d      mae   * +*%       n/a  19/19 * REGRESSED",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "forecast regression at 10d on rmse: candidate * vs baseline * (+*%) over 19 paired folds; "
            f"baseline {BASELINE}",
        ]
    )
    result.stdout.no_fnmatch_line("*Diebold-Mariano*")
    assert "p=" not in result.stdout.str()


def test_a_required_baseline_that_does_not_exist_fails_the_session(
    pytester: pytest.Pytester, empty_store: Store
) -> None:
    make_project(pytester)

    result = run_tracked(pytester, empty_store, "--forecast-require-baseline")

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=2, errors=1)  # no test failed: the gate did, and says so where CI looks
    result.stdout.fnmatch_lines(
        ["ERROR forecast-gate - forecast gate: candidate 5d rmse: no registered*", "*= 2 passed, 1 error in *"]
    )
    result.stdout.fnmatch_lines(
        [
            f"forecast gate: FAIL against no registered model '{EXPERIMENT}' yet",
            TABLE_HEADER,
            "candidate  5d  * no-baseline",
            "candidate  10d * no-baseline",
            "reason: candidate 5d rmse: no registered baseline (--forecast-require-baseline)",
            "reason: candidate 10d rmse: no registered baseline (--forecast-require-baseline)",
        ]
    )


@pytest.mark.slow
def test_other_data_is_compared_on_the_folds_it_shares_with_the_baseline(
    pytester: pytest.Pytester, champion_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_project(pytester)
    # 5d: the series ends 20 days earlier (all 16 folds still match); 10d: days 240..259 were revised, so the
    # five folds whose 10 scored days touch them are left out
    monkeypatch.setenv("FORECAST_E2E_DATA", "5d=short,10d=revised")

    result = run_tracked(pytester, champion_store)

    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            f"forecast gate: PASSED against {BASELINE}",
            TABLE_HEADER,
            "candidate  5d       rmse  * 16/16 * ok",
            "candidate  10d      rmse  * 14/19 * ok",
            "note: data differs from the baseline's: 14 of 19 folds with a common origin also have identical actuals "
            "and are compared",
            "note: data differs from the baseline's: 16 of 16 folds with a common origin also have identical actuals "
            "and are compared",
        ]
    )


@pytest.mark.slow
def test_no_fold_in_common_with_the_baseline_fails_the_session(
    pytester: pytest.Pytester, champion_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_project(pytester)
    monkeypatch.setenv("FORECAST_E2E_DATA", "5d=shifted,10d=shifted")  # the same values, two years later

    result = run_tracked(pytester, champion_store)

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["ERROR forecast-gate - forecast gate: candidate 5d rmse: 0 fold(s) pair with*"])
    result.stdout.fnmatch_lines(
        [
            f"forecast gate: FAIL against {BASELINE}",
            TABLE_HEADER,
            "candidate  5d  * 0/20 * no-common-folds",
            "candidate  10d * 0/19 * no-common-folds",
            "reason: candidate 5d rmse: 0 fold(s) pair with the baseline by origin; the gate needs at least 2",
            "reason: candidate 10d rmse: 0 fold(s) pair with the baseline by origin; the gate needs at least 2",
        ]
    )


def test_a_deleted_baseline_run_fails_the_session_closed(pytester: pytest.Pytester, champion_store: Store) -> None:
    make_project(pytester)
    _, deleted = champion(champion_store)
    champion_store.client().delete_run(deleted)

    result = run_tracked(pytester, champion_store)

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["ERROR forecast-gate - forecast gate: the baseline cannot be read: *"])
    result.stdout.fnmatch_lines(
        [
            "forecast gate: UNAVAILABLE against *",
            f"reason: the baseline cannot be read: the baseline {EXPERIMENT} v1 points at run {deleted}, which is "
            f"deleted; restore it (mlflow runs restore --run-id {deleted}) or move the 'champion' alias to another "
            "version",
        ]
    )
    assert champion_store.latest().data.tags["forecast.verdict"] == "unavailable"


@pytest.mark.parametrize("elsewhere", [False, True], ids=["same-experiment", "worse-run-in-another-experiment"])
def test_without_the_alias_the_best_version_is_the_baseline(
    pytester: pytest.Pytester, champion_store: Store, elsewhere: bool
) -> None:
    from mlflow.entities import Metric

    make_project(pytester)
    client = champion_store.client()
    experiment_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
    if elsewhere:  # versions of one registered model may come from runs of any experiment
        experiment_id = client.create_experiment("forecaster-legacy")
    worse = client.create_run(experiment_id, run_name="worse")
    client.log_batch(worse.info.run_id, metrics=[Metric("all/rmse_mean", 99.0, 0, 0)])
    client.set_terminated(worse.info.run_id)
    client.create_model_version(EXPERIMENT, source=f"runs:/{worse.info.run_id}/model", run_id=worse.info.run_id)
    client.delete_registered_model_alias(EXPERIMENT, "champion")

    result = run_tracked(pytester, champion_store)

    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=2)
    best = f"{EXPERIMENT} v1 (best all/rmse_mean of 2 versions, no alias 'champion', run *)"
    result.stdout.fnmatch_lines(
        [
            "forecast-mlflow: commit *; gate fail (dm, *)",
            f"forecast gate: PASSED against {best}",
        ]
    )
