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

``--profile`` runs one more gated session with this module as a plugin (``-p``) that times, in real
seconds, what the session's process waits for and what its tracking process (a fork, see
``pytest_forecast_mlflow/tracking/agent.py``) does meanwhile: opening the store, reading the champion,
writing each candidate's per-fold series while the tests run, and the session's end (model bundle, plots).
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
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

#: the environment variable naming the file the timing plugin appends to (``--profile``)
TIMINGS = "BENCH_GATED_TIMINGS"

#: (label, "process.method" timed by the plugin, how to add the calls up): the rows --profile prints
STAGES = (
    ("session's process: waits for the store before the first test", "session._await_open", "sum"),
    ("session's process: waits for the champion at the first candidate", "session._await_start", "sum"),
    ("session's process: writes the runs at the end (waiting)", "session._log", "sum"),
    ("tracking process: import mlflow, open the store", "agent.open", "sum"),
    ("tracking process: read the champion", "agent.resolve_baseline", "sum"),
    ("tracking process: close runs of killed sessions", "agent.reap_dead_runs", "sum"),
    ("tracking process: per-fold series while the tests run", "agent.stream", "sum"),
    ("tracking process: the session's end", "agent.log_session", "sum"),
    ("  model bundle", "runs._log_model", "sum"),
    ("  waiting for the plots' process", "plots.collect", "sum"),
    ("  registration", "agent.register", "sum"),
)


def pytest_configure(config) -> None:  # noqa: ARG001 - pytest's signature
    """With ``-p tests.benchmarks.bench_gated_run``: time the stages above (inherited by the fork)."""
    target = os.environ.get(TIMINGS)
    if not target:
        return
    from pytest_forecast_mlflow import plots, session
    from pytest_forecast_mlflow.tracking import agent, runs

    def timed(owner, method: str, name) -> None:
        original = getattr(owner, method)

        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                label = name(args) if callable(name) else name
                with open(target, "a") as sink:
                    sink.write(f"{label}\t{time.perf_counter() - started}\n")

        setattr(owner, method, wrapper)

    for method in ("_await_open", "_await_start", "_log"):
        timed(session.ForecastSession, method, f"session.{method}")
    timed(agent.Service, "handle", lambda args: f"agent.{args[1]}")
    timed(runs.RunWriter, "_log_model", "runs._log_model")
    timed(plots.Drawing, "collect", "plots.collect")


#: CPU seconds (user + system) of each timed run and the processes it waited for, by kind
CPU: dict[str, list[float]] = {}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(argv: list[str], env: dict[str, str], kind: str = "") -> float:
    start, cpu = time.perf_counter(), _cpu()
    done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    CPU.setdefault(kind, []).append(_cpu() - cpu)
    if done.returncode != 0:
        sys.exit(f"{' '.join(argv)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return elapsed


def _stages(timings: Path) -> list[tuple[str, float, int]]:
    seen: dict[str, list[float]] = {}
    for line in timings.read_text().splitlines():
        name, _, seconds = line.partition("\t")
        seen.setdefault(name, []).append(float(seconds))
    return [(label, sum(seen.get(name, [])), len(seen.get(name, []))) for label, name, _ in STAGES]


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
            off_times.append(_run(BASE, env, "off"))
            gated_times.append(_run(gated, env, "gated"))
            print(
                f"run {repeat + 1}: off {off_times[-1]:.1f} s ({CPU['off'][-1]:.1f} s CPU), "
                f"gated {gated_times[-1]:.1f} s ({CPU['gated'][-1]:.1f} s CPU)"
            )
        off, on = statistics.median(off_times), statistics.median(gated_times)
        verdict = "meets" if on / off <= TARGET else "misses"
        print(f"median off {off:.1f} s, gated {on:.1f} s: ratio {on / off:.2f} ({verdict} the {TARGET}x target)")
        cpu_off, cpu_on = statistics.median(CPU["off"]), statistics.median(CPU["gated"])
        print(f"median CPU time off {cpu_off:.1f} s, gated {cpu_on:.1f} s (+{cpu_on - cpu_off:.1f} s for the plugin)")
        if args.profile:
            timings = Path(tmp) / "timings.tsv"
            timings.touch()
            elapsed = _run([*gated, "-p", "tests.benchmarks.bench_gated_run"], {**env, TIMINGS: str(timings)})
            print(f"\nwhere a gated rerun's time goes ({elapsed:.1f} s; real seconds, the two processes overlap):")
            for label, seconds, calls in _stages(timings):
                print(f"  {label:<66} {seconds:5.2f}" + (f"  ({calls} calls)" if calls > 1 else ""))


if __name__ == "__main__":
    main()
