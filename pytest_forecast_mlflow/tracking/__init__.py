"""The only layer that imports mlflow.

It turns a session's :class:`~pytest_forecast_mlflow.result.SessionResult` into MLflow runs, reads the
registry's champion back as a :class:`~pytest_forecast_mlflow.gate.Baseline`, and registers and
promotes candidates. Imported only when the plugin is switched on, and only by the controller.

One room per job; :class:`Tracking` opens them on one connection:

* :mod:`.connection`: preparing MLflow, opening the client, explaining its errors, restoring its state;
* :mod:`.baseline`: reading the champion;
* :mod:`.runs`: writing runs (and the pure :func:`run_params`/:func:`run_metrics` behind them);
* :mod:`.registry`: registering versions and moving the alias under the promotion lock.
* :mod:`.history`: the append-only record of every alias move, kept in the registry.

A session works its store through :mod:`.agent`: the same work, in a forked child process while the
tests run, so the session's own process never imports mlflow.
"""

from __future__ import annotations

from typing import Any

from ..gate import Baseline, Verdict
from ..result import SessionResult
from ..settings import Settings
from .baseline import BaselineReader
from .connection import (
    SCHEMA_HINT,
    Connection,
    StoreUnavailable,
    TrackingError,
    error_is,
    git_info,
    probe_http,
    quiet_mlflow,
)
from .registry import Registration, Registry
from .runs import LoggedRun, RunWriter, mark_dead_runs, run_metrics, run_params

__all__ = [
    "SCHEMA_HINT",
    "LoggedRun",
    "Registration",
    "StoreUnavailable",
    "Tracking",
    "TrackingError",
    "error_is",
    "git_info",
    "mark_dead_runs",
    "probe_http",
    "quiet_mlflow",
    "run_metrics",
    "run_params",
]


class Tracking:
    """An open connection to one tracking store, for one session (or one replay); :meth:`close` it."""

    def __init__(self, settings: Settings) -> None:
        self.connection = Connection(settings)
        self.baseline = BaselineReader(self.connection)
        self.runs = RunWriter(self.connection)
        self.registry = Registry(self.connection)

    @property
    def settings(self) -> Settings:
        return self.connection.settings

    @property
    def client(self) -> Any:
        return self.connection.client

    def close(self) -> None:
        """Give MLflow's global tracking/registry URIs and ``MLFLOW_*`` variables back as they were found."""
        self.connection.close()

    def __enter__(self) -> Tracking:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def experiment_id(self, name: str) -> str:
        return self.connection.experiment_id(name)

    def reap_dead_runs(self, experiment_id: str) -> list[str]:
        return self.runs.reap_dead_runs(experiment_id)

    def resolve_baseline(self) -> tuple[Baseline | None, str]:
        return self.baseline.resolve()

    def log_session(self, experiment_id: str, result: SessionResult) -> list[LoggedRun]:
        """Write the session's runs; a server gone since the session began fails this before any is half-written."""
        self.connection.check_available()
        return self.runs.log_session(experiment_id, result)

    def session_runs(self, experiment_id: str, session_id: str) -> list[Any]:
        return self.runs.session_runs(experiment_id, session_id)

    def delete_run(self, run_id: str) -> None:
        self.runs.delete_run(run_id)

    def register(
        self, logged: LoggedRun, *, verdict: Verdict | None, promote: bool, gated_against: Baseline | None
    ) -> Registration:
        return self.registry.register(logged, verdict=verdict, promote=promote, gated_against=gated_against)
