"""The only module that imports mlflow.

It turns a session's :class:`~pytest_forecast_mlflow.records.Record` values into MLflow runs, reads
the registry's champion back as a :class:`~pytest_forecast_mlflow.gate.Baseline`, and registers and
promotes candidates. Imported only when the plugin is switched on, and only by the controller.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import logging
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .gate import Baseline, BaselineHorizon, Verdict
from .records import Record, sanitize
from .settings import Settings
from .store import local_path, mask_text, mask_uri, sqlite_path

log = logging.getLogger(__name__)

SCHEMA_HINT = "run 'mlflow db upgrade {uri}' (back the database up first: forecast-mlflow backup DIR)"

# MLflow's own chatter about choices this plugin made on purpose, dropped so the session's output stays
# the plugin's report; anything else MLflow says still shows. (logger name, message prefix)
_KNOWN_NOISE = (
    ("mlflow.store.db.utils", "Creating initial MLflow database tables"),
    ("mlflow.store.db.utils", "Updating database tables"),
    # pickle, not torch.export: it saves any module, on every supported MLflow (see pyfunc._pickle_format)
    ("mlflow.pytorch", "Saving pytorch model by Pickle or CloudPickle"),
    # the bundle is a class of this package, shipped with the model as code
    ("mlflow.pyfunc", "Passing a Python object as `python_model`"),
)
_KNOWN_WARNINGS = (
    r"The ``noload`` loader strategy is deprecated",  # MLflow 3.x under SQLAlchemy 2.1, at store start
    r"(\x1b\[[0-9;]*m)?An input example was not provided",  # the bundle has an explicit signature instead
)
# printed (not logged) by mlflow.register_model; the plugin reports the version itself
_KNOWN_PRINTS = ("Registered model ", "Successfully registered model ", "Created version ")


class _DropNoise(logging.Filter):
    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.WARNING or not record.getMessage().startswith(self.prefix)


@contextlib.contextmanager
def quiet_mlflow(*, migrations: bool = False, prints: bool = False) -> Iterator[None]:
    """Drop MLflow's known remarks (:data:`_KNOWN_NOISE`, :data:`_KNOWN_WARNINGS`) while the block runs.

    ``migrations=True`` (opening a store) also drops everything below WARNING: MLflow 2.x's schema
    migrations configure logging of their own and report each step at INFO. ``prints=True`` holds
    back stderr and passes on all but :data:`_KNOWN_PRINTS`; only for blocks that create no logging
    handler, which would keep writing to the held-back stream.
    """
    installed = [(logging.getLogger(name), _DropNoise(prefix)) for name, prefix in _KNOWN_NOISE]
    for logger, noise in installed:
        logger.addFilter(noise)
    disabled = logging.root.manager.disable
    if migrations:
        logging.disable(max(disabled, logging.INFO))
    printed = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(printed) if prints else contextlib.nullcontext():
            for message in _KNOWN_WARNINGS:
                warnings.filterwarnings("ignore", message=message)
            yield
    finally:
        logging.disable(disabled)
        for logger, noise in installed:
            logger.removeFilter(noise)
        kept = [line for line in printed.getvalue().splitlines(keepends=True) if not line.startswith(_KNOWN_PRINTS)]
        sys.stderr.write("".join(kept))


class _MaskRecords(logging.Filter):
    """Masks the tracking URI's credentials in every record MLflow's own handlers write, and drops its
    "View run ... at: URL" lines (MLflow 2.x logs them at INFO; 3.x prints them unless told not to)."""

    def __init__(self, uri: str) -> None:
        super().__init__()
        self.uri = uri

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.lstrip("🏃🧪 ").startswith(("View run ", "View experiment at")):
            return False
        masked = mask_text(message, secrets_from=self.uri)
        if masked != message:
            record.msg, record.args = masked, ()
        return True


def _mask_mlflow_logging(uri: str) -> None:
    """Attach :class:`_MaskRecords` to the handlers MLflow configured on its logger, once per URI."""
    for handler in logging.getLogger("mlflow").handlers:
        if not any(isinstance(f, _MaskRecords) and f.uri == uri for f in handler.filters):
            handler.addFilter(_MaskRecords(uri))


class StoreUnavailable(RuntimeError):
    """The tracking store could not be reached."""


class TrackingError(RuntimeError):
    """MLflow state the plugin cannot work with, with the fix in the message."""


def _prepare_environment(timeout: float) -> None:
    """Bound MLflow's HTTP requests before mlflow is imported, and keep URLs off stdout.

    MLflow retries an unanswered request for about four minutes by default; here one request waits at
    most ``timeout`` seconds and is not retried, so a server that stops answering fails the session
    (or spools it) within the configured timeout. MLflow's "View run ... at: URL" lines would print the
    tracking URI, credentials included.
    """
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(max(1, math.ceil(timeout))))
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"


def probe_http(uri: str, timeout: float) -> None:
    """Fail within ``timeout`` seconds when an http(s) tracking server does not answer its health check."""
    parts = urllib.parse.urlsplit(uri)
    # credentials never go into the probe URL (urllib would take user:pass@host for a host name)
    url = urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2])).rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - the user's own server
            response.read(64)
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            return  # reachable; authentication is MLflow's business
        raise StoreUnavailable(
            f"tracking server {mask_uri(uri)} answered HTTP {exc.code} to its health check"
        ) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise StoreUnavailable(f"tracking server {mask_uri(uri)} is unreachable ({reason})") from None


@contextlib.contextmanager
def _store_lock(db: Path) -> Iterator[None]:
    """Serialise creation of a fresh SQLite store across processes (concurrent creation corrupts it)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory locks; creation stays single-process
        yield
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def git_info(root: Path) -> dict[str, str]:
    """Commit, branch and dirty flag of the checkout at ``root`` (MLflow records none under pytest)."""

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=5, check=True)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip()

    commit = git("rev-parse", "HEAD")
    if not commit:
        return {}
    info = {"mlflow.source.git.commit": commit, "git.commit": commit}
    branch = git("rev-parse", "--abbrev-ref", "HEAD")
    if branch:
        info["git.branch"] = branch
        info["mlflow.source.git.branch"] = branch
    status = git("status", "--porcelain", "--untracked-files=no")
    if status is not None:
        info["git.dirty"] = "true" if status else "false"
    remote = git("config", "--get", "remote.origin.url")
    if remote:
        info["mlflow.source.git.repoURL"] = mask_uri(remote)
    return info


