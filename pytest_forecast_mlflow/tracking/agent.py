"""The session's tracking store, worked by a forked child process while the tests run.

Importing mlflow, opening the store, closing runs of killed sessions and reading the champion take a
few seconds of one core; so does writing a candidate's per-fold series. A session's tests use one core.
So the controller forks a child at session start (:func:`open_service`) that does all of that on the
other core, and asks it for answers only where it needs them: the baseline when the first candidate is
compared, the runs when the session ends. The session's process never imports mlflow.

Requests go out at once and are answered in order (:class:`Pending`); an answer is read when it is
needed. The child:

* does the work with an ordinary :class:`~.Tracking` (:class:`Service`), so its semantics are the
  in-process ones: the runs name the session's process as their writer (its pid, see :mod:`..liveness`);
* dies with the session's process (SIGKILL: its runs stay RUNNING for the next session to mark KILLED);
* ignores Ctrl-C, which the terminal sends to both: the session decides. When the session is interrupted
  while it waits for an answer, it sends the child SIGTERM, which ends the run being written KILLED and
  fails every later request, so nothing is logged after the session spooled its journal;
* sends what it prints (MLflow's warnings) back with each answer, for the session to print.

Where a child cannot be forked safely (no ``os.fork``, mlflow already imported, other threads running)
the same :class:`Service` runs in the session's own process (:class:`InProcess`).
"""

from __future__ import annotations

import contextlib
import gc
import io
import os
import pickle
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..inbox import drain
from ..liveness import die_with_parent
from ..settings import Settings
from .connection import StoreUnavailable, TrackingError

#: exceptions that cross the process boundary as themselves; any other is re-raised as a RuntimeError
_KINDS: dict[str, Callable[[str], BaseException]] = {
    "StoreUnavailable": StoreUnavailable,
    "TrackingError": TrackingError,
    "KeyboardInterrupt": KeyboardInterrupt,
}


def _describe(exc: BaseException) -> tuple[str, str]:
    """``(kind, message)``: the kind names one of :data:`_KINDS`, else ``"other"``; the message is ``str(exc)``."""
    kind = next((name for name, cls in _KINDS.items() if isinstance(exc, cls)), "other")  # type: ignore[arg-type]
    return kind, str(exc)


def _rebuild(kind: str, message: str) -> BaseException:
    return _KINDS[kind](message) if kind in _KINDS else RuntimeError(message)


def _settle() -> None:
    """Move what the imports so far created out of the garbage collector's sight (:func:`gc.freeze`).

    mlflow, SQLAlchemy and torch leave millions of long-lived objects; without this, a full collection
    triggered while a record is unpickled walks them all (0.2 s at the end of a session, measured).
    """
    gc.collect()
    gc.freeze()


class Service:
    """One session's work on its store, request by request (in the child, or in-process)."""

    def __init__(self, settings: Settings, writer: dict[str, str]) -> None:
        self.settings = settings
        self.writer = writer
        self.tracking: Any = None
        self.experiment_id: str | None = None
        self.interrupted = False
        #: imports to move out of the collector's sight once the answer is out (:meth:`idle`)
        self.unsettled = False

    def handle(self, method: str, args: tuple[Any, ...]) -> Any:
        if self.interrupted:
            raise KeyboardInterrupt("the session was interrupted")
        if method == "open":
            from . import Tracking

            assert self.settings.experiment is not None  # the session exists only when the plugin is on
            self.tracking = Tracking(self.settings)
            self.tracking.runs.writer = self.writer
            self.experiment_id = self.tracking.experiment_id(self.settings.experiment)
            self.unsettled = True  # after the answer: the session waits for it at its first test
            return self.experiment_id
        if method == "use_path":  # the session's import path: a model's classes import in the child too
            sys.path[:] = [p for p in args[0] if p]
            return None
        if self.tracking is None or self.experiment_id is None:
            raise TrackingError("the tracking store was not opened")
        if method == "reap_dead_runs":
            return self.tracking.reap_dead_runs(self.experiment_id)
        if method == "resolve_baseline":
            baseline, note = self.tracking.resolve_baseline()
            self.tracking.runs.baseline = baseline  # the champion the candidates' plots are drawn against
            return baseline, note
        if method == "stream":
            self.tracking.runs.stream(self.experiment_id, *args)
            from ..pyfunc import prepare

            if prepare(args[0].model_kind):  # the model is bundled at the end: its imports happen now
                _settle()
            else:
                gc.freeze()  # the record is kept to the end: later full collections need not walk it
            return None
        if method == "log_session":
            return self.tracking.log_session(self.experiment_id, *args)
        if method == "register":
            logged, verdict, promote, gated_against = args
            return self.tracking.register(logged, verdict=verdict, promote=promote, gated_against=gated_against)
        raise ValueError(f"unknown request {method!r}")

    def idle(self) -> None:
        """Work nobody waits for, done between an answer and the next request (after the store opened).

        backtest (scipy with it) is imported: the verdict unpickled at the session's end holds its comparisons,
        and importing it then kept the session waiting 0.13-0.2 s; before the fork, 0.16 s longer at its first
        test. Then :func:`_settle` (0.17 s).
        """
        if self.unsettled:
            self.unsettled = False
            import backtest.compare  # noqa: F401

            _settle()

    def interrupt(self) -> None:
        """Refuse every later request; end KILLED the runs that were still being written."""
        self.interrupted = True
        if self.tracking is not None:
            with contextlib.suppress(Exception):
                self.tracking.runs.abandon("KILLED")

    def close(self) -> None:
        if self.tracking is not None:
            with contextlib.suppress(Exception):
                self.tracking.runs.abandon("FAILED")
            self.tracking.close()
            self.tracking = None


