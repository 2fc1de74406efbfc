"""What a user of the candidate model relies on: deterministic, leak-free, shaped as asked, honest errors.

Small series and few epochs keep the whole module to a few seconds.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import backtest
from tests.forecasters.candidate import DirectMLP

HORIZON = 10
SMALL = {"lookback": 20, "hidden_size": 8, "epochs": 40}
ROOT = Path(__file__).resolve().parents[2]


def random_walk(n: int = 700, seed: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return 700.0 * np.exp(np.cumsum(rng.normal(0.0, 0.006, n)))


def mean_reverting(n: int = 800, seed: int = 3) -> np.ndarray:
    """A log-price AR(1) with coefficient 0.9: the next moves are predictable from the recent ones."""
    rng = np.random.default_rng(seed)
    shocks = rng.normal(0.0, 0.01, n)
    x = np.zeros(n)
    for i in range(1, n):
        x[i] = 0.9 * x[i - 1] + shocks[i]
    return 700.0 * np.exp(x)


def model(**overrides) -> DirectMLP:
    return DirectMLP(HORIZON, **{**SMALL, **overrides})


def contexts(y: np.ndarray, m: DirectMLP, count: int = 50) -> np.ndarray:
    return np.lib.stride_tricks.sliding_window_view(y, m.context_length)[-count:]


@pytest.fixture(scope="module")
def trained() -> tuple[DirectMLP, np.ndarray]:
    """A model fit on a series where training pays off, so forecasts are not just the random walk."""
    y = mean_reverting()
    m = model().fit(y[:600])
    assert m.best_epoch is not None
    assert m.best_epoch > 0, "the fixture should exercise a trained network, not the untrained random walk"
    return m, y


def test_two_fresh_instances_give_bit_identical_forecasts(trained) -> None:
    m, y = trained
    other = model().fit(y[:600])
    np.testing.assert_array_equal(
        other.predict_batch(contexts(y, other), HORIZON), m.predict_batch(contexts(y, m), HORIZON)
    )


def test_refit_starts_from_scratch(trained) -> None:
    m, y = trained
    reused = model().fit(random_walk()).fit(y[:600])
    np.testing.assert_array_equal(
        reused.predict_batch(contexts(y, m), HORIZON), m.predict_batch(contexts(y, m), HORIZON)
    )


def test_forecasts_are_bit_identical_in_a_fresh_process(trained, tmp_path) -> None:
    """Another interpreter with another torch thread count computes the same bits."""
    m, y = trained
    np.save(tmp_path / "y.npy", y)
    script = textwrap.dedent(
        f"""
        import sys
        import numpy as np
        import torch
        from tests.forecasters.candidate import DirectMLP
        torch.set_num_threads({1 if torch.get_num_threads() > 1 else 2})
        y = np.load(sys.argv[1])
        m = DirectMLP({HORIZON}, **{SMALL!r}).fit(y[:600])
        ctx = np.lib.stride_tricks.sliding_window_view(y, m.context_length)[-50:]
        np.save(sys.argv[2], m.predict_batch(ctx, {HORIZON}))
        """
    )
    subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "y.npy"), str(tmp_path / "f.npy")],
        cwd=ROOT,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    np.testing.assert_array_equal(np.load(tmp_path / "f.npy"), m.predict_batch(contexts(y, m), HORIZON))


def test_leaves_torch_global_state_alone(trained) -> None:
    _, y = trained
    threads, rng_state = torch.get_num_threads(), torch.random.get_rng_state()
    m = model().fit(y[:600])
    m.predict(y, HORIZON)
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.random.get_rng_state(), rng_state)


def test_predict_batch_matches_predict_one_context_at_a_time(trained) -> None:
    m, y = trained
    batch = m.predict_batch(contexts(y, m), HORIZON)
    one_by_one = np.stack([m.predict(row, HORIZON) for row in contexts(y, m)])
    # Not bit for bit: BLAS picks another float32 kernel for one row than for fifty.
    np.testing.assert_allclose(batch, one_by_one, rtol=1e-7, atol=0)


def test_shapes_and_fewer_steps_are_a_prefix(trained) -> None:
    m, y = trained
    full = m.predict_batch(contexts(y, m, 7), HORIZON)
    assert full.shape == (7, HORIZON)
    assert m.predict(y, 3).shape == (3,)
    np.testing.assert_array_equal(m.predict_batch(contexts(y, m, 7), 4), full[:, :4])
    np.testing.assert_array_equal(m.predict(y, HORIZON), m.predict(y[-m.context_length :], HORIZON))
    with torch.no_grad():
        out = m(torch.zeros((5, m.lookback), dtype=torch.float32))
    assert out.shape == (5, HORIZON)
    assert out.dtype == torch.float32


def test_asking_for_more_steps_than_built_for_is_a_clear_error(trained) -> None:
    m, y = trained
    with pytest.raises(
        ValueError, match=r"built for horizon=10 steps but was asked for 12; build it with horizon >= 12"
    ):
        m.predict(y, HORIZON + 2)
    with pytest.raises(backtest.ModelError, match=r"build it with horizon >= 12 \(a backtest asks for gap \+ horizon"):
        backtest.run(model(), y, backtest.WalkForward(horizon=HORIZON, gap=2, initial=400, step=50, refit=0))


def test_other_misuse_is_a_clear_error(trained) -> None:
    m, y = trained
    with pytest.raises(RuntimeError, match="not fitted"):
        model().predict(y, HORIZON)
    shortest = model().min_history()
    model().fit(y[:shortest])
    with pytest.raises(ValueError, match=rf"got {shortest - 1} prices but needs at least {shortest}: "):
        model().fit(y[: shortest - 1])
    with pytest.raises(ValueError, match=r"contexts of shape \(origins, 21\)"):
        m.predict_batch(y[None, -5:], HORIZON)
    with pytest.raises(ValueError, match="positive prices"):
        m.predict(-y, HORIZON)
    with pytest.raises(ValueError, match="degrade must be a finite number >= 0"):
        model(degrade=-0.1)


def test_no_look_ahead_through_the_runner() -> None:
    y = random_walk(900)
    changed = y.copy()
    changed[700:] *= np.exp(np.linspace(0.0, 0.3, 200))  # a different future from position 700 on
    spec = backtest.WalkForward(horizon=HORIZON, step=10, initial=400, refit=8)
    before = backtest.run(model(), y, spec)
    after = backtest.run(model(), changed, spec)
    seen_only_the_past = before.train_stop <= 700
    assert seen_only_the_past.sum() >= 20
    assert before.refit[seen_only_the_past].sum() >= 3
    np.testing.assert_array_equal(after.forecasts[seen_only_the_past], before.forecasts[seen_only_the_past])
    assert not np.array_equal(after.forecasts[~seen_only_the_past], before.forecasts[~seen_only_the_past])


def test_learns_a_predictable_series() -> None:
    y = mean_reverting()
    spec = backtest.WalkForward(horizon=HORIZON, step=5, initial=400, refit=20)
    rmse = backtest.run(model(epochs=60), y, spec).pooled["rmse"]
    naive = backtest.run(backtest.Naive(), y, spec).pooled["rmse"]
    assert rmse < 0.98 * naive


def test_degrade_shifts_forecasts_as_documented_and_makes_them_worse(trained) -> None:
    m, y = trained
    worse = model(degrade=0.2).fit(y[:600])
    ctx = contexts(y, m)
    sigma = np.diff(np.log(ctx), axis=1).std(axis=1, ddof=1)[:, None]
    shift = np.log(worse.predict_batch(ctx, HORIZON) / m.predict_batch(ctx, HORIZON))
    np.testing.assert_allclose(shift, 0.2 * 5 * sigma * np.sqrt(np.arange(1, HORIZON + 1)), rtol=1e-4)

    walk = random_walk(900)
    spec = backtest.WalkForward(horizon=HORIZON, step=5, initial=400, refit=20)
    honest = backtest.run(model(), walk, spec).pooled["rmse"]
    degraded = backtest.run(model(degrade=0.2), walk, spec).pooled["rmse"]
    assert degraded >= 1.2 * honest


def test_records_its_parameters_and_name() -> None:
    result = backtest.run(model(seed=3), random_walk(), backtest.WalkForward(horizon=HORIZON, initial=500, step=50))
    assert result.model == "direct_mlp"
    assert result.params == {
        "horizon": HORIZON,
        "lookback": 20,
        "hidden_size": 8,
        "epochs": 40,
        "lr": 0.01,
        "weight_decay": 0.1,
        "validation": 0.2,
        "max_samples": 1500,
        "seed": 3,
        "degrade": 0.0,
    }


def test_round_trips_through_torch_save(trained) -> None:
    m, y = trained
    buffer = io.BytesIO()
    torch.save(m, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert isinstance(loaded, torch.nn.Module)
    assert isinstance(loaded, DirectMLP)
    np.testing.assert_array_equal(
        loaded.predict_batch(contexts(y, m), HORIZON), m.predict_batch(contexts(y, m), HORIZON)
    )
