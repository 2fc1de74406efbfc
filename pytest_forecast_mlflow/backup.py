"""Back up the embedded SQLite store while it is in use, and put a backup back in a store's place.

Pure ``sqlite3`` and file work beside :mod:`.store`: this module never imports mlflow. The
``forecast-mlflow backup`` and ``restore`` commands are argument handling and output over
:func:`backup_store` and :func:`restore_store`; both are callable (and tested) without the command.

A backup is one folder::

    DEST/
      backup.json    the manifest, written last: a folder without it is not a (finished) backup
      mlflow.db      one consistent snapshot of the database (SQLite's online backup API)
      mlruns/        the artifact folder, copied after the snapshot

A store keeps absolute artifact locations, so a restore into another folder rewrites every location
under the backed-up artifact root to the new one (:func:`rewrite_artifact_locations`).

Errors are :class:`BackupRefused` (what was asked is unsafe or is not a backup: nothing was touched)
or :class:`BackupFailed` (the store is locked, damaged or a disk operation failed), each one line
naming the cause and the fix.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pytest_forecast_mlflow import __version__
from pytest_forecast_mlflow.store import ARTIFACTS_DIR, COMMAND, DB_NAME, first_line, local_path, relocate

MANIFEST = "backup.json"
BACKUP_FORMAT = "forecast-mlflow-backup"
BACKUP_FORMAT_VERSION = 1
#: Seconds a backup or restore waits for a store another process holds locked before giving up.
LOCK_TIMEOUT_S = 60.0

# sqlite3.SQLITE_BUSY / SQLITE_LOCKED exist as constants only from Python 3.11.
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6


class BackupError(Exception):
    """A backup or restore that did not happen, as one line: what went wrong and what to do about it."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BackupRefused(BackupError):
    """What was asked is unsafe (it would overwrite something) or names no backup; nothing was touched."""


class BackupFailed(BackupError):
    """The work itself failed: a store locked too long, a damaged database, a disk error."""


@dataclass(frozen=True)
class DbSummary:
    """What an intact MLflow database holds: its active experiments and runs."""

    experiments: int
    runs: int


@dataclass(frozen=True)
class BackupDone:
    """What :func:`backup_store` wrote: the database's contents and size, and the artifact files copied."""

    summary: DbSummary
    db_bytes: int
    artifact_files: int


@dataclass(frozen=True)
class RestoreDone:
    """What :func:`restore_store` put in place.

    ``old_root`` is the artifact folder the backup recorded (``None`` for a manifest that does not say),
    ``rewritten`` the rows whose locations moved from it, ``foreign`` the artifact locations outside the
    restored artifact folder that restore does not move.
    """

    manifest: dict[str, Any]
    summary: DbSummary
    artifact_files: int
    old_root: Path | None
    rewritten: int
    foreign: list[str]


# -------------------------------------------------------------------------------------------- sqlite


def _connect(path: Path, *, must_exist: bool) -> sqlite3.Connection:
    """A connection with a busy timeout; ``must_exist`` opens without creating (a typo stays an error)."""
    if must_exist:
        return sqlite3.connect(path.as_uri() + "?mode=rw", uri=True, timeout=LOCK_TIMEOUT_S)
    return sqlite3.connect(path, timeout=LOCK_TIMEOUT_S)


def sqlite_online_copy(src: Path, dst: Path, timeout_s: float | None = None) -> None:
    """Copy the database ``src`` into ``dst`` with SQLite's online backup API.

    The copy is one consistent snapshot even while other connections write: SQLite copies under a
    read lock, committed data only (a write transaction still open elsewhere is not included, and
    WAL content is). ``dst`` may be in use too; it is rewritten in place, under SQLite's locks.
    A store that stays locked longer than ``timeout_s`` (default ``LOCK_TIMEOUT_S``) raises ``TimeoutError``.
    """
    timeout_s = LOCK_TIMEOUT_S if timeout_s is None else timeout_s
    deadline = time.monotonic() + timeout_s

    def progress(status: int, remaining: int, total: int) -> None:
        if status in (_SQLITE_BUSY, _SQLITE_LOCKED) and time.monotonic() > deadline:
            raise TimeoutError(f"the database stayed locked for {timeout_s:g} s")

    source = _connect(src, must_exist=True)
    try:
        target = _connect(dst, must_exist=False)
        try:
            source.backup(target, pages=-1, progress=progress, sleep=0.05)
        finally:
            target.close()
    finally:
        source.close()


