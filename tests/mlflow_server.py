"""A real ``mlflow server`` for the suites that need one, and a free port: shared by the plugin's server
tests, the PostgreSQL tests and the writers' benchmark."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServerFailed(RuntimeError):
    """The server exited or did not become healthy; the message holds the tail of its log."""


class MlflowServer:
    """A real ``mlflow server`` on 127.0.0.1, in a folder of its own; restartable on the same port.

    ``backend`` is the backend store URI (default: SQLite in ``folder/server.db``); ``template``, a
    database that already has MLflow's schema, is copied there before the first start so the server runs no
    migrations. MLflow's background job runner is off, as ``forecast-mlflow ui`` runs it: together they halve
    the start-up on a busy 2-core machine.
    """

    def __init__(
        self,
        folder: Path,
        *,
        backend: str | None = None,
        template: Path | None = None,
        port: int | None = None,
        workers: int = 1,
        serve_artifacts: bool = False,
        timeout: float = 90.0,
    ) -> None:
        self.folder = folder
        if template is not None:
            shutil.copyfile(template, folder / "server.db")
        self.backend = backend or f"sqlite:///{folder / 'server.db'}"
        self.port = port or free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.serve_artifacts = serve_artifacts
        self.timeout = timeout
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        """Start the server and wait until ``/health`` answers; :class:`ServerFailed` if it never does."""
        log = self.folder / "server.log"
        command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--backend-store-uri", self.backend, "--artifacts-destination", str(self.folder / "artifacts")]
        command += ["--workers", str(self.workers), *(["--serve-artifacts"] if self.serve_artifacts else [])]
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=open(log, "ab"),  # noqa: SIM115 - the server's process owns it
            start_new_session=True,
            env={**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        )
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerFailed(f"mlflow server exited {self.process.returncode}: {log_tail(log)}")
            try:
                with urllib.request.urlopen(self.uri + "/health", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        self.stop()
        raise ServerFailed(f"mlflow server not healthy within {self.timeout:.0f} s: {log_tail(log)}")

    def stop(self) -> None:
        """Kill the server's whole process group at once (MLflow serves from worker children; a test's server
        holds nothing worth a clean stop, and the inner suites that stop one on purpose send SIGTERM themselves)."""
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def log_tail(path: Path, chars: int = 2000) -> str:
    """The last ``chars`` characters of a log, empty when it does not exist."""
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""
