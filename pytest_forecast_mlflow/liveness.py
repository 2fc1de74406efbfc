"""Who is writing a run, and whether that process still lives.

A session killed with SIGKILL (the OOM killer, a cancelled CI job) cannot end its runs: they stay
RUNNING forever, and a RUNNING run looks like work in progress. Every run the plugin creates carries
the writer's host, pid and process start time as tags; a later session, the dashboard or replay asks
:func:`is_dead` and marks runs whose writer is gone KILLED. Pure: no mlflow here.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import time
from collections.abc import Mapping

HOST_TAG = "forecast.writer.host"
PID_TAG = "forecast.writer.pid"
STARTED_TAG = "forecast.writer.started"


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (Linux): state first; None elsewhere."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            stat = handle.read()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: fields after the last ')' are fixed
    return stat.rpartition(")")[2].split()


def _started(fields: list[str] | None) -> str | None:
    """A process's start time in clock ticks since boot, from its :func:`_stat` fields: it tells a reused
    pid apart."""
    return fields[19] if fields is not None and len(fields) > 19 else None


def writer_tags() -> dict[str, str]:
    """Tags naming this process as the writer of a run."""
    pid = os.getpid()
    return {
        HOST_TAG: socket.gethostname(),
        PID_TAG: str(pid),
        STARTED_TAG: _started(_stat(pid)) or f"t{int(time.time())}",
    }


def _writer_state(tags: Mapping[str, str]) -> str:
    """``"alive"``, ``"dead"`` or ``"unknown"`` for the process named by a run's writer tags.

    Only a writer on this host, other than this process, can be known: another host's, an untagged
    run's (logged by something else) or our own is ``"unknown"``, never a guess. A live pid whose start
    time differs from the recorded one is a reused pid: the writer is dead. So is a zombie (ended, its exit
    status not collected yet: a killed session's helpers stay zombies where the container's init does not
    reap them).
    """
    host, pid, started = tags.get(HOST_TAG), tags.get(PID_TAG), tags.get(STARTED_TAG, "")
    if not host or not pid or not pid.isdigit() or host != socket.gethostname() or int(pid) == os.getpid():
        return "unknown"
    fields = _stat(int(pid))
    if fields and fields[0] in ("Z", "X"):  # a zombie has ended: only its exit status waits to be collected
        return "dead"
    now = _started(fields)
    if now is not None:  # Linux: the start time tells a reused pid apart, when it was recorded
        comparable = bool(started) and not started.startswith("t")
        return "dead" if comparable and now != started else "alive"
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return "dead"
    except PermissionError:
        return "alive"
    return "alive"


def is_alive(tags: Mapping[str, str]) -> bool:
    """True only when the run's writer is a process on this host that is still running (not this one)."""
    return _writer_state(tags) == "alive"


def is_dead(tags: Mapping[str, str]) -> bool:
    """True only when the run's writer ran on this host and is certainly gone.

    A writer on another host, or a run without writer tags (logged by something else), is never
    declared dead: the answer would be a guess.
    """
    return _writer_state(tags) == "dead"


def die_with_parent(parent: int) -> None:
    """Have this process killed (SIGKILL) when ``parent``, the process that started it, ends (Linux).

    For the session's helpers (the tracking process, the plots' process): a session killed with SIGKILL
    takes them with it instead of leaving them to finish work nobody will collect. Where ``parent`` has
    ended already, this process exits at once.
    """
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)
