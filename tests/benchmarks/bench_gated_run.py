"""Benchmark: the gated rerun of the main job against the same session with the plugin off.

Run it as ``python tests/benchmarks/bench_gated_run.py`` from the repository (a few minutes on 2 cores;
``--repeats N`` for more, ``--profile`` for where the plugin's time goes). It never fails; it prints
medians over interleaved runs and their ratio. Target (issue #12): the gated rerun takes at most 1.3x
the session with the plugin off.

What runs: the repository's own backtests (``pytest`` alone: ``tests/forecasters``, the real series from
``../shared/data`` when it is there), each in a subprocess from the repository's root, the wall time of
each ``subprocess.run`` taken with ``time.perf_counter``:

* off:   ``python -m pytest -q -p no:cacheprovider``
* gated: the same plus ``--mlflow-experiment forecaster_30d --mlflow-tracking-uri sqlite:///<tmp>/mlflow.db``

Before the timed runs, one session with ``--mlflow-promote`` makes a champion in the temporary store, so
every gated run is a rerun judged against it, as a user's everyday run is; the two kinds alternate.

``--profile`` runs one more gated session under ``cProfile`` and prints the cumulative time of the
plugin's stages (start-up, baseline read, backtests, logging, plots, model, registration).
"""

from __future__ import annotations

import argparse
import os
import platform
import pstats
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENT = "forecaster_30d"
TARGET = 1.3
BASE = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"]

#: (stage, regex on "file:line(function)" of a profile entry): the largest cumulative time matching it
STAGES = (
    ("whole session", r"_pytest/main\.py:\d+\(wrap_session\)"),
    ("backtests (the tests themselves)", r"_pytest/main\.py:\d+\(pytest_runtestloop\)"),
    ("import mlflow", r"mlflow/__init__\.py:\d+\(<module>\)"),
    ("plugin start-up (store, baseline)", r"pytest_forecast_mlflow/session\.py:\d+\(pytest_sessionstart\)"),
    ("reading the champion", r"pytest_forecast_mlflow/tracking/?\w*\.py:\d+\((resolve_baseline|read|baseline)\)"),
    ("logging every run", r"pytest_forecast_mlflow/tracking/?\w*\.py:\d+\(log_session\)"),
    ("  metrics and params (log_batch)", r"mlflow/tracking/client\.py:\d+\(log_batch\)"),
    ("  plots", r"pytest_forecast_mlflow/plots\.py:\d+\(figures\)"),
    ("  model bundle", r"pytest_forecast_mlflow/pyfunc\.py:\d+\(log_bundle\)"),
    ("  artifacts (manifests, dataset)", r"mlflow/tracking/client\.py:\d+\(log_(artifact|artifacts|text|dict|table)\)"),
    ("registration", r"pytest_forecast_mlflow/tracking/?\w*\.py:\d+\(register\)"),
)


def _run(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return elapsed


def _stages(profile: Path) -> list[tuple[str, float]]:
    stats = pstats.Stats(str(profile)).stats  # type: ignore[attr-defined]
    rows = []
    for label, pattern in STAGES:
        regex = re.compile(pattern)
        times = [cum for (file, line, func), (*_, cum, _) in stats.items() if regex.search(f"{file}:{line}({func})")]
        rows.append((label, max(times, default=0.0)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each kind (default 3)")
    parser.add_argument("--profile", action="store_true", help="profile one more gated run and print its stages")
    args = parser.parse_args()

    env = {k: v for k, v in os.environ.items() if not k.startswith(("FORECAST_", "MLFLOW_", "USDCLP_"))}
    env.update(MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true")
    with tempfile.TemporaryDirectory(prefix="bench-gated-") as tmp:
        uri = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        gated = [*BASE, "--mlflow-experiment", EXPERIMENT, "--mlflow-tracking-uri", uri]
        print(f"python {platform.python_version()}, {os.cpu_count()} cores; store {uri}")
        print(f"champion: {_run([*gated, '--mlflow-promote'], env):.1f} s (first session, makes the store)")
        off_times, gated_times = [], []
        for repeat in range(args.repeats):
            off_times.append(_run(BASE, env))
            gated_times.append(_run(gated, env))
            print(f"run {repeat + 1}: off {off_times[-1]:.1f} s, gated {gated_times[-1]:.1f} s")
        off, on = statistics.median(off_times), statistics.median(gated_times)
        verdict = "meets" if on / off <= TARGET else "misses"
        print(f"median off {off:.1f} s, gated {on:.1f} s: ratio {on / off:.2f} ({verdict} the {TARGET}x target)")
        if args.profile:
            profile = Path(tmp) / "gated.prof"
            _run([sys.executable, "-m", "cProfile", "-o", str(profile), *gated[1:]], env)
            print("\nwhere a gated rerun's time goes (cProfile, cumulative seconds; profiling inflates them):")
            for label, seconds in _stages(profile):
                print(f"  {label:<36} {seconds:6.1f}")


if __name__ == "__main__":
    main()
