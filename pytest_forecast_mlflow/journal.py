"""The spool: a session's results kept on disk when the tracking store is unavailable, and their replay.

A journal is one folder per session under ``<rootdir>/data/mlflow/journal/``: ``journal.json`` with
every record, outcome, tag and the verdict, plus the candidate's saved model files. Replaying logs it
exactly once: runs carry the session id in ``forecast.session`` and a run is only skipped when it was
logged completely (``forecast.logged=complete``); a run a crash left half-written is deleted and
logged again. A replayed journal is renamed ``journal.replayed.json``.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from pathlib import Path
from typing import Any

from .gate import Row, Verdict
from .records import Record
from .settings import Settings

FORMAT = 1


def journal_root(settings: Settings) -> Path:
    return settings.rootdir / "data" / "mlflow" / "journal"


def write_journal(settings: Settings, *, records: list[Record], outcomes: dict[str, str], status: str,
                  session_id: str, tags: dict[str, str], verdict: Verdict | None, skill: dict, reason: str) -> Path:
    folder = journal_root(settings) / f"{time.strftime('%Y%m%dT%H%M%S')}-{session_id[:12]}"
    models = folder / "models"
    models.mkdir(parents=True, exist_ok=True)
    kept = []
    for record in records:
        if record.model_file and Path(record.model_file).exists():
            target = models / Path(record.model_file).name
            shutil.copy2(record.model_file, target)
            record = dataclasses.replace(record, model_file=str(target))
        kept.append(record.to_json())
    payload = {
        "format": FORMAT,
        "reason": reason,
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "session_id": session_id,
        "status": status,
        "experiment": settings.experiment,
        "run_name": settings.run_name,
        "registered_model": settings.registered_model,
        "gate": settings.gate,
        "tags": tags,
        "outcomes": outcomes,
        "skill": skill,
        "verdict": verdict.to_json() if verdict else None,
        "records": kept,
    }
    path = folder / "journal.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload))
    tmp.replace(path)  # atomic: a journal is either whole or absent
    return folder


def _verdict(payload: dict[str, Any] | None) -> Verdict | None:
    if not payload:
        return None
    rows = tuple(Row(**row) for row in payload["rows"])
    return Verdict(payload["status"], rows, payload["baseline"], tuple(payload["reasons"]))


def replay(folder: Path, settings: Settings) -> list[str]:
    """Log a journal into the store of ``settings``; returns what it did, one line per model."""
    from .tracking import Tracking

    path = Path(folder) / "journal.json"
    if not path.exists():
        done = Path(folder) / "journal.replayed.json"
        if done.exists():
            return [f"{folder}: already replayed"]
        raise FileNotFoundError(f"{folder}: no journal.json here; pass a folder under data/mlflow/journal/")
    payload = json.loads(path.read_text())
    if payload.get("format") != FORMAT:
        raise ValueError(f"{path}: journal format {payload.get('format')!r} is not {FORMAT}; replay it with the "
                         "plugin version that wrote it")
    settings = dataclasses.replace(settings, experiment=payload["experiment"], run_name=payload["run_name"],
                                   registered_model=payload["registered_model"], gate=payload["gate"])
    tracking = Tracking(settings)
    experiment_id = tracking.experiment_id(payload["experiment"])
    records = [Record.from_json(item) for item in payload["records"]]
    existing = tracking.client.search_runs(
        [experiment_id], filter_string=f"tags.`forecast.session` = '{payload['session_id']}'", max_results=1000)
    complete = {run.data.tags.get("forecast.model") for run in existing
                if run.data.tags.get("forecast.logged") == "complete"}
    lines = []
    for run in existing:
        if run.data.tags.get("forecast.logged") != "complete":
            tracking.client.delete_run(run.info.run_id)
            lines.append(f"deleted half-written run {run.info.run_id} of {run.data.tags.get('forecast.model')}")
    pending = [r for r in records if r.model not in complete]
    for model in sorted(complete):
        lines.append(f"{model}: already logged, skipped")
    if pending:
        logged = tracking.log_session(
            experiment_id, pending, verdict=_verdict(payload["verdict"]), outcomes=payload["outcomes"],
            status=payload["status"], session_id=payload["session_id"],
            extra_tags={**payload["tags"], "forecast.replayed_from": str(folder)}, baseline=None,
            skill=payload["skill"],
        )
        lines += [f"{run.model}: logged as run {run.run_id}" for run in logged]
    path.replace(path.with_name("journal.replayed.json"))
    return lines
