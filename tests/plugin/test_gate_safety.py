"""The gate reads folds, never models; it fails closed on a baseline it cannot read; names stay legal.

Each test makes its own champion in a fresh store (the shared champion template's artifacts must not
be touched), then changes that champion the way real stores go wrong.
"""

from __future__ import annotations

import shutil

import pytest

from .conftest import EXPERIMENT, Store, make_project, run_tracked

pytestmark = [pytest.mark.mlflow, pytest.mark.slow, pytest.mark.usefixtures("hermetic")]


def promote_first_run(pytester: pytest.Pytester, store: Store) -> str:
    make_project(pytester)
    result = run_tracked(pytester, store, "--mlflow-promote")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    return store.client().get_model_version_by_alias(EXPERIMENT, "champion").run_id


def test_the_gate_never_loads_the_champions_model(pytester: pytest.Pytester, empty_store: Store) -> None:
    promote_first_run(pytester, empty_store)
    artifacts = empty_store.db.parent / "mlruns"
    poisoned = 0
    for path in artifacts.rglob("*"):
        if path.is_file() and path.suffix in (".pkl", ".pth", ".pt", ".model") or path.name == "MLmodel":
            path.write_bytes(b"not a model: loading this would raise")
            poisoned += 1
    assert poisoned, f"no model files found under {artifacts}"

    result = run_tracked(pytester, empty_store)

    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.stdout.fnmatch_lines([f"forecast gate: PASSED against {EXPERIMENT} v1 (alias champion, run *)"])


def test_a_champion_without_fold_manifests_fails_closed(pytester: pytest.Pytester, empty_store: Store) -> None:
    run_id = promote_first_run(pytester, empty_store)
    (manifests,) = (empty_store.db.parent / "mlruns").rglob(f"{run_id}/artifacts/manifests")
    shutil.rmtree(manifests)

    result = run_tracked(pytester, empty_store)

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["ERROR forecast-gate - forecast gate: the baseline cannot be read: *"])
    result.stdout.fnmatch_lines(
        [
            "forecast gate: UNAVAILABLE against *",
            f"reason: the baseline cannot be read: baseline run {run_id} has no fold manifests*Promote a run logged "
            "by pytest-forecast-mlflow",
        ]
    )


ODD_LABEL_SUITE = """
    from backtest import Naive, WalkForward
    from forecast_e2e.models import data


    def test_odd_label(walk_forward):
        walk_forward(Naive(), data("5d"), WalkForward(horizon=5, step=5, initial=200), name="candidate",
                     label="5 days/[ask]?")
"""


def test_labels_from_tests_are_sanitised_into_legal_mlflow_names(pytester: pytest.Pytester, empty_store: Store) -> None:
    make_project(pytester)
    pytester.makepyfile(test_odd=ODD_LABEL_SUITE)

    result = run_tracked(pytester, empty_store, "test_odd.py")

    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    run = empty_store.latest()
    assert "5 days__ask__/rmse_mean" in run.data.metrics
    assert len(empty_store.client().get_metric_history(run.info.run_id, "5 days__ask__/rmse")) == int(
        run.data.metrics["5 days__ask__/folds"]
    )
    listed = [item.path for item in empty_store.client().list_artifacts(run.info.run_id, "manifests")]
    assert listed == ["manifests/5 days__ask__.json"]
