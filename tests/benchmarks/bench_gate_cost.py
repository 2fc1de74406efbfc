"""Benchmark: what one gate decision costs, four horizons x 500 folds, bootstrap included (issue #16).

Run it as ``python tests/benchmarks/bench_gate_cost.py`` (a few seconds). It prints medians over
interleaved repeats and the ratios between the things it runs side by side; it never fails. Target:
every decision below 0.5 s.

1. ``dm`` (the default, fixed-smoothing EWC) and ``dm-hln``: ``compare`` at each of four horizons
   (5, 10, 20, 30 steps, step 1, 500 folds each) and one Holm ``decide`` over them.
2. Quaedvlieg's uniform and average multi-horizon SPA (``backtest.spa``) on the same 500 x 4
   differentials with 999 moving-block bootstraps, seeded, plus aligning the horizons on common origins.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from backtest.compare import Method, compare, decide  # noqa: E402
from backtest.spa import Kind, common_origins, differentials, multi_horizon_spa  # noqa: E402
from tests.backtest import gate_simulations as sim  # noqa: E402

HORIZONS = (5, 10, 20, 30)
FOLDS = 500
REPEATS = 31


def _data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    length = FOLDS + max(HORIZONS)
    series = rng.standard_normal((1, length)).cumsum(axis=1)
    cand = sim.NOISE * rng.standard_normal((1, length)).cumsum(axis=1) - series
    base = sim.NOISE * rng.standard_normal((1, length)).cumsum(axis=1) - series
    candidate = np.stack([sim.fold_rmse(cand, h, FOLDS)[0] for h in HORIZONS], axis=1)
    baseline = np.stack([sim.fold_rmse(base, h, FOLDS)[0] for h in HORIZONS], axis=1)
    return candidate, baseline


def main() -> None:
    candidate, baseline = _data()
    origins = [np.arange(FOLDS) for _ in HORIZONS]

    def holm(method: Method) -> Callable[[], object]:
        return lambda: decide(
            [
                compare(candidate[:, i], baseline[:, i], direction="lower", horizon=h, step=1, method=method)
                for i, h in enumerate(HORIZONS)
            ],
            0.05,
        )

    def spa(kind: Kind) -> Callable[[], object]:
        def run() -> object:
            rows = common_origins(origins)
            d = differentials(candidate[rows], baseline[rows])
            return multi_horizon_spa(d, kind=kind, deepest_lags=max(HORIZONS) - 1)

        return run

    cases = {
        "dm, Holm over 4 horizons": holm("dm"),
        "dm-hln, Holm over 4 horizons": holm("dm-hln"),
        "mh-uspa (999 bootstraps)": spa("uniform"),
        "mh-aspa (999 bootstraps)": spa("average"),
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(REPEATS):  # interleaved, so load on a shared machine hits every case alike
        for name, case in cases.items():
            started = time.perf_counter()
            case()
            times[name].append(time.perf_counter() - started)
    reference = statistics.median(times["dm-hln, Holm over 4 horizons"])
    print(f"four horizons {HORIZONS} x {FOLDS} folds; median of {REPEATS} interleaved repeats")
    print()
    print("| decision | median | vs dm-hln | under 0.5 s |")
    print("|---|---:|---:|---|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {1000 * median:.1f} ms | {median / reference:.2f}x | {'yes' if median < 0.5 else 'NO'} |")
    same = multi_horizon_spa(differentials(candidate, baseline), kind="uniform", deepest_lags=max(HORIZONS) - 1)
    again = multi_horizon_spa(differentials(candidate, baseline), kind="uniform", deepest_lags=max(HORIZONS) - 1)
    print()
    print(f"seeded: the same data give p = {same.p_value:.4f} twice: {same == again}")


if __name__ == "__main__":
    main()
