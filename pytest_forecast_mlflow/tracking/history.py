"""The champion alias's history: every move, append-only, kept in the registry itself.

MLflow keeps no history of an alias. Each move this package makes (a gated session's promotion, a
manual promotion, a rollback) appends one event to the registered model as a tag
``forecast.alias_history.<000001>`` holding compact JSON::

    {"time": "2026-01-05T09:30:00Z", "alias": "champion", "from": "2", "to": "1", "kind": "rollback",
     "user": "ana", "host": "ci-7", "ci": "https://github.com/o/r/actions/runs/42", "commit": "0123abc...",
     "reason": "v2 drifts on new data", "verdict": "", "baseline": ""}

Tags live in the registry's own tables, so the history travels with the database (backup and
restore copy it), reads the same on MLflow 2.16 and 3.x, and needs no artifact store. Events are
written under the registry's promotion lock, so two writers never take the same sequence number. A
move made outside this package (``set_registered_model_alias`` by hand) leaves no event; reading the
history shows it as an ``external`` event wherever the recorded moves do not join up.

The event logic here is pure (:func:`timeline`, :func:`previous_champion`); :func:`read_events` and
:func:`append_event` are the two registry calls.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

PREFIX = "forecast.alias_history."
#: How an alias moved: the first champion, a gated promotion, a rollback, a deliberate manual promotion,
#: and (only when reading) a move nobody recorded.
KINDS = ("bootstrap", "promotion", "rollback", "manual")
EXTERNAL = "external"
#: MLflow 2.16 stores a registered model's tag value in 5,000 characters; an event stays well under it.
MAX_EVENT_CHARS = 4000
MAX_REASON_CHARS = 1000


@dataclass(frozen=True)
class AliasEvent:
    """One move of an alias from version ``from_version`` (None: no champion) to ``to_version``.

    ``seq`` and ``time`` are None for an ``external`` event: a move read off the alias, not recorded.
    ``commit`` is the git commit of the run behind ``to_version``; ``verdict`` and ``baseline`` are the
    gate's, empty for moves that were not gated (manual promotions and rollbacks).
    """

    alias: str
    from_version: str | None
    to_version: str | None
    kind: str
    seq: int | None = None
    time: str | None = None
    user: str = ""
    host: str = ""
    ci: str = ""
    commit: str = ""
    reason: str = ""
    verdict: str = ""
    baseline: str = ""

    @property
    def gated(self) -> bool:
        return self.kind in ("bootstrap", "promotion")

    def to_json(self) -> str:
        """The tag value: compact JSON without empty fields, cut to fit MLflow 2.16's tag limit."""
        data: dict[str, str | None] = {
            "time": self.time,
            "alias": self.alias,
            "from": self.from_version,
            "to": self.to_version,
            "kind": self.kind,
            "user": self.user,
            "host": self.host,
            "ci": self.ci,
            "commit": self.commit,
            "reason": self.reason[:MAX_REASON_CHARS],
            "verdict": self.verdict,
            "baseline": self.baseline,
        }
        text = json.dumps({k: v for k, v in data.items() if v not in (None, "")}, separators=(",", ":"))
        if len(text) > MAX_EVENT_CHARS:  # only a pathological baseline or CI text gets here: keep the facts
            data = {**data, "reason": self.reason[:200], "baseline": self.baseline[:200], "ci": self.ci[:200]}
            text = json.dumps({k: v for k, v in data.items() if v not in (None, "")}, separators=(",", ":"))
        return text

    @classmethod
    def from_tag(cls, key: str, value: str) -> AliasEvent | None:
        """The event a history tag holds; None for a tag this package did not write or cannot read."""
        try:
            seq = int(key[len(PREFIX) :])
            data = json.loads(value)
        except ValueError:
            return None
        if not isinstance(data, dict) or "alias" not in data or "kind" not in data:
            return None

        def text(name: str) -> str:
            return str(data.get(name) or "")

        return cls(
            alias=text("alias"),
            from_version=text("from") or None,
            to_version=text("to") or None,
            kind=text("kind"),
            seq=seq,
            time=text("time") or None,
            user=text("user"),
            host=text("host"),
            ci=text("ci"),
            commit=text("commit"),
            reason=text("reason"),
            verdict=text("verdict"),
            baseline=text("baseline"),
        )