def summarize_db(path: Path) -> DbSummary:
    """Check that ``path`` is an intact MLflow database and count what it holds; ``BackupFailed`` if not."""
    try:
        conn = _connect(path, must_exist=True)
        try:
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise BackupFailed(f"{path} is damaged (sqlite quick_check: {check}); use another backup")
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if not {"experiments", "runs", "alembic_version"} <= tables:
                raise BackupFailed(f"{path} is a SQLite file but not an MLflow database (no runs/experiments tables)")
            experiments = conn.execute("SELECT count(*) FROM experiments WHERE lifecycle_stage = 'active'").fetchone()
            runs = conn.execute("SELECT count(*) FROM runs WHERE lifecycle_stage = 'active'").fetchone()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise BackupFailed(f"cannot read {path} as an MLflow database: {exc}") from None
    return DbSummary(experiments=experiments[0], runs=runs[0])


def foreign_artifact_locations(db: Path, artifacts: Path) -> list[str]:
    """Artifact locations of experiments with runs that lie outside ``artifacts`` (a store moved here)."""
    conn = _connect(db, must_exist=True)
    try:
        rows = conn.execute(
            "SELECT DISTINCT e.artifact_location FROM experiments e "
            "JOIN runs r ON r.experiment_id = e.experiment_id WHERE e.lifecycle_stage = 'active'"
        ).fetchall()
    finally:
        conn.close()
    return [location for (location,) in rows if not _is_within(local_path(location), artifacts)]


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def rewrite_artifact_locations(db: Path, old_root: Path, new_root: Path) -> int:
    """Point every location under ``old_root`` in the database ``db`` at ``new_root``; returns the rows changed.

    A store keeps absolute artifact locations (``experiments.artifact_location``, ``runs.artifact_uri``,
    ``model_versions.source``/``storage_location``, ``logged_models.artifact_location``, JSON in tags).
    Every text column of every table is searched, so a location MLflow adds in a later schema moves too;
    key columns are left alone. One transaction: the database is rewritten whole or not at all.
    """
    if old_root == new_root:
        return 0
    needles = {old_root.as_posix(), old_root.as_uri()[len("file://") :]}
    conn = _connect(db, must_exist=True)
    conn.isolation_level = None
    changed = 0
    try:
        conn.execute("BEGIN IMMEDIATE")
        tables = [
            name
            for (name,) in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
                "AND sql NOT LIKE '%WITHOUT ROWID%'"
            )
        ]
        for table in tables:
            keys = {row[3] for row in conn.execute(f"PRAGMA foreign_key_list({_quoted(table)})")}
            columns = [
                row[1]
                for row in conn.execute(f"PRAGMA table_info({_quoted(table)})")
                if not row[5] and row[1] not in keys  # row[5]: part of the primary key
            ]
            if not columns:
                continue
            where = " OR ".join(f"instr({_quoted(c)}, ?) > 0" for c in columns for _ in needles)
            found = conn.execute(
                f"SELECT rowid, {', '.join(_quoted(c) for c in columns)} FROM {_quoted(table)} WHERE {where}",
                [needle for _ in columns for needle in needles],
            ).fetchall()
            for rowid, *values in found:
                moved = {
                    column: relocate(value, old_root, new_root)
                    for column, value in zip(columns, values, strict=True)
                    if isinstance(value, str)
                }
                moved = {c: v for c, v in moved.items() if v != values[columns.index(c)]}
                if moved:
                    assignments = ", ".join(f"{_quoted(c)} = ?" for c in moved)
                    conn.execute(f"UPDATE {_quoted(table)} SET {assignments} WHERE rowid = ?", [*moved.values(), rowid])
                    changed += 1
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()
    return changed


# --------------------------------------------------------------------------------------------- files


def _copy_present(src: str, dst: str) -> object:
    try:
        return shutil.copy2(src, dst)
    except FileNotFoundError:  # removed while we copied: a temporary file, not a finished artifact
        return dst


