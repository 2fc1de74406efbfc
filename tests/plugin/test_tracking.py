"""What a session leaves in MLflow: one run per model with params, stepped and aggregate metrics, fold
manifests, plots, the verdict and tags, and a terminal status that says how the session ended.

Every inner session runs in a subprocess against a temporary ``sqlite:///`` store; the outer test then
reads the store back with ``MlflowClient``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import numpy as np
import pytest

import backtest

from .conftest import EXPERIMENT, INNER_FLAGS, SUITE, Store, make_project, metric_history, run_tracked

pytestmark = [pytest.mark.mlflow, pytest.mark.usefixtures("hermetic")]

REFERENCE_SUITE = """
    from backtest import Naive, WalkForward
    from forecast_e2e.models import data


    def test_naive_reference(walk_forward):
        walk_forward(Naive(), data("5d"), WalkForward(horizon=5, step=5, initial=200), name="naive", role="reference")
"""


def git(folder: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=CI", "-c", "user.email=ci@example.com", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def statuses(store: Store) -> dict[str, str]:
    return {run.data.tags["forecast.model"]: run.info.status for run in store.runs()}


def expected_backtest(model, horizon: int) -> backtest.BacktestResult:
    """The same backtest the inner session ran, computed here, to check what was logged value by value."""
    from forecast_e2e.models import make_series  # importable once make_project() ran

    return backtest.run(model, make_series(), backtest.WalkForward(horizon=horizon, step=5, initial=200))


def test_a_session_logs_one_run_per_model(
    pytester: pytest.Pytester, empty_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_project(pytester)
    pytester.makepyfile(test_reference=REFERENCE_SUITE)
    git(pytester.path, "init", "-q", "-b", "main")
    git(pytester.path, "remote", "add", "origin", "https://fx-bot:s3cr3t@github.com/fx/models.git")
    git(pytester.path, "add", ".")
    git(pytester.path, "commit", "-q", "-m", "models")
    commit = git(pytester.path, "rev-parse", "HEAD")
    monkeypatch.setenv("FORECAST_E2E_MODELS", "10d=improved")

    result = run_tracked(
        pytester, empty_store, "--mlflow-run-name", "nightly", "--mlflow-tag", "team=fx", "--mlflow-plots", "on"
    )

    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            f"forecast-mlflow: experiment '{EXPERIMENT}' at {empty_store.uri}",
            f"forecast-mlflow: commit {commit[:12]}; gate fail (dm, metrics rmse, tolerance 0, alpha 0.05, "
            "min folds 10, max detectable 60%)",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*= forecast-mlflow =*",
            f"forecast gate: nothing to compare against (no registered model '{EXPERIMENT}' yet); the session passes "
            "ungated",
            f"logged candidate candidate: run * in experiment '{EXPERIMENT}' ({empty_store.uri})",
            f"logged reference naive: run * in experiment '{EXPERIMENT}' ({empty_store.uri})",
            "skill against the random walk (Theil's U: pooled RMSE over the no-change forecast's; < 1 beats it):",
            "  candidate 5d: Theil's U 1.000",
            "  candidate 10d: Theil's U 0.*",
        ]
    )
    assert "s3cr3t" not in result.stdout.str() + result.stderr.str()
    assert not (pytester.path / "data").exists()  # the default store under the rootdir is never touched

    runs = {run.info.run_name: run for run in empty_store.runs()}
    assert sorted(runs) == ["nightly-candidate", "nightly-naive"]
    candidate, reference = runs["nightly-candidate"], runs["nightly-naive"]
    assert (candidate.info.status, reference.info.status) == ("FINISHED", "FINISHED")

    # params: the schedule per horizon, the data fingerprint, the model, the versions
    params = candidate.data.params
    assert {k: params[k] for k in ("5d.horizon", "5d.step", "5d.initial", "5d.gap", "5d.window", "10d.horizon")} == {
        "5d.horizon": "5",
        "5d.step": "5",
        "5d.initial": "200",
        "5d.gap": "0",
        "5d.window": "expanding",
        "10d.horizon": "10",
    }
    assert (params["data.length"], params["data.first"], params["data.last"]) == ("300", "2021-01-04", "2022-02-25")
    assert len(params["data.sha256"]) == 64
    assert params["10d.model.kind"] == "ar1"  # only the 10d model has it: logged per label
    assert "model.kind" not in params
    assert params["version.pytest-forecast-mlflow"] == "0.1.0"
    assert params["version.numpy"] == np.__version__
    assert {"version.python", "version.mlflow", "version.pandas"} <= set(params)
    assert reference.data.params["data.sha256"] == params["data.sha256"]

    # tags
    tags = candidate.data.tags
    assert tags["forecast.model"] == "candidate"
    assert tags["forecast.role"] == "candidate"
    assert tags["forecast.verdict"] == "no-baseline"
    assert tags["forecast.horizons"] == "5d,10d"
    assert tags["forecast.plugin_version"] == "0.1.0"
    assert len(tags["forecast.session"]) == 32
    assert reference.data.tags["forecast.session"] == tags["forecast.session"]
    assert reference.data.tags["forecast.role"] == "reference"
    assert "forecast.verdict" not in reference.data.tags
    assert tags["mlflow.source.git.commit"] == commit
    assert tags["git.branch"] == "main"
    assert tags["git.dirty"] == "false"
    assert tags["mlflow.source.git.repoURL"] == "https://***@github.com/fx/models.git"
    assert tags["team"] == "fx"

    # metrics: one step per fold, step-less aggregates named after what they aggregate
    run_id = candidate.info.run_id
    from forecast_e2e.models import MeanReverting

    expected = {5: expected_backtest(backtest.Naive(), 5), 10: expected_backtest(MeanReverting(), 10)}
    for horizon, backtest_result in expected.items():
        label = f"{horizon}d"
        history = metric_history(empty_store, run_id, f"{label}/rmse")
        assert [step for step, _ in history] == list(range(backtest_result.n_folds))
        np.testing.assert_allclose([value for _, value in history], backtest_result.fold_metrics["rmse"])
        metrics = candidate.data.metrics
        assert metrics[f"{label}/folds"] == backtest_result.n_folds
        assert metrics[f"{label}/rmse_mean"] == pytest.approx(np.mean(backtest_result.fold_metrics["rmse"]))
        assert metrics[f"{label}/rmse_median"] == pytest.approx(np.median(backtest_result.fold_metrics["rmse"]))
        assert metrics[f"{label}/rmse_pooled"] == pytest.approx(backtest_result.pooled["rmse"])
        assert metrics[f"{label}/mae_mean"] == pytest.approx(np.mean(backtest_result.fold_metrics["mae"]))
        for name in ("mae", "mape", "directional_accuracy"):
            stepped = metric_history(empty_store, run_id, f"{label}/{name}")
            assert [step for step, _ in stepped] == list(range(backtest_result.n_folds))
            np.testing.assert_allclose([value for _, value in stepped], backtest_result.fold_metrics[name])
            assert metrics[f"{label}/{name}_pooled"] == pytest.approx(backtest_result.pooled[name], nan_ok=True)
    assert metrics["all/rmse_mean"] == pytest.approx((metrics["5d/rmse_mean"] + metrics["10d/rmse_mean"]) / 2)
    assert [step for step, _ in metric_history(empty_store, run_id, "5d/rmse_mean")] == [0]

    # the experiment was created with a tag saying by what; the series is the run's dataset input
    experiment = empty_store.client().get_experiment_by_name(EXPERIMENT)
    assert experiment.tags["forecast.created_by"] == "pytest-forecast-mlflow 0.1.0"
    (dataset_input,) = empty_store.client().get_run(run_id).inputs.dataset_inputs
    assert dataset_input.dataset.digest == params["data.sha256"][:12]
    assert [(tag.key, tag.value) for tag in dataset_input.tags] == [("mlflow.data.context", "backtest")]

    # artifacts
    client = empty_store.client()
    (pytester.path / "out").mkdir()  # MLflow 2.x refuses a destination that does not exist
    manifest = client.download_artifacts(run_id, "manifests/5d.json", str(pytester.path / "out"))
    manifest = json.loads(Path(manifest).read_text())
    naive_5d = expected[5]
    assert (manifest["label"], manifest["horizon"], manifest["step"], len(manifest["folds"])) == ("5d", 5, 5, 20)
    first = manifest["folds"][0]
    assert (first["fold"], first["origin"], first["train"]) == (0, "2021-10-08", [0, 200])
    np.testing.assert_allclose(first["actuals"], naive_5d.actuals[0])
    np.testing.assert_allclose(first["forecasts"], naive_5d.forecasts[0])
    assert first["metrics"]["rmse"] == pytest.approx(naive_5d.fold_metrics["rmse"][0])
    assert [fold["origin"] for fold in manifest["folds"]][-1] == "2022-02-18"

    plots = sorted(a.path for a in client.list_artifacts(run_id, "plots"))
    assert plots == [
        f"plots/{label}_{name}.png"
        for label in ("10d", "5d")
        for name in ("error_by_step", "fold_error_vs_champion", "forecast_vs_actual")
    ]
    png = Path(client.download_artifacts(run_id, plots[0], str(pytester.path / "out")))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    verdict = json.loads(
        Path(client.download_artifacts(run_id, "gate/verdict.json", str(pytester.path / "out"))).read_text()
    )
    assert verdict["status"] == "no-baseline"
    assert [row["label"] for row in verdict["rows"]] == ["5d", "10d"]

    reference_artifacts = {a.path for a in client.list_artifacts(reference.info.run_id)}
    # a reference is not gated, logs no model and no plots of its own: it is drawn on the candidate's
    assert reference_artifacts == {"manifests"}


SHIFTED_REFERENCE_SUITE = """
    import os

    import numpy as np

    from backtest import WalkForward
    from forecast_e2e.models import data


    class Shifted:
        # a change of code that no param shows: REFERENCE_SHIFT moves every forecast
        def fit(self, history):
            pass

        def predict(self, history, steps):
            return np.repeat(history[-1] + float(os.environ.get("REFERENCE_SHIFT", "0")), steps)


    def test_naive_reference(walk_forward):
        walk_forward(Shifted(), data("5d"), WalkForward(horizon=5, step=5, initial=200), name="naive", role="reference")
