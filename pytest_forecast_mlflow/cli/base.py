"""What every command shares: the parser class, the store a command works on, argument types, :class:`CliError`."""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from pytest_forecast_mlflow.store import (
    ARTIFACTS_DIR,
    COMMAND,
    DB_NAME,
    TRACKING_URI_ENV,
    artifact_root_for,
    default_tracking_uri,
    mask_text,
    mask_uri,
    sqlite_path,
    validate_tracking_uri,
)

if TYPE_CHECKING:
    from pytest_forecast_mlflow.tracking.connection import Connection

PROG = COMMAND

TRACKING_URI_HELP = (
    f"Tracking URI: sqlite:///path/to/{DB_NAME} or http(s)://server "
    f"(default: ${TRACKING_URI_ENV}, else sqlite:///<cwd>/data/mlflow/{DB_NAME})"
)
ARTIFACT_ROOT_HELP = f"Artifact folder of the store (default: {ARTIFACTS_DIR}/ next to the database)"


class Parser(argparse.ArgumentParser):
    """argparse, with usage errors as one line that points at --help (exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {mask_text(message)}; see '{self.prog} --help'\n")


class CliError(Exception):
    """A failure to report as one line: what went wrong and what to do about it."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass(frozen=True)
class Store:
    """The tracking URI a command works on, where it came from, and its files when it is SQLite."""

    uri: str
    source: str
    db: Path | None
    artifacts: Path | None

    @property
    def shown(self) -> str:
        return mask_uri(self.uri)


def resolve_store(tracking_uri: str | None, artifact_root: str | None = None) -> Store:
    """``--tracking-uri`` > ``MLFLOW_TRACKING_URI`` > the embedded store under the current directory."""
    if tracking_uri:
        uri, source = tracking_uri, "--tracking-uri"
    elif os.environ.get(TRACKING_URI_ENV):
        uri, source = os.environ[TRACKING_URI_ENV], TRACKING_URI_ENV
    else:
        uri, source = default_tracking_uri(Path.cwd()), "default"
    try:
        validate_tracking_uri(uri, source=source)
    except ValueError as exc:
        raise CliError(str(exc), 2) from None
    db = sqlite_path(uri)
    artifacts = Path(artifact_root) if artifact_root else artifact_root_for(uri)
    return Store(
        uri=uri,
        source=source,
        db=None if db is None else db.expanduser().resolve(),
        artifacts=None if artifacts is None else artifacts.expanduser().resolve(),
    )


def require_sqlite(store: Store, command: str) -> tuple[Path, Path]:
    """The database and artifact folder of ``store``; a usage error when it is a tracking server."""
    if store.db is None or store.artifacts is None:
        raise CliError(
            f"{command} works on the embedded sqlite:/// store, but the tracking URI ({store.source}) is "
            f"the server {store.shown}; run it where the server's database lives, "
            f"or pass --tracking-uri sqlite:///path/to/{DB_NAME}",
            2,
        )
    return store.db, store.artifacts


def store_args(args: argparse.Namespace) -> Store:
    """The store ``--tracking-uri`` and ``--artifact-root`` name (each optional)."""
    return resolve_store(getattr(args, "tracking_uri", None), getattr(args, "artifact_root", None))


def whole_number(text: str) -> int:
    """An argparse ``type``: ``text`` as an int, or the error saying it is not one."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def positive_int(text: str) -> int:
    value = whole_number(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


@contextlib.contextmanager
def connection_for(args: argparse.Namespace, doing: str, *, hint: str = "") -> Iterator[Connection]:
    """An open connection on the store of ``--tracking-uri``; the library's and MLflow's errors (``doing``
    names what failed) become one-line :class:`CliError` (exit code 1). ``hint`` follows the advice
    to check ``--tracking-uri`` when the store does not exist."""
    store = store_args(args)
    if store.db is not None and not store.db.exists():
        raise CliError(f"no MLflow store at {store.db} ({store.source}); check --tracking-uri{hint}", 1)
    from pytest_forecast_mlflow.settings import Settings
    from pytest_forecast_mlflow.tracking.connection import Connection, StoreUnavailable, TrackingError

    settings = Settings(
        experiment=None, tracking_uri=store.uri, artifact_root=store.artifacts or Path(), rootdir=Path.cwd()
    )
    try:
        connection = Connection(settings)
    except (StoreUnavailable, TrackingError) as exc:
        raise CliError(str(exc), 1) from None
    try:
        yield connection
    except (StoreUnavailable, TrackingError) as exc:
        raise CliError(str(exc), 1) from None
    except CliError:
        raise
    except Exception as exc:
        from mlflow.exceptions import MlflowException

        if not isinstance(exc, MlflowException):
            raise
        raise CliError(str(connection.explain(exc, doing)), 1) from None
    finally:
        connection.close()
