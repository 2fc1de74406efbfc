"""What test authors call: the ``walk_forward`` fixture.

Imports nothing heavy: ``backtest`` (and with it pandas) is imported when a test first runs a backtest.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from .keys import SESSION_KEY

#: A backtest says nothing until it has run this many seconds, then prints a line at most this often.
PROGRESS_AFTER = 5.0
PROGRESS_EVERY = 10.0
_clock: Callable[[], float] = time.monotonic  # read at each call: a test may replace it with a fake clock


@pytest.fixture
def walk_forward(request: pytest.FixtureRequest):
    """Run a walk-forward backtest inside a test and record it for MLflow and the regression gate.

    Call it as ``walk_forward(model, series, spec, *, name=None, role="candidate", label=None,
    exog=None, metrics=None, quantiles=None, n_jobs=None)``; it returns the :class:`backtest.BacktestResult`, so the
    test can add assertions of its own. ``quantiles`` (e.g. ``(0.05, 0.5, 0.95)``) asks the model for
    quantile forecasts, scored by the interval metrics. ``role="reference"`` logs a benchmark model
    without gating or registering it. ``label`` names the horizon in metric names (default
    ``"<horizon>d"``, e.g. ``30d/rmse``). ``n_jobs`` (default ``--forecast-jobs``, 1) runs the refit
    blocks on that many worker processes, or on a Dask cluster inside ``joblib.parallel_config(backend="dask")``.
    A backtest running longer than a few seconds prints its progress (folds done, time left) every ten
    seconds or so, except under ``-q`` and on xdist workers. With the plugin off (no ``--mlflow-experiment``)
    it only runs the backtest.
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
        n_jobs: int | None = None,
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
            result = backtest.run(
                model,
                series,
                spec,
                name=model_name,
                exog=exog,
                metrics=wanted,
                quantiles=quantiles,
                n_jobs=_default_jobs(request.config) if n_jobs is None else n_jobs,
                progress=_progress(request.config, request.node.name),
            )
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


def _default_jobs(config: pytest.Config) -> int:
    """``--forecast-jobs`` / ``FORECAST_JOBS`` / ini ``forecast_jobs``, also with the plugin off: running
    the refit blocks in parallel is the backtest's business, not MLflow's."""
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        return session.settings.jobs
    from .settings import resolve_one

    return int(resolve_one(config, "forecast_jobs")[0])


def _progress(config: pytest.Config, name: str) -> Callable[[int, int], None] | None:
    """A ``backtest.run`` progress callback printing through the terminal reporter, or ``None`` when
    nobody would read it: under ``-q``, or on an xdist worker (whose terminal is not the controller's;
    the controller shows which tests are running)."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or config.get_verbosity() < 0 or hasattr(config, "workerinput"):
        return None
    capture = config.pluginmanager.get_plugin("capturemanager")
    start = _clock()
    printed: list[float] = []

    def progress(done: int, total: int) -> None:
        now = _clock()
        elapsed = now - start
        if done >= total or elapsed < PROGRESS_AFTER or (printed and now - printed[-1] < PROGRESS_EVERY):
            return
        printed.append(now)
        line = f"{name}: {done}/{total} folds, about {_duration(elapsed / done * (total - done))} left"
        if capture is None:
            reporter.write_line(line)
            return
        with capture.global_and_fixture_disabled():  # the test's output is captured; this line is the user's
            reporter.write_line(line)

    return progress


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"
