"""``forecast-mlflow backup`` and ``restore``: argument handling and output over :mod:`pytest_forecast_mlflow.backup`.

Neither imports mlflow: the work is SQLite and file copies.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TextIO

from pytest_forecast_mlflow.backup import MANIFEST, BackupError, BackupRefused, backup_store, restore_store
from pytest_forecast_mlflow.cli.base import CliError, Parser, require_sqlite, store_args


def _cli_error(exc: BackupError) -> CliError:
    """A refusal is a usage error (exit code 2), a failure an operation that failed (1)."""
    return CliError(exc.message, 2 if isinstance(exc, BackupRefused) else 1)


def cmd_backup(args: argparse.Namespace, out: TextIO) -> int:
    from pytest_forecast_mlflow.tracking.views import mlflow_version

    store = store_args(args)
    db, artifacts = require_sqlite(store, "backup")
    dest = Path(args.dest).expanduser().resolve()
    if not db.exists():
        raise CliError(f"nothing to back up: {db} does not exist ({store.source}); check --tracking-uri", 1)
    try:
        done = backup_store(
            db, artifacts, dest, source_uri=store.shown, mlflow_version=mlflow_version(), force=args.force
        )
    except BackupError as exc:
        raise _cli_error(exc) from None
    out.write(
        f"backed up {done.summary.runs} runs in {done.summary.experiments} experiments "
        f"({done.db_bytes} bytes) and {done.artifact_files} artifact files from {store.shown} to {dest}\n"
    )
    return 0


def cmd_restore(args: argparse.Namespace, out: TextIO) -> int:
    from pytest_forecast_mlflow.tracking.views import mlflow_version

    store = store_args(args)
    db, artifacts = require_sqlite(store, "restore")
    src = Path(args.src).expanduser().resolve()
    try:
        done = restore_store(src, db, artifacts, force=args.force)
    except BackupError as exc:
        raise _cli_error(exc) from None

    manifest, summary = done.manifest, done.summary
    out.write(
        f"restored {summary.runs} runs in {summary.experiments} experiments and {done.artifact_files} artifact files "
        f"into {store.shown} (backup of {manifest.get('source_uri')} taken {manifest.get('created')})\n"
    )
    if done.old_root is not None and done.old_root != artifacts:
        out.write(f"rewrote {done.rewritten} rows of artifact locations from {done.old_root} to {artifacts}\n")
    elif done.old_root is None:
        out.write("note: the backup does not say where its artifacts were, so locations were not rewritten\n")
    if manifest.get("mlflow_version") not in (None, mlflow_version()):
        out.write(
            f"note: the backup was taken with mlflow {manifest.get('mlflow_version')}, this is mlflow "
            f"{mlflow_version()}; if MLflow reports an out-of-date schema, run: mlflow db upgrade {store.uri}\n"
        )
    if done.foreign:
        out.write(
            f"note: {len(done.foreign)} experiment(s) record artifact locations outside {artifacts} "
            f"(e.g. {done.foreign[0]}), which restore does not move; their runs look for artifacts there\n"
        )
    return 0


def add_parsers(
    commands: argparse._SubParsersAction[Parser],
    common: Parser,
    artifact_root: Parser,
) -> None:
    backup = commands.add_parser(
        "backup",
        parents=[common, artifact_root],
        help="Consistent copy of the store, safe while it is in use",
        description=f"Copy the database (SQLite online backup), the artifacts and a {MANIFEST} manifest to DEST.",
    )
    backup.add_argument("dest", metavar="DEST", help="New or empty folder to write the backup to")
    backup.add_argument("--force", action="store_true", help="Replace the backup in a non-empty DEST")
    backup.set_defaults(handler=cmd_backup)

    restore = commands.add_parser(
        "restore",
        parents=[common, artifact_root],
        help="Put a backup back in the store's place",
        description="Restore a backup made by 'backup' into the configured store location.",
    )
    restore.add_argument("src", metavar="SRC", help="Folder written by 'backup'")
    restore.add_argument("--force", action="store_true", help="Replace an existing store")
    restore.set_defaults(handler=cmd_restore)
