"""Under pytest-xdist, workers compute and the controller decides: ``-n 4`` must log and
judge exactly what ``-n 0`` does.

Both sessions run the same inner suite (a candidate that regressed at 10d, so there is a verdict worth
comparing, and a naive reference at two horizons) against two copies of the same champion store; the
runs they leave are then compared model by model, param by param and metric history by metric history.
"""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import make_project, metric_history, run_tracked

pytestmark = [pytest.mark.mlflow, pytest.mark.usefixtures("hermetic")]


def section(result: pytest.RunResult) -> list[str]:
    """The forecast-mlflow summary section, minus the lines naming run ids."""
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if "= forecast-mlflow =" in line)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("="))
    return [line for line in lines[start + 1 : end] if not line.startswith("logged ")]


REFERENCE_SUITE = """
    import pytest

    from backtest import Naive, WalkForward
    from forecast_e2e.models import data


    @pytest.mark.parametrize("horizon", [5, 10])
    def test_reference(walk_forward, horizon):
        spec = WalkForward(horizon=horizon, step=5, initial=200)
        walk_forward(Naive(), data(f"{horizon}d"), spec, name="naive", role="reference")
"""


def test_workers_log_and_judge_exactly_what_one_process_does(
    pytester: pytest.Pytester, copy_champion, monkeypatch: pytest.MonkeyPatch
) -> None:
    # four workers for four tests: every test on a worker of its own, the most scattered a session gets
    # (two workers cost as much and check less; test_concurrency runs -n 4 on a fresh store as well)
    make_project(pytester)
    pytester.makepyfile(test_reference=REFERENCE_SUITE)
    monkeypatch.setenv("FORECAST_E2E_MODELS", "10d=degraded")
    store_par, store_n0 = copy_champion("store-parallel"), copy_champion("store-n0")

    parallel = run_tracked(pytester, store_par, "-n", "4")
    serial = run_tracked(pytester, store_n0, "-n", "0")

    for result in (parallel, serial):
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        result.assert_outcomes(passed=4, errors=1)  # each test once; the verdict is the one error
        result.stdout.fnmatch_lines(
            [
                "forecast regression at 10d on rmse: candidate * vs baseline * (+*%), p=0.0* (Holm-adjusted, one-sided "
                "DM-HLN) over 19 paired folds; baseline * v1 (alias champion, run *)",
            ]
        )
        result.stdout.fnmatch_lines(["ERROR forecast-gate - forecast gate: 10d rmse regressed (test_backtest[[]10])"])
    parallel.stdout.fnmatch_lines(["created: 4/4 workers", "4 workers [[]4 items]"])
    assert section(parallel) == section(serial)
    assert any(line.endswith("REGRESSED") for line in section(parallel))

    # the champion's run, then this session's candidate and reference
    assert len(store_par.runs()) == len(store_n0.runs()) == 3
    runs_par = {run.data.tags["forecast.model"]: run for run in store_par.runs()[1:]}
    runs_n0 = {run.data.tags["forecast.model"]: run for run in store_n0.runs()[1:]}
    assert sorted(runs_par) == sorted(runs_n0) == ["candidate", "naive"]
    assert runs_par["candidate"].data.tags["forecast.verdict"] == "fail"
    for name, run_par in runs_par.items():
        run_n0 = runs_n0[name]
        assert run_par.info.status == run_n0.info.status == ("FAILED" if name == "candidate" else "FINISHED")
        assert run_par.data.params == run_n0.data.params
        for tag in ("forecast.role", "forecast.verdict", "forecast.baseline", "forecast.horizons", "forecast.tests"):
            assert run_par.data.tags.get(tag) == run_n0.data.tags.get(tag), tag

        keys = set(run_par.data.metrics)
        assert keys == set(run_n0.data.metrics)
        assert {"5d/rmse", "10d/rmse", "5d/mape", "10d/directional_accuracy", "all/rmse_mean"} <= keys
        for key in sorted(keys):
            par = metric_history(store_par, run_par.info.run_id, key)
            n0 = metric_history(store_n0, run_n0.info.run_id, key)
            assert [step for step, _ in par] == [step for step, _ in n0], (name, key)
            np.testing.assert_array_equal(
                [value for _, value in par], [value for _, value in n0], err_msg=f"{name} {key}"
            )
    assert {"gate/10d/rmse_p", "gate/10d/rmse_delta_pct"} <= set(runs_par["candidate"].data.metrics)
