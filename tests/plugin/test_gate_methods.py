"""The gate's methods as a user meets them: ``dm`` (fixed-smoothing, the default), ``dm-hln``, and what rows say.

Unit level through the gate's pure functions (``compare_record``, ``decide``, ``report``), plus one
in-process configure for the option; the end-to-end gate runs live in ``test_gate_e2e.py``.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from pytest_forecast_mlflow import report
from pytest_forecast_mlflow.gate import Baseline, BaselineHorizon, Row, compare_record, decide
from pytest_forecast_mlflow.keys import SETTINGS_KEY
from pytest_forecast_mlflow.records import Record

from ..backtest import gate_simulations as sim
from .conftest import configured

pytestmark = pytest.mark.usefixtures("hermetic")

FOLDS = 1000
HORIZON = 7


def _pair(seed: int, generate=sim.regimes, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    candidate, baseline = generate(np.random.default_rng(seed), 1, FOLDS, HORIZON, scale=scale)
    return candidate[0], baseline[0]


def _rows(candidate: np.ndarray, baseline: np.ndarray, method: str) -> list[Row]:
    origins = [f"o{k:04d}" for k in range(FOLDS)]
    actuals = [[0.0] * HORIZON for _ in origins]
    record = Record(
        nodeid="test_x.py::test_7d",
        location=("test_x.py", 1, "test_7d"),
        model="candidate",
        role="candidate",
        label="7d",
        horizon=HORIZON,
        step=1,
        origins=origins,
        actuals=actuals,
        fold_metrics={"rmse": candidate.tolist()},
        data={"data.sha256": "same"},
    )
    horizon = BaselineHorizon("7d", HORIZON, 1, origins, actuals, {"rmse": baseline.tolist()})
    champion = Baseline("fx", "3", "alias champion", "0123456789abcdef", "naive", "same", {"7d": horizon})
    rows = compare_record(record, champion, metrics=("rmse",), tolerance=0.0, alpha=0.05, method=method)
    return list(
        decide(
            rows, baseline=champion, alpha=0.05, method=method, require_baseline=False, incomplete=[], interrupted=False
        ).rows
    )


def _drifting_pair() -> tuple[np.ndarray, np.ndarray]:
    """The first seed whose equal-but-drifting pair dm-hln fails and whose persistence is plain."""
    for seed in range(200):
        candidate, baseline = _pair(seed)
        (row,) = _rows(candidate, baseline, "dm-hln")
        if row.regressed and row.comparison is not None and row.comparison.persistent:
            return candidate, baseline
    raise AssertionError("no seed in 200 gave a drifting pair that dm-hln fails")


def test_drifting_skill_is_named_in_the_verdict_and_does_not_fail_the_default() -> None:
    candidate, baseline = _drifting_pair()
    (earlier,) = _rows(candidate, baseline, "dm-hln")
    (default,) = _rows(candidate, baseline, "dm")

    assert earlier.regressed
    assert not default.regressed
    assert default.comparison is not None
    assert default.comparison.variance == "ewc"
    assert default.comparison.dof == 3
    lines = report.terminal_lines(
        decide(
            [default], baseline=None, alpha=0.05, method="dm", require_baseline=False, incomplete=[], interrupted=False
        ),
        "fail",
    )
    assert (
        "note: 7d rmse: which model is better drifts over stretches of origins (the loss differential stays "
        "correlated beyond the overlap of 7 consecutive folds, p < 0.01); the dm test's p-value allows for it"
    ) in lines
    assert lines[-1].startswith("p: one-sided Diebold-Mariano p-value, its variance from slow averages")
    assert "dm-hln assumes it does not, so its p-value is too small" in earlier.note


def test_a_regression_names_the_test_that_found_it() -> None:
    (row,) = _rows(*_pair(1, sim.random_walk, scale=1.3), "dm")

    assert row.regressed
    message = report.failure_message(row, "fx v3")
    assert "(Holm-adjusted, one-sided DM, fixed-smoothing) over 1000 paired folds" in message
    (hln,) = _rows(*_pair(1, sim.random_walk, scale=1.3), "dm-hln")
    assert "(Holm-adjusted, one-sided DM-HLN) over 1000 paired folds" in report.failure_message(hln, "fx v3")


def test_a_row_keeps_its_degrees_of_freedom_and_persistence_through_json() -> None:
    (row,) = _rows(*_pair(2), "dm")
    assert row.comparison is not None

    shipped = Row.from_json(json.loads(json.dumps(row.to_json())))

    assert shipped.comparison is not None
    assert (shipped.comparison.dof, shipped.comparison.variance) == (3, "ewc")
    assert shipped.comparison.persistence_p == pytest.approx(row.comparison.persistence_p)
    old = {k: v for k, v in row.to_json().items() if k not in ("dof", "persistence_p")}
    assert Row.from_json(old).comparison.dof is None  # type: ignore[union-attr]  # a row of an earlier version
    assert math.isnan(Row.from_json(old).comparison.persistence_p)  # type: ignore[union-attr]


@pytest.mark.parametrize("method", ["dm", "dm-hln"])
def test_both_tests_are_holm_adjusted_and_judged_for_power(method: str) -> None:
    (row,) = _rows(*_pair(3, sim.random_walk), method)

    assert row.p_adjusted == row.p_value  # one test: Holm leaves it
    assert row.regressed is False
    assert 0 < row.min_detectable_pct < 25


def test_the_earlier_test_is_chosen_by_name(pytester: pytest.Pytester) -> None:
    config = configured(pytester, "--mlflow-experiment", "probe", "--forecast-method", "dm-hln")
    assert config.stash[SETTINGS_KEY].method == "dm-hln"
    assert configured(pytester, "--mlflow-experiment", "probe").stash[SETTINGS_KEY].method == "dm"
