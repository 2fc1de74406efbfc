"""The model registry: registering a candidate, and moving the champion alias under a promotion lock."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..gate import Baseline, BaselineHorizon, Verdict
from ..store import first_line, mask_uri
from .connection import Connection, TrackingError, error_is, live_run, quiet_mlflow
from .history import AliasEvent, append_event, previous_champion, read_events, timeline, who

if TYPE_CHECKING:
    from .runs import LoggedRun


@dataclass(frozen=True)
class Registration:
    """What registering a candidate did: its version, whether the alias moved, and if not, why."""

    version: str
    moved: bool
    why: str


class Refused(TrackingError):
    """A champion command that would not leave a working champion, or was asked for something absent.

    Nothing changed; the message names the cause and the fix.
    """


@dataclass(frozen=True)
class Readiness:
    """What was checked before a version may become champion, one sentence a check."""

    version: str
    run_id: str
    checks: tuple[str, ...]


@dataclass(frozen=True)
class Move:
    """A promotion or rollback: done (``event`` recorded), a dry run, or nothing to do (already there)."""

    registered_model: str
    alias: str
    from_version: str | None
    to_version: str
    kind: str
    checks: tuple[str, ...] = ()
    event: AliasEvent | None = None
    dry_run: bool = False


@dataclass(frozen=True)
class ChampionReport:
    """The current champion as ``forecast-mlflow champion show`` tells it."""

    registered_model: str
    alias: str
    version: str
    run_id: str
    run_name: str
    run_status: str
    since: AliasEvent
    registered_verdict: str
    registered_baseline: str
    data: dict[str, str]
    git: dict[str, str]
    aggregates: dict[str, dict[str, float]]


@dataclass(frozen=True)
class RankedVersion:
    """A registered version and its run's value of the ranking metric (None: the run has none)."""

    version: str
    run_id: str
    value: float | None
    verdict: str
    aliases: tuple[str, ...]


#: the step-less aggregates the plugin logs per horizon label (and averaged over labels as ``all/``)
AGGREGATES = ("mean", "median", "pooled")


def ranking_direction(metric: str) -> str:
    """``"lower"`` or ``"higher"``: which values of ``metric`` are better; ValueError for a stepped metric.

    Only a step-less aggregate ranks a whole backtest: ``30d/rmse`` is logged once per fold (step =
    fold), and MLflow ranks and shows a run by its latest step, the last fold alone.
    """
    from ..settings import KNOWN_METRICS

    label, slash, name = metric.partition("/")
    base, _, aggregate = name.rpartition("_")
    example = f"{label or '30d'}/{name if name in KNOWN_METRICS else 'rmse'}_mean"
    if not slash or not label:
        raise ValueError(f"metric {metric!r} names no horizon label; use LABEL/METRIC_AGGREGATE, e.g. {example}")
    if name in KNOWN_METRICS:
        raise ValueError(
            f"{metric} is logged once per fold (step = fold) and MLflow ranks a run by its latest step, the "
            f"last fold alone; rank by a step-less aggregate of every fold instead, e.g. {example}"
        )
    if base not in KNOWN_METRICS or aggregate not in AGGREGATES:
        raise ValueError(
            f"{metric!r} is not an aggregate the plugin logs; use LABEL/METRIC_AGGREGATE with METRIC one of "
            f"{', '.join(KNOWN_METRICS)} and AGGREGATE one of {', '.join(AGGREGATES)}, e.g. {example}"
        )
    from backtest.metrics import get_metric

    known = get_metric(base)
    if not known.gateable:
        raise ValueError(
            f"{metric}: neither more nor less {base} is better (it is best at its nominal level), so it cannot "
            f"rank versions; rank by {label}/{base}_error_{aggregate} or {label}/interval_score_{aggregate}"
        )
    return known.direction