"""


def test_an_unchanged_reference_is_not_logged_again_and_a_changed_one_is(
    pytester: pytest.Pytester, empty_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_project(pytester)
    pytester.makepyfile(test_reference=SHIFTED_REFERENCE_SUITE)

    first = run_tracked(pytester, empty_store, "test_reference.py")
    again = run_tracked(pytester, empty_store, "test_reference.py")
    monkeypatch.setenv("REFERENCE_SHIFT", "0.5")
    changed = run_tracked(pytester, empty_store, "test_reference.py")

    assert first.ret == again.ret == changed.ret == pytest.ExitCode.OK
    runs = empty_store.runs()
    assert len(runs) == 2, [run.info.run_name for run in runs]  # the first session's, then the changed one's
    original, shifted = runs
    again.stdout.fnmatch_lines(
        [
            f"reference naive: unchanged since run {original.info.run_id} (same params, data and results), "
            "not logged again"
        ]
    )
    assert "logged reference naive" not in again.stdout.str()
    changed.stdout.fnmatch_lines([f"logged reference naive: run {shifted.info.run_id} in experiment *"])
    # same fingerprint (no param changed), other results: the change is on record, not hidden by reuse
    assert shifted.data.tags["forecast.fingerprint"] == original.data.tags["forecast.fingerprint"]
    assert shifted.data.metrics["5d/rmse_mean"] != original.data.metrics["5d/rmse_mean"]


FAILURES_SUITE = """
    from backtest import Naive, WalkForward
    from forecast_e2e.models import data

    SPEC = WalkForward(horizon=5, step=5, initial=200)


    class Broken:
        def fit(self, history):
            pass

        def predict(self, history, steps):
            raise ValueError("no forecast today")


    def test_broken_model(walk_forward):
        walk_forward(Broken(), data("5d"), SPEC, name="broken")


    def test_failed_assertion(walk_forward):
        result = walk_forward(Naive(), data("5d"), SPEC, name="flaky")
        assert result.aggregates()["rmse_mean"] < 0.01, "not good enough"


    def test_fine(walk_forward):
        walk_forward(Naive(), data("5d"), SPEC, name="fine")
