"""The entry of ``forecast-mlflow``: the parser, the masked output, one-line errors and exit codes."""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TextIO, cast

from pytest_forecast_mlflow import __version__
from pytest_forecast_mlflow.cli import backup, champion, dashboard, forecast, monitor, replay, ui
from pytest_forecast_mlflow.cli.base import ARTIFACT_ROOT_HELP, PROG, TRACKING_URI_HELP, CliError, Parser
from pytest_forecast_mlflow.store import TRACKING_URI_ENV, first_line, mask_text

# MLflow prints "View run NAME at: <tracking URI>/#/..." when a run ends: the URI with its credentials
SUPPRESS_URL_ENV = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"


class _MaskedStream(io.TextIOBase):
    """A text stream that masks credentials before they reach ``stream``, a whole line at a time.

    Lines are held until their newline (or a flush), so a URL written in pieces is still masked.
    """

    def __init__(self, stream: TextIO, secrets_from: tuple[str, ...]) -> None:
        super().__init__()
        self._stream = stream
        self._secrets = secrets_from
        self._pending = ""
        self._lock = threading.Lock()  # MLflow may log from its own threads

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            head, newline, self._pending = self._pending.rpartition("\n")
            if newline:
                self._stream.write(mask_text(head + newline, secrets_from=self._secrets))
        return len(text)

    def flush(self) -> None:
        with self._lock:
            if self._pending:
                self._stream.write(mask_text(self._pending, secrets_from=self._secrets))
                self._pending = ""
        self._stream.flush()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()

    # typeshed declares TextIOBase.encoding a writable attribute; here it is the wrapped stream's, read-only
    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._stream, "encoding", "utf-8")


@contextlib.contextmanager
def _masked_output(argv: Sequence[str]) -> Iterator[None]:
    """Everything printed while the command runs, by it or by MLflow, passes through :func:`mask_text`.

    The secrets are those of every URI on the command line and in ``MLFLOW_TRACKING_URI``; MLflow's
    "View run ... at: URL" lines are switched off for the command's duration.
    """
    secrets = (*(arg for arg in argv if "://" in arg), os.environ.get(TRACKING_URI_ENV) or "")
    secrets = tuple(s for s in secrets if s)
    streams = sys.stdout, sys.stderr
    previous = os.environ.get(SUPPRESS_URL_ENV)
    os.environ[SUPPRESS_URL_ENV] = "true"
    # a TextIOBase, not a typing.TextIO: it has the methods print, logging and MLflow call
    sys.stdout, sys.stderr = (cast(TextIO, _MaskedStream(stream, secrets)) for stream in streams)
    try:
        yield
    finally:
        for masked in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                masked.flush()
        sys.stdout, sys.stderr = streams
        if previous is None:
            os.environ.pop(SUPPRESS_URL_ENV, None)
        else:
            os.environ[SUPPRESS_URL_ENV] = previous


def build_parser() -> argparse.ArgumentParser:
    common = Parser(add_help=False)
    # SUPPRESS, so the option works before and after the subcommand without one default masking the other
    common.add_argument("--tracking-uri", default=argparse.SUPPRESS, metavar="URI", help=TRACKING_URI_HELP)
    artifact_root = Parser(add_help=False)
    artifact_root.add_argument("--artifact-root", metavar="DIR", help=ARTIFACT_ROOT_HELP)

    parser = Parser(
        prog=PROG,
        description="Look at, serve, back up and restore the MLflow store of pytest-forecast-mlflow.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    dashboard.add_parser(commands, common)
    ui.add_parser(commands, common, artifact_root)
    backup.add_parsers(commands, common, artifact_root)
    replay.add_parser(commands, common)
    champion.add_parser(commands, common)
    forecast.add_parser(commands, common)
    monitor.add_parser(commands, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``forecast-mlflow``; returns the exit code instead of raising ``SystemExit``.

    Whatever the command prints, on stdout or stderr, is masked with the URIs of ``argv`` and of
    ``MLFLOW_TRACKING_URI`` as the secrets to remove.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    with _masked_output(argv):
        return _run(argv)


def _run(argv: list[str]) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version (0) or a usage error argparse has printed (2)
        return exc.code if isinstance(exc.code, int) else 2
    handler: Callable[[argparse.Namespace, TextIO], int] = args.handler
    prefix = f"{PROG} {args.command}: error:"
    try:
        return handler(args, sys.stdout)
    except CliError as exc:
        sys.stderr.write(f"{prefix} {exc.message}\n")
        return exc.code
    except KeyboardInterrupt:
        sys.stderr.write(f"{PROG} {args.command}: interrupted\n")
        return 130
    except Exception as exc:  # the contract is one line, never a traceback
        detail = first_line(str(exc)) or "no details"
        sys.stderr.write(f"{prefix} unexpected {type(exc).__name__}: {detail}; please report it with this line\n")
        return 1
