"""The multi-horizon gate methods ``mh-aspa`` and ``mh-uspa``: one joint test of a model's metric over all horizons.

End to end through the inner suite (horizons 5 and 10, about 20 folds each, see conftest) for what a user
relies on: a candidate worse at every horizon fails the session under either method, an equal one passes,
and the method is recorded on the registered version. The plain-words verdict, the fallback to one
horizon, and the refusal of too few common origins are checked on the gate's pure functions.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from pytest_forecast_mlflow import report
from pytest_forecast_mlflow.gate import Baseline, BaselineHorizon, Row, Verdict, compare_record, decide

from .conftest import EXPERIMENT, Store, candidate_record, make_project, run_tracked

pytestmark = pytest.mark.usefixtures("hermetic")

BASELINE = f"{EXPERIMENT} v1 (alias champion, run *)"


@pytest.mark.mlflow
@pytest.mark.parametrize(
    ("method", "words"),
    [
        ("mh-aspa", "the candidate is worse on the average over the horizons: REGRESSED"),
        ("mh-uspa", "the candidate is worse at every horizon: REGRESSED"),
    ],
)
def test_a_candidate_worse_at_every_horizon_fails_the_joint_test(
    pytester: pytest.Pytester, champion_store: Store, monkeypatch: pytest.MonkeyPatch, method: str, words: str
) -> None:
    make_project(pytester)
    monkeypatch.setenv("FORECAST_E2E_MODELS", "5d=degraded,10d=degraded")

    result = run_tracked(pytester, champion_store, "--forecast-method", method, "--mlflow-register")

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            f"forecast-mlflow: commit *; gate fail ({method}, *",
            "*_ ERROR at setup of forecast-gate _*",
            "forecast regression at 5d on rmse: * (Holm-adjusted, one-sided * multi-horizon SPA over all horizons) *",
            f"forecast gate: FAIL against {BASELINE}",
            "candidate  5d       rmse  * +*%  * 20/20 * REGRESSED",
            "candidate  10d      rmse  * +*%  * 19/19 * REGRESSED",
            f"note: candidate rmse over 5d, 10d (19 origins every horizon scored): {method} p=* (Holm over 1 joint "
            f"test): {words}*",
            "p: the joint test's one-sided p-value *",
        ]
    )
    version = champion_store.client().get_model_version(EXPERIMENT, "2")
    assert (version.tags["forecast.gate.method"], version.tags["forecast.verdict"]) == (method, "fail")


@pytest.mark.mlflow
def test_an_equal_candidate_passes_the_joint_test(pytester: pytest.Pytester, champion_store: Store) -> None:
    make_project(pytester)

    result = run_tracked(pytester, champion_store, "--forecast-method", "mh-uspa", "--forecast-json=gate.json")

    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            f"forecast gate: PASSED against {BASELINE}",
            "candidate  5d       rmse  * +0.00%    1.0000  20/20 * ok",
            "candidate  10d      rmse  * +0.00%    1.0000  19/19 * ok",
            "note: candidate rmse over 5d, 10d (19 origins every horizon scored): mh-uspa p=1.0000 * not shown worse "
            "at every horizon, so it passes. This test fails a candidate only when it is worse at every horizon*",
        ]
    )
    payload = json.loads((pytester.path / "gate.json").read_text())
    assert [(row["method"], row["regressed"]) for row in payload["rows"]] == [("mh-uspa", False)] * 2
    assert all("paired" not in row for row in payload["rows"])  # the folds decide; the report stays small


# -- the decision on the gate's pure functions ---------------------------------------------------------------

FOLDS = 200


def _verdict(
    method: str,
    scales: dict[int, float],
    folds: int = FOLDS,
    *,
    metrics: tuple[str, ...] = ("rmse",),
    tolerance: float = 0.0,
    **limits: float,
) -> Verdict:
    """The verdict on a candidate whose per-fold RMSE (and MAE, 0.8 of it) is the champion's times
    ``scales[h]`` (plus noise), its rows shipped through JSON as xdist workers ship them."""
    rng = np.random.default_rng(11)
    origins = [f"o{k:04d}" for k in range(folds)]
    horizons, records = {}, []
    for k, (horizon, scale) in enumerate(scales.items()):
        label = f"{horizon}d"
        champion = rng.gamma(8.0, 1.0, folds)
        horizons[label] = BaselineHorizon(
            label,
            horizon,
            1,
            origins,
            [[0.0] * horizon] * folds,
            {"rmse": champion.tolist(), "mae": (0.8 * champion).tolist()},
        )
        candidate = champion * scale * rng.lognormal(0.0, 0.05, folds)
        first = 0 if k == 0 else folds // 10  # the later horizons scored fewer origins: the joint test uses the common
        values = candidate[first:]
        records.append(
            candidate_record(label, horizon, origins[first:], {"rmse": values.tolist(), "mae": (0.8 * values).tolist()})
        )
    baseline = Baseline("fx", "3", "alias champion", "0123456789abcdef", "naive", "same", horizons)
    shipped = [
        Row.from_json(json.loads(json.dumps(row.to_json())))
        for record in records
        for row in compare_record(record, baseline, metrics=metrics, tolerance=tolerance, alpha=0.05, method=method)
    ]
    return decide(
        shipped,
        baseline=baseline,
        alpha=0.05,
        method=method,
        require_baseline=False,
        incomplete=[],
        interrupted=False,
        **limits,  # type: ignore[arg-type]
    )


def test_worse_at_one_horizon_only_fails_the_average_test_and_passes_the_uniform_one() -> None:
    scales = {1: 1.15, 5: 1.0, 10: 1.0}
    average, uniform = _verdict("mh-aspa", scales), _verdict("mh-uspa", scales)

    assert average.status == "fail"
    # REGRESSED where the candidate is worse: 1d, and any other horizon whose mean went up
    assert {row.label for row in average.regressions} == {row.label for row in average.rows if row.delta_pct > 0}
    assert "1d" in {row.label for row in average.regressions}
    assert uniform.status == "pass"
    lines = report.terminal_lines(uniform, "fail")
    assert any(
        "(180 origins every horizon scored)" in line and "worse at some horizons only passes" in line for line in lines
    )


def test_one_horizon_falls_back_to_its_own_dm_test() -> None:
    verdict = _verdict("mh-aspa", {1: 1.3})

    assert verdict.status == "fail"
    (row,) = verdict.rows
    assert row.p_adjusted == row.p_value < 0.05  # the dm test's own p-value, one test in the family
    assert (
        "note: candidate rmse: only 1d was compared, so its own dm test decides (mh-aspa needs two horizons or more)"
        in (report.terminal_lines(verdict, "fail"))
    )


def test_too_few_common_origins_make_the_verdict_inconclusive_with_cause_and_fix() -> None:
    verdict = _verdict("mh-uspa", {1: 1.0, 30: 1.0}, folds=40)

    assert verdict.status == "inconclusive"
    (reason,) = verdict.reasons
    assert reason.startswith(
        "candidate rmse over 1d, 30d: inconclusive, the mh-uspa test cannot be made: 36 common origins are too few "
        "for blocks of 60 (twice the deepest overlap of 30): the bootstrap needs at least 120; add origins (a smaller "
        "step, a longer history) (--forecast-method dm compares horizon by horizon)"
    )


def test_min_folds_and_max_detectable_apply_to_the_joint_test() -> None:
    few = _verdict("mh-aspa", {1: 1.0, 5: 1.0}, min_folds=500)
    weak = _verdict("mh-aspa", {1: 1.0, 5: 1.0}, max_detectable_pct=0.01)

    assert (few.status, weak.status) == ("inconclusive", "inconclusive")
    assert "180 origins every horizon scored (need 500, --forecast-min-folds)" in few.reasons[0]
    assert "smallest detectable regression" in weak.reasons[0]
    assert "--forecast-max-detectable" in weak.reasons[0]


def test_the_tolerance_is_allowed_at_every_horizon_and_holm_counts_one_test_per_metric() -> None:
    worse = {1: 1.1, 5: 1.1}
    strict = _verdict("mh-aspa", worse, metrics=("rmse", "mae"))
    tolerant = _verdict("mh-aspa", worse, metrics=("rmse", "mae"), tolerance=0.2)

    assert strict.status == "fail"
    assert {(row.label, row.metric) for row in strict.regressions} == {
        ("1d", "rmse"),
        ("5d", "rmse"),
        ("1d", "mae"),
        ("5d", "mae"),
    }
    assert any("mh-aspa p=<0.0001 (Holm over 2 joint tests)" in line for line in report.terminal_lines(strict, "fail"))
    assert tolerant.status == "pass"  # 10% worse is within a 20% tolerance
