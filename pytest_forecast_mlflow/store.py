"""Where the embedded MLflow store lives, and how to name a tracking URI without leaking secrets.

Shared by the plugin and the ``forecast-mlflow`` command. Pure path and string work: this module
never imports mlflow, so importing the plugin stays light.

The embedded store is one folder, ``data/mlflow`` under the project root::

    data/mlflow/
      mlflow.db      runs, metrics, tags, the model registry (tracking URI sqlite:///<abs>/mlflow.db)
      mlruns/        artifacts, one folder per experiment
"""

from __future__ import annotations

import re
from pathlib import Path

STORE_DIR = Path("data", "mlflow")
DB_NAME = "mlflow.db"
ARTIFACTS_DIR = "mlruns"
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"

SUPPORTED_SCHEMES = ("sqlite", "http", "https")

# scheme://userinfo@ -> scheme://***@ ; userinfo ends at the last "@" before the path, so a raw "@"
# inside a password is masked too.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)[^/\s?#\"'<>]*@")


def default_tracking_uri(root: Path) -> str:
    """The tracking URI of the embedded store under ``root``: ``sqlite:///<abs root>/data/mlflow/mlflow.db``."""
    return "sqlite:///" + (Path(root).resolve() / STORE_DIR / DB_NAME).as_posix()


def default_artifact_root(root: Path) -> Path:
    """The absolute artifact folder of the embedded store under ``root``."""
    return Path(root).resolve() / STORE_DIR / ARTIFACTS_DIR


def artifact_root_for(uri: str) -> Path | None:
    """The artifact folder that goes with a ``sqlite:///`` store: ``mlruns`` next to the database.

    For the default store this is ``default_artifact_root(root)``. ``None`` for anything that is not
    a file-backed SQLite URI (a tracking server keeps its own artifacts).
    """
    db = sqlite_path(uri)
    return None if db is None else db.parent / ARTIFACTS_DIR


def sqlite_path(uri: str) -> Path | None:
    """The database file behind a ``sqlite:///`` URI, or ``None`` for any other URI or an in-memory one.

    As SQLAlchemy reads them, ``sqlite:///rel/x.db`` is relative to the current directory and
    ``sqlite:////abs/x.db`` is absolute; the path is returned as written (not resolved) and any
    ``?query`` is dropped.
    """
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    path = uri[len(prefix) :].split("?", 1)[0]
    if path in ("", ":memory:"):
        return None
    return Path(path)


def mask_uri(uri: str) -> str:
    """``uri`` with any credentials replaced: ``https://user:token@host/x`` -> ``https://***@host/x``."""
    return mask_credentials(uri)


def mask_credentials(text: str) -> str:
    """Mask the credentials of every URI inside free text (error messages quote URLs verbatim)."""
    return _USERINFO.sub(r"\g<scheme>***@", text)


def validate_tracking_uri(uri: str, source: str = "tracking URI") -> str:
    """Return ``uri`` if it names a store this project supports, else raise ``ValueError`` that teaches.

    MLflow >= 3.13 no longer writes file stores (``./mlruns``, ``file:///...``, plain paths), so
    only ``sqlite:///`` databases and ``http(s)://`` tracking servers are accepted. ``source`` names
    where the value came from (``--tracking-uri``, ``MLFLOW_TRACKING_URI``) for the message.
    """
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    if scheme == "sqlite" and sqlite_path(uri) is not None:
        return uri
    if scheme in ("http", "https") and uri.split("://", 1)[1].strip("/"):
        return uri
    shown = mask_uri(uri) or "''"
    if scheme == "sqlite":
        reason = "a SQLite URI without a file path is an in-memory database that keeps nothing"
    elif scheme in ("", "file"):
        reason = "file stores are not supported by MLflow >= 3.13"
    else:
        reason = f"scheme {scheme!r} is not supported (use sqlite:/// or http(s)://)"
    raise ValueError(
        f"{source} {shown}: {reason}; use a database such as sqlite:///{STORE_DIR.as_posix()}/{DB_NAME} "
        f"or a server such as https://mlflow.example.com"
    )
