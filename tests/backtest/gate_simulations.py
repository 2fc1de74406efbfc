"""Simulated walk-forward comparisons for calibrating the gate: per-fold RMSE of two models, many runs at once.

Shared by the fast calibration tests (``test_compare.py``, ``test_spa.py``) and the grid in
``tests/benchmarks/bench_gate_calibration.py``. Every generator returns ``(candidate, baseline)``, two
``(sims, origins)`` arrays of per-fold RMSE over ``horizon`` steps from consecutive origins (step 1),
so consecutive folds overlap ``horizon - 1`` deep, as in a real walk-forward backtest.

A model's error at origin ``t``, step ``s`` is ``x[t + s] - x[t]`` for an error walk ``x`` (the model's
own accumulated noise minus the series): a no-change forecast of a random walk, give or take the model.
"""

from __future__ import annotations

import math

import numpy as np

NOISE = 0.5  # each model's own error random walk, relative to the series' innovations


def fold_rmse(walks: np.ndarray, horizon: int, origins: int) -> np.ndarray:
    """Per-fold RMSE when the error at origin ``t``, step ``s`` is ``walks[:, t + s] - walks[:, t]``.

    ``sum_s (x_{t+s} - x_t)^2 = S2 - 2 x_t S1 + h x_t^2`` with window sums from cumulative sums, so
    no ``(sims, origins, horizon)`` array is built.
    """
    zero = np.zeros((walks.shape[0], 1))
    c1 = np.concatenate([zero, walks.cumsum(axis=1)], axis=1)
    c2 = np.concatenate([zero, (walks**2).cumsum(axis=1)], axis=1)
    x = walks[:, :origins]
    s1 = c1[:, horizon + 1 : horizon + 1 + origins] - c1[:, 1 : 1 + origins]
    s2 = c2[:, horizon + 1 : horizon + 1 + origins] - c2[:, 1 : 1 + origins]
    return np.sqrt(np.maximum(s2 - 2 * x * s1 + horizon * x**2, 0.0) / horizon)


def innovations(rng: np.random.Generator, shape: tuple[int, int], kind: str) -> np.ndarray:
    """The series' shocks: ``normal``; ``t3`` (Student's t, 3 df, unit variance); ``break`` (volatility
    triples half way); ``garch`` (GARCH(1,1): omega 0.05, ARCH 0.10, GARCH 0.85, unit variance)."""
    if kind == "normal":
        return rng.standard_normal(shape)
    if kind == "t3":
        return rng.standard_t(3, shape) / math.sqrt(3.0)
    if kind == "break":
        scale = np.where(np.arange(shape[1]) < shape[1] // 2, 1.0, 3.0)
        return rng.standard_normal(shape) * scale
    if kind == "garch":
        omega, arch, garch = 0.05, 0.10, 0.85
        z = rng.standard_normal(shape)
        out = np.empty(shape)
        variance = np.full(shape[0], omega / (1 - arch - garch))
        for t in range(shape[1]):
            out[:, t] = np.sqrt(variance) * z[:, t]
            variance = omega + arch * out[:, t] ** 2 + garch * variance
        return out
    raise ValueError(f"unknown innovations {kind!r}; use normal, t3, break or garch")


def random_walk(
    rng: np.random.Generator, sims: int, origins: int, horizon: int, *, kind: str = "normal", scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Both models miss the same series shocks and add their own noise walk of the same scale (equal
    expected RMSE); the candidate's errors are then multiplied by ``scale`` (1.2: 20% worse)."""
    shape = (sims, origins + horizon)
    series = innovations(rng, shape, kind).cumsum(axis=1)
    candidate = NOISE * rng.standard_normal(shape).cumsum(axis=1) - series
    baseline = NOISE * rng.standard_normal(shape).cumsum(axis=1) - series
    return fold_rmse(scale * candidate, horizon, origins), fold_rmse(baseline, horizon, origins)


def regimes(
    rng: np.random.Generator, sims: int, origins: int, horizon: int, **options: float
) -> tuple[np.ndarray, np.ndarray]:
    """Relative skill that drifts (:func:`regimes_with_share`, whose keywords it takes), without the shares."""
    candidate, baseline, _ = regimes_with_share(rng, sims, origins, horizon, **options)
    return candidate, baseline


def regimes_with_share(
    rng: np.random.Generator,
    sims: int,
    origins: int,
    horizon: int,
    *,
    low: float = 0.25,
    high: float = 0.75,
    switch: float = 0.01,
    scale: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Relative skill that drifts: the two models' noise scales swap (``low`` and ``high``) at regime
    switches, each origin switching with probability ``switch`` (mean regime length ``1 / switch``).
    Equal on average; which one is better persists far beyond the fold overlap. The third array is, for
    each run, the share of its steps in which the candidate had the ``high`` noise."""
    shape = (sims, origins + horizon)
    state = (np.cumsum(rng.random(shape) < switch, axis=1) + rng.integers(0, 2, (sims, 1))) % 2
    series = rng.standard_normal(shape).cumsum(axis=1)
    candidate = (np.where(state == 0, low, high) * rng.standard_normal(shape)).cumsum(axis=1) - series
    baseline = (np.where(state == 0, high, low) * rng.standard_normal(shape)).cumsum(axis=1) - series
    share = (state == 1).mean(axis=1)
    return fold_rmse(scale * candidate, horizon, origins), fold_rmse(baseline, horizon, origins), share


def drift(
    rng: np.random.Generator, sims: int, origins: int, horizon: int, *, delta: float = 0.1, scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Two equally good drifting forecasters of a random walk: last value plus, and minus, ``delta`` per step."""
    shape = (sims, origins + horizon)
    series = rng.standard_normal(shape).cumsum(axis=1)
    trend = delta * np.arange(shape[1])
    return fold_rmse(scale * (series - trend), horizon, origins), fold_rmse(series + trend, horizon, origins)
