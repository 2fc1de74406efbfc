"""Options: one precedence (command line > environment > ini > default) and early, teaching usage errors.

Settings are read at configure time, before any test or store is touched, so most cases run in-process
and never import mlflow. Only the unreachable-server cases need a subprocess session.
"""

from __future__ import annotations

import glob
import http.server
import socket
import threading
import time
from pathlib import Path

import pytest

from pytest_forecast_mlflow.keys import SETTINGS_KEY
from pytest_forecast_mlflow.settings import Settings

from .conftest import INNER_FLAGS, SUITE, configured, make_project

pytestmark = pytest.mark.usefixtures("hermetic")


def settings_of(pytester: pytest.Pytester, *args: str, on: bool = True) -> Settings:
    """The resolved settings; ``on`` switches the plugin on (off, only the experiment option is read)."""
    if on and not any(arg.startswith("--mlflow-experiment") for arg in args):
        args = ("--mlflow-experiment", "probe", *args)
    return configured(pytester, *args).stash[SETTINGS_KEY]


def literally(message: str | tuple[str, ...]) -> str:
    """An fnmatch pattern for a line holding ``message`` (or each part of a tuple, in order, for messages whose
    wording in between may move), with ``[``, ``*`` and ``?`` taken literally."""
    parts = (message,) if isinstance(message, str) else message
    return "*" + "*".join(glob.escape(part) for part in parts) + "*"


# -- precedence --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ini", "flag", "env", "attribute", "raw", "parsed", "default"),
    [
        (
            "forecast_gate",
            "--forecast-gate",
            "FORECAST_GATE",
            "gate",
            ("warn", "off", "fail"),
            ("warn", "off", "fail"),
            "fail",
        ),
        (
            "forecast_tolerance",
            "--forecast-tolerance",
            "FORECAST_TOLERANCE",
            "tolerance",
            ("1%", "0.02", "3%"),
            (0.01, 0.02, 0.03),
            0.0,
        ),
        (
            "forecast_alpha",
            "--forecast-alpha",
            "FORECAST_ALPHA",
            "alpha",
            ("0.1", "0.01", "0.2"),
            (0.1, 0.01, 0.2),
            0.05,
        ),
        (
            "forecast_gate_metrics",
            "--forecast-gate-metrics",
            "FORECAST_GATE_METRICS",
            "gate_metrics",
            ("mae", "rmse;mase", "rmse, mae"),
            (("mae",), ("rmse", "mase"), ("rmse", "mae")),
            ("rmse",),
        ),
        (
            "mlflow_plots",
            "--mlflow-plots",
            "FORECAST_MLFLOW_PLOTS",
            "plots",
            ("off", "on", "off"),
            (False, True, False),
            True,
        ),
        (
            "mlflow_experiment",
            "--mlflow-experiment",
            "FORECAST_MLFLOW_EXPERIMENT",
            "experiment",
            ("from-ini", "from env", "from-cli"),
            ("from-ini", "from env", "from-cli"),
            None,
        ),
    ],
)
def test_command_line_beats_environment_beats_ini_beats_default(
    pytester: pytest.Pytester,
    monkeypatch: pytest.MonkeyPatch,
    ini: str,
    flag: str,
    env: str,
    attribute: str,
    raw: tuple,
    parsed: tuple,
    default,
) -> None:
    from_ini, from_env, from_cli = raw
    pytester.makeini(f"[pytest]\n{ini} = {from_ini}\n")
    monkeypatch.setenv(env, from_env)

    on = attribute != "experiment"  # the experiment itself is what switches the plugin on
    everything = settings_of(pytester, f"{flag}={from_cli}", on=on)
    env_and_ini = settings_of(pytester, on=on)
    monkeypatch.delenv(env)
    ini_only = settings_of(pytester, on=on)
    pytester.makeini("[pytest]\n")
    nothing = settings_of(pytester, on=on)

    assert getattr(everything, attribute) == parsed[2]
    assert getattr(env_and_ini, attribute) == parsed[1]
    assert getattr(ini_only, attribute) == parsed[0]
    assert getattr(nothing, attribute) == default
    assert [s.sources[ini] for s in (everything, env_and_ini, ini_only, nothing)] == [
        f"command line {flag}",
        f"environment variable {env}",
        f"ini key {ini}",
        "default",
    ]


