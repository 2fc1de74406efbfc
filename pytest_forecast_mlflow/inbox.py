"""Reading a pipe in a thread, so the process writing to it never waits for the reader's work.

A pipe holds 64 kB; a record or a plot job is hundreds of kilobytes. A process that reads its pipe only
between two pieces of work makes the writer wait in ``send`` for as long as that work takes: the
session waited 2.5 s of a 14 s main job for its tracking process, and the tracking process 0.25 s per
horizon for the plots' process. Both read through :func:`drain` instead. Imports nothing heavy.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def drain(read: Callable[[], T | None], name: str) -> queue.SimpleQueue[T | None]:
    """Call ``read`` in a daemon thread until it returns None or the pipe ends (EOFError, OSError),
    putting each item into the returned queue as it arrives; None in the queue marks the end."""
    inbox: queue.SimpleQueue[T | None] = queue.SimpleQueue()

    def receive() -> None:
        try:
            while (item := read()) is not None:
                inbox.put(item)
        except (EOFError, OSError):
            pass
        inbox.put(None)

    threading.Thread(target=receive, name=name, daemon=True).start()
    return inbox
