"""Forecast intervals and metrics of your own through the plugin: logged, plotted and gated.

The end-to-end case runs an inner project twice in subprocesses against a temporary ``sqlite:///`` store:
a Gaussian random walk whose candidate forecasts the correctly specified 90% interval (promoted), then
the same interval at half its width, which the gate must flag on ``interval_score``. The inner conftest
registers a metric of its own, gated beside the built-in ones from the command line.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import backtest
from pytest_forecast_mlflow.plots import figures
from pytest_forecast_mlflow.records import from_result

from .conftest import INNER_FLAGS, INNER_INI, Store, assert_quiet, metric_history, run_tracked

pytestmark = [pytest.mark.usefixtures("hermetic")]

MODELS = '''
    """The series and the interval candidates of the inner project."""

    import os

    import numpy as np
    import pandas as pd

    from backtest import RandomWalk


    def series() -> pd.Series:
        values = 700 + np.cumsum(np.random.default_rng(2026).normal(0.0, 1.0, 600))
        return pd.Series(values, index=pd.bdate_range("2022-01-03", periods=600), name="USD/CLP")


    class Halved(RandomWalk):
        """The correctly specified Gaussian interval at half its width."""

        def predict_quantiles_batch(self, contexts, steps, quantiles):
            last = contexts[:, -1, None, None]
            return last + 0.5 * (super().predict_quantiles_batch(contexts, steps, quantiles) - last)


    def candidate():
        return Halved() if os.environ.get("FORECAST_INTERVAL") == "halved" else RandomWalk("gaussian")
'''

CONFTEST = '''
    import numpy as np

    from backtest import register_metric


    @register_metric("cost_pesos", direction="lower")
    def cost_pesos(actual, forecast, context):
        """Pesos lost on 1,000 USD: buying short of the need costs three times an excess."""
        return 1000 * np.where(forecast < actual, 3.0, 1.0) * np.abs(forecast - actual)
'''

SUITE = """
    from backtest import Naive, WalkForward
    from interval_models import candidate, series

    SPEC = WalkForward(horizon=5, step=1, initial=300)


    def test_interval(walk_forward):
        result = walk_forward(candidate(), series(), SPEC, name="candidate", quantiles=(0.05, 0.5, 0.95))
        assert "cost_pesos" in result.fold_metrics


    def test_reference(walk_forward):
        walk_forward(Naive(), series(), SPEC, role="reference")