def _count_files(root: Path) -> int:
    return sum(1 for p in root.rglob("*") if p.is_file()) if root.is_dir() else 0


def _copy_artifacts(src: Path, dst: Path) -> int:
    """Copy the artifact folder ``src`` to a new folder ``dst``; an absent ``src`` gives an empty one."""
    if src.is_dir():
        shutil.copytree(src, dst, copy_function=_copy_present)
    else:
        dst.mkdir(parents=True)
    return _count_files(dst)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _remove_database(path: Path) -> None:
    for leftover in (
        path,
        path.with_name(f"{path.name}-wal"),
        path.with_name(f"{path.name}-shm"),
        path.with_name(f"{path.name}-journal"),
    ):
        _remove(leftover)


def _is_within(path: Path, parent: Path) -> bool:
    return path == parent or parent in path.parents


# -------------------------------------------------------------------------------------------- backup


def backup_store(
    db: Path, artifacts: Path, dest: Path, *, source_uri: str, mlflow_version: str, force: bool = False
) -> BackupDone:
    """Copy the store (database ``db``, artifact folder ``artifacts``) and a manifest to the folder ``dest``.

    ``dest`` must be new or empty; with ``force`` a backup this function made there is replaced, but
    never a folder holding a database or artifacts without a manifest. ``source_uri`` (already masked)
    and ``mlflow_version`` go into the manifest. The database is copied first, then the artifacts
    (every artifact a backed-up run refers to was written before the snapshot), the manifest last.
    """
    if dest.exists() and not dest.is_dir():
        raise BackupRefused(f"DEST {dest} is a file; give a new or empty folder")
    if dest / DB_NAME == db or _is_within(dest, artifacts) or dest / ARTIFACTS_DIR == artifacts:
        raise BackupRefused(f"DEST {dest} overlaps the store it backs up ({db.parent}); choose a folder outside it")
    ours = [dest / MANIFEST, dest / DB_NAME, dest / ARTIFACTS_DIR]
    if dest.exists() and any(dest.iterdir()):
        if not force:
            raise BackupRefused(
                f"DEST {dest} is not empty; choose a new or empty folder, or pass --force to replace it"
            )
        if not (dest / MANIFEST).is_file() and any(p.exists() for p in ours[1:]):
            raise BackupRefused(
                f"DEST {dest} holds {DB_NAME} or {ARTIFACTS_DIR}/ but no {MANIFEST}, so it is not a backup "
                f"this command made; even with --force it will not replace them: choose another folder"
            )

    try:
        dest.mkdir(parents=True, exist_ok=True)
        for path in ours:  # the manifest goes first and comes back last: it marks a complete backup
            _remove(path)
        partial_db = dest / f"{DB_NAME}.partial"
        _remove(partial_db)
        sqlite_online_copy(db, partial_db)
        summary = summarize_db(partial_db)
        partial_db.replace(dest / DB_NAME)
        # after the database: every artifact a backed-up run refers to was written before the snapshot
        partial_artifacts = dest / f"{ARTIFACTS_DIR}.partial"
        _remove(partial_artifacts)
        n_files = _copy_artifacts(artifacts, partial_artifacts)
        partial_artifacts.replace(dest / ARTIFACTS_DIR)
        done = BackupDone(summary=summary, db_bytes=(dest / DB_NAME).stat().st_size, artifact_files=n_files)
        manifest = {
            "format": BACKUP_FORMAT,
            "format_version": BACKUP_FORMAT_VERSION,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "source_uri": source_uri,
            "source_artifact_root": str(artifacts),
            "mlflow_version": mlflow_version,
            "plugin_version": __version__,
            "db_file": DB_NAME,
            "db_bytes": done.db_bytes,
            "artifacts_dir": ARTIFACTS_DIR,
            "artifact_files": n_files,
            "experiments": summary.experiments,
            "runs": summary.runs,
        }
        partial_manifest = dest / f"{MANIFEST}.partial"
        partial_manifest.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        partial_manifest.replace(dest / MANIFEST)
    except TimeoutError as exc:
        raise BackupFailed(f"cannot back up {db}: {exc}; retry when the test session writing to it is done") from None
    except (OSError, shutil.Error, sqlite3.Error) as exc:
        raise BackupFailed(f"cannot back up {db} to {dest}: {first_line(str(exc))}") from None
    return done