"""


def test_failing_backtest_tests_end_their_runs_failed(pytester: pytest.Pytester, empty_store: Store) -> None:
    make_project(pytester)
    pytester.makepyfile(test_failures=FAILURES_SUITE)

    result = run_tracked(pytester, empty_store, "test_failures.py")

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*ModelError: fold 0 (origin 2021-10-08*): ValueError: no forecast today",
            "reason: backtests failed or produced no result: broken 5d",
        ]
    )
    assert statuses(empty_store) == {"broken": "FAILED", "flaky": "FAILED", "fine": "FINISHED"}
    runs = {run.data.tags["forecast.model"]: run for run in empty_store.runs()}
    broken, flaky = runs["broken"].data, runs["flaky"].data
    assert broken.tags["forecast.errors"].startswith("5d: ModelError: fold 0 (origin 2021-10-08")
    assert broken.tags["forecast.errors"].endswith("): ValueError: no forecast today")
    assert broken.tags["forecast.tests.failed"] == "1"
    assert "5d/rmse_mean" not in broken.metrics
    assert flaky.tags["forecast.tests"] == "failed"
    assert flaky.metrics["5d/folds"] == 20  # the backtest itself worked: its results are kept


INTERRUPTED_SUITE = """
    from backtest import Naive, WalkForward
    from forecast_e2e.models import data


    def test_first(walk_forward):
        walk_forward(Naive(), data("5d"), WalkForward(horizon=5, step=5, initial=200), name="candidate")


    def test_interrupt():
        raise KeyboardInterrupt


    def test_never_runs(walk_forward):
        walk_forward(Naive(), data("10d"), WalkForward(horizon=10, step=5, initial=200), name="candidate")
