"""The spool: a session's results kept on disk when the tracking store is unavailable, and their replay.

A journal is one folder per session under ``<rootdir>/data/mlflow/journal/`` (:func:`journal_dir`):
``journal.json`` with the session's :class:`~.result.SessionResult` (every record, outcome, tag and the
verdict; its ``baseline`` is always null, replay reads the champion again), plus the candidate's saved
model files. Replaying logs it exactly once: runs carry the session id in ``forecast.session`` and a
run is only skipped when it was logged completely (``forecast.logged=complete``); a run a crash left
half-written is deleted and logged again. A replayed journal is renamed ``journal.replayed.json``.

Format 2 (written now) also records where the results were going and how to load them::

    destination  tracking_uri (masked, sqlite paths absolute), registered_model, alias, register, promote
    gate         the gate's settings under their Settings names: gate, gate_metrics, tolerance, alpha,
                 method, and those of GATE_FIELDS this plugin version has (require_baseline, min_folds, ...)
    imports      rootdir, sys_path (the session's sys.path entries under the rootdir, relative to it)

Format 1 journals are still read; they name no store, so replaying them needs an explicit one.
Credentials never reach a journal: the tracking URI and the failure's reason are masked.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .liveness import PID_TAG, is_alive
from .result import SessionResult
from .settings import Settings
from .store import STORE_DIR, canonical_uri, mask_text

FORMAT = 2
READABLE_FORMATS = (1, 2)
PENDING = "journal.json"
REPLAYED = "journal.replayed.json"
#: Settings that decide the gate, recorded so a replay can gate exactly as the session would have.
GATE_FIELDS = (
    "gate",
    "gate_metrics",
    "tolerance",
    "alpha",
    "method",
    "require_baseline",
    "min_folds",
    "max_detectable",
    "inconclusive",
    "allow_scope_change",
)


#: Where journals live, under the project root (beside the embedded store).
JOURNAL_DIR = STORE_DIR / "journal"


def journal_dir(root: Path) -> Path:
    """The folder holding the journals of the project at ``root``: ``<root>/data/mlflow/journal``."""
    return Path(root) / JOURNAL_DIR


@dataclass(frozen=True)
class Destination:
    """Where the session meant to log. ``tracking_uri`` is masked; ``None`` in a format-1 journal."""

    tracking_uri: str | None
    registered_model: str
    alias: str = "champion"
    register: bool = False
    promote: bool = False


@dataclass(frozen=True)
class Journal:
    """One spooled session, as read from its folder."""

    folder: Path
    path: Path
    format: int
    experiment: str
    run_name: str | None
    reason: str
    written: str
    destination: Destination
    gate: dict[str, Any]
    rootdir: Path | None
    sys_path: tuple[str, ...]
    result: SessionResult

    @property
    def replayed(self) -> bool:
        return self.path.name == REPLAYED

    def project_root(self) -> Path | None:
        """The session's rootdir, or, when it has moved, the project holding this journal folder."""
        if self.rootdir is not None and self.rootdir.is_dir():
            return self.rootdir
        parents = self.folder.resolve().parents
        depth = len(JOURNAL_DIR.parts)
        if len(parents) > depth and (parents[0].name, parents[1].name) == JOURNAL_DIR.parts[:0:-1]:
            return parents[depth]
        return None

    def import_paths(self) -> list[Path]:
        """The folders replay puts on ``sys.path`` so the session's model classes import: the rootdir first."""
        root = self.project_root()
        if root is None:
            return []
        paths = [root]
        for entry in self.sys_path:
            path = (root / entry).resolve()
            if path not in paths:
                paths.append(path)
        return [path for path in paths if path.is_dir()]

    def settings(self, tracking_uri: str, artifact_root: Path) -> Settings:
        """The settings replay logs with: the session's, pointed at ``tracking_uri``."""
        known = {f.name for f in dataclasses.fields(Settings)}
        gate = {name: value for name, value in self.gate.items() if name in known}
        if "gate_metrics" in gate:
            gate["gate_metrics"] = tuple(gate["gate_metrics"])
        return Settings(
            experiment=self.experiment,
            tracking_uri=tracking_uri,
            artifact_root=artifact_root,
            rootdir=self.project_root() or Path.cwd(),
            run_name=self.run_name,
            register=self.destination.register,
            promote=self.destination.promote,
            registered_model=self.destination.registered_model,
            alias=self.destination.alias,
            **gate,
        )


