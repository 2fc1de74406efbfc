"""The connection to one tracking store: preparing MLflow, opening the client, explaining its errors.

MLflow keeps process-wide state: the global tracking and registry URIs and ``MLFLOW_*`` environment
variables. A :class:`Connection` sets what it needs and gives every one of them back on :meth:`close`,
so a process that opens a store (a test run in-process, a replay from the command line) is left as
it was found. Its logging is quieted and masked: MLflow's remarks about choices this plugin made on
purpose are dropped, and the tracking URI's credentials never reach a log line.
"""

from __future__ import annotations

import contextlib
import io
import logging
import math
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .. import __version__
from ..records import sanitize
from ..settings import Settings
from ..store import mask_text, mask_uri, sqlite_path

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

#: The environment variables a connection sets (see :func:`_prepare_environment`) or MLflow sets for it
#: (``set_tracking_uri``/``set_registry_uri`` export the URIs to subprocesses); restored on close.
#: MLflow 3's UI opens an experiment without this tag on its GenAI overview (traces, "detect issues");
#: ``custom_model_development`` marks classic model training, so it opens on the runs and their charts.
#: A user's own choice (any value already there) is left alone; MLflow 2.x shows it as a plain tag.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = {EXPERIMENT_KIND_TAG: "custom_model_development"}

ENVIRONMENT = (
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR",
    "MLFLOW_HTTP_REQUEST_TIMEOUT",
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
)


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


def error_is(exc: BaseException, *codes: int) -> bool:
    """Whether ``exc`` is an MLflow error with one of ``codes`` (``mlflow.protos.databricks_pb2`` values).

    MLflow's own way (``exc.error_code == ErrorCode.Name(RESOURCE_DOES_NOT_EXIST)``): messages change
    between versions, codes do not; a REST store raises the code its server sent.
    """
    from mlflow.protos.databricks_pb2 import ErrorCode

    return getattr(exc, "error_code", None) in {ErrorCode.Name(code) for code in codes}


def _prepare_environment(timeout: float) -> None:
    """Bound MLflow's HTTP requests before mlflow is imported, and keep URLs off stdout.

    MLflow retries an unanswered request for about four minutes by default; here one request waits at
    most ``timeout`` seconds and is not retried, so a server that stops answering fails the session
    (or spools it) within the configured timeout. MLflow's "View run ... at: URL" lines would print the
    tracking URI, credentials included, and its "Downloading artifacts" progress bars are noise nobody
    asked for in a test session.
    """
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(max(1, math.ceil(timeout))))
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"


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


class _GlobalState:
    """MLflow's process-wide URIs and the ``MLFLOW_*`` variables of :data:`ENVIRONMENT`, as found."""

    def __init__(self) -> None:
        self.environment = {name: os.environ.get(name) for name in ENVIRONMENT}
        self.uris: tuple[Any, Any] | None = None

    def remember_uris(self) -> None:
        """Read the URIs MLflow had set (``None``: never set) before this connection sets its own."""
        from mlflow.tracking._model_registry import utils as registry_utils
        from mlflow.tracking._tracking_service import utils as tracking_utils

        self.uris = (getattr(tracking_utils, "_tracking_uri", None), getattr(registry_utils, "_registry_uri", None))

    def restore(self) -> None:
        if self.uris is not None:
            import mlflow

            mlflow.set_tracking_uri(self.uris[0])
            mlflow.set_registry_uri(self.uris[1])
            self.uris = None
        for name, value in self.environment.items():  # after the URIs: setting them exports variables
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


class Connection:
    """An open client on one tracking store; :meth:`close` gives MLflow's global state back."""

    def __init__(self, settings: Settings) -> None:
        self._state = _GlobalState()
        _prepare_environment(settings.timeout)
        self.settings = settings
        self.uri = settings.tracking_uri
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        if self.uri.startswith(("http://", "https://")):
            probe_http(self.uri, self.settings.timeout)
        import mlflow
        from mlflow import MlflowClient

        self.mlflow = mlflow
        _mask_mlflow_logging(self.uri)
        self._state.remember_uris()
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
            raise self.explain(exc, "opening the tracking store") from None

    def close(self) -> None:
        """Put MLflow's global tracking and registry URIs and the ``MLFLOW_*`` variables back as found."""
        self._state.restore()

    def check_available(self) -> None:
        """Fail fast, before a run is half-written, when a remote server went away during the session."""
        if self.uri.startswith(("http://", "https://")):
            probe_http(self.uri, self.settings.timeout)

    def explain(self, exc: BaseException, doing: str) -> Exception:
        """``exc`` as a :class:`StoreUnavailable` or :class:`TrackingError` that says what to do, URI masked."""
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
        from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS

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
                        tags={"forecast.created_by": f"pytest-forecast-mlflow {__version__}", **EXPERIMENT_KIND},
                    )
                except MlflowException as exc:
                    if not error_is(exc, RESOURCE_ALREADY_EXISTS):
                        raise
                    experiment = self.client.get_experiment_by_name(name)  # another session won the race
                    assert experiment is not None  # it exists: that is why creating it failed
            if experiment.lifecycle_stage == "deleted":
                raise TrackingError(
                    f"experiment {name!r} is deleted in {mask_uri(self.uri)}; restore it "
                    f"(mlflow experiments restore --experiment-id {experiment.experiment_id}) or choose another name"
                )
            if experiment.tags.get(EXPERIMENT_KIND_TAG) is None:  # made before the plugin set it, or by hand
                self.client.set_experiment_tag(experiment.experiment_id, *next(iter(EXPERIMENT_KIND.items())))
            return experiment.experiment_id
        except TrackingError:
            raise
        except Exception as exc:
            raise self.explain(exc, f"getting experiment {name!r}") from None


def live_run(client: Any, run_id: str) -> Any | None:
    """The run ``run_id``, or None when it does not exist or is deleted (MLflow keeps deleted runs)."""
    from mlflow.exceptions import MlflowException

    try:
        run = client.get_run(run_id)
    except MlflowException:
        return None
    return None if run.info.lifecycle_stage == "deleted" else run
