"""``forecast-mlflow ui``: ``mlflow server`` on the embedded store, in its own process group, until Ctrl-C.

On Ctrl-C or SIGTERM the whole group is stopped (SIGTERM, then SIGKILL after 10 s), so no uvicorn
process outlives the command. MLflow's background job runner stays off unless
``MLFLOW_SERVER_ENABLE_JOB_EXECUTION`` is set.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from types import FrameType
from typing import TextIO

from pytest_forecast_mlflow.cli.base import CliError, Parser, Store, positive_int, require_sqlite, store_args
from pytest_forecast_mlflow.store import DB_NAME

JOB_EXECUTION_ENV = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"


def ui_command(store: Store, host: str, port: int) -> list[str]:
    """The ``mlflow server`` command line serving ``store`` (one worker: it is a local, one-person UI)."""
    _, artifacts = require_sqlite(store, "ui")
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        store.uri,
        "--registry-store-uri",
        store.uri,
        "--default-artifact-root",
        str(artifacts),
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
    ]


def ui_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The server's environment: ``environ``, with MLflow's background job runner off unless asked for.

    The job runner serves GenAI features (scorers, trace archival) that backtests do not use; it
    starts seven extra processes and triples the start-up time. ``MLFLOW_SERVER_ENABLE_JOB_EXECUTION``
    set in ``environ`` wins.
    """
    return {JOB_EXECUTION_ENV: "false", **environ}


def _url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
    shown = f"[{shown}]" if ":" in shown and not shown.startswith("[") else shown
    return f"http://{shown}:{port}"


def _check_port_free(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        if os.name == "posix":  # as the server will: a port in TIME_WAIT is free to bind
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as exc:
            raise CliError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc} (another MLflow UI?); "
                f"stop it or pass --port {port + 1}",
                1,
            ) from None


class _Terminated(Exception):
    """SIGTERM arrived while the UI was running."""


def _start_server(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """``command`` in a new process group (session), so that stopping it stops its children too."""
    if sys.platform == "win32":
        return subprocess.Popen(command, env=env, creationflags=subprocess.CREATE_NEW_PROCESS_GROUP)
    return subprocess.Popen(command, env=env, start_new_session=True)


def _signal_group(proc: subprocess.Popen[bytes], *, hard: bool) -> None:
    """SIGTERM (or SIGKILL when ``hard``) to the server, its uvicorn process and any job consumers."""
    try:
        if sys.platform == "win32":
            if hard:
                proc.kill()
            else:
                proc.send_signal(signal.CTRL_BREAK_EVENT)
        else:
            os.killpg(proc.pid, signal.SIGKILL if hard else signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    if sys.platform == "win32":
        return False
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _stop_server(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server's whole process group: SIGTERM, then SIGKILL if it is still there after 10 s.

    SIGTERM rather than a forwarded SIGINT: uvicorn shuts down as gracefully on either, but on SIGINT
    MLflow's launcher prints tracebacks and its job consumers wait ~10 s for work that a UI never has.
    """
    for hard, patience in ((False, 10.0), (True, 5.0)):
        _signal_group(proc, hard=hard)
        deadline = time.monotonic() + patience
        try:
            while time.monotonic() < deadline:
                if proc.poll() is not None and not _group_alive(proc.pid):
                    return
                time.sleep(0.1)
        except KeyboardInterrupt:  # a second Ctrl-C: stop asking nicely
            continue
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def cmd_ui(args: argparse.Namespace, out: TextIO) -> int:
    store = store_args(args)
    command = ui_command(store, args.host, args.port)
    db, _ = require_sqlite(store, "ui")  # ui_command has checked it is one
    if not db.exists():
        raise CliError(
            f"no MLflow store at {db} ({store.source}); run the backtests with the plugin (pytest) first, "
            f"or pass --tracking-uri sqlite:///path/to/{DB_NAME}",
            1,
        )
    _check_port_free(args.host, args.port)

    url = _url(args.host, args.port)
    note = "" if args.host in ("127.0.0.1", "localhost", "::1") else f" (listening on {args.host})"
    proc = _start_server(command, ui_environment(os.environ))
    out.write(f"MLflow UI for {store.shown}: {url}{note}  (server pid {proc.pid}; Ctrl-C stops it)\n")
    out.flush()

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        raise _Terminated

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, on_sigterm) if in_main_thread else None
    if in_main_thread:  # Ctrl-C must stop the server even when a parent (xdist, nohup) left SIGINT ignored
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        code = proc.wait()
    except (KeyboardInterrupt, _Terminated):
        _stop_server(proc)
        out.write("MLflow UI stopped\n")
        return 0
    finally:
        if in_main_thread and previous is not None:
            signal.signal(signal.SIGTERM, previous)
        if proc.poll() is None or _group_alive(proc.pid):  # no orphaned uvicorn, whatever happened
            _stop_server(proc)
    if code != 0:
        raise CliError(f"mlflow server exited with code {code}; its messages are above", 1)
    return 0


def _port(text: str) -> int:
    value = positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port (1-65535)")
    return value


def add_parser(
    commands: argparse._SubParsersAction[Parser],
    common: Parser,
    artifact_root: Parser,
) -> None:
    ui = commands.add_parser(
        "ui",
        parents=[common, artifact_root],
        help="Serve the MLflow UI on the store",
        description="Run 'mlflow server' on the store until Ctrl-C.",
    )
    ui.add_argument("--host", default="127.0.0.1", help="Interface to bind (default: 127.0.0.1, this machine only)")
    ui.add_argument("--port", type=_port, default=5000, help="Port to listen on (default: 5000)")
    ui.set_defaults(handler=cmd_ui)
