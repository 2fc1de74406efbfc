"""The session's scratch folders in the system's temporary directory, and sweeping those of dead sessions.

A session keeps its candidates' model files and its plots in folders of its own under the temporary
directory and removes them when it ends. A session killed with SIGKILL (the OOM killer, a cancelled CI
job) cannot: its folders would stay forever, megabytes of model files each. So every folder names its
writer (``writer.json``: host, pid and process start time, as a run's writer tags do), and each session
removes, before it makes its own, the folders whose writer is certainly gone (:func:`sweep`). A folder
without that file, or whose writer lives or ran on another host, is never touched. Pure: no mlflow here.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

from .liveness import is_dead, writer_tags

WRITER_FILE = "writer.json"
#: the kinds of scratch folder, ``forecast-<kind>-<random>`` in the temporary directory
KINDS = ("models", "plots")
_NAME = re.compile(rf"^forecast-(?:{'|'.join(KINDS)})-[A-Za-z0-9_]+$")


def make(kind: str) -> Path:
    """A new scratch folder of ``kind`` (one of :data:`KINDS`), naming this process as its writer."""
    if kind not in KINDS:
        raise ValueError(f"unknown scratch folder kind {kind!r}; one of {', '.join(KINDS)}")
    folder = Path(tempfile.mkdtemp(prefix=f"forecast-{kind}-"))
    (folder / WRITER_FILE).write_text(json.dumps(writer_tags()))
    return folder


def sweep() -> list[Path]:
    """Remove the scratch folders in the temporary directory whose writer is certainly dead.

    Returns the folders removed. Nothing here raises: a folder that cannot be read or removed is left
    for the next session (it is scratch, never a user's result).
    """
    removed: list[Path] = []
    try:
        entries = list(Path(tempfile.gettempdir()).iterdir())
    except OSError:
        return removed
    for folder in entries:
        if not _NAME.match(folder.name):
            continue
        try:
            tags = json.loads((folder / WRITER_FILE).read_text())
        except (OSError, ValueError):  # not ours to judge: no writer recorded, or being written right now
            continue
        if isinstance(tags, dict) and is_dead({str(k): str(v) for k, v in tags.items()}):
            shutil.rmtree(folder, ignore_errors=True)
            if not folder.exists():
                removed.append(folder)
    return removed
