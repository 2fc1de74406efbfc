"""The model registry: registering a candidate, and moving the champion alias under a promotion lock."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import __version__
from ..gate import Baseline, Verdict
from .connection import Connection, TrackingError, error_is, quiet_mlflow

if TYPE_CHECKING:
    from .runs import LoggedRun


@dataclass(frozen=True)
class Registration:
    """What registering a candidate did: its version, whether the alias moved, and if not, why."""

    version: str
    moved: bool
    why: str


def alias_absent(exc: BaseException) -> bool:
    """Whether ``exc`` says the alias is not set (MLflow 2.16 and 3.x raise INVALID_PARAMETER_VALUE)."""
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, NOT_FOUND, RESOURCE_DOES_NOT_EXIST

    return error_is(exc, RESOURCE_DOES_NOT_EXIST, INVALID_PARAMETER_VALUE, NOT_FOUND)


class Registry:
    """Registered versions of the candidate and the alias that marks the gate's baseline."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.client = connection.client
        self.settings = connection.settings

    def register(
        self, logged: LoggedRun, *, verdict: Verdict | None, promote: bool, gated_against: Baseline | None
    ) -> Registration:
        """Register a candidate's model; move the alias only when asked, promotable, and still current.

        The alias moves only if it still points at the version this session was gated against (or is
        still absent when there was no champion): a session that started before another one promoted
        was never compared with the new champion, so it never overwrites it. The check and the move
        happen under the registry's promotion lock, so two sessions cannot both pass the check.
        """
        name, alias = self.settings.registered_model, self.settings.alias
        if logged.model_uri is None:
            raise TrackingError(f"{logged.model} logged no model, so it cannot be registered")
        status = verdict.status if verdict else "off"
        tags = {
            "forecast.verdict": status,
            "forecast.baseline": verdict.baseline if verdict else "none",
            "forecast.run_id": logged.run_id,
            "forecast.gate_metrics": ",".join(self.settings.gate_metrics),
            "forecast.gate.method": self.settings.method,
            "forecast.gate.tolerance": f"{self.settings.tolerance:g}",
            "forecast.gate.alpha": f"{self.settings.alpha:g}",
            "forecast.gate.min_folds": str(self.settings.min_folds),
            "forecast.gate.max_detectable": f"{self.settings.max_detectable:g}",
        }
        if verdict is not None and verdict.overrides:
            tags["forecast.scope_override"] = "; ".join(verdict.overrides)[:5000]
        self._ensure_registered_model(name)
        with quiet_mlflow(prints=True):
            version = str(self.connection.mlflow.register_model(logged.model_uri, name, tags=tags).version)
        if not promote:
            return Registration(version, False, "not asked to promote")
        if verdict is None or not verdict.promotable:
            return Registration(version, False, f"gate verdict {status}; only pass (or no champion yet) promotes")
        by_alias = gated_against is not None and gated_against.how.startswith("alias")
        expected = gated_against.version if by_alias and gated_against is not None else None
        with self._promotion_lock(name):
            current = self.alias_version(name, alias)
            if current != expected:
                was = f"v{expected}" if expected else "no champion"
                now = f"v{current}" if current else "no alias"
                return Registration(
                    version,
                    False,
                    f"the champion changed while this session ran (gated against {was}, now {now}); it was never "
                    f"compared with the new champion: rerun the session to be gated against it",
                )
            self._move_alias(name, alias, version, promoted_over=expected)
        return Registration(version, True, "")

    def _move_alias(self, name: str, alias: str, version: str, *, promoted_over: str | None) -> None:
        """Point ``alias`` at ``version`` and mark the version promoted; the one place an alias moves."""
        self.client.set_registered_model_alias(name, alias, version)
        self.client.set_model_version_tag(name, version, "forecast.promoted", "true")
        self.client.set_model_version_tag(name, version, "forecast.promoted_over", promoted_over or "none")

    def alias_version(self, name: str, alias: str) -> str | None:
        """The version ``alias`` points at, or None when it is not set."""
        from mlflow.exceptions import MlflowException

        try:
            return str(self.client.get_model_version_by_alias(name, alias).version)
        except MlflowException as exc:
            if alias_absent(exc):
                return None
            raise

    @contextlib.contextmanager
    def _promotion_lock(self, name: str) -> Iterator[None]:
        """A registry-wide mutex: creating a registered model is the one atomic test-and-set MLflow has.

        The lock is a registered model ``<name>.promotion-lock`` that lives for the milliseconds of a
        check-and-move; one left behind by a killed session is broken once its writer is dead or after
        ten minutes.
        """
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS

        from ..liveness import is_dead, writer_tags

        lock = f"{name}.promotion-lock"
        deadline = time.monotonic() + max(30.0, self.settings.timeout)
        while True:
            try:
                self.client.create_registered_model(
                    lock,
                    tags={**writer_tags(), "forecast.lock.since": f"{time.time():.0f}"},
                    description=f"held while a pytest-forecast-mlflow session moves the alias of {name}",
                )
                break
            except MlflowException as exc:
                if not error_is(exc, RESOURCE_ALREADY_EXISTS):
                    raise
            try:
                held = self.client.get_registered_model(lock).tags or {}
            except MlflowException:
                continue  # released in between
            stale = time.time() - float(held.get("forecast.lock.since", "0") or 0) > 600
            if stale or is_dead(held):
                with contextlib.suppress(MlflowException):
                    self.client.delete_registered_model(lock)
                continue
            if time.monotonic() > deadline:
                raise TrackingError(
                    f"another session held the promotion lock of {name!r} for too long; rerun, or delete the "
                    f"registered model {lock!r} if no session is running"
                )
            time.sleep(0.1)
        try:
            yield
        finally:
            self.client.delete_registered_model(lock)

    def _ensure_registered_model(self, name: str) -> None:
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS

        try:
            self.client.get_registered_model(name)
        except MlflowException:
            try:
                self.client.create_registered_model(
                    name,
                    tags={"forecast.created_by": f"pytest-forecast-mlflow {__version__}"},
                    description="Forecasters evaluated walk-forward by pytest-forecast-mlflow; the "
                    "'champion' alias marks the baseline of the regression gate.",
                )
            except MlflowException as exc:
                if not error_is(exc, RESOURCE_ALREADY_EXISTS):
                    raise
