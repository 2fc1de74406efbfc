"""Notifications through Apprise: a local HTTP receiver on 127.0.0.1 gets exactly what was sent."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pytest_forecast_mlflow import notify


class Receiver:
    """An HTTP server on 127.0.0.1 that keeps the JSON body of every POST (Apprise's ``json://`` target)."""

    def __init__(self) -> None:
        received: list[dict] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server protocol
                length = int(self.headers.get("Content-Length", "0"))
                received.append({"path": self.path, **json.loads(self.rfile.read(length) or b"{}")})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.server.server_address[1]}/alerts"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def test_one_notification_reaches_the_receiver(receiver: Receiver) -> None:
    delivery = notify.send([receiver.url], "forecast drift", "30d: ratio 1.80, verdict drift")
    assert delivery == notify.Delivery(1, ())
    (got,) = receiver.received
    assert got["path"] == "/alerts"
    assert got["title"] == "forecast drift"
    assert got["message"] == "30d: ratio 1.80, verdict drift"


def test_no_url_sends_nothing_and_imports_nothing(receiver: Receiver) -> None:
    assert notify.send([], "t", "b") == notify.Delivery(0, ())
    assert receiver.received == []


def test_failed_delivery_is_reported_not_raised() -> None:
    delivery = notify.send(["json://127.0.0.1:9/nobody-listens", "nonsense://x"], "t", "b")
    assert delivery.sent == 0
    assert len(delivery.failures) == 2
    assert "notify URL 1 (json://...)" in delivery.failures[0]
    assert "not an Apprise URL" in delivery.failures[1]


def test_without_apprise_the_message_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "apprise", None)  # import apprise raises ImportError
    delivery = notify.send(["json://127.0.0.1:9/x"], "t", "b")
    assert delivery.failures == (f"notifications need apprise, which is not installed: {notify.INSTALL_HINT}",)
    assert 'pip install "pytest-forecast-mlflow[notify]"' in delivery.failures[0]


@pytest.mark.mlflow
@pytest.mark.usefixtures("hermetic")
def test_a_gate_regression_notifies_once_and_a_pass_not_at_all(
    pytester: pytest.Pytester, copy_champion, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The controller of a pytest session sends one notification per session with a regression, none without."""
    from .conftest import assert_quiet, make_project, run_tracked

    make_project(pytester)
    monkeypatch.setenv("FORECAST_E2E_MODELS", "10d=degraded")
    result = run_tracked(pytester, copy_champion("regressed"), "-n", "2", f"--forecast-notify={receiver.url}")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*= forecast-mlflow =*", "notified 1 URL(s) of the regression"])
    assert_quiet(result)
    (alert,) = receiver.received
    assert alert["title"] == "forecast gate: 1 regression(s) in forecaster"
    assert alert["message"].startswith("candidate horizon 10d rmse: verdict regressed, ratio 1.558 (candidate 3.297")

    monkeypatch.setenv("FORECAST_E2E_MODELS", "")
    monkeypatch.setenv("FORECAST_NOTIFY", receiver.url)  # the environment variable works as the option does
    result = run_tracked(pytester, copy_champion("passed"))
    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=2)
    assert len(receiver.received) == 1


@pytest.mark.usefixtures("hermetic")
def test_a_bad_notify_url_fails_early(pytester: pytest.Pytester) -> None:
    from .conftest import make_project

    make_project(pytester)
    result = pytester.runpytest(
        "--mlflow-experiment=x", "--forecast-notify=hooks.slack.com/abc", "-p", "no:cacheprovider"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*'hooks.slack.com/abc' is not an Apprise URL; write one such as slack://*"])
