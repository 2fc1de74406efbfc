"""Benchmark: many writers, SQLite-embedded vs an ``mlflow server`` on PostgreSQL, in sessions per minute.

Run it as ``python tests/benchmarks/bench_writers.py`` from the repository (a few minutes on 2 cores;
``--writers N``, ``--sessions N`` per writer, ``--repeats N``). It never fails; it prints the throughput
of each store, the failed sessions, and the ratio of the medians.

What runs: ``--writers`` writers at once, each running ``--sessions`` gated pytest sessions one after the
other, every session a fresh ``python -m pytest`` process with ``--mlflow-promote`` (as CI jobs are): the
tests' tiny inner project (two horizons, about 20 folds each, plots off), so the figure measures the
store, not the backtests. The two stores alternate, each repeat on a brand-new store:

* sqlite:     ``--mlflow-tracking-uri sqlite:///<tmp>/mlflow.db`` (its schema made before timing);
* postgresql: ``--mlflow-tracking-uri http://127.0.0.1:<port>``, an ``mlflow server`` with two workers on a
  throwaway PostgreSQL cluster (``tests/postgres/conftest.py``; started before timing, schema included).

Throughput is sessions that passed per minute of wall time from the first start to the last end. The
machine is shared: compare the two figures of one run, not runs on different days.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.plugin.conftest import EXPERIMENT, INNER_FLAGS, INNER_INI, SUITE, project_files  # noqa: E402
from tests.postgres.conftest import PostgresServer, Unavailable, free_port, start_cluster, stop_cluster  # noqa: E402


def _project(folder: Path) -> None:
    for name, source in project_files().items():
        (folder / f"{name}.py").parent.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.py").write_text(source)
    (folder / "pytest.ini").write_text(INNER_INI)


def _writers(folder: Path, uri: str, writers: int, sessions: int, env: dict[str, str]) -> tuple[float, int, int]:
    """``(wall seconds, sessions passed, sessions failed)`` of ``writers`` shell loops of ``sessions`` each."""
    session = [sys.executable, "-m", "pytest", "-q", *INNER_FLAGS, "-p", "no:xdist", "--mlflow-experiment", EXPERIMENT]
    session += ["--mlflow-tracking-uri", uri, "--mlflow-promote", SUITE]
    loop = f'for k in $(seq {sessions}); do {" ".join(session)} >>"$LOG" 2>&1; echo "exit $?" >>"$LOG"; done'
    started = time.perf_counter()
    processes = [
        subprocess.Popen(["bash", "-c", loop], cwd=folder, env={**env, "LOG": str(folder / f"writer-{k}.log")})
        for k in range(writers)
    ]
    for process in processes:
        process.wait()
    wall = time.perf_counter() - started
    codes = [line for k in range(writers) for line in (folder / f"writer-{k}.log").read_text().splitlines()]
    passed = sum(line == "exit 0" for line in codes)
    failed = sum(line.startswith("exit ") and line != "exit 0" for line in codes)
    return wall, passed, failed


def _sqlite(base: Path, repeat: int, args: argparse.Namespace, env: dict[str, str]) -> tuple[float, int, int]:
    folder = base / f"sqlite-{repeat}"
    _project(folder)
    uri = f"sqlite:///{folder / 'store' / 'mlflow.db'}"
    (folder / "store").mkdir()
    subprocess.run(
        [sys.executable, "-c", f"import mlflow; mlflow.MlflowClient({uri!r}).search_experiments()"],
        check=True,
        env=env,
        capture_output=True,
    )
    return _writers(folder, uri, args.writers, args.sessions, env)


def _postgresql(base: Path, repeat: int, args: argparse.Namespace, env: dict[str, str]) -> tuple[float, int, int]:
    folder = base / f"postgresql-{repeat}"
    _project(folder)
    cluster = start_cluster()
    server = PostgresServer(cluster, folder, free_port())
    try:
        server.start()
        return _writers(folder, server.uri, args.writers, args.sessions, env)
    finally:
        server.stop()
        stop_cluster(cluster)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=4, help="sessions running at once (default 4)")
    parser.add_argument("--sessions", type=int, default=5, help="sessions each writer runs in turn (default 5)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs of each store, alternating (default 2)")
    args = parser.parse_args()
    print(f"python {platform.python_version()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    print(f"{args.writers} writers x {args.sessions} sessions each, --mlflow-promote, {args.repeats} repeats")
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
    for name in ("MLFLOW_TRACKING_URI", "PYTEST_ADDOPTS", "FORECAST_E2E_MODELS", "FORECAST_E2E_DATA"):
        env.pop(name, None)
    rates: dict[str, list[float]] = {"sqlite": [], "postgresql": []}
    with tempfile.TemporaryDirectory(prefix="bench-writers-") as tmp:
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        for repeat in range(args.repeats):
            for store, run in (("sqlite", _sqlite), ("postgresql", _postgresql)):
                try:
                    wall, passed, failed = run(Path(tmp), repeat, args, env)
                except Unavailable as exc:
                    print(f"{store}: cannot start PostgreSQL here: {exc}")
                    continue
                rates[store].append(passed / wall * 60)
                print(
                    f"repeat {repeat + 1} {store:<10}: {passed} passed, {failed} failed in {wall:.1f} s "
                    f"= {passed / wall * 60:.1f} sessions/min (load {os.getloadavg()[0]:.2f})"
                )
    if rates["sqlite"] and rates["postgresql"]:
        sqlite, postgresql = statistics.median(rates["sqlite"]), statistics.median(rates["postgresql"])
        print(f"median: sqlite {sqlite:.1f}, postgresql server {postgresql:.1f} sessions/min")
        print(f"postgresql server / sqlite = {postgresql / sqlite:.2f}")


if __name__ == "__main__":
    main()
