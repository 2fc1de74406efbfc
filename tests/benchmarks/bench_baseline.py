"""Benchmark: resolving the gate's baseline in an experiment of 2,000 runs and 50 registered versions.

Run it as ``python tests/benchmarks/bench_baseline.py`` (one to two minutes on 2 cores, most of it
populating the store). It prints the population time, then medians over repeats; it never fails.

The store is a fresh ``sqlite:///{tmp}/mlflow.db`` in a temporary directory. The experiment (created
by ``Tracking.experiment_id``, as the plugin does) gets 2,000 runs, each made by
``MlflowClient.create_run`` and one ``log_batch`` of step-less aggregates (``all/rmse_mean``,
``7d/rmse_mean``, ``30d/rmse_mean``, ...) and the ``data.sha256`` parameter. Every 40th run (50 in
all) also gets the plugin's fold manifests ``manifests/7d.json`` and ``manifests/30d.json``
(``Record.manifest()`` of a real backtest: 500 folds each, 7 and 30 steps per fold, so each manifest
matches its label), a small ``model/`` artifact, and a version of the registered model with source
``runs:/<id>/model``. One version carries the alias ``champion``.

Timed: ``Tracking(settings).resolve_baseline()`` (lookup, the version's run, both manifests downloaded
and parsed into a ``Baseline``), first with the alias present, then with it removed so that the best
version by ``all/rmse_mean`` is chosen. Target: median <= 0.3 s each.
"""

from __future__ import annotations

import os

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ.setdefault("DO_NOT_TRACK", "true")

import gc  # noqa: E402
import logging  # noqa: E402
import platform  # noqa: E402
import shlex  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import backtest  # noqa: E402
from pytest_forecast_mlflow.records import from_result  # noqa: E402
from pytest_forecast_mlflow.settings import Settings  # noqa: E402
from pytest_forecast_mlflow.tracking import Tracking  # noqa: E402

RUNS = 2000
EVERY = 40  # every 40th run is registered: 50 versions
FOLDS = 500
HORIZONS = (7, 30)
REPEATS = 15
CHAMPION_VERSION = 17
TARGET_S = 0.3
NAME = "bench-baseline"


def manifests() -> dict[str, dict]:
    """The plugin's fold manifests for a 7-day and a 30-day backtest of 500 folds."""
    y = pd.Series(
        700.0 + np.cumsum(np.random.default_rng(11).normal(0.0, 1.0, 1200)),
        index=pd.date_range("2021-01-01", periods=1200, freq="D"),
    )
    out = {}
    for h in HORIZONS:
        spec = backtest.WalkForward(horizon=h, step=1, initial=600, refit=0, max_folds=FOLDS)
        result = backtest.run(
            backtest.Naive(), y, spec, name="candidate", metrics=("rmse", "mae", "mape", "directional_accuracy")
        )
        record = from_result(
            result,
            nodeid=f"tests/test_model.py::test_{h}d",
            location=("tests/test_model.py", 1, f"test_{h}d"),
            role="candidate",
            label=f"{h}d",
            data_source="synthetic",
        )
        out[f"{h}d"] = record.manifest()
    return out


def populate(tracking: Tracking) -> tuple[str, dict[str, float]]:
    """Fill the experiment; returns the version with the lowest ``all/rmse_mean`` and the seconds each part took."""
    from mlflow.entities import Metric, Param

    client = tracking.client
    took: dict[str, float] = {}
    start = time.perf_counter()
    experiment_id = tracking.experiment_id(NAME)
    client.create_registered_model(NAME)
    docs = manifests()
    rng = np.random.default_rng(3)
    took["setup"] = time.perf_counter() - start
    took["runs"] = took["registered"] = 0.0
    registered: dict[str, float] = {}
    for i in range(RUNS):
        t0 = time.perf_counter()
        run_id = client.create_run(
            experiment_id, run_name=f"run-{i:04d}", tags={"forecast.model": "candidate", "forecast.role": "candidate"}
        ).info.run_id
        ts = int(time.time() * 1000)
        rmse = float(rng.uniform(5.0, 15.0))
        client.log_batch(
            run_id,
            metrics=[
                Metric("all/rmse_mean", rmse, ts, 0),
                Metric("all/mae_mean", rmse * 0.8, ts, 0),
                Metric("7d/rmse_mean", rmse * 0.6, ts, 0),
                Metric("30d/rmse_mean", rmse * 1.4, ts, 0),
                Metric("7d/mae_mean", rmse * 0.5, ts, 0),
                Metric("30d/mae_mean", rmse * 1.1, ts, 0),
            ],
            params=[Param("data.sha256", f"{i:064x}")],
        )
        t1 = time.perf_counter()
        took["runs"] += t1 - t0
        if i % EVERY == 0:
            for label, doc in docs.items():
                client.log_dict(run_id, doc, f"manifests/{label}.json")
            client.log_text(run_id, "artifact_path: model\nflavors: {}\n", "model/MLmodel")
            version = client.create_model_version(NAME, f"runs:/{run_id}/model", run_id=run_id)
            registered[str(version.version)] = rmse
            if int(version.version) == CHAMPION_VERSION:
                client.set_registered_model_alias(NAME, "champion", version.version)
            took["registered"] += time.perf_counter() - t1
    return min(registered, key=registered.__getitem__), took


