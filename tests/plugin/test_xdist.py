"""Under pytest-xdist, workers compute and the controller decides: ``-n 2`` must log and judge exactly
what ``-n 0`` does.

Both sessions run the same inner suite (with a candidate that regressed at 10d, so there is a verdict
worth comparing) against two copies of the same champion store; the runs they leave are then compared
param by param and metric history by metric history.
"""

from __future__ import annotations

import numpy as np
import pytest

from .conftest import NODE_10D, make_project, metric_history, run_tracked

pytestmark = [pytest.mark.mlflow, pytest.mark.usefixtures("hermetic")]


def section(result: pytest.RunResult) -> list[str]:
    """The forecast-mlflow summary section, minus the lines naming run ids."""
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines) if "= forecast-mlflow =" in line)
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("="))
    return [line for line in lines[start + 1 : end] if not line.startswith("logged ")]


def test_two_workers_log_and_judge_exactly_what_one_process_does(
    pytester: pytest.Pytester, copy_champion, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_project(pytester)
    monkeypatch.setenv("FORECAST_E2E_MODELS", "10d=degraded")
    store_n2, store_n0 = copy_champion("store-n2"), copy_champion("store-n0")

    parallel = run_tracked(pytester, store_n2, "-n", "2")
    serial = run_tracked(pytester, store_n0, "-n", "0")

    for result in (parallel, serial):
        assert result.ret == pytest.ExitCode.TESTS_FAILED
        result.assert_outcomes(passed=2, failed=1)
        result.stdout.fnmatch_lines([
            "forecast regression at 10d on rmse: candidate * vs baseline * (+*%), p=0.0* (Holm-adjusted, one-sided "
            "DM-HLN) over 19 paired folds; baseline * v1 (alias champion, run *)",
        ])
        result.stdout.fnmatch_lines([f"FAILED {NODE_10D.replace('[', '[[]')} - forecast regression at 10d on r*"])
    parallel.stdout.fnmatch_lines(["created: 2/2 workers", "2 workers [[]2 items]"])
    assert section(parallel) == section(serial)
    assert any(line.endswith("REGRESSED") for line in section(parallel))

    assert len(store_n2.runs()) == len(store_n0.runs()) == 2  # the champion's run and this session's
    run_n2, run_n0 = store_n2.latest(), store_n0.latest()
    assert run_n2.info.run_name == run_n0.info.run_name == "candidate"
    assert run_n2.info.status == run_n0.info.status == "FAILED"
    assert run_n2.data.params == run_n0.data.params
    for tag in ("forecast.verdict", "forecast.baseline", "forecast.horizons", "forecast.tests"):
        assert run_n2.data.tags[tag] == run_n0.data.tags[tag], tag
    assert run_n2.data.tags["forecast.verdict"] == "fail"

    keys = set(run_n2.data.metrics)
    assert keys == set(run_n0.data.metrics)
    assert {"5d/rmse", "10d/rmse", "all/rmse_mean", "gate/10d/rmse_p", "gate/10d/rmse_delta_pct"} <= keys
    for key in sorted(keys):
        n2 = metric_history(store_n2, run_n2.info.run_id, key)
        n0 = metric_history(store_n0, run_n0.info.run_id, key)
        assert [step for step, _ in n2] == [step for step, _ in n0], key
        np.testing.assert_array_equal([value for _, value in n2], [value for _, value in n0], err_msg=key)