"""


def test_an_interrupted_session_ends_its_runs_killed(pytester: pytest.Pytester, empty_store: Store) -> None:
    make_project(pytester)
    pytester.makepyfile(test_interrupted=INTERRUPTED_SUITE)

    result = run_tracked(pytester, empty_store, "test_interrupted.py")

    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [
            "forecast gate: INTERRUPTED against no registered model*",
            "reason: the session was interrupted; no verdict",
            "logged candidate candidate: run *",
            "*! KeyboardInterrupt !*",
        ]
    )
    (run,) = empty_store.runs()
    assert run.info.status == "KILLED"
    assert run.data.tags["forecast.horizons"] == "5d"  # the folds computed before the interrupt are kept
    assert run.data.tags["forecast.verdict"] == "interrupted"
    assert len(metric_history(empty_store, run.info.run_id, "5d/rmse")) == 20


SIGTERM_SUITE = """
    import time
    from pathlib import Path

    from backtest import Naive, WalkForward
    from forecast_e2e.models import data


    def test_first(walk_forward):
        walk_forward(Naive(), data("5d"), WalkForward(horizon=5, step=5, initial=200), name="candidate")


    def test_slow():
        Path("started").write_text("")
        time.sleep(120)
"""


@pytest.mark.slow
def test_sigterm_ends_the_session_like_ctrl_c(pytester: pytest.Pytester, empty_store: Store) -> None:
    make_project(pytester)
    pytester.makepyfile(test_sigterm=SIGTERM_SUITE)
    process = pytester.popen(
        [
            sys.executable,
            "-m",
            "pytest",
            *INNER_FLAGS,
            "--mlflow-experiment",
            EXPERIMENT,
            "--mlflow-tracking-uri",
            empty_store.uri,
            "test_sigterm.py",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not (pytester.path / "started").exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the inner session never reached its slow test"
            time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == pytest.ExitCode.INTERRUPTED, stdout + stderr
    assert "forecast gate: INTERRUPTED against no registered model" in stdout
    (run,) = empty_store.runs()
    assert run.info.status == "KILLED"
    assert run.data.tags["forecast.horizons"] == "5d"


def test_a_deleted_experiment_is_a_usage_error(pytester: pytest.Pytester, champion_store: Store) -> None:
    make_project(pytester)
    client = champion_store.client()
    experiment_id = client.get_experiment_by_name(EXPERIMENT).experiment_id
    client.delete_experiment(experiment_id)

    result = run_tracked(pytester, champion_store, SUITE)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            f"ERROR: experiment '{EXPERIMENT}' is deleted in {champion_store.uri}; restore it (mlflow experiments "
            f"restore --experiment-id {experiment_id}) or choose another name",
        ]
    )


MAE_SUITE = """
    from backtest import Naive, WalkForward
    from forecast_e2e.models import data


    def test_mae_only(walk_forward):
        walk_forward(Naive(), data("5d"), WalkForward(horizon=5, step=5, initial=200), name="candidate",
                     metrics=("mae",))
