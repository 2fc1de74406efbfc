"""``pytest_forecast_mlflow.backup`` in-process, on small SQLite databases shaped like MLflow's.

The library needs only the tables it reads (``experiments``, ``runs``, ``alembic_version``), so these
tests build them by hand: no MLflow store, no subprocess. The command on real MLflow stores is tested
in test_cli.py.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from pytest_forecast_mlflow.backup import (
    BACKUP_FORMAT,
    BACKUP_FORMAT_VERSION,
    BackupFailed,
    BackupRefused,
    backup_store,
    foreign_artifact_locations,
    read_manifest,
    restore_store,
    rewrite_artifact_locations,
    summarize_db,
)

SCHEMA = """
CREATE TABLE alembic_version (version_num TEXT PRIMARY KEY);
CREATE TABLE experiments (
    experiment_id INTEGER PRIMARY KEY, name TEXT, artifact_location TEXT, lifecycle_stage TEXT
);
CREATE TABLE runs (
    run_uuid TEXT PRIMARY KEY, name TEXT, artifact_uri TEXT, lifecycle_stage TEXT,
    experiment_id INTEGER REFERENCES experiments (experiment_id)
);
CREATE TABLE tags (key TEXT, value TEXT, run_uuid TEXT REFERENCES runs (run_uuid), PRIMARY KEY (key, run_uuid));
"""


def make_db(db: Path, artifacts: Path, *, elsewhere: Path | None = None) -> None:
    """Experiment 1 under ``artifacts`` with two runs (one deleted); experiment 2 at ``elsewhere``, if given."""
    db.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(db)
    try:
        conn.executescript(SCHEMA)
        conn.execute("INSERT INTO alembic_version VALUES ('test')")
        conn.execute("INSERT INTO experiments VALUES (1, 'exp', ?, 'active')", [(artifacts / "1").as_uri()])
        conn.execute(
            "INSERT INTO runs VALUES ('r1', 'kept', ?, 'active', 1)", [f"{(artifacts / '1' / 'r1').as_uri()}/artifacts"]
        )
        conn.execute("INSERT INTO runs VALUES ('r2', 'gone', ?, 'deleted', 1)", [f"{artifacts}/1/r2/artifacts"])
        history = json.dumps([{"artifact_path": f"{artifacts}/1/r1/artifacts/model"}])
        conn.execute("INSERT INTO tags VALUES ('mlflow.log-model.history', ?, 'r1')", [history])
        if elsewhere is not None:
            conn.execute("INSERT INTO experiments VALUES (2, 'other', ?, 'active')", [elsewhere.as_uri()])
            conn.execute("INSERT INTO runs VALUES ('r3', 'far', ?, 'active', 2)", [f"{elsewhere}/r3/artifacts"])
        conn.commit()
    finally:
        conn.close()
    report = artifacts / "1" / "r1" / "artifacts" / "report.md"
    report.parent.mkdir(parents=True)
    report.write_text("# kept\n")


def cells(db: Path) -> dict[tuple[str, str], list[str]]:
    """Every text value of the tables the tests write, by (table, column)."""
    conn = sqlite3.connect(db)
    try:
        return {
            ("experiments", "artifact_location"): [
                v for (v,) in conn.execute("SELECT artifact_location FROM experiments ORDER BY experiment_id")
            ],
            ("runs", "artifact_uri"): [v for (v,) in conn.execute("SELECT artifact_uri FROM runs ORDER BY run_uuid")],
            ("tags", "value"): [v for (v,) in conn.execute("SELECT value FROM tags")],
        }
    finally:
        conn.close()


@pytest.fixture
def store(tmp_path: Path) -> tuple[Path, Path]:
    db, artifacts = tmp_path / "old" / "mlflow.db", tmp_path / "old" / "mlruns"
    make_db(db, artifacts, elsewhere=tmp_path / "elsewhere")
    return db, artifacts


# ------------------------------------------------------------------------------------------- rewrite


def test_rewrite_artifact_locations_moves_every_location_under_the_old_root(tmp_path: Path) -> None:
    db, old, new = tmp_path / "mlflow.db", tmp_path / "old" / "mlruns", tmp_path / "new place" / "mlruns"
    make_db(db, old, elsewhere=tmp_path / "old" / "mlruns2")  # shares a prefix with the root: not under it
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE paths (path TEXT PRIMARY KEY, note TEXT)")  # a key column is never rewritten
    conn.execute("INSERT INTO paths VALUES (?, ?)", [f"{old}/key", f"{old}/note"])
    conn.commit()
    conn.close()

    changed = rewrite_artifact_locations(db, old, new)

    # experiment 1, runs r1 and r2, r1's tag and the paths row; experiment 2 and run r3 are elsewhere
    assert changed == 5
    found = cells(db)
    assert found[("experiments", "artifact_location")] == [(new / "1").as_uri(), (tmp_path / "old/mlruns2").as_uri()]
    assert found[("runs", "artifact_uri")] == [
        f"{(new / '1' / 'r1').as_uri()}/artifacts",  # a file: URI stays one, percent-encoded as before
        f"{new}/1/r2/artifacts",  # a plain path stays a plain path
        f"{tmp_path}/old/mlruns2/r3/artifacts",
    ]
    assert json.loads(found[("tags", "value")][0]) == [{"artifact_path": f"{new}/1/r1/artifacts/model"}]
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT path, note FROM paths").fetchall() == [(f"{old}/key", f"{new}/note")]
    conn.close()

    assert rewrite_artifact_locations(db, old, new) == 0  # nothing is left under the old root
    assert rewrite_artifact_locations(db, new, new) == 0


def test_foreign_artifact_locations_are_those_of_experiments_with_runs_outside_the_root(
    store: tuple[Path, Path], tmp_path: Path
) -> None:
    db, artifacts = store
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO experiments VALUES (3, 'no-runs', ?, 'active')", [(tmp_path / "empty").as_uri()])
    conn.commit()
    conn.close()

    assert foreign_artifact_locations(db, artifacts) == [(tmp_path / "elsewhere").as_uri()]


# ------------------------------------------------------------------------------------------- summary


def test_summarize_db_counts_active_rows_and_refuses_what_is_not_an_mlflow_database(
    store: tuple[Path, Path], tmp_path: Path
) -> None:
    db, _ = store
    summary = summarize_db(db)
    assert (summary.experiments, summary.runs) == (2, 2)  # r2 is deleted

    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(BackupFailed, match="is a SQLite file but not an MLflow database"):
        summarize_db(other)

    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 100)
    with pytest.raises(BackupFailed, match="cannot read .* as an MLflow database"):
        summarize_db(garbage)


# ------------------------------------------------------------------------------------ backup/restore


def test_backup_then_restore_elsewhere_moves_the_store_whole(store: tuple[Path, Path], tmp_path: Path) -> None:
    db, artifacts = store
    dest = tmp_path / "bk"

    done = backup_store(db, artifacts, dest, source_uri=f"sqlite:///{db}", mlflow_version="9.9.9")

    assert (done.summary.experiments, done.summary.runs, done.artifact_files) == (2, 2, 1)
    assert sorted(p.name for p in dest.iterdir()) == ["backup.json", "mlflow.db", "mlruns"]
    manifest = read_manifest(dest)
    assert manifest["format"] == BACKUP_FORMAT
    assert manifest["format_version"] == BACKUP_FORMAT_VERSION
    assert manifest["source_uri"] == f"sqlite:///{db}"
    assert manifest["source_artifact_root"] == str(artifacts)
    assert manifest["mlflow_version"] == "9.9.9"
    assert (manifest["db_bytes"], manifest["runs"], manifest["artifact_files"]) == (done.db_bytes, 2, 1)

    new_db, new_artifacts = tmp_path / "new" / "mlflow.db", tmp_path / "new" / "mlruns"
    restored = restore_store(dest, new_db, new_artifacts)

    assert (restored.summary.runs, restored.artifact_files, restored.old_root) == (2, 1, artifacts)
    assert restored.rewritten == 4  # experiment 1, runs r1 and r2, r1's tag
    assert restored.foreign == [(tmp_path / "elsewhere").as_uri()]
    assert (new_artifacts / "1" / "r1" / "artifacts" / "report.md").read_text() == "# kept\n"
    assert cells(new_db)[("runs", "artifact_uri")][0] == f"{(new_artifacts / '1' / 'r1').as_uri()}/artifacts"
    assert cells(dest / "mlflow.db") == cells(db)  # the backup itself keeps the recorded locations
    assert sorted(p.name for p in new_db.parent.iterdir()) == ["mlflow.db", "mlruns"]  # nothing staged is left


def test_backup_store_refuses_to_overwrite_what_it_did_not_write(store: tuple[Path, Path], tmp_path: Path) -> None:
    db, artifacts = store

    def backup(dest: Path, force: bool = False) -> None:
        backup_store(db, artifacts, dest, source_uri="sqlite:///x", mlflow_version="1", force=force)

    a_file = tmp_path / "file"
    a_file.write_text("mine")
    with pytest.raises(BackupRefused, match="is a file"):
        backup(a_file)
    with pytest.raises(BackupRefused, match="overlaps the store"):
        backup(db.parent, force=True)
    with pytest.raises(BackupRefused, match="overlaps the store"):
        backup(artifacts / "inside", force=True)

    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "notes.txt").write_text("mine")
    with pytest.raises(BackupRefused, match="is not empty"):
        backup(notes)
    backup(notes, force=True)  # beside files of its own, a backup may go
    backup(notes, force=True)  # and replace itself
    assert sorted(p.name for p in notes.iterdir()) == ["backup.json", "mlflow.db", "mlruns", "notes.txt"]

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "mlflow.db").write_text("someone else's")
    with pytest.raises(BackupRefused, match="no backup.json, so it is not a backup"):
        backup(foreign, force=True)
    assert (foreign / "mlflow.db").read_text() == "someone else's"


def test_backup_store_gives_up_on_a_database_locked_too_long(
    store: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pytest_forecast_mlflow import backup

    monkeypatch.setattr(backup, "LOCK_TIMEOUT_S", 0.2)
    db, artifacts = store
    locker = sqlite3.connect(db, isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        with pytest.raises(BackupFailed, match="stayed locked for 0.2 s; retry"):
            backup_store(db, artifacts, tmp_path / "bk", source_uri="sqlite:///x", mlflow_version="1")
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert not (tmp_path / "bk" / "backup.json").exists()


def test_restore_store_refuses_an_existing_store_the_store_itself_and_newer_backups(
    store: tuple[Path, Path], tmp_path: Path
) -> None:
    db, artifacts = store
    dest = tmp_path / "bk"
    backup_store(db, artifacts, dest, source_uri="sqlite:///x", mlflow_version="1")
    before = db.read_bytes()

    with pytest.raises(BackupRefused, match="a store already exists"):
        restore_store(dest, db, artifacts)
    assert db.read_bytes() == before
    with pytest.raises(BackupRefused, match="is the store itself"):
        restore_store(dest, dest / "mlflow.db", dest / "mlruns", force=True)

    manifest = json.loads((dest / "backup.json").read_text())
    (dest / "backup.json").write_text(json.dumps({**manifest, "format_version": BACKUP_FORMAT_VERSION + 1}))
    with pytest.raises(BackupRefused, match="newer than this forecast-mlflow"):
        read_manifest(dest)
    (dest / "backup.json").write_text("{not json")
    with pytest.raises(BackupRefused, match="the backup is damaged"):
        read_manifest(dest)
