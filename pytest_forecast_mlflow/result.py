"""What a session produced, as one frozen value: logged to MLflow, spooled to a journal, replayed from it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .gate import Baseline, Verdict
from .records import Record


@dataclass(frozen=True)
class SessionResult:
    """A session's records, test outcomes and verdict, and the facts its runs are tagged with.

    ``status`` is the MLflow run status the session ended with (``FINISHED`` or ``KILLED``);
    ``tags`` are the session's extra run tags (git facts and ``--mlflow-tag``); ``skill`` is
    :func:`~pytest_forecast_mlflow.report.skill` of the records; ``baseline`` is the champion the
    session was gated against (a journal does not keep it: replay reads the champion again).
    """

    session_id: str
    status: str
    records: tuple[Record, ...]
    outcomes: dict[str, str] = field(default_factory=dict)
    verdict: Verdict | None = None
    baseline: Baseline | None = None
    skill: dict[str, dict[str, float]] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "status": self.status,
            "tags": self.tags,
            "outcomes": self.outcomes,
            "skill": self.skill,
            "verdict": self.verdict.to_json() if self.verdict else None,
            "baseline": self.baseline.to_json() if self.baseline else None,
            "records": [record.to_json() for record in self.records],
        }

    @classmethod
    def from_json(cls, payload: dict[str, Any]) -> SessionResult:
        """The result in ``payload``: :meth:`to_json`'s keys, as in a journal (``baseline`` may be absent)."""
        return cls(
            session_id=payload["session_id"],
            status=payload["status"],
            records=tuple(Record.from_json(item) for item in payload["records"]),
            outcomes=payload["outcomes"],
            verdict=Verdict.from_json(payload["verdict"]),
            baseline=Baseline.from_json(payload.get("baseline")),
            skill=payload["skill"],
            tags=payload["tags"],
        )