"""


def test_a_backtest_scored_without_rmse_is_logged(pytester: pytest.Pytester, empty_store: Store) -> None:
    make_project(pytester)
    pytester.makepyfile(test_mae=MAE_SUITE)

    result = run_tracked(pytester, empty_store, "--forecast-gate-metrics", "mae", "test_mae.py")

    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.assert_outcomes(passed=1)
    result.stdout.no_fnmatch_line("ERROR: *")
    (run,) = empty_store.runs()
    assert run.info.status == "FINISHED"
    assert run.data.metrics["5d/mae_mean"] > 0


TOP_LEVEL_MODELS = """
    from backtest import Naive


    class Damped(Naive):
        \"\"\"Defined in a plain module next to the tests, as most projects do.\"\"\"

        def predict_batch(self, contexts, steps):
            return super().predict_batch(contexts, steps) * 0.5
"""

TOP_LEVEL_SUITE = """
    from backtest import WalkForward
    from forecast_e2e.models import data
    from mymodels import Damped


    def test_damped(walk_forward):
        walk_forward(Damped(), data("5d"), WalkForward(horizon=5, step=5, initial=200), name="candidate")
"""


def test_a_candidate_class_from_a_top_level_module_is_logged_and_loads(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    import pandas as pd

    empty_store = Store(tmp_path / "fresh" / "mlflow.db")  # created by the session, as on a first run
    make_project(pytester)
    pytester.makepyfile(mymodels=TOP_LEVEL_MODELS, test_damped=TOP_LEVEL_SUITE)

    result = run_tracked(pytester, empty_store, "--mlflow-promote", "test_damped.py")

    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([f"registered candidate as {EXPERIMENT} v1 and moved alias 'champion' to it"])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", empty_store.uri)
    model = mlflow.pyfunc.load_model(f"models:/{EXPERIMENT}@champion")
    forecast = model.predict(pd.DataFrame({"label": ["5d"], "history": [[2.0, 4.0]]}))
    assert list(forecast["forecast"]) == [[2.0] * 5]
    # an explicit signature, so serving checks its input; MLflow's remarks on choices made on purpose stay out
    signature = model.metadata.signature
    assert (signature.inputs.input_names(), signature.outputs.input_names()) == (
        ["label", "history"],
        ["label", "forecast"],
    )
    output = result.stdout.str() + result.stderr.str()
    for remark in (
        "Passing a Python object",
        "input example was not provided",
        "signature cannot be inferred",
        "Model logged without a signature",
        "Creating initial MLflow database tables",
        "Migration complete",
        "Registered model",
        "Created version",
    ):
        assert remark not in output


SAME_LABEL_SUITE = """
    import pytest

    from backtest import Naive, WalkForward
    from forecast_e2e.models import make_series


    @pytest.mark.parametrize("scale", [1.0, 2.0])
    def test_each_series(walk_forward, scale):
        series = make_series() * scale  # e.g. one series per currency pair, same model, same horizon
        walk_forward(Naive(), series, WalkForward(horizon=5, step=5, initial=200), name="candidate")