def mark_dead_runs(client, experiment_ids: list[str]) -> list[str]:
    """End as KILLED the RUNNING runs whose writing process is gone (SIGKILL); returns their ids.

    Only runs this plugin wrote carry writer tags (see :mod:`.liveness`); a run of a live session, of
    another host or of another tool is left alone.
    """
    from .liveness import HOST_TAG, is_dead

    if not experiment_ids:
        return []
    runs = client.search_runs(
        experiment_ids, filter_string=f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` != ''", max_results=1000
    )
    killed = []
    for run in runs:
        if is_dead(run.data.tags):
            client.set_tag(run.info.run_id, "forecast.killed_reason", "its session's process ended without closing it")
            client.set_terminated(run.info.run_id, "KILLED")
            killed.append(run.info.run_id)
    return killed


@dataclass(frozen=True)
class Registration:
    """What registering a candidate did: its version, whether the alias moved, and if not, why."""

    version: str
    moved: bool
    why: str


@dataclass
class LoggedRun:
    model: str
    role: str
    run_id: str
    model_uri: str | None = None
    error: str | None = None


class Tracking:
    """An open connection to one tracking store, for one session."""

    def __init__(self, settings: Settings) -> None:
        _prepare_environment(settings.timeout)
        self.settings = settings
        self.uri = settings.tracking_uri
        if self.uri.startswith(("http://", "https://")):
            probe_http(self.uri, settings.timeout)
        import mlflow
        from mlflow import MlflowClient

        self.mlflow = mlflow
        _mask_mlflow_logging(self.uri)
        db = sqlite_path(self.uri)
        try:
            # Creating a fresh SQLite store from two processes at once corrupts it: the first process
            # creates both the tracking and the registry tables while holding a file lock.
            with _store_lock(db) if db is not None else contextlib.nullcontext(), quiet_mlflow(migrations=True):
                mlflow.set_tracking_uri(self.uri)
                mlflow.set_registry_uri(self.uri)
                self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
                self.client.search_experiments(max_results=1)
                self.client.search_registered_models(max_results=1)
        except Exception as exc:
            raise self._explain(exc, "opening the tracking store") from None

    def reap_dead_runs(self, experiment_id: str) -> list[str]:
        """Mark KILLED the runs that killed sessions left RUNNING in this experiment (see :mod:`.liveness`)."""
        try:
            return mark_dead_runs(self.client, [experiment_id])
        except Exception as exc:
            raise self._explain(exc, "closing runs of killed sessions") from None

    def check_available(self) -> None:
        """Fail fast, before a run is half-written, when a remote server went away during the session."""
        if self.uri.startswith(("http://", "https://")):
            probe_http(self.uri, self.settings.timeout)

    # -- store and experiment ----------------------------------------------------------------------

    def _explain(self, exc: BaseException, doing: str) -> Exception:
        text = mask_text(str(exc), secrets_from=self.uri)
        uri = mask_uri(self.uri)
        if "out-of-date database schema" in text or "alembic" in text.lower() and "revision" in text.lower():
            return TrackingError(f"the MLflow store {uri} has an out-of-date schema; {SCHEMA_HINT.format(uri=uri)}")
        if "database is locked" in text:
            return TrackingError(
                f"{doing}: the SQLite store {uri} stayed locked by another process; retry when it finishes, "
                "or give concurrent jobs their own store"
            )
        if (
            isinstance(exc, (ConnectionError, OSError))
            or "Max retries exceeded" in text
            or "Connection refused" in text
        ):
            return StoreUnavailable(f"{doing}: tracking store {uri} is unreachable ({text.splitlines()[0][:200]})")
        return TrackingError(f"{doing} on {uri}: {type(exc).__name__}: {text.splitlines()[0][:500] if text else ''}")

    def experiment_id(self, name: str) -> str:
        """The experiment's id, created (with tags and an explicit artifact location) when absent."""
        from mlflow.exceptions import MlflowException

        try:
            experiment = self.client.get_experiment_by_name(name)
            if experiment is None:
                location = None
                if sqlite_path(self.uri) is not None:
                    location = (self.settings.artifact_root / sanitize(name)).resolve().as_uri()
                try:
                    return self.client.create_experiment(
                        name,
                        artifact_location=location,
                        tags={"forecast.created_by": f"pytest-forecast-mlflow {__version__}"},
                    )
                except MlflowException as exc:
                    if "RESOURCE_ALREADY_EXISTS" not in str(exc.error_code) and "already exists" not in str(exc):
                        raise
                    experiment = self.client.get_experiment_by_name(name)  # another session won the race
            if experiment.lifecycle_stage == "deleted":
                raise TrackingError(
                    f"experiment {name!r} is deleted in {mask_uri(self.uri)}; restore it "
                    f"(mlflow experiments restore --experiment-id {experiment.experiment_id}) or choose another name"
                )
            return experiment.experiment_id
        except TrackingError:
            raise
        except Exception as exc:
            raise self._explain(exc, f"getting experiment {name!r}") from None

    # -- the baseline ------------------------------------------------------------------------------

    def resolve_baseline(self) -> tuple[Baseline | None, str]:
        """The registry's champion (or best version) as a Baseline, and a sentence saying which."""
        from mlflow.exceptions import MlflowException

        name, alias = self.settings.registered_model, self.settings.alias
        first_metric = self.settings.gate_metrics[0]
        try:
            try:
                self.client.get_registered_model(name)
            except MlflowException as exc:
                if "RESOURCE_DOES_NOT_EXIST" in str(exc.error_code) or "not found" in str(exc).lower():
                    return None, f"no registered model {name!r} yet"
                raise
            try:
                version = self.client.get_model_version_by_alias(name, alias)
                how = f"alias {alias}"
            except MlflowException as exc:
                if "RESOURCE_DOES_NOT_EXIST" not in str(exc.error_code) and "alias" not in str(exc).lower():
                    raise
                version, how = self._best_version(name, first_metric)
                if version is None:
                    return None, f"registered model {name!r} has no alias {alias!r} and no version to rank"
            run = self._baseline_run(name, version)
            horizons = self._baseline_horizons(run.info.run_id)
        except (TrackingError, StoreUnavailable):
            raise
        except Exception as exc:
            raise self._explain(exc, f"reading the baseline of {name!r}") from None
        gated = (version.tags or {}).get("forecast.gate_metrics", "")
        if not gated and any("rmse" in h.fold_metrics for h in horizons.values()):
            gated = "rmse"  # promoted before versions recorded their gate metrics: rmse was the default
        baseline = Baseline(
            registered_model=name,
            version=str(version.version),
            how=how,
            run_id=run.info.run_id,
            run_name=run.info.run_name or "",
            data_sha256=run.data.params.get("data.sha256", ""),
            horizons=horizons,
            gate_metrics=tuple(m for m in gated.split(",") if m),
        )
        return baseline, f"baseline {baseline.describe()}"

    def _best_version(self, name: str, metric: str):
        versions = [v for v in self.client.search_model_versions(f"name='{name}'") if v.run_id]
        if not versions:
            return None, ""
        ids = ", ".join(f"'{v.run_id}'" for v in versions)
        from backtest.metrics import get_metric

        direction = "DESC" if get_metric(metric).direction == "higher" else "ASC"
        runs = self.client.search_runs(
            experiment_ids=self._experiment_ids(),  # versions may come from runs in several experiments
            filter_string=f"attributes.run_id IN ({ids}) and metrics.`all/{metric}_mean` > -1e308",
            order_by=[f"metrics.`all/{metric}_mean` {direction}"],
            max_results=1,
        )
        if not runs:
            return None, ""
        best = runs[0].info.run_id
        version = max((v for v in versions if v.run_id == best), key=lambda v: int(v.version))
        return version, f"best all/{metric}_mean of {len(versions)} versions, no alias {self.settings.alias!r}"

    def _experiment_ids(self) -> list[str]:
        ids, token = [], None
        while True:
            page = self.client.search_experiments(max_results=1000, page_token=token)
            ids += [experiment.experiment_id for experiment in page]
            token = page.token
            if not token:
                return ids

    def _baseline_run(self, name: str, version):
        from mlflow.exceptions import MlflowException

        if not version.run_id:
            raise TrackingError(f"{name} v{version.version} has no source run; the gate cannot read its folds")
        try:
            run = self.client.get_run(version.run_id)
        except MlflowException:
            run = None
        if run is None or run.info.lifecycle_stage == "deleted":
            raise TrackingError(
                f"the baseline {name} v{version.version} points at run {version.run_id}, which is deleted; "
                f"restore it (mlflow runs restore --run-id {version.run_id}) or move the "
                f"{self.settings.alias!r} alias to another version"
            )
        return run

    def _baseline_horizons(self, run_id: str) -> dict[str, BaselineHorizon]:
        horizons: dict[str, BaselineHorizon] = {}
        listed = self.client.list_artifacts(run_id, "manifests")
        if not listed:
            where = self._missing_artifacts(run_id)
            if where is not None:
                raise TrackingError(
                    f"the artifacts of baseline run {run_id} are missing at {where} (the store was moved or "
                    "restored without its artifacts, or they were deleted); restore the store with "
                    "'forecast-mlflow restore', which rewrites artifact locations, or move the alias to a "
                    "version whose artifacts exist"
                )
            raise TrackingError(
                f"baseline run {run_id} has no fold manifests (manifests/*.json); it was not logged by this "
                "plugin, so the gate cannot pair folds. Promote a run logged by pytest-forecast-mlflow"
            )
        with tempfile.TemporaryDirectory(prefix="forecast-baseline-") as tmp:
            for item in listed:
                if not item.path.endswith(".json"):
                    continue
                local = self.client.download_artifacts(run_id, item.path, tmp)
                manifest = json.loads(Path(local).read_text())
                label = manifest["label"]
                folds = manifest["folds"]
                metrics = {
                    name: [f["metrics"].get(name, float("nan")) for f in folds]
                    for name in (folds[0]["metrics"] if folds else {})
                }
                for metric in self.settings.gate_metrics:
                    if metric not in metrics:
                        history = self._history(run_id, f"{label}/{metric}", len(folds))
                        if history is not None:
                            metrics[metric] = history
                horizons[label] = BaselineHorizon(
                    label=label,
                    horizon=int(manifest["horizon"]),
                    step=int(manifest["step"]),
                    origins=[f["origin"] for f in folds],
                    actuals=[f["actuals"] for f in folds],
                    fold_metrics=metrics,
                )
        return horizons

    def _missing_artifacts(self, run_id: str) -> str | None:
        """The local artifact folder of a run when it does not exist, else None (present, or remote)."""
        path = local_path(self.client.get_run(run_id).info.artifact_uri)
        return None if path == Path() or path.exists() else str(path)

    def _history(self, run_id: str, key: str, folds: int) -> list[float] | None:
        history = sorted(self.client.get_metric_history(run_id, key), key=lambda m: m.step)
        if len(history) != folds:
            return None
        return [m.value for m in history]

    # -- logging a session -------------------------------------------------------------------------

    def log_session(
        self,
        experiment_id: str,
        records: list[Record],
        *,
        verdict: Verdict | None,
        outcomes: dict[str, str],
        status: str,
        session_id: str,
        extra_tags: dict[str, str],
        baseline: Baseline | None,
        skill: dict[str, dict[str, float]],
    ) -> list[LoggedRun]:
        """One run per model, with params, stepped and aggregate metrics, manifests, plots and the model."""
        by_model: dict[str, list[Record]] = {}
        for record in records:
            by_model.setdefault(record.model, []).append(record)
        logged = []
        try:
            for model, model_records in by_model.items():
                logged.append(
                    self._log_model_run(
                        experiment_id,
                        model,
                        model_records,
                        verdict=verdict,
                        outcomes=outcomes,
                        status=status,
                        session_id=session_id,
                        extra_tags=extra_tags,
                        baseline=baseline,
                        skill=skill,
                        all_records=records,
                    )
                )
        except Exception as exc:
            raise self._explain(exc, "logging the session") from exc
        return logged

    def _log_model_artifact(self, run_id: str, records: list[Record]) -> tuple[str | None, str | None]:
        """Log the candidate's model; a failure is reported, never allowed to lose the metrics already logged."""
        try:
            return self._log_model(run_id, records), None
        except Exception as exc:
            text = mask_text(str(exc), secrets_from=self.uri)
            message = f"{type(exc).__name__}: {text.splitlines()[0][:500] if text else ''}"
            self.client.set_tag(run_id, "forecast.model_error", message)
            return None, message

    def _log_model_run(
        self,
        experiment_id,
        model,
        records,
        *,
        verdict,
        outcomes,
        status,
        session_id,
        extra_tags,
        baseline,
        skill,
        all_records,
    ) -> LoggedRun:
        from mlflow.entities import Param

        role = "candidate" if any(r.role == "candidate" for r in records) else "reference"
        labels = [r.label for r in records if r.ok]
        node_outcomes = [outcomes.get(r.nodeid, "unknown") for r in records]
        failed = any(o == "failed" for o in node_outcomes) or any(not r.ok for r in records)
        run_status = status if status != "FINISHED" else ("FAILED" if failed else "FINISHED")
        tags = {
            "forecast.model": model,
            "forecast.role": role,
            "forecast.session": session_id,
            "forecast.horizons": ",".join(labels),
            "forecast.plugin_version": __version__,
            "forecast.tests": ",".join(f"{o}" for o in node_outcomes),
            "forecast.tests.failed": str(sum(o == "failed" for o in node_outcomes)),
            "forecast.tests.passed": str(sum(o == "passed" for o in node_outcomes)),
            "mlflow.source.name": "pytest",
            "mlflow.source.type": "LOCAL",
        }
        tags = {**extra_tags, **tags}  # a --mlflow-tag never overrides what the plugin records
        if role == "candidate" and verdict is not None:
            tags["forecast.verdict"] = verdict.status
            tags["forecast.baseline"] = verdict.baseline
        errors = [f"{r.label}: {r.error}" for r in records if r.error]
        if errors:
            tags["forecast.errors"] = "; ".join(errors)[:4000]
        from .liveness import writer_tags

        tags.update(writer_tags())
        tags = {key: mask_text(str(value), secrets_from=self.uri) for key, value in tags.items()}
        run_name = f"{self.settings.run_name}-{model}" if self.settings.run_name else model
        start = int(time.time() * 1000)
        run = self.client.create_run(
            experiment_id, start_time=start, run_name=run_name, tags={k: str(v)[:5000] for k, v in tags.items()}
        )
        run_id = run.info.run_id
        model_uri = None
        try:
            params = self._params(records)
            metrics = self._metrics(records, skill, verdict, start)
            self._batched(
                run_id,
                metrics=metrics,
                params=[Param(k, v) for k, v in params.items()],
                tags=[],
            )
            for record in records:
                if record.ok:
                    self.client.log_dict(run_id, record.manifest(), f"manifests/{sanitize(record.label)}.json")
            self._log_dataset(run_id, records)
            self._log_plots(run_id, records, all_records, baseline)
            if verdict is not None and role == "candidate":
                from .report import markdown, to_json

                self.client.log_text(run_id, markdown(verdict, self.settings.gate), "gate/verdict.md")
                self.client.log_text(run_id, to_json(verdict, self.settings.gate), "gate/verdict.json")
            model_error = None
            if role == "candidate":
                model_uri, model_error = self._log_model_artifact(run_id, records)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the run ends KILLED, as the README promises
            self.client.set_terminated(run_id, "KILLED")
            raise
        except BaseException:
            self.client.set_terminated(run_id, "FAILED")
            raise
        self.client.set_tag(run_id, "forecast.logged", "complete")
        self.client.set_terminated(run_id, "FAILED" if model_error else run_status)
        return LoggedRun(model=model, role=role, run_id=run_id, model_uri=model_uri, error=model_error)

    def _batched(self, run_id: str, *, metrics: list[tuple[str, float, int, int]], params: list, tags: list) -> None:
        """log_batch in chunks within MLflow's limits (1000 metrics, 100 params, 100 tags per call).

        ``metrics`` are ``(key, value, timestamp, step)`` tuples, turned into entities chunk by chunk.
        """
        from mlflow.entities import Metric

        for i in range(0, len(params), 100):
            self.client.log_batch(run_id, params=params[i : i + 100])
        for i in range(0, len(tags), 100):
            self.client.log_batch(run_id, tags=tags[i : i + 100])
        # Thousands of short-lived Metric entities would trigger full garbage-collection passes over the
        # whole session's heap mid-write; nothing here forms reference cycles, so pause the collector.
        collecting = gc.isenabled()
        gc.disable()
        try:
            for i in range(0, len(metrics), 1000):
                chunk = [Metric(k, v, ts, step) for k, v, ts, step in metrics[i : i + 1000]]
                self.client.log_batch(run_id, metrics=chunk)
        finally:
            if collecting:
                gc.enable()

    def _params(self, records: list[Record]) -> dict[str, str]:
        import numpy
        import pandas

        params: dict[str, str] = {
            "version.python": platform.python_version(),
            "version.mlflow": self.mlflow.__version__,
            "version.numpy": numpy.__version__,
            "version.pandas": pandas.__version__,
            "version.pytest-forecast-mlflow": __version__,
        }
        torch = __import__("sys").modules.get("torch")
        if torch is not None:
            params["version.torch"] = torch.__version__
        shas = {r.data.get("data.sha256") for r in records if r.data}
        # a model parameter that differs between horizons (a per-horizon network's `horizon`, say) is
        # logged per label; one all horizons share is logged once
        shared = {
            key for key in {k for r in records for k in r.params}
            if len({r.params.get(key) for r in records}) == 1
        }
        for record in records:
            for key, value in record.spec.items():
                params[f"{record.label}.{key}"] = value
            for key, value in record.params.items():
                params[f"model.{key}" if key in shared else f"{record.label}.model.{key}"] = value
            for key, value in record.data.items():
                params[key if len(shas) == 1 else f"{record.label}.{key}"] = value
            if record.data_source:
                params["data.source" if len(shas) == 1 else f"{record.label}.data.source"] = record.data_source[:500]
        return params

    def _metrics(self, records, skill, verdict, timestamp) -> list[tuple[str, float, int, int]]:
        out: list[tuple[str, float, int, int]] = []
        means: dict[str, list[float]] = {}
        # every stepped history first, each contiguous, so a 1,000-value batch rarely splits one
        for record in records:
            if record.ok:
                label = sanitize(record.label)
                for name, values in record.fold_metrics.items():
                    out += [(f"{label}/{name}", float(v), timestamp, step) for step, v in enumerate(values)]
        for record in records:
            if not record.ok:
                continue
            label = sanitize(record.label)
            for name, value in record.aggregates.items():
                out.append((f"{label}/{name}", float(value), timestamp, 0))
                if name.endswith("_mean"):
                    means.setdefault(name, []).append(float(value))
            out.append((f"{label}/folds", float(len(record.origins)), timestamp, 0))
            for key, value in skill.get(f"{record.model} {record.label}", {}).items():
                out.append((f"{label}/{key}", float(value), timestamp, 0))
        for name, values in means.items():
            out.append((f"all/{name}", sum(values) / len(values), timestamp, 0))
        if verdict is not None:
            for row in verdict.rows:
                if row.status != "compared" or row.model not in {r.model for r in records}:
                    continue
                prefix = f"gate/{sanitize(row.label)}/{row.metric}"
                out.append((f"{prefix}_delta_pct", row.delta_pct, timestamp, 0))
                if row.method == "dm":
                    out.append((f"{prefix}_p", row.p_adjusted, timestamp, 0))
                    out.append((f"{prefix}_detectable_pct", row.min_detectable_pct, timestamp, 0))
        return out

    def _log_dataset(self, run_id: str, records: list[Record]) -> None:
        seen = set()
        for record in records:
            sha = record.data.get("data.sha256")
            if not sha or sha in seen:
                continue
            seen.add(sha)
            try:
                from mlflow.data.dataset_source_registry import resolve_dataset_source
                from mlflow.data.meta_dataset import MetaDataset
                from mlflow.entities import DatasetInput, InputTag

                source = record.data_source or "in-memory series"
                try:
                    with warnings.catch_warnings():  # "can be interpreted in multiple ways": same class twice
                        warnings.simplefilter("ignore")
                        resolved = resolve_dataset_source(source)
                except Exception:
                    from mlflow.data.code_dataset_source import CodeDatasetSource

                    resolved = CodeDatasetSource({"source": source})
                name = Path(source).stem if record.data_source else "series"
                dataset = MetaDataset(source=resolved, name=name, digest=sha[:12])
                entity = dataset._to_mlflow_entity()
                self.client.log_inputs(run_id, [DatasetInput(entity, [InputTag("mlflow.data.context", "backtest")])])
            except Exception as exc:  # a UI nicety; the fingerprint params carry the same facts
                log.warning("could not record the dataset input: %s", exc)

    def _log_plots(self, run_id, records, all_records, baseline) -> None:
        from .plots import figures

        with tempfile.TemporaryDirectory(prefix="forecast-plots-") as tmp:
            for record in records:
                if not record.ok:
                    continue
                naive = next(
                    (
                        r
                        for r in all_records
                        if r.label == record.label
                        and r.role == "reference"
                        and r.model.lower().startswith("naive")
                        and r.ok
                    ),
                    None,
                )
                base = baseline.horizons.get(record.label) if baseline else None
                for path in figures(record, Path(tmp), baseline=base, reference=naive,
                                    metric=self.settings.gate_metrics[0]):
                    self.client.log_artifact(run_id, str(path), "plots")

    def _log_model(self, run_id: str, records: list[Record]) -> str | None:
        files = {
            r.label: (r.model_file, r.model_kind, r.input_example, r.horizon) for r in records if r.ok and r.model_file
        }
        if not files:
            return None
        from .pyfunc import log_bundle

        with self.mlflow.start_run(run_id=run_id, nested=False), quiet_mlflow():
            return log_bundle(files)

    # -- the registry ------------------------------------------------------------------------------

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
            version = str(self.mlflow.register_model(logged.model_uri, name, tags=tags).version)
        if not promote:
            return Registration(version, False, "not asked to promote")
        if verdict is None or not verdict.promotable:
            return Registration(version, False, f"gate verdict {status}; only pass (or no champion yet) promotes")
        by_alias = gated_against is not None and gated_against.how.startswith("alias")
        expected = gated_against.version if by_alias else None
        with self._promotion_lock(name):
            current = self._alias_version(name, alias)
            if current != expected:
                was = f"v{expected}" if expected else "no champion"
                now = f"v{current}" if current else "no alias"
                return Registration(
                    version, False,
                    f"the champion changed while this session ran (gated against {was}, now {now}); it was never "
                    f"compared with the new champion: rerun the session to be gated against it",
                )
            self.client.set_registered_model_alias(name, alias, version)
            self.client.set_model_version_tag(name, version, "forecast.promoted", "true")
            self.client.set_model_version_tag(name, version, "forecast.promoted_over", expected or "none")
        return Registration(version, True, "")

    def _alias_version(self, name: str, alias: str) -> str | None:
        from mlflow.exceptions import MlflowException

        try:
            return str(self.client.get_model_version_by_alias(name, alias).version)
        except MlflowException as exc:
            if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
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

        from .liveness import is_dead, writer_tags

        lock = f"{name}.promotion-lock"
        deadline = time.monotonic() + max(30.0, self.settings.timeout)
        while True:
            try:
                self.client.create_registered_model(
                    lock, tags={**writer_tags(), "forecast.lock.since": f"{time.time():.0f}"},
                    description=f"held while a pytest-forecast-mlflow session moves the alias of {name}",
                )
                break
            except MlflowException as exc:
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
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
                if "already exists" not in str(exc).lower():
                    raise
