"""The repository's own walk-forward backtests of USD/CLP at 7, 15, 30 and 90 business days.

``pytest --mlflow-experiment forecaster_30d`` runs these (they are the ``testpaths``): the torch
candidate is logged, gated against the registry's champion and registered; the random walk and the
drift model are logged as reference models only.

Origins every 5 business days from the first banking day of 2016; the candidate is refit every 50
origins (about once a year) and evaluated through the batched path in between. The references come
first (they take a fraction of a second): each candidate horizon's plots are drawn against the naive
reference, so with it already there they are drawn while the later candidates run.
"""

from __future__ import annotations

import pytest

from backtest import Drift, Naive, WalkForward
from tests.forecasters.candidate import DirectMLP

HORIZONS = (7, 15, 30, 90)
FIRST_ORIGIN = "2016-01-04"


def schedule(horizon: int) -> WalkForward:
    return WalkForward(horizon=horizon, step=5, initial=FIRST_ORIGIN, refit=50)


@pytest.mark.parametrize("horizon", HORIZONS, ids=lambda h: f"{h}d")
@pytest.mark.parametrize("model", [Naive(), Drift(window=250)], ids=["naive", "drift"])
def test_reference(walk_forward, usdclp, horizon, model):
    result = walk_forward(model, usdclp, schedule(horizon), role="reference")
    assert result.n_folds == schedule(horizon).n_folds(len(usdclp), usdclp.index)


@pytest.mark.parametrize("horizon", HORIZONS, ids=lambda h: f"{h}d")
def test_candidate(walk_forward, usdclp, degrade, horizon):
    result = walk_forward(DirectMLP(horizon, degrade=degrade), usdclp, schedule(horizon))
    assert result.n_folds >= 100, "the schedule should give the gate enough origins"
    # A sanity bound the candidate must meet on its own: a pooled MAPE in single digits for FX levels.
    assert result.pooled["mape"] < 10, result.summary()