"""

GATE = ("--forecast-gate-metrics", "rmse,interval_score,cost_pesos")


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(INNER_INI)
    pytester.makepyfile(
        interval_models=textwrap.dedent(MODELS),
        conftest=textwrap.dedent(CONFTEST),
        test_intervals_inner=textwrap.dedent(SUITE),
    )
    pytester.syspathinsert()
    return pytester


@pytest.mark.mlflow
def test_intervals_are_logged_and_the_gate_flags_a_halved_interval_on_interval_score(
    project: pytest.Pytester, empty_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = run_tracked(project, empty_store, *GATE, "--mlflow-promote")
    assert first.ret == pytest.ExitCode.OK, first.stdout.str()
    first.assert_outcomes(passed=2)
    assert_quiet(first)

    run = next(r for r in empty_store.runs() if r.data.tags.get("forecast.role") == "candidate")
    logged = run.data.metrics
    for name in ("interval_score", "pinball", "coverage", "coverage_error", "cost_pesos"):
        assert {f"5d/{name}_mean", f"5d/{name}_median", f"5d/{name}_pooled"} <= set(logged), name
    assert (
        len(metric_history(empty_store, run.info.run_id, "5d/interval_score")) == 296
    )  # one per fold (step 1: 296 origins)
    assert abs(logged["5d/coverage_pooled"] - 0.9) < 0.08
    assert logged["5d/coverage_error_pooled"] == pytest.approx(abs(logged["5d/coverage_pooled"] - 0.9))
    reference = next(r for r in empty_store.runs() if r.data.tags.get("forecast.role") == "reference")
    assert "5d/interval_score_mean" not in reference.data.metrics  # Naive forecasts no interval

    monkeypatch.setenv("FORECAST_INTERVAL", "halved")
    second = run_tracked(project, empty_store, *GATE)

    assert second.ret == pytest.ExitCode.TESTS_FAILED
    second.assert_outcomes(passed=2, errors=1)
    second.stdout.fnmatch_lines(["forecast gate: 5d interval_score regressed (test_interval)"])
    second.stdout.fnmatch_lines(
        [
            "candidate  5d       rmse  * +0.00%  * ok",
            "candidate  5d       interval_score  * +*%  * REGRESSED",
            "candidate  5d       cost_pesos  * +0.00%  * ok",
        ]
    )


def test_coverage_cannot_gate_and_the_message_says_what_can(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_never_runs(): raise AssertionError")

    result = pytester.runpytest("--mlflow-experiment", "fx", "--forecast-gate-metrics", "rmse,coverage")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*'coverage' cannot gate: it is best at its nominal level*; gate on coverage_error (its distance to the "
         "nominal level, lower is better) or interval_score"]
    )  # fmt: skip


def test_a_misspelt_metric_of_your_own_is_a_usage_error_listing_the_registered_ones(project) -> None:
    # a subprocess, as users run it: pytest reads the command line once before the conftest registers
    # cost_pesos (the name waits) and once after (then it must be known)
    result = project.runpytest_subprocess(
        *INNER_FLAGS, "--mlflow-experiment", "fx", "--forecast-gate-metrics", "rmse,cost_peso"
    )

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*unknown gate metric(s) 'cost_peso'; known metrics: rmse, *, interval_score, cost_pesos; a metric of your "
         "own must be registered before the options are read (backtest.register_metric in conftest.py)"]
    )  # fmt: skip


def test_a_gate_metric_nothing_registered_is_refused_before_any_test_runs(pytester: pytest.Pytester) -> None:
    # no conftest imports backtest: the command line's parse lets the name wait, the configured session does not
    pytester.makepyfile("def test_never_runs(): raise AssertionError")

    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--mlflow-experiment", "fx", "--forecast-gate-metrics", "rmse,cost_peso"
    )

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--forecast-gate-metrics: unknown gate metric(s) 'cost_peso'; known metrics: rmse, *, interval_score; "
         "correct the name, or register a metric of your own with backtest.register_metric in a conftest.py*"]
    )  # fmt: skip
    assert "test_never_runs" not in result.stdout.str()
    assert not (pytester.path / "data").exists()  # refused before a store was made


def test_a_gate_metric_registered_nowhere_is_named_by_the_fixture() -> None:
    # the command line is read once before any conftest: a name nothing registered is named when a test runs
    from pytest_forecast_mlflow.fixtures import _wanted

    with pytest.raises(ValueError, match=r"gate metric 'cost_peso' \(--forecast-gate-metrics\) is neither built in"):
        _wanted(None, None, ("rmse", "cost_peso"), "candidate")
    assert _wanted(None, None, ("interval_score",), "reference") == backtest.DEFAULT_METRICS
    # a candidate is asked for the interval gate metric; without quantiles the backtest says what is missing
    assert _wanted(None, None, ("interval_score",), "candidate")[-1] == "interval_score"
    with pytest.raises(ValueError, match="metric 'interval_score' scores quantile forecasts, and none were asked"):
        backtest.run(
            backtest.Naive(),
            np.arange(30.0),
            backtest.WalkForward(horizon=2, initial=10),
            metrics=_wanted(None, None, ("interval_score",), "candidate"),
        )


def test_the_coverage_plot_shows_each_step_against_the_nominal_level(tmp_path: Path) -> None:
    values = 100 + np.cumsum(np.random.default_rng(5).normal(0, 1, 120))
    series = pd.Series(values, index=pd.bdate_range("2024-01-01", periods=120))
    result = backtest.run(
        backtest.RandomWalk(), series, backtest.WalkForward(horizon=4, step=5, initial=50), quantiles=(0.1, 0.9)
    )
    record = from_result(
        result, nodeid="t.py::t", location=("t.py", 1, "t"), role="candidate", label="4d", data_source=""
    )
    assert record.nominal == pytest.approx(0.8)
    assert len(record.coverage_by_step) == 4

    written = [path.name for path in figures(record, tmp_path)]

    assert written[-1] == "4d_coverage_by_step.png"
    assert (tmp_path / written[-1]).read_bytes()[:4] == b"\x89PNG"
    assert "4d_coverage_by_step.png" not in [p.name for p in figures(from_result(
        backtest.run(backtest.Naive(), series, backtest.WalkForward(horizon=4, step=5, initial=50)),
        nodeid="t.py::t", location=("t.py", 1, "t"), role="candidate", label="4d", data_source="",
    ), tmp_path)]  # fmt: skip