def timed_resolve(tracking: Tracking, repeats: int) -> tuple[list[float], str]:
    baseline, sentence = tracking.resolve_baseline()  # warm-up
    if baseline is None or set(baseline.horizons) != {f"{h}d" for h in HORIZONS}:
        print(f"!! the baseline did not resolve to both horizons: {sentence}")
    times = []
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        tracking.resolve_baseline()
        times.append(time.perf_counter() - start)
    return times, sentence


def main() -> int:
    print("$ " + shlex.join(["python", *sys.argv]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import mlflow
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    print(
        f"# python {platform.python_version()}, mlflow {mlflow.__version__}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    with tempfile.TemporaryDirectory(prefix="bench-baseline-") as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        settings = Settings(
            experiment=NAME,
            tracking_uri=uri,
            artifact_root=Path(tmp, "mlruns"),
            rootdir=Path(tmp),
            registered_model=NAME,
            alias="champion",
            gate_metrics=("rmse",),
        )
        print(f"# store: {uri} (fresh)")
        start = time.perf_counter()
        tracking = Tracking(settings)
        opened = time.perf_counter() - start
        start = time.perf_counter()
        best, took = populate(tracking)
        populated = time.perf_counter() - start
        client = tracking.client
        versions = client.search_model_versions(f"name='{NAME}'")
        runs = len(client.search_runs([tracking.experiment_id(NAME)], max_results=RUNS + 1))
        size = sum(p.stat().st_size for p in Path(tmp, "mlruns").rglob("manifests/*.json"))
        print(f"# Tracking(settings) on the fresh store (creates the schema): {opened:.2f} s")
        print(
            f"# population: {populated:.1f} s ({runs} runs: {took['runs']:.1f} s creating runs and logging "
            f"aggregates; {len(versions)} versions: {took['registered']:.1f} s logging manifests, model files, "
            f"registering; {took['setup']:.1f} s experiment, registered model, building manifests); "
            f"manifests on disk {size / 1e6:.0f} MB"
        )

        with_alias, how_alias = timed_resolve(tracking, REPEATS)
        client.delete_registered_model_alias(NAME, "champion")
        without_alias, how_best = timed_resolve(tracking, REPEATS)

    print()
    print(
        f"Tracking(settings).resolve_baseline(), {RUNS} runs, {len(versions)} registered versions, manifests of "
        f"{FOLDS} folds x ({', '.join(f'{h}d' for h in HORIZONS)})"
    )
    print(f"{'':30}{'median s':>10}{'min s':>9}{'repeats':>9}   resolved")
    for label, values, how in (
        ("alias 'champion' present", with_alias, how_alias),
        ("alias removed (best version)", without_alias, how_best),
    ):
        print(f"{label:30}{statistics.median(values):>10.3f}{min(values):>9.3f}{len(values):>9}   {how}")
    print(f"(expected: v{CHAMPION_VERSION} with the alias, v{best} by lowest all/rmse_mean without it)")
    ratio = statistics.median(without_alias) / statistics.median(with_alias)
    print(f"no-alias / alias = {ratio:.2f}")
    for label, values in (("alias present", with_alias), ("alias removed", without_alias)):
        med = statistics.median(values)
        print(f"TARGET {'MET' if med <= TARGET_S else 'MISSED'}: {label}: median {med:.3f} s <= {TARGET_S} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
