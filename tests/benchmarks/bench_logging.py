"""Benchmark: logging 8,000 per-fold metric values (4 horizons x 4 metrics x 500 folds) to SQLite MLflow.

Run it as ``python tests/benchmarks/bench_logging.py`` (about a minute on 2 cores). It prints medians
over repeats and the ratios between the three ways of writing the same values; it never fails.

(a) one ``MlflowClient.log_metric`` call per value: the approach the plugin replaces. It is slow
    (about 21 s for 8,000 values), so it is timed on the first 2,000 values (one horizon) and scaled x4;
    the output says so.
(b) bare ``MlflowClient.log_batch`` of the same 8,000 prebuilt ``Metric`` entities, 1,000 per call.
(c) the plugin's path, exactly what ``Tracking.log_session`` does for metrics: ``tracking.run_metrics``
    over the session's :class:`~pytest_forecast_mlflow.records.Record` values, ``Metric`` entities,
    then ``RunWriter._batched``. It also writes the step-less aggregates the plugin adds (mean, median,
    pooled per metric, the fold count, the ``all/`` means), so it writes slightly more than 8,000 values.

(b') bare ``log_batch`` of exactly the values (c) writes, in its order, prebuilt: (c)/(b') is the cost
    of the plugin's own code, (b')/(b) the cost of what it writes beyond the 8,000 values.

(b), (b') and (c) alternate, each repeat into a new run, after ``gc.collect()``; the time Python's
cyclic garbage collector spends inside each timed region is reported with it (a full pass over the
heap of an mlflow process costs about 0.2 s, and ``gc.collect()`` before each region makes whether one
falls inside it depend only on what the region allocates). Target: (c)/(b) <= 1.1.
Every store lives in a temporary directory (``sqlite:///{tmp}/mlflow.db``), never in the repository's ``data/``.
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
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

import backtest  # noqa: E402
from pytest_forecast_mlflow.records import Record, from_result  # noqa: E402
from pytest_forecast_mlflow.settings import Settings  # noqa: E402
from pytest_forecast_mlflow.tracking import Tracking, run_metrics  # noqa: E402

HORIZONS = (7, 14, 30, 60)
METRICS = ("rmse", "mae", "mape", "directional_accuracy")
FOLDS = 500
REPEATS = 11
SUBSET = 2000
TARGET_RATIO = 1.1


def records() -> list[Record]:
    """One candidate's Records, 500 folds and four metrics per horizon, as the fixture would record them."""
    y = pd.Series(
        700.0 + np.cumsum(np.random.default_rng(7).normal(0.0, 1.0, 1200)),
        index=pd.date_range("2021-01-01", periods=1200, freq="D"),
    )
    out = []
    for h in HORIZONS:
        spec = backtest.WalkForward(horizon=h, step=1, initial=600, refit=0, max_folds=FOLDS)
        result = backtest.run(backtest.Naive(), y, spec, name="candidate", metrics=METRICS)
        out.append(
            from_result(
                result,
                nodeid=f"tests/test_model.py::test_{h}d",
                location=("tests/test_model.py", 1, f"test_{h}d"),
                role="candidate",
                label=f"{h}d",
                data_source="synthetic",
            )
        )
    return out


def median(values: list[float]) -> float:
    return statistics.median(values)