def _project_sys_path(rootdir: Path) -> list[str]:
    """This process's ``sys.path`` entries that lie under ``rootdir``, relative to it, in order."""
    root = rootdir.resolve()
    found: list[str] = []
    for entry in sys.path:
        try:
            path = Path(entry or os.getcwd()).resolve()  # "" is the current directory
        except (OSError, RuntimeError):
            continue
        if path == root or root in path.parents:
            relative = path.relative_to(root).as_posix()
            if relative not in found:
                found.append(relative)
    return found


def write_journal(settings: Settings, result: SessionResult, *, reason: str) -> Path:
    """Spool ``result`` to a new journal folder (its model files copied in); returns the folder."""
    folder = journal_dir(settings.rootdir) / f"{time.strftime('%Y%m%dT%H%M%S')}-{result.session_id[:12]}"
    models = folder / "models"
    models.mkdir(parents=True, exist_ok=True)
    kept = []
    for record in result.records:
        if record.model_file and Path(record.model_file).exists():
            target = models / Path(record.model_file).name
            shutil.copy2(record.model_file, target)
            record = dataclasses.replace(record, model_file=str(target))
        kept.append(record)
    spooled = dataclasses.replace(result, records=tuple(kept), baseline=None)
    payload = {
        "format": FORMAT,
        "reason": mask_text(reason, secrets_from=settings.tracking_uri),
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "experiment": settings.experiment,
        "run_name": settings.run_name,
        "destination": {
            "tracking_uri": canonical_uri(settings.tracking_uri),
            "registered_model": settings.registered_model,
            "alias": settings.alias,
            "register": settings.register,
            "promote": settings.promote,
        },
        "gate": {
            name: list(value) if isinstance(value, tuple) else value
            for name in GATE_FIELDS
            if (value := getattr(settings, name, None)) is not None
        },
        "imports": {
            "rootdir": str(settings.rootdir.resolve()),
            "sys_path": _project_sys_path(settings.rootdir),
        },
        **spooled.to_json(),
    }
    payload = _masked(payload, settings.tracking_uri)  # tags, errors and verdict reasons may quote the URI
    path = folder / PENDING
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload))
    os.chmod(tmp, 0o600)  # results and tags are the user's business alone
    tmp.replace(path)  # atomic: a journal is either whole or absent
    return folder


def _masked(value: Any, uri: str) -> Any:
    """Every string inside ``value`` (dicts, lists) with the tracking URI's credentials masked."""
    if isinstance(value, str):
        return mask_text(value, secrets_from=uri)
    if isinstance(value, dict):
        return {_masked(key, uri): _masked(item, uri) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked(item, uri) for item in value]
    return value


def read_journal(folder: Path) -> Journal:
    """The journal in ``folder``, pending or already replayed; ``FileNotFoundError``/``ValueError`` say why not."""
    folder = Path(folder)
    path = folder / PENDING
    if not path.exists():
        path = folder / REPLAYED
        if not path.exists():
            raise FileNotFoundError(f"{folder}: no {PENDING} here; pass a folder under {JOURNAL_DIR.as_posix()}/")
    try:
        payload = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable journal ({exc}); it is damaged or not a journal") from None
    version = payload.get("format")
    if version not in READABLE_FORMATS:
        raise ValueError(
            f"{path}: journal format {version!r} is not one of {READABLE_FORMATS}; replay it with the "
            "plugin version that wrote it"
        )
    if version == 1:
        destination = Destination(tracking_uri=None, registered_model=payload["registered_model"])
        gate = {"gate": payload["gate"]}
        rootdir, sys_path = None, ()
    else:
        destination = Destination(**payload["destination"])
        gate = dict(payload["gate"])
        rootdir = Path(payload["imports"]["rootdir"])
        sys_path = tuple(payload["imports"]["sys_path"])
    return Journal(
        folder=folder,
        path=path,
        format=version,
        experiment=payload["experiment"],
        run_name=payload.get("run_name"),
        reason=payload.get("reason", ""),
        written=payload.get("written", ""),
        destination=destination,
        gate=gate,
        rootdir=rootdir,
        sys_path=sys_path,
        result=SessionResult.from_json(payload),
    )


