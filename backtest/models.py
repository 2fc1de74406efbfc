"""The forecaster protocol and the baseline forecasters every model must beat.

A forecaster is fit on a training window and asked for the next ``steps`` values after a history::

    class Forecaster(Protocol):
        def fit(self, history: np.ndarray) -> None: ...
        def predict(self, history: np.ndarray, steps: int) -> np.ndarray: ...

Optional extras, all discovered by attribute:

* ``context_length``: how many trailing points ``predict`` needs (also the shortest window it accepts);
* ``predict_batch(contexts, steps)``: forecasts for many origins at once from a ``(origins,
  context_length)`` array, used between refits (the vectorised path for neural networks);
* ``predict_quantiles(history, steps, quantiles)``: a ``(steps, len(quantiles))`` array of quantile
  forecasts at the sorted levels ``quantiles``, asked for when the backtest is given ``quantiles=``;
  ``predict_quantiles_batch(contexts, steps, quantiles)`` is its ``(origins, steps, levels)`` counterpart
  beside ``predict_batch``;
* ``stateless``: true when ``fit`` learns nothing, so every forecast comes from the context alone; the
  runner then fits once and batches every origin whatever the ``refit`` cadence (the baselines here
  declare it as long as a subclass does not override ``fit``);
* ``get_params()``: parameters worth recording;
* exogenous regressors: ``fit(history, exog=...)`` and ``predict(history, steps, exog=...,
  exog_future=...)``, called with those keywords only when the backtest is given ``exog``.

Histories are read-only copies: a model can neither see past its origin nor change the data.
``predict_batch`` must forecast each row from that row alone: the batch holds the contexts of every
origin up to the next refit, so statistics across rows (batch normalisation in training mode, a mean
over the batch) would let an early origin learn from later ones.
"""

from __future__ import annotations

from statistics import NormalDist
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

__all__ = ["Drift", "Forecaster", "Naive", "RandomWalk", "SeasonalNaive", "WindowMean"]


@runtime_checkable
class Forecaster(Protocol):
    def fit(self, history: np.ndarray) -> Any: ...

    def predict(self, history: np.ndarray, steps: int) -> np.ndarray: ...


class _Stateless:
    """Baselines learn nothing at fit time: every forecast comes from the context it is given."""

    context_length: int = 1

    @property
    def stateless(self) -> bool:
        """True unless a subclass overrides ``fit`` (then it may learn, and is refit as the spec says)."""
        return type(self).fit is _Stateless.fit

    def fit(self, history: np.ndarray) -> None:
        return None

    def predict(self, history: np.ndarray, steps: int) -> np.ndarray:
        return self.predict_batch(np.asarray(history)[None, -self.context_length :], steps)[0]

    def predict_batch(self, contexts: np.ndarray, steps: int) -> np.ndarray:
        raise NotImplementedError

    def get_params(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"


class Naive(_Stateless):
    """Random walk: every step equals the last observation. The benchmark an FX forecast must beat."""

    def predict_batch(self, contexts: np.ndarray, steps: int) -> np.ndarray:
        return np.repeat(contexts[:, -1:], steps, axis=1)


class Drift(_Stateless):
    """Random walk with drift: the last value plus the average change over the last ``window`` points."""

    def __init__(self, window: int = 250) -> None:
        if window < 2:
            raise ValueError(f"Drift window must be >= 2 points, got {window}")
        self.window = window
        self.context_length = window

    def get_params(self) -> dict[str, Any]:
        return {"window": self.window}

    def predict_batch(self, contexts: np.ndarray, steps: int) -> np.ndarray:
        slope = (contexts[:, -1] - contexts[:, 0]) / (contexts.shape[1] - 1)
        return contexts[:, -1:] + slope[:, None] * np.arange(1, steps + 1)


class SeasonalNaive(_Stateless):
    """Each step repeats the value one season earlier (``season`` points back)."""

    def __init__(self, season: int) -> None:
        if season < 1:
            raise ValueError(f"SeasonalNaive season must be >= 1, got {season}")
        self.season = season
        self.context_length = season

    def get_params(self) -> dict[str, Any]:
        return {"season": self.season}

    def predict_batch(self, contexts: np.ndarray, steps: int) -> np.ndarray:
        return contexts[:, np.arange(steps) % self.season]


class WindowMean(_Stateless):
    """Every step equals the mean of the last ``k`` observations."""

    def __init__(self, k: int) -> None:
        if k < 1:
            raise ValueError(f"WindowMean k must be >= 1, got {k}")
        self.k = k
        self.context_length = k

    def get_params(self) -> dict[str, Any]:
        return {"k": self.k}

    def predict_batch(self, contexts: np.ndarray, steps: int) -> np.ndarray:
        return np.repeat(contexts.mean(axis=1, keepdims=True), steps, axis=1)


class RandomWalk(Naive):
    """The random walk with an honest interval: every step equals the last observation, and its quantiles
    spread by the square root of the step ahead.

    ``fit`` estimates the one-step changes' distribution from the training window only: their standard
    deviation for ``interval="gaussian"`` (quantile ``t`` at ``last + sigma z_t sqrt(h)``), their
    empirical quantiles for ``interval="empirical"`` (``last + q_t(changes) sqrt(h)``, exact for
    Gaussian steps, an approximation otherwise). Refit as the spec says: it learns its scale.
    """

    def __init__(self, interval: Literal["gaussian", "empirical"] = "gaussian") -> None:
        if interval not in ("gaussian", "empirical"):
            raise ValueError(f"RandomWalk interval must be 'gaussian' or 'empirical', got {interval!r}")
        self.interval = interval
        self._changes: np.ndarray | None = None

    def get_params(self) -> dict[str, Any]:
        return {"interval": self.interval}

    def fit(self, history: np.ndarray) -> None:
        changes = np.diff(np.asarray(history, dtype=float))
        if changes.size < 2:
            raise ValueError(
                f"RandomWalk needs at least 3 training points to estimate its interval, got {changes.size + 1}"
            )
        self._changes = changes

    def _offsets(self, quantiles: np.ndarray) -> np.ndarray:
        """The one-step quantile offsets from the last value, at each level."""
        if self._changes is None:
            raise RuntimeError("RandomWalk must be fit before it forecasts quantiles")
        if self.interval == "empirical":
            return np.quantile(self._changes, quantiles)
        sigma = float(self._changes.std(ddof=1))
        return sigma * np.array([NormalDist().inv_cdf(float(t)) for t in quantiles])

    def predict_quantiles_batch(self, contexts: np.ndarray, steps: int, quantiles: np.ndarray) -> np.ndarray:
        spread = np.sqrt(np.arange(1, steps + 1))[:, None] * self._offsets(np.asarray(quantiles, dtype=float))
        return contexts[:, -1, None, None] + spread[None, :, :]

    def predict_quantiles(self, history: np.ndarray, steps: int, quantiles: np.ndarray) -> np.ndarray:
        return self.predict_quantiles_batch(np.asarray(history)[None, -1:], steps, quantiles)[0]