def rank_versions(client: Any, name: str, metric: str = "all/rmse_mean") -> list[RankedVersion]:
    """The registered versions of ``name``, best first by their run's step-less ``metric``.

    ``client`` is an ``mlflow.MlflowClient``. Versions whose run is gone or lacks the metric come last
    (``value`` None); equal values rank the newer version first. Raises ValueError for a metric that
    cannot rank a backtest (see :func:`ranking_direction`).
    """
    sign = -1.0 if ranking_direction(metric) == "higher" else 1.0
    aliases: dict[str, list[str]] = {}
    for alias, version in (client.get_registered_model(name).aliases or {}).items():
        aliases.setdefault(str(version), []).append(alias)
    ranked = []
    for version in client.search_model_versions(f"name='{name}'"):
        value = None
        run = live_run(client, version.run_id) if version.run_id else None
        if run is not None:
            value = run.data.metrics.get(metric)
        number = str(version.version)
        ranked.append(
            RankedVersion(
                version=number,
                run_id=version.run_id or "",
                value=value if value is None or math.isfinite(value) else None,
                verdict=(version.tags or {}).get("forecast.verdict", ""),
                aliases=tuple(sorted(aliases.get(number, []))),
            )
        )
    return sorted(ranked, key=lambda r: (r.value is None, sign * (r.value or 0.0), -int(r.version)))


def short_history(horizon: BaselineHorizon, limit: int = 200) -> list[float]:
    """A recent stretch of the series rebuilt from a fold manifest's actuals, to forecast from."""
    values = [v for fold in horizon.actuals[:-1] for v in fold[: horizon.step]] + list(horizon.actuals[-1])
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return finite[-limit:]


def alias_absent(exc: BaseException) -> bool:
    """Whether ``exc`` says the alias is not set (MLflow 2.16 and 3.x raise INVALID_PARAMETER_VALUE)."""
    from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, NOT_FOUND, RESOURCE_DOES_NOT_EXIST

    return error_is(exc, RESOURCE_DOES_NOT_EXIST, INVALID_PARAMETER_VALUE, NOT_FOUND)


LOCK_SUFFIX = ".promotion-lock"