@contextlib.contextmanager
def project_imports(journal: Journal) -> Iterator[list[Path]]:
    """Put the session's project folders first on ``sys.path`` while replay unpickles and logs its models."""
    added = [str(path) for path in journal.import_paths() if str(path) not in sys.path]
    sys.path[:0] = added
    try:
        yield [Path(p) for p in added]
    finally:
        for entry in added:
            with contextlib.suppress(ValueError):
                sys.path.remove(entry)


@dataclass(frozen=True)
class ReplayedRun:
    """A model's run in the store after replay: logged now, or by an earlier replay."""

    model: str
    role: str
    run_id: str
    logged_now: bool
    model_uri: str | None = None


@dataclass(frozen=True)
class ReplayResult:
    """What one replay did. ``failures`` non-empty means the journal is kept for another replay."""

    journal: Journal
    runs: tuple[ReplayedRun, ...] = ()
    deleted: tuple[str, ...] = ()
    failures: tuple[str, ...] = ()
    promotion: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failures

    def lines(self) -> list[str]:
        """One line per run and per half-written run removed; failures and promotion are reported apart."""
        if self.journal.replayed and not self.runs:
            return ["already replayed"]
        lines = list(self.deleted)
        for run in self.runs:
            lines.append(
                f"{run.model}: logged as run {run.run_id}"
                if run.logged_now
                else f"{run.model}: already logged (run {run.run_id}), skipped"
            )
        return lines


class ReplayBusy(RuntimeError):
    """Another process is replaying the same journal."""


