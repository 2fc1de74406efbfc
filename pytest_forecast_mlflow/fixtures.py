"""What test authors call: the ``walk_forward`` fixture.

Imports nothing heavy: ``backtest`` (and with it pandas) is imported when a test first runs a backtest.
"""

from __future__ import annotations

from typing import Any

import pytest

from .keys import SESSION_KEY


@pytest.fixture
def walk_forward(request: pytest.FixtureRequest):
    """Run a walk-forward backtest inside a test and record it for MLflow and the regression gate.

    Call it as ``walk_forward(model, series, spec, *, name=None, role="candidate", label=None,
    exog=None, metrics=None, quantiles=None)``; it returns the :class:`backtest.BacktestResult`, so the
    test can add assertions of its own. ``quantiles`` (e.g. ``(0.05, 0.5, 0.95)``) asks the model for
    quantile forecasts, scored by the interval metrics. ``role="reference"`` logs a benchmark model
    without gating or registering it. ``label`` names the horizon in metric names (default
    ``"<horizon>d"``, e.g. ``30d/rmse``). With the plugin off (no ``--mlflow-experiment``) it only runs the backtest.
    """
    session = request.config.stash.get(SESSION_KEY, None)

    def run(
        model: Any,
        series: Any,
        spec: Any,
        *,
        name: str | None = None,
        role: str = "candidate",
        label: str | None = None,
        exog: Any = None,
        metrics: tuple[str, ...] | None = None,
        quantiles: Any = None,
    ):
        import backtest

        if role not in ("candidate", "reference"):
            raise ValueError(f"role must be 'candidate' or 'reference', got {role!r}")
        if not isinstance(getattr(spec, "horizon", None), int):
            raise TypeError(
                f"walk_forward(model, series, spec): spec must be a backtest.WalkForward, got {spec!r}; "
                "e.g. WalkForward(horizon=30, step=5, initial=500)"
            )
        if label is not None and not isinstance(label, str):
            raise TypeError(f"label must be a string such as '30d', got {label!r}")
        from .records import check_label

        label = check_label(label or f"{spec.horizon}d")  # it becomes part of metric, param and artifact names
        wanted = _wanted(metrics, quantiles, session.settings.gate_metrics if session is not None else (), role)
        model_name = name or getattr(model, "name", None) or type(model).__name__
        try:
            result = backtest.run(model, series, spec, name=model_name, exog=exog, metrics=wanted, quantiles=quantiles)
        except Exception as exc:
            if session is not None:
                session.record_error(request.node, model=model_name, role=role, label=label, error=exc)
            raise
        if session is not None:
            session.record(
                request.node,
                result,
                model=model,
                role=role,
                label=label,
                source=str(getattr(series, "attrs", {}).get("source", "")),
                series_name=str(getattr(series, "name", None) or ""),
            )
        return result

    return run


def _wanted(metrics: Any, quantiles: Any, gate_metrics: tuple[str, ...], role: str) -> tuple[str, ...]:
    """The metrics to score: the test's (or the defaults for its quantiles), then each gate metric.

    A reference model without quantiles is not asked for an interval gate metric (it has no interval to
    score); a candidate is, and ``backtest.run`` says what is missing.
    """
    from backtest.metrics import default_metrics, get_metric, metric_names

    try:
        levels = () if quantiles is None else tuple(sorted(float(t) for t in quantiles))
    except (TypeError, ValueError):
        levels = ()  # backtest.run names what is wrong with them
    wanted = (metrics,) if isinstance(metrics, str) else tuple(metrics or default_metrics(levels))
    for name in gate_metrics:
        if name in wanted:
            continue
        try:
            metric = get_metric(name)
        except ValueError as exc:
            raise ValueError(
                f"gate metric {name!r} (--forecast-gate-metrics) is neither built in nor registered: {exc}. Register "
                "a metric of your own with backtest.register_metric in conftest.py, or correct the name"
            ) from None
        if metric.needs_quantiles and not levels and role == "reference":
            continue
        wanted += (name,)
    return metric_names(wanted)