def test_flags_follow_the_same_precedence(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    pytester.makeini("[pytest]\nmlflow_promote = true\nmlflow_register = true\n")

    from_ini = settings_of(pytester)
    monkeypatch.setenv("FORECAST_MLFLOW_PROMOTE", "no")
    env_says_no = settings_of(pytester)
    from_cli = settings_of(pytester, "--mlflow-promote")

    assert (from_ini.promote, from_ini.register) == (True, True)
    assert (env_says_no.promote, env_says_no.register) == (False, True)  # register still comes from the ini
    assert from_cli.promote is True


def test_promote_implies_register(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORECAST_MLFLOW_PROMOTE", "yes")

    settings = settings_of(pytester)

    assert (settings.promote, settings.register) == (True, True)


def test_tags_come_from_the_command_line_or_one_per_ini_line(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nmlflow_tags =\n    team=fx\n    owner = ana\n")

    from_ini = settings_of(pytester)
    from_cli = settings_of(pytester, "--mlflow-tag", "ticket=FX-1", "--mlflow-tag", "empty=")

    assert from_ini.tags == (("team", "fx"), ("owner", "ana"))
    assert from_cli.tags == (("ticket", "FX-1"), ("empty", ""))


def test_defaults(pytester: pytest.Pytester) -> None:
    settings = settings_of(pytester, "--mlflow-experiment", "usdclp")
    root = Path(pytester.path).resolve()

    assert settings.enabled
    assert settings.tracking_uri == f"sqlite:///{root}/data/mlflow/mlflow.db"
    assert settings.artifact_root == root / "data" / "mlflow" / "mlruns"
    assert settings.registered_model == "usdclp"  # the experiment name
    assert settings.alias == "champion"
    assert (settings.gate, settings.method, settings.gate_metrics) == ("fail", "dm", ("rmse",))
    assert (settings.tolerance, settings.alpha, settings.timeout) == (0.0, 0.05, 10.0)
    assert (settings.register, settings.promote, settings.require_baseline) == (False, False, False)
    assert (settings.report, settings.json) == (None, None)
    assert not (root / "data").exists()  # configuring touches no store


def test_off_without_an_experiment(pytester: pytest.Pytester) -> None:
    assert not settings_of(pytester, "--forecast-gate", "warn", on=False).enabled


def test_experiment_from_the_environment_switches_the_plugin_on(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORECAST_MLFLOW_EXPERIMENT", "usdclp")

    assert settings_of(pytester, on=False).experiment == "usdclp"


def test_a_sqlite_store_keeps_its_artifacts_next_to_the_database(pytester: pytest.Pytester, tmp_path: Path) -> None:
    db = tmp_path / "elsewhere" / "mlflow.db"

    settings = settings_of(
        pytester,
        "--mlflow-experiment",
        "usdclp",
        "--mlflow-tracking-uri",
        f"sqlite:///{db}",
        "--forecast-registered-model",
        "fx-models",
        "--forecast-alias",
        "production",
    )

    assert settings.tracking_uri == f"sqlite:///{db}"
    assert settings.artifact_root == db.parent / "mlruns"
    assert (settings.registered_model, settings.alias) == ("fx-models", "production")


# -- usage errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--forecast-gate", "maybe"), "argument --forecast-gate: 'maybe' is not one of fail, warn, off"),
        (
            ("--forecast-tolerance", "abc"),
            "argument --forecast-tolerance: tolerance must be a number such as 0.05 or 5%, got 'abc'",
        ),
        (
            ("--forecast-tolerance", "100%"),
            "argument --forecast-tolerance: tolerance must be in [0.0, 1.0), got '100%'",
        ),
        (("--forecast-alpha", "2"), "argument --forecast-alpha: alpha must be in [1e-09, 1.0), got '2'"),
        (
            ("--forecast-gate-metrics", "rmse,foo"),
            "argument --forecast-gate-metrics: unknown gate metric(s) 'foo'; known metrics: rmse, mae, mape, smape, "
            "mase, directional_accuracy",
        ),
        (("--forecast-method", "vibes"), "argument --forecast-method: 'vibes' is not one of dm, dm-hln, threshold"),
        (
            ("--mlflow-experiment", "team/fx"),
            "argument --mlflow-experiment: invalid experiment name 'team/fx': use 1-200 printable characters without "
            "'/' or '\\'",
        ),
        (
            ("--mlflow-tracking-uri", "./mlruns"),
            ("argument --mlflow-tracking-uri: ", "./mlruns", "file stores", "sqlite:///"),
        ),
        (("--mlflow-tracking-uri", "file:///tmp/mlruns"), ("file:///tmp/mlruns", "file stores", "sqlite:///")),
        (("--mlflow-timeout", "0"), "argument --mlflow-timeout: timeout must be > 0 seconds, got '0'"),
        (("--mlflow-tag", "novalue"), "argument --mlflow-tag: tags are KEY=VALUE, got 'novalue'"),
    ],
)
def test_bad_command_line_values_are_usage_errors(pytester: pytest.Pytester, args: tuple, message) -> None:
    pytester.makepyfile("def test_never_runs(): raise AssertionError")

    result = pytester.runpytest("--mlflow-experiment", "fx", *args)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([literally(message)])
    result.stdout.no_fnmatch_line("*test_never_runs*")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("FORECAST_GATE", "maybe", "environment variable FORECAST_GATE: 'maybe' is not one of fail, warn, off"),
        (
            "FORECAST_TOLERANCE",
            "abc",
            "environment variable FORECAST_TOLERANCE: tolerance must be a number such as 0.05 or 5%, got 'abc'",
        ),
        ("FORECAST_ALPHA", "2", "environment variable FORECAST_ALPHA: alpha must be in [1e-09, 1.0), got '2'"),
        ("FORECAST_GATE_METRICS", "foo", "environment variable FORECAST_GATE_METRICS: unknown gate metric(s) 'foo'"),
        ("MLFLOW_TRACKING_URI", "./mlruns", ("environment variable MLFLOW_TRACKING_URI: ", "./mlruns", "file stores")),
        (
            "FORECAST_MLFLOW_PROMOTE",
            "maybe",
            "environment variable FORECAST_MLFLOW_PROMOTE='maybe': use 1/true/yes or 0/false/no",
        ),
    ],
)
def test_bad_environment_values_are_usage_errors_naming_the_variable(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message
) -> None:
    pytester.makepyfile("def test_never_runs(): raise AssertionError")
    monkeypatch.setenv(variable, value)

    result = pytester.runpytest("--mlflow-experiment", "fx")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: " + literally(message)[1:]])