def ci_run(environ: Mapping[str, str] | None = None) -> str:
    """The CI job this process runs in, as a URL where the CI says one, else its id; '' outside CI."""
    env = os.environ if environ is None else environ
    if env.get("GITHUB_RUN_ID"):
        server, repository = env.get("GITHUB_SERVER_URL", "https://github.com"), env.get("GITHUB_REPOSITORY")
        run = f"{server}/{repository}/actions/runs/{env['GITHUB_RUN_ID']}" if repository else env["GITHUB_RUN_ID"]
        attempt = env.get("GITHUB_RUN_ATTEMPT")
        return f"{run} (attempt {attempt})" if attempt and attempt != "1" else run
    for url, ident in (("CI_JOB_URL", "CI_JOB_ID"), ("BUILD_URL", "BUILD_ID"), ("", "BUILDKITE_BUILD_URL")):
        if url and env.get(url):
            return env[url]
        if env.get(ident):
            return env[ident]
    return "CI" if env.get("CI", "").lower() in ("1", "true", "yes") else ""


def who() -> dict[str, str]:
    """The user, host and CI job making a move."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry for the uid (some containers)
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return {"user": user[:100], "host": socket.gethostname()[:100], "ci": ci_run()[:300]}


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def read_events(client: Any, name: str) -> list[AliasEvent]:
    """Every recorded event of the registered model ``name`` (all aliases), oldest first."""
    tags = client.get_registered_model(name).tags or {}
    events = [AliasEvent.from_tag(key, value) for key, value in tags.items() if key.startswith(PREFIX)]
    return sorted((e for e in events if e is not None), key=lambda e: e.seq or 0)


def append_event(client: Any, name: str, event: AliasEvent) -> AliasEvent:
    """Write ``event`` as the next entry of ``name``'s history; the caller holds the promotion lock."""
    tags = client.get_registered_model(name).tags or {}
    taken = [int(key[len(PREFIX) :]) for key in tags if key.startswith(PREFIX) and key[len(PREFIX) :].isdigit()]
    event = replace(event, seq=max(taken, default=0) + 1, time=event.time or now())
    client.set_registered_model_tag(name, f"{PREFIX}{event.seq:06d}", event.to_json())
    return event


def timeline(events: Sequence[AliasEvent], alias: str, current: str | None) -> list[AliasEvent]:
    """The moves of ``alias``, oldest first, with an ``external`` event wherever the record has a gap.

    A gap is a recorded move that does not start where the previous one ended, or an alias that no
    longer points where the last recorded move left it: someone moved it without this package.
    """
    out: list[AliasEvent] = []
    pointed: str | None = None
    for event in events:
        if event.alias != alias:
            continue
        if event.from_version != pointed:
            out.append(AliasEvent(alias, pointed, event.from_version, EXTERNAL))
        out.append(event)
        pointed = event.to_version
    if current != pointed:
        out.append(AliasEvent(alias, pointed, current, EXTERNAL))
    return out


def previous_champion(moves: Sequence[AliasEvent]) -> str | None:
    """The version a rollback without a target returns to: the champion before the current one.

    Every move pushes its version on a stack; a rollback pops back to its target, so repeated rollbacks
    walk further back (v1, v2, v3, rollback: v2, rollback: v1) instead of undoing each other.
    """
    stack: list[str] = []
    for move in moves:
        if move.to_version is None:
            stack = []
        elif move.kind == "rollback" and move.to_version in stack:
            del stack[len(stack) - stack[::-1].index(move.to_version) :]
        elif not stack or stack[-1] != move.to_version:
            stack.append(move.to_version)
    return stack[-2] if len(stack) >= 2 else None