def registered_models(client: Any) -> list[str]:
    """The registered models of a store, promotion locks left out, sorted by name."""
    names, token = [], None
    while True:
        page = client.search_registered_models(max_results=1000, page_token=token)
        names += [model.name for model in page if not model.name.endswith(LOCK_SUFFIX)]
        token = page.token
        if not token:
            return sorted(names)


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
            self._move_alias(
                name,
                alias,
                version,
                previous=current,
                kind="promotion" if current else "bootstrap",
                run_id=logged.run_id,
                verdict=status,
                baseline=verdict.baseline,
            )
        return Registration(version, True, "")

    def _move_alias(
        self,
        name: str,
        alias: str,
        version: str,
        *,
        previous: str | None,
        kind: str,
        run_id: str | None = None,
        reason: str = "",
        verdict: str = "",
        baseline: str = "",
    ) -> AliasEvent:
        """Point ``alias`` at ``version``, mark the version promoted and append the move to the history.

        The one place an alias moves; the caller holds the promotion lock. The alias moves first: a
        process killed in between leaves a move the history shows as external, never a recorded move
        that did not happen.
        """
        self.client.set_registered_model_alias(name, alias, version)
        self.client.set_model_version_tag(name, version, "forecast.promoted", "true")
        self.client.set_model_version_tag(name, version, "forecast.promoted_over", previous or "none")
        by = who()
        event = AliasEvent(
            alias=alias,
            from_version=previous,
            to_version=version,
            kind=kind,
            commit=self._commit_of(run_id),
            reason=reason,
            verdict=verdict,
            baseline=baseline,
            user=by["user"],
            host=by["host"],
            ci=by["ci"],
        )
        return append_event(self.client, name, event)

    def _commit_of(self, run_id: str | None) -> str:
        from mlflow.exceptions import MlflowException

        if not run_id:
            return ""
        try:
            tags = self.client.get_run(run_id).data.tags
        except MlflowException:
            return ""
        return tags.get("git.commit") or tags.get("mlflow.source.git.commit") or ""

    def history(self, name: str, alias: str) -> list[AliasEvent]:
        """Every move of ``alias``, oldest first, unrecorded moves shown as ``external`` events."""
        self.require_model(name)
        return timeline(read_events(self.client, name), alias, self.alias_version(name, alias))

    def describe(self, name: str, alias: str) -> ChampionReport:
        """The champion: its version and run, how and when it became champion, its data, commit and aggregates."""
        from mlflow.exceptions import MlflowException

        moves = self.history(name, alias)
        current = moves[-1].to_version if moves else None
        if current is None:
            raise Refused(
                f"registered model {name!r} has no alias {alias!r}: nothing is champion yet; make a version "
                f"champion with: forecast-mlflow champion promote --model {name} --version N --reason TEXT"
            )
        version = self.client.get_model_version(name, current)
        tags = version.tags or {}
        run_id = version.run_id or ""
        try:
            run = self.client.get_run(run_id) if run_id else None
        except MlflowException:
            run = None
        deleted = run is None or run.info.lifecycle_stage == "deleted"
        params, metrics, run_tags = ({}, {}, {}) if run is None else (run.data.params, run.data.metrics, run.data.tags)
        labels = [h for h in run_tags.get("forecast.horizons", "").split(",") if h]
        return ChampionReport(
            registered_model=name,
            alias=alias,
            version=current,
            run_id=run_id,
            run_name="" if run is None else run.info.run_name or "",
            run_status="DELETED" if deleted or run is None else run.info.status,
            since=moves[-1],
            registered_verdict=tags.get("forecast.verdict", ""),
            registered_baseline=tags.get("forecast.baseline", ""),
            data={k: v for k, v in params.items() if ".data." in f".{k}" and not k.endswith("data.source")},
            git={k: v for k, v in run_tags.items() if k.startswith("git.")},
            aggregates={
                label: {
                    key[len(label) + 1 :]: value
                    for key, value in sorted(metrics.items())
                    if key.startswith(f"{label}/") and (key.endswith("_mean") or key.endswith("/folds"))
                }
                for label in labels
            },
        )

    def promote(self, name: str, alias: str, version: str, *, reason: str, dry_run: bool = False) -> Move:
        """Make ``version`` champion by hand, once :meth:`check_ready` passes; recorded as ``manual``."""
        self.require_model(name)
        return self._checked_move(name, alias, self.alias_version(name, alias), version, "manual", reason, dry_run)

    def rollback(self, name: str, alias: str, *, to: str | None = None, reason: str, dry_run: bool = False) -> Move:
        """Move ``alias`` back to ``to``, by default the champion before the current one in the history."""
        moves = self.history(name, alias)
        current = moves[-1].to_version if moves else None
        target = to or previous_champion(moves)
        if target is None:
            now = f"v{current}" if current else "no champion"
            raise Refused(
                f"the history of alias {alias!r} of {name!r} has no champion before {now}, so there is nothing "
                f"to roll back to; name the version with --to VERSION "
                f"(see: forecast-mlflow champion history --model {name})"
            )
        return self._checked_move(name, alias, current, target, "rollback", reason, dry_run)

    def _checked_move(
        self, name: str, alias: str, current: str | None, target: str, kind: str, reason: str, dry_run: bool
    ) -> Move:
        if current == target:
            return Move(name, alias, current, target, kind)
        ready = self.check_ready(name, target)
        if dry_run:
            return Move(name, alias, current, target, kind, ready.checks, dry_run=True)
        with self._promotion_lock(name):
            now = self.alias_version(name, alias)
            if now != current:  # another session or command moved it while the model was being checked
                raise Refused(
                    f"the champion of {name!r} moved while the checks ran (v{current} then, v{now} now); "
                    "nothing changed: look at 'forecast-mlflow champion history' and run the command again"
                )
            event = self._move_alias(
                name, alias, target, previous=current, kind=kind, run_id=ready.run_id, reason=reason
            )
        return Move(name, alias, current, target, kind, ready.checks, event)

    def check_ready(self, name: str, version: str) -> Readiness:
        """Refuse a version the gate could not compare against or that would not serve forecasts.

        Its run exists and FINISHED, its fold manifests are there (what the gate pairs folds with), and its
        model loads here and forecasts each horizon from a short history rebuilt from those manifests.
        """
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE, RESOURCE_DOES_NOT_EXIST

        from .baseline import BaselineReader

        which = f"{name} v{version}"
        try:
            model_version = self.client.get_model_version(name, version)
        except MlflowException as exc:
            if not error_is(exc, RESOURCE_DOES_NOT_EXIST, INVALID_PARAMETER_VALUE):
                raise
            existing = sorted((str(v.version) for v in self.client.search_model_versions(f"name='{name}'")), key=int)
            raise Refused(
                f"{which} does not exist; its versions are {', '.join(existing) or 'none'} "
                f"(see: forecast-mlflow champion best --model {name})"
            ) from None
        run_id = model_version.run_id
        if not run_id:
            raise Refused(f"{which} has no source run, so the gate could not read its folds; choose another version")
        run = live_run(self.client, run_id)
        if run is None:
            raise Refused(
                f"{which} comes from run {run_id}, which is deleted; restore it (mlflow runs restore --run-id "
                f"{run_id}) or choose another version"
            )
        if run.info.status != "FINISHED":
            raise Refused(
                f"{which} comes from run {run_id}, which ended {run.info.status}: its session failed or was "
                "killed, so its backtest is not complete; choose a version whose run FINISHED"
            )
        try:
            horizons = BaselineReader(self.connection)._baseline_horizons(run_id)
        except TrackingError as exc:
            raise Refused(f"{which}: {exc}") from None
        checks = [f"run {run_id[:8]} FINISHED", f"fold manifests of {', '.join(horizons)}"]
        checks.append(self._forecasts(name, version, horizons))
        return Readiness(version, run_id, tuple(checks))

    def _forecasts(self, name: str, version: str, horizons: dict[str, BaselineHorizon]) -> str:
        """Load the version's model as a server would and forecast each horizon; a sentence saying so."""
        import pandas as pd

        which = f"{name} v{version}"
        try:
            with quiet_mlflow(prints=True):
                model = self.connection.mlflow.pyfunc.load_model(f"models:/{name}/{version}")
        except Exception as exc:
            raise Refused(
                f"the model of {which} does not load here ({type(exc).__name__}: {first_line(str(exc))[:300]}); "
                "install what its requirements.txt lists, run from the project whose code it needs, or choose "
                "another version"
            ) from None
        done = []
        for label, horizon in horizons.items():
            history = short_history(horizon)
            try:
                out = model.predict(pd.DataFrame({"label": [label], "history": [history]}))
                forecast = [float(v) for v in out["forecast"].iloc[0]]
            except Exception as exc:
                raise Refused(
                    f"the model of {which} loads but does not forecast {label} from {len(history)} recent values "
                    f"({type(exc).__name__}: {first_line(str(exc))[:300]}); choose another version"
                ) from None
            if len(forecast) != horizon.horizon or not all(math.isfinite(v) for v in forecast):
                raise Refused(
                    f"the model of {which} forecast {len(forecast)} values for {label} (horizon {horizon.horizon}), "
                    f"{sum(not math.isfinite(v) for v in forecast)} of them not finite; choose another version"
                )
            done.append(f"{label} ({len(forecast)} values)")
        return f"model loads and forecasts {', '.join(done)}"

    def require_model(self, name: str) -> None:
        """Refuse a registered model that does not exist, naming those that do."""
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST

        try:
            self.client.get_registered_model(name)
        except MlflowException as exc:
            if not error_is(exc, RESOURCE_DOES_NOT_EXIST):
                raise
            existing = registered_models(self.client)
            raise Refused(
                f"no registered model {name!r} in {mask_uri(self.connection.uri)}; registered models: "
                f"{', '.join(existing) or 'none (a session with --mlflow-register or --mlflow-promote makes one)'}"
            ) from None

    def rank(self, name: str, metric: str) -> list[RankedVersion]:
        self.require_model(name)
        return rank_versions(self.client, name, metric)

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
        from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, RESOURCE_DOES_NOT_EXIST

        from ..liveness import is_dead, writer_tags

        lock = f"{name}{LOCK_SUFFIX}"
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
                # MLflow's SQL store answers a name clash by reading the existing model, so a lock released
                # between the clash and that read surfaces as "does not exist": taken and freed, try again
                if error_is(exc, RESOURCE_DOES_NOT_EXIST):
                    continue
                if not error_is(exc, RESOURCE_ALREADY_EXISTS):
                    raise
            try:
                holder = self.client.get_registered_model(lock)
            except MlflowException:
                continue  # released in between
            held = holder.tags or {}
            # a lock read between its creation and its tags (a tracking server may write them apart) is
            # young, not stale: its age falls back to the registered model's own creation time
            since = float(held.get("forecast.lock.since") or 0) or (holder.creation_timestamp or 0) / 1000
            stale = since > 0 and time.time() - since > 600
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
