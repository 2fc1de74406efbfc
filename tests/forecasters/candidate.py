"""The repository's candidate model: a small direct multi-output MLP on recent USD/CLP log-returns.

:class:`DirectMLP` forecasts every step of its horizon at once from the last ``lookback`` daily
log-returns, and turns them into price levels: ``last * exp(cumsum(log_returns))``. It is built to
stay close to the random walk, which is what an honest FX model has to beat:

* the output layer starts at zero and has no bias (no constant drift term), so the untrained network
  *is* the random walk;
* training is full-batch AdamW with weight decay, on the most recent ``max_samples`` windows;
* early stopping keeps the epoch with the lowest loss on the latest ``validation`` share of windows
  (epoch 0, the random walk, included); the ``horizon - 1`` windows between the two parts are left
  out, so no training target overlaps a validation target.

Determinism: every fit starts again from parameters drawn from ``torch.Generator().manual_seed(seed)``,
training is full batch (no shuffling), the network computes in float32, and torch runs on one intra-op
thread while fitting and predicting (restored afterwards), so the same inputs give bit-identical
forecasts across runs and processes on a machine, whatever its core count. The global
``torch.use_deterministic_algorithms`` flag is left alone (it is the caller's): the operations used
here (linear layers, tanh, cumulative sums and their gradients) are deterministic on CPU.

The network is a ``torch.nn.Module`` whose ``forward`` maps ``(batch, lookback)`` float32 log-returns to
``(batch, horizon)`` log-return forecasts, so MLflow's pytorch flavour can log it and the logged model
reproduces the backtest's forecasts, ``degrade`` included.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from torch import nn

__all__ = ["DirectMLP"]

# ``degrade`` shifts the forecast log-price at step s by degrade * _DEGRADE_SCALE * sigma * sqrt(s):
# for a model near the random walk, RMSE grows by a factor of about sqrt(1 + (5 * degrade) ** 2).
_DEGRADE_SCALE = 5.0
# Fewest training windows (after the validation share and the embargo) a fit accepts.
_MIN_TRAIN_WINDOWS = 20


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch on one intra-op thread, so reductions do not depend on the core count; then restore."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _log_returns(prices: np.ndarray, what: str) -> np.ndarray:
    if not np.all(prices > 0):
        raise ValueError(f"{what} must hold positive prices (log-returns are taken), got min {np.min(prices)!r}")
    return np.diff(np.log(prices), axis=-1)


def _whole(name: str, value: Any, least: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < least:
        raise ValueError(f"DirectMLP {name} must be a whole number >= {least}, got {value!r}")
    return int(value)


class _AdamW:
    """AdamW (decoupled weight decay), as ``torch.optim.AdamW`` with its default betas and eps.

    Written out because the first ``torch.optim`` optimiser built in a process imports
    ``torch._dynamo``, about 2.5 s: more than all the fits of a backtest.
    """

    def __init__(
        self,
        parameters: list[nn.Parameter],
        lr: float,
        weight_decay: float,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.parameters = parameters
        self.lr, self.weight_decay, self.betas, self.eps = lr, weight_decay, betas, eps
        self.first = [torch.zeros_like(p) for p in parameters]
        self.second = [torch.zeros_like(p) for p in parameters]
        self.steps = 0

    @torch.no_grad()
    def step(self, gradients: Sequence[torch.Tensor]) -> None:
        self.steps += 1
        beta1, beta2 = self.betas
        step_size = self.lr / (1 - beta1**self.steps)
        correction2 = math.sqrt(1 - beta2**self.steps)
        for parameter, gradient, first, second in zip(self.parameters, gradients, self.first, self.second):
            parameter.mul_(1 - self.lr * self.weight_decay)
            first.lerp_(gradient, 1 - beta1)
            second.mul_(beta2).addcmul_(gradient, gradient, value=1 - beta2)
            parameter.addcdiv_(first, (second.sqrt() / correction2).add_(self.eps), value=-step_size)


class DirectMLP(nn.Module):
    """Direct multi-output MLP: last ``lookback`` log-returns -> ``horizon`` log-return forecasts.

    Parameters
    ----------
    horizon:
        Steps the network is built and trained for. A backtest asks for ``gap + horizon`` steps, so
        build it with at least that; asking for more raises :class:`ValueError`.
    lookback:
        Log-returns the network reads; ``context_length`` is ``lookback + 1`` prices.
    hidden_size:
        Width of the single tanh hidden layer.
    epochs, lr, weight_decay:
        Full-batch AdamW training; the epoch kept is chosen by early stopping.
    validation:
        Share of the (most recent) training windows held out for early stopping.
    max_samples:
        Train on at most this many of the most recent windows (bounds the fit time).
    seed:
        Seed of the parameter initialisation; every ``fit`` starts again from it.
    degrade:
        ``0`` for the real model. When ``> 0`` the forecasts are made worse on purpose, to watch a
        regression gate fail: the forecast log-price at step ``s`` is raised by
        ``degrade * 5 * sigma * sqrt(s)``, with ``sigma`` the standard deviation of the context's
        log-returns, i.e. ``5 * degrade`` times the typical ``s``-step move. Near the random walk this
        multiplies RMSE by about ``sqrt(1 + 25 * degrade**2)``: ``0.2`` makes it some 40% worse.
    name:
        The name backtests record.
    """

    scale: torch.Tensor  # a buffer (see __init__): declared so that it types as a tensor, not a submodule

    def __init__(
        self,
        horizon: int,
        *,
        lookback: int = 40,
        hidden_size: int = 16,
        epochs: int = 150,
        lr: float = 0.01,
        weight_decay: float = 0.1,
        validation: float = 0.2,
        max_samples: int = 1500,
        seed: int = 0,
        degrade: float = 0.0,
        name: str = "direct_mlp",
    ) -> None:
        super().__init__()
        self.horizon = _whole("horizon", horizon, 1)
        self.lookback = _whole("lookback", lookback, 2)
        self.hidden_size = _whole("hidden_size", hidden_size, 1)
        self.epochs = _whole("epochs", epochs, 0)
        self.max_samples = _whole("max_samples", max_samples, 1)
        self.seed = _whole("seed", seed, 0)
        for label, value in (("lr", lr), ("weight_decay", weight_decay), ("degrade", degrade)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"DirectMLP {label} must be a finite number >= 0, got {value!r}")
        if not (isinstance(validation, (int, float)) and 0 < validation < 1):
            raise ValueError(f"DirectMLP validation must be a share strictly between 0 and 1, got {validation!r}")
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.validation = float(validation)
        self.degrade = float(degrade)
        self.name = name
        self.context_length = self.lookback + 1
        if self.max_samples < self._min_windows():
            raise ValueError(
                f"DirectMLP max_samples={self.max_samples} leaves too few windows: {_MIN_TRAIN_WINDOWS} for "
                f"training, {self.horizon - 1} left out before a {self.validation:.0%} validation share need "
                f"max_samples >= {self._min_windows()}"
            )
        # skip_init: the layers are initialised from ``seed`` below, never from torch's global generator.
        self.body = nn.utils.skip_init(nn.Linear, self.lookback, self.hidden_size)
        self.head = nn.utils.skip_init(nn.Linear, self.hidden_size, self.horizon, bias=False)
        # Typical daily log-return of the training data: inputs and outputs are measured in it.
        self.register_buffer("scale", torch.ones((), dtype=torch.float32))
        self.fitted = False
        self.best_epoch: int | None = None
        self._initialise()

    # -- the network -------------------------------------------------------------------------------

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, horizon)`` per-step log-return forecasts from ``(batch, lookback)`` float32 log-returns."""
        out = self._standardised(x / self.scale) * self.scale
        if self.degrade > 0:
            steps = torch.arange(self.horizon + 1, dtype=out.dtype).sqrt()
            out = out + (self.degrade * _DEGRADE_SCALE) * x.std(dim=1, keepdim=True) * steps.diff()
        return out

    def _standardised(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.body(z)))

    def _initialise(self) -> None:
        generator = torch.Generator().manual_seed(self.seed)
        bound = 1.0 / math.sqrt(self.lookback)
        with torch.no_grad():
            self.body.weight.uniform_(-bound, bound, generator=generator)
            self.body.bias.uniform_(-bound, bound, generator=generator)
            self.head.weight.zero_()
            self.scale.fill_(1.0)

    # -- the Forecaster protocol -------------------------------------------------------------------

    @property
    def input_example(self) -> np.ndarray:
        """A ``(1, lookback)`` float32 batch of log-returns, the shape ``forward`` takes (for MLflow's signature)."""
        return np.zeros((1, self.lookback), dtype=np.float32)

    def get_params(self) -> dict[str, Any]:
        return {
            "horizon": self.horizon,
            "lookback": self.lookback,
            "hidden_size": self.hidden_size,
            "epochs": self.epochs,
            "lr": self.lr,
            "weight_decay": self.weight_decay,
            "validation": self.validation,
            "max_samples": self.max_samples,
            "seed": self.seed,
            "degrade": self.degrade,
        }

    def min_history(self) -> int:
        """Fewest prices :meth:`fit` accepts: enough windows for training, the windows left out and validation."""
        return self._min_windows() + self.lookback + self.horizon  # a window spans lookback + horizon returns

    def _min_windows(self) -> int:
        windows = _MIN_TRAIN_WINDOWS + self.horizon
        while windows - self._validation_windows(windows) - self.horizon + 1 < _MIN_TRAIN_WINDOWS:
            windows += 1
        return windows

    def _validation_windows(self, windows: int) -> int:
        return max(1, round(self.validation * windows))

    def fit(self, history: np.ndarray) -> DirectMLP:
        """Train from scratch on ``history`` (prices, oldest first); returns ``self``."""
        prices = np.asarray(history, dtype=np.float64)
        if prices.ndim != 1:
            raise ValueError(f"DirectMLP.fit expects a 1-d price history, got shape {prices.shape}")
        if len(prices) < self.min_history():
            raise ValueError(
                f"DirectMLP.fit got {len(prices)} prices but needs at least {self.min_history()}: a window spans "
                f"lookback {self.lookback} + horizon {self.horizon} returns, and a fit needs {_MIN_TRAIN_WINDOWS} "
                f"training windows, {self.horizon - 1} left out and a {self.validation:.0%} validation share; "
                "pass a longer history or build the model with a smaller lookback"
            )
        returns = _log_returns(prices, "history")
        windows = sliding_window_view(returns, self.lookback + self.horizon)[-self.max_samples :]
        n_val = self._validation_windows(len(windows))
        n_train = len(windows) - n_val - self.horizon + 1
        used = returns[-(len(windows) + self.lookback + self.horizon - 1) :]
        scale = float(np.std(used))
        scale = scale if scale > 0 else 1.0
        inputs = torch.from_numpy((windows[:, : self.lookback] / scale).astype(np.float32))
        targets = torch.from_numpy((np.cumsum(windows[:, self.lookback :], axis=1) / scale).astype(np.float32))
        x_train, y_train = inputs[:n_train], targets[:n_train]
        x_val, y_val = inputs[-n_val:], targets[-n_val:]

        with _one_thread():
            self._initialise()
            best_epoch = self._train(x_train, y_train, x_val, y_val)
            self.scale.fill_(scale)
        self.best_epoch = best_epoch
        self.fitted = True
        return self

    def _train(self, x_train: torch.Tensor, y_train: torch.Tensor, x_val: torch.Tensor, y_val: torch.Tensor) -> int:
        """Full-batch AdamW on standardised windows; keep the epoch with the lowest validation loss."""
        parameters = list(self.parameters())
        optimiser = _AdamW(parameters, lr=self.lr, weight_decay=self.weight_decay)

        def validation_loss() -> float:
            with torch.no_grad():
                return float(((self._standardised(x_val).cumsum(dim=1) - y_val) ** 2).mean())

        best_loss, best_epoch = validation_loss(), 0
        best = [p.detach().clone() for p in parameters]
        for epoch in range(1, self.epochs + 1):
            loss = ((self._standardised(x_train).cumsum(dim=1) - y_train) ** 2).mean()
            gradients = torch.autograd.grad(loss, parameters)
            optimiser.step(gradients)
            current = validation_loss()
            if current < best_loss:
                best_loss, best_epoch = current, epoch
                best = [p.detach().clone() for p in parameters]
        with torch.no_grad():
            for parameter, value in zip(parameters, best):
                parameter.copy_(value)
        return best_epoch

    def predict(self, history: np.ndarray, steps: int) -> np.ndarray:
        """The next ``steps`` price levels after ``history`` (its last ``context_length`` points are used)."""
        prices = np.asarray(history, dtype=np.float64)
        if prices.ndim != 1:
            raise ValueError(f"DirectMLP.predict expects a 1-d price history, got shape {prices.shape}")
        return self.predict_batch(prices[None, :], steps)[0]

    def predict_batch(self, contexts: np.ndarray, steps: int) -> np.ndarray:
        """``(origins, steps)`` price levels from ``(origins, context_length)`` prices, in one forward pass."""
        self._check_steps(steps)
        if not self.fitted:
            raise RuntimeError("DirectMLP is not fitted: call fit(history) before predicting")
        prices = np.asarray(contexts, dtype=np.float64)
        if prices.ndim != 2 or prices.shape[1] < self.context_length:
            raise ValueError(
                f"DirectMLP needs contexts of shape (origins, {self.context_length}) "
                f"(lookback {self.lookback} + 1 prices), got {prices.shape}"
            )
        returns = _log_returns(prices[:, -self.context_length :], "contexts")
        with _one_thread(), torch.no_grad():
            out = self(torch.from_numpy(returns.astype(np.float32))).numpy().astype(np.float64)
        return prices[:, -1:] * np.exp(np.cumsum(out[:, :steps], axis=1))

    def _check_steps(self, steps: int) -> None:
        if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps < 1:
            raise ValueError(f"steps must be a whole number >= 1, got {steps!r}")
        if steps > self.horizon:
            raise ValueError(
                f"DirectMLP was built for horizon={self.horizon} steps but was asked for {steps}; "
                f"build it with horizon >= {steps} (a backtest asks for gap + horizon steps)"
            )