def _shipped(number: int) -> Any:
    """Stands, in a pickle, for the record the child received with the ``number``-th ``stream`` request;
    only :class:`_Unpickler` resolves it."""
    raise RuntimeError(f"record {number} refers to one the tracking process received earlier")


class _Pickler(pickle.Pickler):
    """Pickles a record the child already received (``stream``) as a reference to it.

    The session's result repeats every record it streamed (5 MB for the main job): unpickled again, they cost
    the child 0.1-0.2 s at the session's end, while the session waits. Records are not changed once streamed.
    """

    def __init__(self, file: io.BytesIO, shipped: dict[int, tuple[int, Any]]) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.shipped = shipped

    def reducer_override(self, obj: Any) -> Any:  # called for no list, dict, float or str: cheap
        entry = self.shipped.get(id(obj))
        if entry is not None and entry[1] is obj:
            return _shipped, (entry[0],)
        return NotImplemented


class _Unpickler(pickle.Unpickler):
    """The child's side of :class:`_Pickler`: a reference is the record received then."""

    def __init__(self, data: bytes, received: list[Any]) -> None:
        super().__init__(io.BytesIO(data))
        self.received = received

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == (__name__, _shipped.__name__):
            return self.received.__getitem__
        return super().find_class(module, name)


class Pending:
    """The answer to one request, read when :meth:`result` is called."""

    def __init__(self, source: InProcess | Forked, number: int) -> None:
        self.source = source
        self.number = number

    def result(self) -> Any:
        return self.source.result(self.number)


class InProcess:
    """The service in the session's own process: each request runs when it is made."""

    def __init__(self, settings: Settings, writer: dict[str, str]) -> None:
        self.service = Service(settings, writer)
        self.answers: dict[int, tuple[bool, Any]] = {}
        self.count = 0

    def request(self, method: str, *args: Any, wanted: bool = True) -> Pending:
        self.count += 1
        try:
            answer = (True, self.service.handle(method, args))
        except Exception as exc:
            answer = (False, exc)
        self.service.idle()
        if wanted:
            self.answers[self.count] = answer
        return Pending(self, self.count)

    def take_output(self) -> str:
        return ""  # printed as it happened

    def result(self, number: int) -> Any:
        ok, value = self.answers.pop(number)
        if not ok:
            raise value
        return value

    def close(self) -> None:
        self.service.close()


