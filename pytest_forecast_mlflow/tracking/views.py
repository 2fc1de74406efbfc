"""Read-only views of an MLflow store for the ``forecast-mlflow`` command, and ending dead sessions' runs.

Part of the tracking layer, the only one that talks to MLflow: the command asks for experiments,
their latest runs and a registered model's champion, and gets plain frozen values back, never MLflow
entities. mlflow is imported inside the functions, so importing this module stays light (``--help``).
An MLflow error reaches the caller as :class:`StoreReadError`, recognised by MLflow's error code.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlflow import MlflowClient


class StoreReadError(Exception):
    """MLflow refused or failed a request; ``message`` is MLflow's text, ``error_code`` its ErrorCode name."""

    def __init__(self, message: str, error_code: str) -> None:
        super().__init__(message)
        self.message = message
        self.error_code = error_code


@dataclass(frozen=True)
class Experiment:
    experiment_id: str
    name: str


@dataclass(frozen=True)
class RunSummary:
    """One run: the fields of ``run.info`` a view shows, and the run's tags and latest metric values."""

    run_id: str
    run_name: str
    start_time_ms: int | None
    status: str
    tags: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Champion:
    """The version of ``registered_model`` an alias points at, and the run it came from."""

    registered_model: str
    version: str
    run_id: str | None
    #: the version tag ``forecast.drift`` the monitor sets when live errors drift ("" when it never did)
    drift: str = ""


def mlflow_version() -> str:
    """The installed mlflow's version, read from its package metadata (mlflow is not imported)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mlflow")
    except PackageNotFoundError:
        return "unknown"


@contextlib.contextmanager
def _mlflow_errors() -> Iterator[None]:
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        raise StoreReadError(exc.message, exc.error_code) from exc


def _summary(run: Any) -> RunSummary:
    info, data = run.info, run.data
    return RunSummary(
        run_id=info.run_id,
        run_name=info.run_name or data.tags.get("mlflow.runName", ""),
        start_time_ms=info.start_time,
        status=info.status or "",
        tags=dict(data.tags),
        metrics=dict(data.metrics),
    )


class StoreView:
    """What the dashboard reads from one store (tracking and registry at ``uri``); every call may raise
    :class:`StoreReadError`."""

    def __init__(self, uri: str) -> None:
        from mlflow import MlflowClient

        self._client: MlflowClient = MlflowClient(tracking_uri=uri, registry_uri=uri)

    def experiments(self) -> list[Experiment]:
        """The active experiments, in the order MLflow lists them."""
        with _mlflow_errors():
            return [Experiment(e.experiment_id, e.name) for e in self._client.search_experiments()]

    def experiment(self, name: str) -> Experiment | None:
        """The active experiment called ``name``; ``None`` when there is none or it is deleted."""
        with _mlflow_errors():
            found = self._client.get_experiment_by_name(name)
        if found is None or found.lifecycle_stage != "active":
            return None
        return Experiment(found.experiment_id, found.name)

    def latest_runs(self, experiment_id: str, limit: int) -> list[RunSummary]:
        """The ``limit`` most recently started runs of the experiment, newest first."""
        with _mlflow_errors():
            runs = self._client.search_runs([experiment_id], order_by=["attributes.start_time DESC"], max_results=limit)
        return [_summary(run) for run in runs]

    def champion(self, registered_model: str, alias: str) -> Champion | None:
        """The version ``alias`` points at; ``None`` when the registered model or the alias does not exist."""
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST, ErrorCode

        absent = {ErrorCode.Name(RESOURCE_DOES_NOT_EXIST), ErrorCode.Name(INVALID_PARAMETER_VALUE)}
        with _mlflow_errors():
            try:
                version = self._client.get_model_version_by_alias(registered_model, alias)
            except MlflowException as exc:
                # no such registered model (RESOURCE_DOES_NOT_EXIST) or no such alias (INVALID_PARAMETER_VALUE)
                if exc.error_code in absent:
                    return None
                raise
        drift = (version.tags or {}).get("forecast.drift", "")
        return Champion(
            registered_model=registered_model, version=str(version.version), run_id=version.run_id, drift=drift
        )

    def end_dead_runs(self, experiment_ids: Sequence[str]) -> list[str]:
        """End as KILLED the RUNNING runs whose session's process is gone (SIGKILL leaves them RUNNING
        forever); returns their ids. A store that refuses the write (a read-only user) raises."""
        from .runs import mark_dead_runs

        with _mlflow_errors():
            return mark_dead_runs(self._client, list(experiment_ids))
