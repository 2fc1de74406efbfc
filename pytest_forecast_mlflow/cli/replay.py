"""``forecast-mlflow replay``: log spooled journals into the stores they were meant for, each exactly once.

Unlike the other commands, replay logs each journal to the store the journal records; a URI given
must name that store (``--to-other-store`` to log elsewhere on purpose). The work is
:func:`pytest_forecast_mlflow.journal.replay`.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from pytest_forecast_mlflow.cli.base import PROG, CliError, Parser, Store, resolve_store
from pytest_forecast_mlflow.store import (
    TRACKING_URI_ENV,
    canonical_uri,
    default_artifact_root,
    first_line,
    has_masked_credentials,
)

if TYPE_CHECKING:
    from pytest_forecast_mlflow.journal import Journal


@dataclass(frozen=True)
class ReplayTarget:
    """The store one journal is replayed into, and a line to print when it is not the recorded one."""

    store: Store
    note: str = ""


def _explicit_uri(args: argparse.Namespace) -> tuple[str, str] | None:
    """``--tracking-uri`` or ``MLFLOW_TRACKING_URI``, with its source; replay never guesses a default store."""
    if getattr(args, "tracking_uri", None):
        return args.tracking_uri, "--tracking-uri"
    if os.environ.get(TRACKING_URI_ENV):
        return os.environ[TRACKING_URI_ENV], TRACKING_URI_ENV
    return None


def replay_target(journal: Journal, explicit: tuple[str, str] | None, to_other_store: bool) -> ReplayTarget:
    """Where ``journal`` is replayed: the store it records, unless told otherwise on purpose.

    A URI given on the command line or in ``MLFLOW_TRACKING_URI`` must name the recorded store (compared
    masked, sqlite paths made absolute); another store needs ``--to-other-store``. A recorded URI whose
    credentials were masked must be given again in full. A format-1 journal records no store.
    """
    recorded = journal.destination.tracking_uri
    name = journal.folder.name
    if explicit is None:
        if recorded is None:
            raise CliError(
                f"journal {name} (format 1) does not record the store it was meant for; pass it with "
                f"--tracking-uri URI or {TRACKING_URI_ENV}",
                2,
            )
        if has_masked_credentials(recorded):
            raise CliError(
                f"journal {name} was spooled for {recorded}, and a journal never keeps credentials; pass the full "
                f"URI, credentials included, with --tracking-uri URI or {TRACKING_URI_ENV}",
                2,
            )
        return ReplayTarget(replace(resolve_store(recorded), source=f"recorded in journal {name}"))
    uri, source = explicit
    store = resolve_store(uri) if source == "--tracking-uri" else resolve_store(None)
    if recorded is None or canonical_uri(uri) == recorded:
        return ReplayTarget(store)
    if not to_other_store:
        raise CliError(
            f"journal {name} was spooled for {recorded}, but {source} names {canonical_uri(uri)}; leave "
            f"{source} out to log where the session meant to, or pass --to-other-store to log to "
            f"{canonical_uri(uri)} deliberately",
            1,
        )
    return ReplayTarget(store, f"logging to {store.shown} instead of the recorded {recorded} (--to-other-store)")


def cmd_replay(args: argparse.Namespace, out: TextIO) -> int:
    """Log spooled journals into the stores they were meant for, each exactly once."""
    from pytest_forecast_mlflow.journal import journal_dir, read_journal, replay

    root = Path.cwd()
    pending = journal_dir(root)
    folders = [Path(j) for j in args.journals] or sorted(p.parent for p in pending.glob("*/journal.json"))
    if not folders:
        out.write(f"no journal to replay under {pending}\n")
        return 0
    explicit = _explicit_uri(args)
    plan = []  # every journal is read and its store settled before anything is logged
    for folder in folders:
        try:
            journal = read_journal(folder)
        except (FileNotFoundError, ValueError) as exc:
            raise CliError(str(exc), 2) from None
        plan.append((journal, None if journal.replayed else replay_target(journal, explicit, args.to_other_store)))

    failed = 0
    for journal, target in plan:
        name = journal.folder.name
        if target is None:
            out.write(f"{name}: already replayed\n")
            continue
        if target.note:
            out.write(f"{name}: {target.note}\n")
        store = target.store
        artifacts = store.artifacts or default_artifact_root(journal.project_root() or root)
        try:
            result = replay(journal, journal.settings(store.uri, artifacts))
        except Exception as exc:
            sys.stderr.write(
                f"{PROG} replay: error: {name}: {first_line(str(exc))}; the journal is kept, run "
                "replay again once the cause is fixed\n"
            )
            failed += 1
            continue
        for line in result.lines():
            out.write(f"{name}: {line}\n")
        for failure in result.failures:
            sys.stderr.write(f"{PROG} replay: error: {name}: {failure}\n")
        failed += not result.ok
        for line in result.promotion:
            out.write(f"{line}\n")
    return 1 if failed else 0


def add_parser(commands: argparse._SubParsersAction[Parser], common: Parser) -> None:
    replay = commands.add_parser(
        "replay",
        parents=[common],
        help="Log results spooled while the store was unavailable",
        description=(
            "Log the journals that --mlflow-on-unavailable=spool wrote (default: every pending one under "
            "data/mlflow/journal/) into the store each was meant for, exactly once: a second replay creates "
            "nothing new. --tracking-uri must name that store (give it in full when it has credentials)."
        ),
    )
    replay.add_argument("journals", nargs="*", metavar="JOURNAL", help="Journal folders (default: all pending)")
    replay.add_argument(
        "--to-other-store",
        action="store_true",
        help="Log to the store --tracking-uri names even though the journal was spooled for another one",
    )
    replay.set_defaults(handler=cmd_replay)