class GcWatch:
    """Seconds spent in, and full (generation 2) passes of, Python's cyclic garbage collector."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.full = 0
        self._start = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._start
            self.full += info["generation"] == 2

    def reset(self) -> None:
        self.seconds, self.full = 0.0, 0


def main() -> int:
    print("$ " + shlex.join(["python", *sys.argv]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import mlflow
        from mlflow.entities import Metric
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # no "Creating initial MLflow database tables"
    print(
        f"# python {platform.python_version()}, mlflow {mlflow.__version__}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    recs = records()
    timestamp = int(time.time() * 1000)
    values = [
        (f"{r.label}/{name}", float(v), timestamp, step)
        for r in recs
        for name, fold_values in r.fold_metrics.items()
        for step, v in enumerate(fold_values)
    ]
    entities = [Metric(k, v, ts, s) for k, v, ts, s in values]

    with tempfile.TemporaryDirectory(prefix="bench-logging-") as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        print(f"# store: {uri} (fresh)")
        experiment = "bench-logging"
        settings = Settings(
            experiment=experiment, tracking_uri=uri, artifact_root=Path(tmp, "mlruns"), rootdir=Path(tmp)
        )
        started = time.perf_counter()
        tracking = Tracking(settings)
        experiment_id = tracking.experiment_id(experiment)
        print(f"# store created and opened in {time.perf_counter() - started:.2f} s (not counted below)")
        client = tracking.client

        def new_run(name: str) -> str:
            return client.create_run(experiment_id, run_name=name).info.run_id

        plugin_entities = [Metric(k, v, ts, s) for k, v, ts, s in run_metrics(recs, {}, None, timestamp)]

        def bare_batch(metrics: list) -> Callable[[str], int]:
            def log(run_id: str) -> int:
                for i in range(0, len(metrics), 1000):
                    client.log_batch(run_id, metrics=metrics[i : i + 1000])
                return len(metrics)

            return log

        def plugin_path(run_id: str) -> int:
            metrics = run_metrics(recs, {}, None, timestamp)
            tracking.runs._batched(run_id, metrics=metrics, params=[], tags=[])
            return len(metrics)

        cases = {"b": bare_batch(entities), "b2": bare_batch(plugin_entities), "c": plugin_path}
        for name, log in cases.items():  # warm-up (first-use SQLAlchemy compilation, imports), runs of their own
            log(new_run(f"warm-{name}"))
        times: dict[str, list[float]] = {name: [] for name in cases}
        collector: dict[str, list[tuple[float, int]]] = {name: [] for name in cases}
        counts: dict[str, int] = {}
        watch = GcWatch()
        for i in range(REPEATS):
            for name in list(cases) if i % 2 == 0 else list(cases)[::-1]:
                run_id = new_run(f"{name}-{i}")
                gc.collect()
                watch.reset()
                start = time.perf_counter()
                counts[name] = cases[name](run_id)
                times[name].append(time.perf_counter() - start)
                collector[name].append((watch.seconds, watch.full))

        def plugin_python() -> int:
            metrics = run_metrics(recs, {}, None, timestamp)
            return len([Metric(k, v, ts, s) for k, v, ts, s in metrics])

        python_only = []
        for _ in range(REPEATS):
            gc.collect()
            start = time.perf_counter()
            plugin_python()
            python_only.append(time.perf_counter() - start)

        run_id = new_run("a-log-metric")
        per_call = []
        start = time.perf_counter()
        for key, value, ts, step in values[:SUBSET]:
            t0 = time.perf_counter()
            client.log_metric(run_id, key, value, timestamp=ts, step=step)
            per_call.append(time.perf_counter() - t0)
        a_subset = time.perf_counter() - start
        a = a_subset * len(values) / SUBSET

        written = len(client.get_metric_history(run_id, values[0][0]))
        if written != FOLDS:
            print(f"!! (a) wrote {written} values of {values[0][0]}, expected {FOLDS}")

    b, b2, c = median(times["b"]), median(times["b2"]), median(times["c"])
    print()
    print(f"8,000 values = {len(HORIZONS)} horizons x {len(METRICS)} metrics x {FOLDS} folds, one fresh SQLite store")
    print(f"{'':58}{'values':>8}{'median s':>10}{'min s':>9}{'repeats':>9}")
    print(f"{'(a) MlflowClient.log_metric per value (scaled, see note)':58}{len(values):>8}{a:>10.2f}{'':>9}{1:>9}")
    print(
        f"{'(b) MlflowClient.log_batch, 1,000 per call':58}{counts['b']:>8}{b:>10.3f}{min(times['b']):>9.3f}"
        f"{REPEATS:>9}"
    )
    label = "(b') the same, of the plugin's own list of values, prebuilt"
    print(f"{label:58}{counts['b2']:>8}{b2:>10.3f}{min(times['b2']):>9.3f}{REPEATS:>9}")
    print(
        f"{'(c) plugin: run_metrics + Metric + RunWriter._batched':58}{counts['c']:>8}{c:>10.3f}"
        f"{min(times['c']):>9.3f}{REPEATS:>9}"
    )
    print(
        f"    of (c), plugin-side Python only (_metrics + Metric entities, no store): "
        f"{median(python_only) * 1e3:.1f} ms; log_batch calls: (b) {-(-counts['b'] // 1000)}, "
        f"(b') and (c) {-(-counts['c'] // 1000)}"
    )
    shown = {"b": "(b)", "b2": "(b')", "c": "(c)"}
    print(
        "    Python's garbage collector inside the timed region, median ms (full passes over all repeats): "
        + ", ".join(
            f"{shown[name]} {median([g for g, _ in collector[name]]) * 1e3:.0f} ({sum(n for _, n in collector[name])})"
            for name in collector
        )
    )
    print(
        f"note: (a) was measured on the first {SUBSET:,} values only ({a_subset:.2f} s, median "
        f"{median(per_call) * 1e3:.2f} ms per call) and scaled x{len(values) / SUBSET:.0f} to {len(values):,} values"
    )
    paired = statistics.median(ci / bi for ci, bi in zip(times["c"], times["b"]))
    print(
        f"(c)/(b) = {c / b:.2f}   per value: {(c / counts['c']) / (b / counts['b']):.2f}   "
        f"median of the {REPEATS} paired ratios: {paired:.2f}"
    )
    print(
        f"(c)/(b') = {c / b2:.2f} (the plugin's code, same values)   (b')/(b) = {b2 / b:.2f} (the plugin's "
        f"{counts['c'] - counts['b']} extra step-less values and their place in the chunks)"
    )
    without_gc = {name: median([t - g for t, (g, _) in zip(times[name], collector[name])]) for name in times}
    print(
        f"with each repeat's garbage-collector time taken out: (c)/(b) = {without_gc['c'] / without_gc['b']:.2f}, "
        f"(c)/(b') = {without_gc['c'] / without_gc['b2']:.2f}"
    )
    print(f"(a)/(b) = {a / b:.0f}x")
    print(f"TARGET {'MET' if c / b <= TARGET_RATIO else 'MISSED'}: (c)/(b) = {c / b:.2f} <= {TARGET_RATIO}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