@contextlib.contextmanager
def _replay_lock(journal: Journal) -> Iterator[None]:
    """One replay of a journal at a time on this machine (a second one would log every run twice)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory locks
        yield
        return
    with open(journal.folder / ".replay.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ReplayBusy(
                f"{journal.folder.name} is being replayed by another process right now; wait for it to end"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def replay(journal: Journal, settings: Settings) -> ReplayResult:
    """Log ``journal`` into the store of ``settings``, exactly once (one replay of it at a time)."""
    if journal.replayed:
        return ReplayResult(journal)
    with _replay_lock(journal):
        if not journal.path.exists():  # another replay finished it meanwhile
            return ReplayResult(journal, deleted=("already replayed by another process",))
        return _replay(journal, settings)


def _replay(journal: Journal, settings: Settings) -> ReplayResult:
    """Log ``journal`` into the store of ``settings``, exactly once.

    A model whose run was logged but whose model could not be (an import error, a damaged file) is
    a failure: its run is deleted and the journal kept, so the next replay logs it again.
    """
    from .tracking import Tracking

    if journal.replayed:
        return ReplayResult(journal)
    with Tracking(settings) as tracking:
        return _replay_into(tracking, journal)


def _replay_into(tracking: Any, journal: Journal) -> ReplayResult:
    experiment_id = tracking.experiment_id(journal.experiment)
    result = journal.result
    complete = {}
    deleted = []
    for run in tracking.session_runs(experiment_id, result.session_id):
        model = run.data.tags.get("forecast.model", "")
        if run.data.tags.get("forecast.logged") == "complete":
            complete[model] = ReplayedRun(model, run.data.tags.get("forecast.role", ""), run.info.run_id, False)
        elif is_alive(run.data.tags):
            raise ReplayBusy(
                f"run {run.info.run_id} of {model} is being written right now by process "
                f"{run.data.tags.get(PID_TAG)} (another replay of this journal?); wait for it to end, then replay again"
            )
        else:
            tracking.delete_run(run.info.run_id)
            deleted.append(f"deleted half-written run {run.info.run_id} of {model}")
    pending = tuple(r for r in result.records if r.model not in complete)
    runs = [complete[model] for model in sorted(complete)]
    failures = []
    if pending:
        tags = {**result.tags, "forecast.replayed_from": str(journal.folder)}
        with project_imports(journal):
            logged = tracking.log_session(
                experiment_id, dataclasses.replace(result, records=pending, tags=tags, baseline=None)
            )
        for run in logged:
            if run.error:
                tracking.delete_run(run.run_id)  # so the next replay logs it again, model included
                failures.append(
                    f"{run.model}: the model could not be logged ({run.error}); its run is deleted "
                    f"and the journal kept: make its classes importable, then replay again"
                )
            else:
                runs.append(ReplayedRun(run.model, run.role, run.run_id, not run.reused, run.model_uri))
    promotion = _promotion(journal, runs, tracking) if not failures else ()
    if not failures:
        journal.path.replace(journal.path.with_name(REPLAYED))
    return ReplayResult(journal, tuple(runs), tuple(deleted), tuple(failures), promotion)


def _promotion(journal: Journal, runs: list[ReplayedRun], tracking: Any) -> tuple[str, ...]:
    """Carry out the session's register/promote request, through the same gate as a live session.

    The champion is read now, from the store the results were replayed into, and the candidate's folds
    are compared with it exactly as the session would have compared them (same metrics, tolerance,
    alpha, method and promotion guard); the alias moves only on ``pass`` or ``no-baseline``, and only
    if it did not move while replay ran. What did not happen is said on a line starting
    ``NOT PROMOTED:`` (or ``NOT REGISTERED:``), so scripts and people cannot miss it.
    """
    from .gate import compare_for, judge, promotion_blocker
    from .report import terminal_lines
    from .tracking import LoggedRun

    destination = journal.destination
    result = journal.result
    records = result.records
    candidates = [run for run in runs if run.role == "candidate"]
    if not (destination.promote or destination.register) or not candidates:
        return ()
    settings = tracking.settings
    name, alias = destination.registered_model, destination.alias
    lines: list[str] = []
    blocked = None
    if destination.promote and settings.gate == "off":
        blocked = "the session ran with --forecast-gate off, and promotion needs a passing gate verdict"
    elif destination.promote and result.status != "FINISHED":
        blocked = f"the session ended {result.status}; an interrupted session is never promoted"
    elif destination.promote:
        failed = sorted(
            {r.nodeid for r in records if r.role == "candidate" and result.outcomes.get(r.nodeid) == "failed"}
        )
        blocked = promotion_blocker([run.model for run in candidates], failed)
    verdict = baseline = None
    if destination.promote and blocked is None:
        try:
            baseline, note = tracking.resolve_baseline()
        except Exception as exc:
            blocked = f"the champion cannot be read now: {mask_text(str(exc), secrets_from=settings.tracking_uri)}"
        else:
            gated = [r for r in records if r.role == "candidate"]
            rows = [row for record in gated if record.ok for row in compare_for(record, baseline, settings)]
            incomplete = [f"{r.model} {r.label}" for r in gated if not r.ok]
            verdict = judge(rows, settings, baseline=baseline, incomplete=incomplete, baseline_note=note)
            lines += [f"{journal.folder.name}: replay gate: {line}" for line in terminal_lines(verdict, settings.gate)]
    for run in candidates:
        if run.model_uri is None:  # logged by an earlier, interrupted replay: its model URI is not known here
            by_hand = f"mlflow.register_model('runs:/{run.run_id}/model', '{name}')"
            word = "NOT PROMOTED" if destination.promote else "NOT REGISTERED"
            lines.append(
                f"{word}: {journal.folder.name}: {run.model} (run {run.run_id}) was logged by an earlier "
                f"replay; register it by hand: {by_hand}, or rerun the session with --mlflow-promote"
            )
            continue
        logged = LoggedRun(model=run.model, role=run.role, run_id=run.run_id, model_uri=run.model_uri)
        outcome = tracking.register(
            logged, verdict=verdict, promote=destination.promote and blocked is None, gated_against=baseline
        )
        where = f"{name} v{outcome.version}"
        if outcome.moved:
            lines.append(
                f"PROMOTED: {journal.folder.name}: {run.model} (run {run.run_id}) registered as {where} "
                f"and alias {alias!r} moved to it (gate verdict at replay: {verdict.status if verdict else 'none'})"
            )
        elif destination.promote:
            lines.append(
                f"NOT PROMOTED: {journal.folder.name}: {run.model} (run {run.run_id}) registered as {where}; "
                f"alias {alias!r} NOT moved: {blocked or outcome.why}. Rerun the session with --mlflow-promote "
                "once that is settled"
            )
        else:
            lines.append(f"{journal.folder.name}: registered {run.model} (run {run.run_id}) as {where}")
    return tuple(lines)
