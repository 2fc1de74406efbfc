"""Benchmark: refit blocks on worker processes (``backtest.run(n_jobs=...)``) and on a Dask cluster.

Run it from the repository root as ``.venv/bin/python -m tests.benchmarks.bench_parallel`` (a few minutes
on 2 cores; ``--repeats N`` changes the number of alternating rounds, default 3). It needs the ``dask``
extra (``distributed``) and torch. It prints medians over interleaved repeats, the ratios between the
cases it runs side by side and the load average before and after; it never fails.

1. The USD/CLP candidate: ``DirectMLP(30)`` on ``../shared/data/usdclp_daily.csv`` (``USDCLP_SERIES``
   overrides; the synthetic sample when the file is missing), origins every 5 business days from
   2016-01-04 as in ``tests/forecasters/test_usdclp.py`` but refit every 10 origins: about 50 refit
   blocks. ``n_jobs=1`` against ``n_jobs=2`` (loky), before any Dask cluster exists; then, with a
   ``distributed.LocalCluster`` of 2 worker processes with one thread each, ``n_jobs=1`` against
   ``n_jobs=2`` inside ``joblib.parallel_config(backend="dask")`` (also against the first ``n_jobs=1``:
   the cluster's scheduler runs in this process and slows a sequential run beside it). The cluster is
   made without Dask's ``MALLOC_TRIM_THRESHOLD_`` (see ``tests/dask_cluster.py``), which would otherwise
   leak into the processes started after it and cost torch's fits about 1.7x their CPU. Target on an
   otherwise idle 2-core machine: speed-up >= 1.7x. The forecasts are checked to be bit-identical
   across the three. Torch threads: ``DirectMLP`` runs torch on one intra-op
   thread while it fits and predicts (``torch.set_num_threads(1)``, restored afterwards), so two workers
   use two cores and not 2 x (torch's default, one thread per core) threads fighting over them; loky
   also caps the OpenMP/BLAS threads of its workers at cores / n_jobs.
2. Scheduling overhead per block: a model whose ``fit`` and ``predict`` do (almost) nothing, refit every
   10 folds of a 3,000-point series (200 blocks), sequentially, through loky and through Dask. The
   difference to the sequential run divided by the block count is what shipping a block to a worker and
   its result back costs; a block worth parallelising takes much longer than that.

Each case also shows the CPU seconds spent by this process and its live descendants (loky workers, Dask
nannies and workers) and CPU/wall: with two busy workers on an idle 2-core machine CPU/wall nears 2. On a
shared machine whose kernel schedules by session (``/proc/sys/kernel/sched_autogroup_enabled``), a
session gets its share of the cores however many processes it starts, and CPU/wall shows that share.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import joblib  # type: ignore[import-untyped]
import numpy as np

import backtest
from tests.benchmarks.bench_backtest import interleaved
from tests.dask_cluster import local_cluster
from tests.forecasters.candidate import DirectMLP

ROOT = Path(__file__).resolve().parents[2]
REAL = ROOT.parent / "shared" / "data" / "usdclp_daily.csv"
SYNTHETIC = ROOT / "data" / "usdclp_synthetic.csv"
CANDIDATE_SPEC = backtest.WalkForward(horizon=30, step=5, initial="2016-01-04", refit=10)
NOOP_SPEC = backtest.WalkForward(horizon=1, step=1, initial=1000, refit=10)
TARGET_SPEEDUP = 1.7


class NoOp:
    """Refit (not stateless) but learns nothing: what is left of a block is the runner's and joblib's cost."""

    def fit(self, history: np.ndarray) -> None:
        self.last = float(history[-1])

    def predict(self, history: np.ndarray, steps: int) -> np.ndarray:
        return np.full(steps, self.last)


def series_path() -> Path:
    chosen = os.environ.get("USDCLP_SERIES")
    if chosen:
        return Path(chosen)
    return REAL if REAL.exists() else SYNTHETIC


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} (1, 5, 15 min) on {os.cpu_count()} cores"


def cases(
    model: Callable[[], object],
    series,
    spec: backtest.WalkForward,
    last: dict[str, backtest.BacktestResult],
    *,
    dask: bool,
) -> dict[str, Callable[[], object]]:
    """The ways to run one backtest (sequential and loky, or sequential and Dask); each keeps its latest result."""

    def sequential() -> None:
        last["n_jobs=1"] = backtest.run(model(), series, spec)

    def loky() -> None:
        last["n_jobs=2 (loky)"] = backtest.run(model(), series, spec, n_jobs=2)

    def on_dask() -> None:
        with joblib.parallel_config(backend="dask"):
            last["n_jobs=2 (dask)"] = backtest.run(model(), series, spec, n_jobs=2)

    return (
        {"n_jobs=1": sequential, "n_jobs=2 (dask)": on_dask}
        if dask
        else {"n_jobs=1": sequential, "n_jobs=2 (loky)": loky}
    )


def tree_cpu() -> float:
    """CPU seconds used so far by this process and every live descendant (loky workers, Dask nannies and
    workers): on a shared machine the wall time says how much CPU we were given, this what we spent."""
    import psutil  # type: ignore[import-untyped]  # a dependency of distributed

    me = psutil.Process()
    total = 0.0
    for process in (me, *me.children(recursive=True)):
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def with_cpu(cases: dict[str, Callable[[], object]], cpu: dict[str, list[float]]) -> dict[str, Callable[[], object]]:
    def measured(name: str, fn: Callable[[], object]) -> Callable[[], object]:
        def run() -> None:
            before = tree_cpu()
            fn()
            cpu.setdefault(name, []).append(tree_cpu() - before)

        return run

    return {name: measured(name, fn) for name, fn in cases.items()}


def report(title: str, times: dict[str, list[float]], cpu: dict[str, list[float]], blocks: int) -> None:
    print(f"\n{title}")
    base = statistics.median(times["n_jobs=1"])
    for name, values in times.items():
        med = statistics.median(values)
        runs = " ".join(f"{v:.2f}" for v in values)
        spent = statistics.median(cpu[name][1:])  # the first call is the warm-up
        print(
            f"  {name:<17} median {med:8.3f} s  speed-up {base / med:5.2f}x  CPU {spent:8.3f} s  "
            f"(CPU/wall {spent / med:4.2f})  [{runs}]"
        )
    for name in [name for name in times if name != "n_jobs=1"]:
        per_block = (statistics.median(times[name]) - base) / blocks
        print(f"  {name}: {per_block * 1e3:+.2f} ms per block against n_jobs=1 ({blocks} blocks)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="alternating rounds per case (default 3)")
    args = parser.parse_args()
    import distributed

    print(f"command: {shlex.join([sys.executable, '-m', 'tests.benchmarks.bench_parallel', *sys.argv[1:]])}")
    print(f"python {platform.python_version()}, joblib {joblib.__version__}, distributed {distributed.__version__}")
    print(f"load average before: {load()}")

    path = series_path()
    series = backtest.load_series(path, positive=True)
    folds = CANDIDATE_SPEC.n_folds(len(series), series.index)
    blocks = int(CANDIDATE_SPEC.refit_mask(folds).sum())
    noop_series = 700.0 + np.cumsum(np.random.default_rng(20240101).normal(size=3000))
    noop_folds = NOOP_SPEC.n_folds(len(noop_series))
    noop_blocks = int(NOOP_SPEC.refit_mask(noop_folds).sum())
    print(f"series: {path} ({len(series)} points); candidate: {folds} folds, {blocks} refit blocks")

    # loky first, before any Dask cluster exists: see local_cluster for what one leaves in the environment
    results: dict[str, backtest.BacktestResult] = {}
    cpu: dict[str, list[float]] = {}
    times = interleaved(
        with_cpu(cases(lambda: DirectMLP(30), series, CANDIDATE_SPEC, results, dask=False), cpu), args.repeats
    )
    report(f"1. USD/CLP DirectMLP(30), refit every 10 origins (target >= {TARGET_SPEEDUP}x)", times, cpu, blocks)
    first = times
    overhead_cpu: dict[str, list[float]] = {}
    overhead = interleaved(
        with_cpu(cases(NoOp, noop_series, NOOP_SPEC, {}, dask=False), overhead_cpu), max(args.repeats, 5)
    )

    with local_cluster():
        cpu = {}
        times = interleaved(
            with_cpu(cases(lambda: DirectMLP(30), series, CANDIDATE_SPEC, results, dask=True), cpu), args.repeats
        )
        report("2. the same on a local Dask cluster (2 worker processes, one thread each)", times, cpu, blocks)
        # the cluster's scheduler shares this process (and its GIL) with the sequential run beside it
        alone = statistics.median(first["n_jobs=1"]) / statistics.median(times["n_jobs=2 (dask)"])
        print(f"  n_jobs=2 (dask) against 1.'s n_jobs=1 (no cluster in this process): speed-up {alone:.2f}x")
        dask_overhead = interleaved(
            with_cpu(cases(NoOp, noop_series, NOOP_SPEC, {}, dask=True), overhead_cpu), max(args.repeats, 5)
        )
    reference = results["n_jobs=1"].forecasts.tobytes()
    identical = all(result.forecasts.tobytes() == reference for result in results.values())
    print(f"\nforecasts bit-identical across n_jobs=1, loky and dask: {'yes' if identical else 'NO'}")
    overhead["n_jobs=2 (dask)"] = dask_overhead["n_jobs=2 (dask)"]
    report(f"3. scheduling overhead: a no-op model, {noop_folds} folds", overhead, overhead_cpu, noop_blocks)
    print(f"\nload average after: {load()}")


if __name__ == "__main__":
    main()