"""


@pytest.mark.slow
def test_two_backtests_of_one_model_at_one_label_are_not_merged(pytester: pytest.Pytester, empty_store: Store) -> None:
    make_project(pytester)
    pytester.makepyfile(test_same_label=SAME_LABEL_SUITE)

    result = run_tracked(pytester, empty_store, "test_same_label.py")

    # the second backtest is refused with a message naming the first and the fix; no metric series holds
    # two backtests' folds and MLflow's integrity error never reaches the user
    result.stdout.fnmatch_lines(["*was already backtested at '5d' in this session*another name= or label=*"])
    assert "IntegrityError" not in result.stdout.str()
    result.assert_outcomes(passed=1, failed=1)
    (run,) = empty_store.runs()  # the first backtest's run, with its folds alone
    assert run.data.metrics["5d/folds"] == 20
    assert [step for step, _ in metric_history(empty_store, run.info.run_id, "5d/rmse")] == list(range(20))


PER_HORIZON_PARAMS_SUITE = """
    import pytest

    from backtest import WalkForward, WindowMean
    from forecast_e2e.models import data


    class Smoothed(WindowMean):
        def __init__(self, k, source):
            super().__init__(k)
            self.source = source

        def get_params(self):
            return {"k": self.k, "source": self.source}


    @pytest.mark.parametrize("horizon", [5, 10])
    def test_smoothed(walk_forward, horizon):
        model = Smoothed(3 * horizon // 5, "ecb")  # one model per horizon, with its own window
        walk_forward(model, data(f"{horizon}d"), WalkForward(horizon=horizon, step=5, initial=200), name="candidate")
"""


def test_model_params_that_differ_between_horizons_are_logged_per_horizon(
    pytester: pytest.Pytester, empty_store: Store
) -> None:
    make_project(pytester)
    pytester.makepyfile(test_smoothed=PER_HORIZON_PARAMS_SUITE)

    result = run_tracked(pytester, empty_store, "test_smoothed.py")

    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    params = empty_store.latest().data.params
    assert {key: value for key, value in params.items() if "model." in key} == {
        "5d.model.k": "3",
        "10d.model.k": "6",
        "model.source": "ecb",
    }


TORCH_MODELS = """
    import numpy as np
    import torch


    class LinearDrift(torch.nn.Module):
        \"\"\"The last value plus a drift read off the last `lookback` values: a torch module and a forecaster.\"\"\"

        def __init__(self, lookback: int = 4) -> None:
            super().__init__()
            self.lookback = lookback
            self.layer = torch.nn.Linear(lookback, 1)
            with torch.no_grad():  # zero weights: the random walk, so the test knows every forecast
                self.layer.weight.zero_()
                self.layer.bias.zero_()

        @property
        def input_example(self) -> np.ndarray:
            return np.zeros((1, self.lookback), dtype=np.float32)

        def forward(self, x):
            return self.layer(x)

        def fit(self, history) -> None:
            pass

        def predict(self, history, steps):
            x = torch.as_tensor(np.asarray(history[-self.lookback:], dtype=np.float32)[None])
            with torch.no_grad():
                drift = float(self.forward(x)[0, 0])
            return history[-1] + drift * np.arange(1, steps + 1)
"""

TORCH_SUITE = """
    from backtest import WalkForward
    from forecast_e2e.models import data
    from torchmodels import LinearDrift


    def test_linear_drift(walk_forward):
        walk_forward(LinearDrift(), data("5d"), WalkForward(horizon=5, step=5, initial=200), name="candidate")
"""


def test_a_torch_candidate_is_logged_through_mlflow_pytorch_inside_the_bundle(
    pytester: pytest.Pytester, empty_store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    import pandas as pd
    import yaml

    make_project(pytester)
    pytester.makepyfile(torchmodels=TORCH_MODELS, test_torch=TORCH_SUITE)

    result = run_tracked(pytester, empty_store, "--mlflow-promote", "test_torch.py")

    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert "Saving pytorch model by Pickle" not in result.stdout.str() + result.stderr.str()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", empty_store.uri)
    uri = f"models:/{EXPERIMENT}@champion"
    forecast = mlflow.pyfunc.load_model(uri).predict(pd.DataFrame({"label": ["5d"], "history": [[1.0, 2.0, 3.0, 5.0]]}))
    assert list(forecast["forecast"]) == [[5.0] * 5]

    # the module itself is an mlflow.pytorch model inside the bundle, with its input example and requirements
    bundle = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(tmp_path)))
    nested = bundle / "artifacts" / "torch-5d"
    flavours = yaml.safe_load((nested / "MLmodel").read_text())
    assert {"pytorch", "python_function"} <= set(flavours["flavors"])
    assert "saved_input_example_info" in flavours
    assert any(line.startswith("torch==") for line in (nested / "requirements.txt").read_text().splitlines())
    module = mlflow.pytorch.load_model(str(nested))
    assert type(module).__name__ == "LinearDrift"
    assert module.lookback == 4

    # the champion names the run it came from; on MLflow 3 the bundle is a logged model of its own, made from
    # that run (its source and output), scored by the run's step-less aggregates, not by the first fold's values
    client = empty_store.client()
    (run,) = empty_store.runs()  # logging the model made no run of its own
    version = client.get_model_version_by_alias(EXPERIMENT, "champion")
    assert version.run_id == run.info.run_id
    if hasattr(client, "get_logged_model"):
        (output,) = client.get_run(run.info.run_id).outputs.model_outputs
        logged = client.get_logged_model(output.model_id)
        assert (logged.source_run_id, str(logged.status)) == (run.info.run_id, "READY")
        assert version.source == f"models:/{logged.model_id}"
        assert logged.params["5d.horizon"] == "5"
        assert logged.tags["forecast.session"] == run.data.tags["forecast.session"]
        scores = {metric.key: metric.value for metric in logged.metrics}
        assert scores["5d/rmse_mean"] == run.data.metrics["5d/rmse_mean"]
        assert "5d/rmse" not in scores


def test_without_a_uri_the_embedded_store_lives_under_the_rootdir_and_mlflow_tracking_uri_overrides_it(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_project(pytester)

    first = pytester.runpytest_subprocess(*INNER_FLAGS, "--mlflow-experiment", EXPERIMENT)

    assert first.ret == pytest.ExitCode.OK, first.stdout.str()
    embedded = Store(pytester.path / "data" / "mlflow" / "mlflow.db")
    first.stdout.fnmatch_lines([f"forecast-mlflow: experiment '{EXPERIMENT}' at {embedded.uri}"])
    (run,) = embedded.runs()
    artifacts = Path(urllib.parse.urlparse(run.info.artifact_uri).path)
    assert artifacts.is_relative_to(pytester.path / "data" / "mlflow" / "mlruns")
    assert (artifacts / "manifests" / "5d.json").is_file()

    elsewhere = Store(tmp_path / "elsewhere" / "mlflow.db")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", elsewhere.uri)
    second = pytester.runpytest_subprocess(*INNER_FLAGS, "--mlflow-experiment", EXPERIMENT)

    assert second.ret == pytest.ExitCode.OK, second.stdout.str()
    second.stdout.fnmatch_lines([f"forecast-mlflow: experiment '{EXPERIMENT}' at {elsewhere.uri}"])
    assert len(elsewhere.runs()) == 1
    assert len(embedded.runs()) == 1  # the embedded store was left alone