# ------------------------------------------------------------------------------------------- restore


def read_manifest(src: Path) -> dict[str, Any]:
    """The manifest of the backup folder ``src``, or ``BackupRefused`` saying why ``src`` is not a backup."""
    hint = f"give the DEST folder of '{COMMAND} backup DEST'"
    if not src.is_dir():
        raise BackupRefused(f"SRC {src} is not a folder; {hint}")
    path = src / MANIFEST
    if not path.is_file():
        raise BackupRefused(
            f"SRC {src} has no {MANIFEST}, so it is not a {COMMAND} backup (or an unfinished one); {hint}"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackupRefused(f"cannot read {path}: {first_line(str(exc))}; the backup is damaged, use another") from None
    if not isinstance(manifest, dict) or manifest.get("format") != BACKUP_FORMAT:
        raise BackupRefused(f"{path} is not a {COMMAND} backup manifest (format {BACKUP_FORMAT!r} expected); {hint}")
    if manifest.get("format_version", 0) > BACKUP_FORMAT_VERSION:
        raise BackupRefused(
            f"{path} has format version {manifest.get('format_version')}, newer than this {COMMAND} "
            f"({BACKUP_FORMAT_VERSION}); upgrade pytest-forecast-mlflow to restore it"
        )
    if not (src / DB_NAME).is_file():
        raise BackupRefused(f"SRC {src} has {MANIFEST} but no {DB_NAME}: the backup is incomplete; use another")
    return manifest


def restore_store(src: Path, db: Path, artifacts: Path, *, force: bool = False) -> RestoreDone:
    """Put the backup in the folder ``src`` in the place of the store (database ``db``, artifacts ``artifacts``).

    An existing store is replaced only with ``force``. The artifacts are staged first (the store is
    untouched until they are copied), the backup's database is copied to a staged file whose locations
    are rewritten to ``artifacts``, and that file then replaces the database whole, under SQLite's locks.
    """
    manifest = read_manifest(src)
    if src == db.parent or src / DB_NAME == db:
        raise BackupRefused(f"SRC {src} is the store itself; give a backup folder")
    summary = summarize_db(src / DB_NAME)
    recorded_root = manifest.get("source_artifact_root")
    old_root = Path(str(recorded_root)) if recorded_root else None
    existing = db.exists() or (artifacts.is_dir() and any(artifacts.iterdir()))
    if existing and not force:
        raise BackupRefused(
            f"a store already exists at {db.parent}; pass --force to replace it with the backup "
            f"(keep a copy first: {COMMAND} backup DEST)"
        )

    try:
        db.parent.mkdir(parents=True, exist_ok=True)
        staged = artifacts.with_name(f"{artifacts.name}.restoring")
        _remove(staged)
        n_files = _copy_artifacts(src / ARTIFACTS_DIR, staged)  # may fail: the store is untouched so far
        # the backup's locations are rewritten in a staged copy, which then replaces the database whole
        staged_db = db.with_name(f"{db.name}.restoring")
        _remove_database(staged_db)
        sqlite_online_copy(src / DB_NAME, staged_db)
        rewritten = rewrite_artifact_locations(staged_db, old_root, artifacts) if old_root is not None else 0
        sqlite_online_copy(staged_db, db)
        _remove_database(staged_db)
        replaced = artifacts.with_name(f"{artifacts.name}.replaced")
        _remove(replaced)
        if artifacts.exists():
            artifacts.replace(replaced)
        staged.replace(artifacts)
        _remove(replaced)
        foreign = foreign_artifact_locations(db, artifacts)
    except TimeoutError as exc:
        raise BackupFailed(f"cannot restore into {db}: {exc}; stop the sessions or UI using it and retry") from None
    except (OSError, shutil.Error, sqlite3.Error) as exc:
        raise BackupFailed(f"cannot restore {src} into {db.parent}: {first_line(str(exc))}") from None
    return RestoreDone(
        manifest=manifest,
        summary=summary,
        artifact_files=n_files,
        old_root=old_root,
        rewritten=rewritten,
        foreign=foreign,
    )
