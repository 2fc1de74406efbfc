"""The plugin switched off, its entry point, its options' help, and what the report header shows.

Off (no ``--mlflow-experiment``) the ``walk_forward`` fixture still runs backtests, but nothing imports
mlflow and nothing touches a store. The first case proves it in a fresh interpreter; the others run
in-process, which is safe because the root conftest imported numpy and pandas first.
"""

from __future__ import annotations

import dataclasses

import pytest

from pytest_forecast_mlflow.keys import SETTINGS_KEY
from pytest_forecast_mlflow.session import ForecastSession
from pytest_forecast_mlflow.store import mask_text, mask_uri

from .conftest import INNER_FLAGS, configured, make_project

pytestmark = pytest.mark.usefixtures("hermetic")

OFF_SUITE = """
    import sys

    import backtest
    from backtest import Naive, WalkForward
    from forecast_e2e.models import make_series


    def test_the_fixture_returns_the_backtest(walk_forward):
        result = walk_forward(Naive(), make_series(), WalkForward(horizon=5, step=5, initial=200))
        assert isinstance(result, backtest.BacktestResult)
        assert (result.model, result.horizon, result.n_folds) == ("Naive", 5, 20)
        assert "mlflow" not in sys.modules


    def test_nothing_imported_mlflow_by_the_end(walk_forward):
        walk_forward(Naive(), make_series(), WalkForward(horizon=10, step=5, initial=200), role="reference")
        assert "mlflow" not in sys.modules
"""


def test_off_the_fixture_backtests_without_mlflow_or_a_store(pytester: pytest.Pytester) -> None:
    make_project(pytester)
    pytester.makepyfile(test_off=OFF_SUITE)

    result = pytester.runpytest_subprocess(*INNER_FLAGS, "test_off.py")

    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["plugins: *forecast-mlflow-0.1.0*"])  # loaded through the pytest11 entry point
    result.stdout.no_fnmatch_line("forecast-mlflow:*")  # no header lines
    result.stdout.no_fnmatch_line("*= forecast-mlflow =*")  # no summary section
    assert not (pytester.path / "data").exists()
    assert not list(pytester.path.rglob("*.db"))
    assert not list(pytester.path.rglob("mlruns"))


def test_off_model_errors_fail_the_test_that_ran_the_backtest(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import numpy as np
        from backtest import WalkForward


        class Broken:
            def fit(self, history):
                pass

            def predict(self, history, steps):
                raise ValueError("no forecast today")


        def test_broken(walk_forward):
            walk_forward(Broken(), np.arange(30.0), WalkForward(horizon=2, step=5, initial=20))


        def test_too_short(walk_forward):
            walk_forward(Broken(), np.arange(10.0), WalkForward(horizon=2, step=5, initial=20))
        """
    )

    result = pytester.runpytest()

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            "*ModelError: fold 0 (origin 19): ValueError: no forecast today",
            "*SpecificationError: series has 10 points; initial 20 + gap 0 + horizon 2 needs at least 22 "
            "for one fold.*",
        ]
    )


def test_off_the_fixture_checks_its_arguments(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import numpy as np
        import pytest
        from backtest import Naive, WalkForward


        def test_role(walk_forward):
            with pytest.raises(ValueError, match="role must be 'candidate' or 'reference', got 'champion'"):
                walk_forward(Naive(), np.arange(30.0), WalkForward(horizon=2, step=5, initial=20), role="champion")


        def test_names(walk_forward):
            spec = WalkForward(horizon=2, step=5, initial=20)
            assert walk_forward(Naive(), np.arange(30.0), spec).model == "Naive"
            assert walk_forward(Naive(), np.arange(30.0), spec, name="rw").model == "rw"
        """
    )

    result = pytester.runpytest("-v")

    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*::test_role PASSED*", "*::test_names PASSED*"])


def test_the_fixture_is_documented(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--fixtures")

    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "walk_forward -- *fixtures.py:*",
            "*Run a walk-forward backtest inside a test and record it for MLflow and the regression gate.",
        ]
    )


def test_help_lists_every_option_in_one_group(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")

    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "walk-forward backtests tracked in MLflow:",
            "  --mlflow-experiment=MLFLOW_EXPERIMENT",
            "*Log backtests to this MLflow experiment (switches the*",
            "*--forecast-tolerance=FORECAST_TOLERANCE*",
            "*--forecast-report=FORECAST_REPORT*",
        ]
    )
    result.stdout.fnmatch_lines(["  mlflow_experiment (string):*", "  forecast_gate (string):*"])


# -- what the header says ----------------------------------------------------------------------------


def test_the_header_masks_credentials_in_the_tracking_uri(pytester: pytest.Pytester) -> None:
    # a server with credentials cannot be reached from here, so the session object is built directly
    config = configured(pytester, "--mlflow-experiment", "usdclp", "--forecast-tolerance", "2%")
    settings = dataclasses.replace(config.stash[SETTINGS_KEY], tracking_uri="https://fx-bot:s3cr3t@mlflow.example.com/")

    first, second = ForecastSession(config, settings).header_lines()

    assert first == "forecast-mlflow: experiment 'usdclp' at https://***@mlflow.example.com/"
    assert second == (
        "forecast-mlflow: commit unknown; gate fail (dm, metrics rmse, tolerance 0.02, alpha 0.05, min folds 30, "
        "max detectable 25%)"
    )
    assert "s3cr3t" not in first + second


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("https://fx-bot:s3cr3t@mlflow.example.com/api", "https://***@mlflow.example.com/api"),
        ("http://token@127.0.0.1:5000", "http://***@127.0.0.1:5000"),
        ("postgresql+psycopg://user:p%40ss@db:5432/mlflow", "postgresql+psycopg://***@db:5432/mlflow"),
        ("https://user:p@ss@mlflow.example.com", "https://***@mlflow.example.com"),  # a raw '@' in the password
        ("https://mlflow.example.com/#/experiments/a@b", "https://mlflow.example.com/#/experiments/a@b"),
        ("sqlite:////tmp/store/mlflow.db", "sqlite:////tmp/store/mlflow.db"),
    ],
)
def test_mask_uri(uri: str, shown: str) -> None:
    assert mask_uri(uri) == shown


def test_credentials_are_masked_inside_messages() -> None:
    text = "POST https://a:b@one.example/x failed; retried http://c:d@two.example:80/ too"

    assert mask_text(text) == "POST https://***@one.example/x failed; retried http://***@two.example:80/ too"
