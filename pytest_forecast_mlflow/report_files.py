"""Writing the verdict's reports to files: the markdown report, GitHub's step summary and the JSON report.

The text comes from :mod:`.report` (pure, str in, str out); this module decides where it goes.
"""

from __future__ import annotations

import os

from .gate import Verdict
from .report import markdown, to_json
from .settings import Settings
from .store import mask_text


def write_reports(verdict: Verdict, settings: Settings, *, session_id: str) -> None:
    """Write ``--forecast-report`` (and append it to ``$GITHUB_STEP_SUMMARY``) and ``--forecast-json``.

    Both are masked: text that leaves the process never carries the tracking URI's credentials.
    """
    text = mask_text(markdown(verdict, settings.gate), secrets_from=settings.tracking_uri)
    if settings.report:
        settings.report.parent.mkdir(parents=True, exist_ok=True)
        settings.report.write_text(text)
        step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if step_summary:
            with open(step_summary, "a") as handle:
                handle.write(text + "\n")
    if settings.json:
        extra = {"experiment": settings.experiment, "session": session_id}
        settings.json.parent.mkdir(parents=True, exist_ok=True)
        settings.json.write_text(mask_text(to_json(verdict, settings.gate, extra), secrets_from=settings.tracking_uri))
