"""A throwaway PostgreSQL cluster and a real ``mlflow server`` on it, once per test session.

The cluster is made with Debian's ``postgresql`` binaries (``initdb``, ``pg_ctl``) in a temporary folder,
listening on a free port of 127.0.0.1 and on a unix socket in that folder, with durability switched off
(``fsync``, ``synchronous_commit``, ``full_page_writes``: the data is thrown away). PostgreSQL refuses to
run as root, so under root the binaries run as the ``postgres`` user, who owns the folder. Authentication
is ``trust`` on 127.0.0.1 only: the cluster lives for one test session and holds nothing.

The server is started once, as production runs it (``--backend-store-uri postgresql+psycopg2://...``,
``--serve-artifacts`` with an ``--artifacts-destination``, two workers), with MLflow's job runner off as
the suite's other test servers. ``mlflow server`` creates MLflow's schema before it answers ``/health``,
so the schema exists before any writer connects.

When PostgreSQL cannot be started (binaries missing, psycopg2 not installed, no ``postgres`` user) the
tests that need it fail with the reason in CI (``CI=true``) and are skipped with the reason elsewhere.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn, TypeVar

import pytest

# the suite's bytecode cache and hermetic environment for subprocesses (fixtures imported to register them)
from tests.mlflow_server import MlflowServer, ServerFailed, free_port, log_tail
from tests.plugin.conftest import _pycache, hermetic  # noqa: F401

#: Where Debian puts the server binaries (``/usr/lib/postgresql/<major>/bin``); PATH is tried first.
DEBIAN_BINARIES = "/usr/lib/postgresql/*/bin"
USER = "mlflow"
DATABASE = "mlflow"
#: How long the server may take to create MLflow's schema on an empty database and answer /health.
SERVER_START_TIMEOUT = 180.0

T = TypeVar("T")


class Unavailable(Exception):
    """PostgreSQL or the server on it cannot be started here; the message says why and how to fix it."""


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def unavailable(reason: str) -> NoReturn:
    """Fail in CI, where PostgreSQL must run; skip elsewhere. Either way the reason is shown."""
    if in_ci():
        pytest.fail(f"PostgreSQL is required in CI (CI=true) but cannot be started: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL cannot be started here (in CI this fails): {reason}")


def required(started: T | str) -> T:
    """What a session fixture started, or, when it holds the reason it could not start, :func:`unavailable`."""
    if isinstance(started, str):
        unavailable(started)
    return started


def _binary(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"{DEBIAN_BINARIES}/{name}"), reverse=True)), None)
    if found is None:
        raise Unavailable(f"no {name!r} on PATH or in {DEBIAN_BINARIES}: apt-get install postgresql")
    return found


@dataclass(frozen=True)
class Cluster:
    """A running PostgreSQL cluster: its folder (data, socket, log) and its port on 127.0.0.1."""

    folder: Path
    port: int
    as_user: tuple[str, ...]

    def uri(self, database: str = DATABASE, scheme: str = "postgresql+psycopg2") -> str:
        return f"{scheme}://{USER}@127.0.0.1:{self.port}/{database}"

    def _connect(self, database: str):
        import psycopg2

        return contextlib.closing(psycopg2.connect(host="127.0.0.1", port=self.port, user=USER, dbname=database))

    def create_database(self, name: str) -> None:
        with self._connect("postgres") as db:
            db.autocommit = True
            db.cursor().execute(f'CREATE DATABASE "{name}"')

    def query(self, sql: str, database: str = DATABASE) -> list[tuple]:
        with self._connect(database) as db:
            cursor = db.cursor()
            cursor.execute(sql)
            return cursor.fetchall()

    def tables(self, database: str) -> list[str]:
        """The tables of ``database`` (none until an MLflow store is created in it)."""
        sql = "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
        return [row[0] for row in self.query(sql, database)]


def start_cluster() -> Cluster:
    """initdb, start on a free port, create the ``mlflow`` database. Raises :class:`Unavailable` with the reason."""
    try:
        import psycopg2
    except ImportError as exc:
        raise Unavailable(f"psycopg2 is not installed ({exc}): pip install -e '.[test]'") from exc
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    as_user: tuple[str, ...] = ()
    folder = Path(tempfile.mkdtemp(prefix="forecast-pg-"))
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError as exc:
            shutil.rmtree(folder, ignore_errors=True)
            raise Unavailable("running as root and there is no 'postgres' user to run PostgreSQL as") from exc
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        as_user = (shutil.which("runuser") or "runuser", "-u", "postgres", "--")
    cluster = Cluster(folder, free_port(), as_user)
    options = (
        f"-c listen_addresses=127.0.0.1 -p {cluster.port} -k {folder} "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
    )
    steps = [
        [initdb, "-D", str(folder / "data"), "-U", USER, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"],
        [pg_ctl, "-D", str(folder / "data"), "-l", str(folder / "postgres.log"), "-o", options, "-w", "start"],
    ]
    for step in steps:
        done = subprocess.run([*as_user, *step], capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            log = log_tail(folder / "postgres.log")
            stop_cluster(cluster)
            raise Unavailable(f"{Path(step[0]).name} exited {done.returncode}: {done.stdout}{done.stderr}{log}")
    try:
        cluster.create_database(DATABASE)
    except psycopg2.Error as exc:
        stop_cluster(cluster)
        raise Unavailable(f"creating the database failed: {exc}") from exc
    return cluster


def stop_cluster(cluster: Cluster) -> None:
    """Stop the cluster at once (its data is thrown away) and remove its folder."""
    data = cluster.folder / "data"
    if (data / "postmaster.pid").exists():
        with contextlib.suppress(Unavailable, subprocess.SubprocessError, OSError):
            subprocess.run(
                [*cluster.as_user, _binary("pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
                capture_output=True,
                timeout=60,
                check=False,
            )
    shutil.rmtree(cluster.folder, ignore_errors=True)


class PostgresServer(MlflowServer):
    """A real ``mlflow server`` on the cluster, as the compose file runs it: proxied artifacts, two workers."""

    def __init__(self, cluster: Cluster, folder: Path, port: int) -> None:
        super().__init__(
            folder,
            backend=cluster.uri(),
            port=port,
            workers=2,
            serve_artifacts=True,
            timeout=SERVER_START_TIMEOUT,
        )
        self.cluster = cluster

    def start(self) -> None:
        try:
            super().start()
        except ServerFailed as exc:
            raise Unavailable(f"on PostgreSQL, {exc}") from None


@pytest.fixture(scope="session")
def _cluster_or_reason() -> Iterator[Cluster | str]:
    try:
        cluster = start_cluster()
    except Unavailable as exc:
        yield str(exc)
        return
    yield cluster
    stop_cluster(cluster)


@pytest.fixture(scope="session")
def postgres(_cluster_or_reason: Cluster | str) -> Cluster:
    """The session's PostgreSQL cluster; the test fails (CI) or is skipped (elsewhere) when it cannot start."""
    return required(_cluster_or_reason)


@pytest.fixture(scope="session")
def _server_or_reason(
    _cluster_or_reason: Cluster | str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PostgresServer | str]:
    if isinstance(_cluster_or_reason, str):
        yield _cluster_or_reason
        return
    server = PostgresServer(_cluster_or_reason, tmp_path_factory.mktemp("pg-server"), free_port())
    try:
        server.start()
    except Unavailable as exc:
        yield str(exc)
        return
    yield server
    server.stop()


@pytest.fixture(scope="session")
def pg_server(_server_or_reason: PostgresServer | str) -> PostgresServer:
    """A running ``mlflow server`` whose backend store is the session's PostgreSQL database."""
    return required(_server_or_reason)