def test_an_environment_experiment_name_is_checked(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORECAST_MLFLOW_EXPERIMENT", "team/fx")

    result = pytester.runpytest()

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [literally("environment variable FORECAST_MLFLOW_EXPERIMENT: invalid experiment name 'team/fx'")]
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("forecast_alpha = 2", "ini key forecast_alpha: alpha must be in [1e-09, 1.0), got '2'"),
        ("forecast_gate = maybe", "ini key forecast_gate: 'maybe' is not one of fail, warn, off"),
        ("mlflow_tracking_uri = ./mlruns", ("ini key mlflow_tracking_uri: ", "./mlruns", "file stores")),
        ("mlflow_experiment = team/fx", "ini key mlflow_experiment: invalid experiment name 'team/fx'"),
        ("mlflow_promote = maybe", "ini key mlflow_promote: invalid truth value 'maybe'; use true/false"),
        ("mlflow_plots = yes", "ini key mlflow_plots: 'yes' is not one of on, off"),
    ],
)
def test_bad_ini_values_are_usage_errors_naming_the_key(pytester: pytest.Pytester, line: str, message) -> None:
    switch_on = "" if line.startswith("mlflow_experiment") else "mlflow_experiment = fx\n"
    pytester.makeini(f"[pytest]\n{switch_on}{line}\n")

    result = pytester.runpytest()

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: " + literally(message)[1:]])


def test_an_mlflow_variable_of_another_tool_does_not_break_sessions_with_the_plugin_off(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile("def test_ok(): pass")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "file:///tmp/mlruns")  # MLflow 2's own default kind of store

    result = pytester.runpytest()

    assert result.ret == pytest.ExitCode.OK
    result.assert_outcomes(passed=1)


# -- a tracking server that cannot be reached --------------------------------------------------------


def run_against(pytester: pytest.Pytester, uri: str, *args: str) -> tuple[pytest.RunResult, float]:
    make_project(pytester)
    started = time.monotonic()
    result = pytester.runpytest_subprocess(
        *INNER_FLAGS, "--mlflow-experiment", "fx", "--mlflow-tracking-uri", uri, *args, SUITE, timeout=120
    )
    return result, time.monotonic() - started


def test_an_unreachable_server_fails_at_once_with_a_usage_error(pytester: pytest.Pytester) -> None:
    result, elapsed = run_against(pytester, "http://127.0.0.1:9")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "ERROR: tracking server http://127.0.0.1:9 is unreachable (*). Start the server, point "
            "--mlflow-tracking-uri elsewhere, or use --mlflow-on-unavailable=spool to keep the results in a journal",
        ]
    )
    result.stdout.no_fnmatch_line("*test_backtest*")
    assert elapsed < 30


@pytest.fixture
def silent_server():
    """A TCP port that accepts connections and never answers: a hung tracking server."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


def test_a_server_that_never_answers_fails_within_the_timeout(pytester: pytest.Pytester, silent_server: int) -> None:
    result, elapsed = run_against(pytester, f"http://127.0.0.1:{silent_server}", "--mlflow-timeout", "2")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"ERROR: tracking server http://127.0.0.1:{silent_server} is unreachable (*"])
    assert elapsed < 30


def test_credentials_in_the_tracking_uri_are_never_printed(pytester: pytest.Pytester) -> None:
    result, _ = run_against(pytester, "http://fx-bot:s3cr3t-t0ken@127.0.0.1:9")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: tracking server http://***@127.0.0.1:9 is unreachable*"])
    assert "s3cr3t" not in result.stdout.str() + result.stderr.str()


class _Health(http.server.BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        type(self).seen.append(self.path)
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def health_server():
    _Health.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], _Health.seen
    server.shutdown()
    server.server_close()


def test_a_server_whose_uri_carries_credentials_is_reached(pytester: pytest.Pytester, health_server) -> None:
    port, seen = health_server

    result, _ = run_against(pytester, f"http://fx-bot:s3cr3t-t0ken@127.0.0.1:{port}")

    assert "/health" in seen, result.stderr.str()
    result.stderr.no_fnmatch_line("*is unreachable*")
    assert "s3cr3t" not in result.stdout.str() + result.stderr.str()


def test_the_gate_metrics_the_options_accept_are_the_library_metrics() -> None:
    # settings keeps its own list so that loading the plugin never imports pandas; it must not drift
    from backtest.metrics import METRICS
    from pytest_forecast_mlflow.settings import KNOWN_METRICS

    assert set(KNOWN_METRICS) == set(METRICS)