class Forked:
    """The parent's end of the child: requests are sent at once, answers are read in order when needed."""

    def __init__(self, pid: int, connection: Any) -> None:
        self.pid = pid
        self.connection = connection
        self.answers: dict[int, tuple[str | None, Any]] = {}
        self.unwanted: set[int] = set()
        self.count = 0
        self.broken: BaseException | None = None
        self.output: list[str] = []
        #: the records sent with ``stream``, by id: ``(their order, the record)`` (kept, so no id is reused)
        self.shipped: dict[int, tuple[int, Any]] = {}

    def request(self, method: str, *args: Any, wanted: bool = True) -> Pending:
        self.count += 1
        if not wanted:
            self.unwanted.add(self.count)
        if self.broken is None:
            try:
                while self.connection.poll(0):  # answers first: neither side may block on a full pipe
                    self._read_one()
                buffer = io.BytesIO()
                _Pickler(buffer, self.shipped).dump((self.count, method, args))
                self.connection.send_bytes(buffer.getbuffer())
                if method == "stream":
                    self.shipped[id(args[0])] = (len(self.shipped), args[0])
            except OSError:
                self.broken = self._gone()
        return Pending(self, self.count)

    def result(self, number: int) -> Any:
        while number not in self.answers:
            if self.broken is not None:
                raise self.broken
            try:
                self._read_one()
            except KeyboardInterrupt:  # Ctrl-C or SIGTERM while the child works: it ends its runs KILLED
                self._interrupt_child()
                raise
        kind, value = self.answers.pop(number)
        if kind is None:
            return value
        raise _rebuild(kind, value)

    def _read_one(self) -> None:
        try:
            number, kind, value, output = self.connection.recv()
        except (EOFError, OSError):
            self.broken = self._gone()
            return
        if output:
            self.output.append(output)
        if number in self.unwanted:
            self.unwanted.discard(number)
        else:
            self.answers[number] = (kind, value)

    def take_output(self) -> str:
        """What the child printed since the last call (MLflow's warnings), for the session to print where
        no test's output capture would swallow it."""
        text, self.output = "".join(self.output), []
        return text

    def _gone(self) -> BaseException:
        with contextlib.suppress(ChildProcessError):
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.pid = 0
                return StoreUnavailable(f"the tracking process ended unexpectedly (status {status})")
        return StoreUnavailable("the tracking process stopped answering")

    def _interrupt_child(self) -> None:
        """Stop the child's work, and wait (briefly) until it has ended its runs KILLED."""
        if self.pid:
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGTERM)
        self.connection.send((0, "", ()))  # a marker: its answer means every earlier request was answered
        with contextlib.suppress(EOFError, OSError, KeyboardInterrupt):
            while self.connection.poll(30):
                if self.connection.recv()[0] == 0:
                    break
        self.broken = KeyboardInterrupt("the session was interrupted")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.connection.send((-1, "close", ()))
            self.connection.poll(30)
        self.connection.close()
        if self.pid:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            self.pid = 0


def _serve(connection: Any, service: Service, output: Path, parent: int) -> None:
    die_with_parent(parent)  # elsewhere than Linux it notices the pipe's EOF
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the terminal's Ctrl-C is the session's to handle

    def terminate(signum, frame):  # noqa: ARG001
        raise KeyboardInterrupt("SIGTERM")

    signal.signal(signal.SIGTERM, terminate)
    with open(output, "wb+") as sink, open(output, "rb") as reader:
        os.unlink(output)  # open, it needs no name: nothing is left behind, even by a killed session
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - the process's own streams
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        inbox = drain(connection.recv_bytes, "forecast-tracking-inbox")  # see ..inbox: the session never waits
        received: list[Any] = []  # the records of the stream requests, which later requests refer to
        while True:
            try:
                message = inbox.get()
            except KeyboardInterrupt:
                service.interrupt()
                continue
            if message is None:  # the session's end of the pipe closed
                return
            number, method, args = _Unpickler(message, received).load()
            if method == "stream":
                received.append(args[0])
            if number == -1:
                service.close()
                return
            kind, value = None, None
            try:
                if number == 0:  # the parent's marker after an interrupt: answered as it comes
                    service.interrupt()
                else:
                    value = service.handle(method, args)
            except BaseException as exc:  # noqa: BLE001 - every failure is the parent's to report
                if isinstance(exc, KeyboardInterrupt):
                    service.interrupt()
                kind, value = _describe(exc)
            sys.stdout.flush()
            sys.stderr.flush()
            try:
                connection.send((number, kind, value, reader.read().decode(errors="replace")))
            except KeyboardInterrupt:
                service.interrupt()
                connection.send((number, "KeyboardInterrupt", "the session was interrupted", ""))
            try:
                service.idle()
            except KeyboardInterrupt:
                service.interrupt()


def open_service(settings: Settings) -> InProcess | Forked:
    """Start the session's tracking service: a forked child where that is safe, else in this process."""
    from ..liveness import writer_tags

    writer = writer_tags()
    if not hasattr(os, "fork") or "mlflow" in sys.modules or threading.active_count() > 1:
        return InProcess(settings, writer)
    # pandas (numpy with it) is imported here, before the fork, because both processes need it: the
    # session's tests and mlflow's import in the child. Imported after the fork it is imported twice,
    # 0.5-0.7 s of CPU more per session, which a session running on both cores pays in wall time.
    import pandas  # noqa: F401

    service = Service(settings, writer)
    from multiprocessing import Pipe

    parent_end, child_end = Pipe()
    handle, name = tempfile.mkstemp(prefix="forecast-tracking-", suffix=".log")
    os.close(handle)
    parent = os.getpid()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; its work is tested through the sessions it serves
        code = 0
        try:
            parent_end.close()
            _serve(child_end, service, Path(name), parent)
        except BaseException:  # noqa: BLE001 - a child never returns into the parent's pytest
            code = 1
        finally:
            with contextlib.suppress(OSError):  # _serve unlinks it once open; not when it failed before that
                os.unlink(name)
            os._exit(code)
    child_end.close()
    return Forked(pid, parent_end)
