"""The walk_forward fixture's progress lines and its worker count (``--forecast-jobs``).

A backtest that runs longer than a few seconds prints ``<test>: <done>/<total> folds, about <eta> left``
through the terminal reporter every ten seconds or so. The inner sessions replace the fixture's clock
with a fake one that advances three seconds per reading, so what is printed does not depend on the
machine's speed. Every inner session runs in-process with the plugin off: neither feature needs MLflow.
"""

from __future__ import annotations

import pytest

from pytest_forecast_mlflow.settings import resolve

from .conftest import INNER_FLAGS

pytestmark = pytest.mark.usefixtures("hermetic")

INNER = """
    import numpy as np
    import pytest

    import backtest
    import pytest_forecast_mlflow.fixtures as fixtures
    from backtest import WalkForward


    class Mean:
        def fit(self, history):
            self.level = float(history.mean())

        def predict(self, history, steps):
            return np.full(steps, self.level)


    SERIES = np.arange(100.0) + 1  # 60 folds of one step, a refit every 3: 20 blocks
    SPEC = WalkForward(horizon=1, initial=40, refit=3)


    @pytest.fixture
    def fake_clock(monkeypatch):
        ticks = iter(range(0, 10_000, 3))
        monkeypatch.setattr(fixtures, "_clock", lambda: float(next(ticks)))


    @pytest.fixture
    def n_jobs_seen(monkeypatch):
        seen = []
        real = backtest.run

        def spy(*args, n_jobs, **kwargs):
            seen.append(n_jobs)
            return real(*args, n_jobs=1, **kwargs)

        monkeypatch.setattr(backtest, "run", spy)
        return seen


    @pytest.mark.parametrize("label", ["30d"])
    def test_long(walk_forward, fake_clock, label):
        walk_forward(Mean(), SERIES, SPEC, label=label)


    def test_short(walk_forward):
        walk_forward(Mean(), SERIES, SPEC)


    def test_jobs(walk_forward, n_jobs_seen, request):
        walk_forward(Mean(), SERIES, SPEC)
        walk_forward(Mean(), SERIES, SPEC, n_jobs=3)
        print("n_jobs seen:", n_jobs_seen)
"""

#: 20 blocks of 3 folds, one every 3 fake seconds: silent for the first 5 s, then a line every >= 10 s.
PROGRESS = [
    "test_long[[]30d[]]: 6/60 folds, about 54 s left",
    "test_long[[]30d[]]: 18/60 folds, about 42 s left",
    "test_long[[]30d[]]: 30/60 folds, about 30 s left",
    "test_long[[]30d[]]: 42/60 folds, about 18 s left",
    "test_long[[]30d[]]: 54/60 folds, about 6 s left",
]


def run_inner(pytester: pytest.Pytester, *args: str, conftest: str = "") -> pytest.RunResult:
    pytester.makepyfile(test_inner=INNER)
    if conftest:
        pytester.makeconftest(conftest)
    return pytester.runpytest(*INNER_FLAGS, *args)


def test_a_long_backtest_prints_folds_done_and_the_time_left_every_ten_seconds(pytester: pytest.Pytester) -> None:
    result = run_inner(pytester, "-v", "-k", "long or short")

    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*test_inner.py::test_long[[]30d[]] ", *PROGRESS, "*test_long[[]30d[]] PASSED*"])
    output = result.stdout.str()
    assert output.count("folds, about") == len(PROGRESS)  # one line per ten seconds, none at the end
    assert "test_short:" not in output  # it took milliseconds: nothing to report
    result.assert_outcomes(passed=2)


@pytest.mark.parametrize(
    ("args", "conftest"),
    [
        (("-q",), ""),
        ((), "def pytest_configure(config):\n    config.workerinput = {'workerid': 'gw0'}\n"),  # an xdist worker
    ],
    ids=["quiet", "xdist-worker"],
)
def test_no_progress_under_quiet_or_on_an_xdist_worker(pytester: pytest.Pytester, args: tuple, conftest: str) -> None:
    result = run_inner(pytester, "-k", "long", *args, conftest=conftest)

    assert result.ret == pytest.ExitCode.OK
    assert "folds, about" not in result.stdout.str()
    result.assert_outcomes(passed=1)


def test_forecast_jobs_is_the_fixtures_default_worker_count_also_with_the_plugin_off(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FORECAST_JOBS", "-1")
    result = run_inner(pytester, "-s", "-k", "jobs")

    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*n_jobs seen: [[]-1, 3[]]"])  # the test's own n_jobs wins over the option
    result.assert_outcomes(passed=1)


def test_forecast_jobs_command_line_beats_environment_beats_ini_beats_default(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    def jobs(*args: str) -> tuple[int, str]:
        # resolved as pytest_configure does, without starting the session (which would import mlflow)
        settings = resolve(pytester.parseconfig("--mlflow-experiment", "on", *args))
        return settings.jobs, settings.sources["forecast_jobs"]

    assert jobs() == (1, "default")
    pytester.makeini("[pytest]\nforecast_jobs = 2\n")
    assert jobs() == (2, "ini key forecast_jobs")
    monkeypatch.setenv("FORECAST_JOBS", "-1")
    assert jobs() == (-1, "environment variable FORECAST_JOBS")
    assert jobs("--forecast-jobs", "4") == (4, "command line --forecast-jobs")


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (("--forecast-jobs", "0"), None, "*--forecast-jobs: forecast jobs must be >= 1 (worker processes) or -1*"),
        (
            ("--mlflow-experiment", "on"),
            "two",
            "*environment variable FORECAST_JOBS: forecast jobs must be a whole number such as 2 or -1, got 'two'*",
        ),
    ],
    ids=["command-line", "environment"],
)
def test_a_bad_worker_count_is_a_usage_error(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, args: tuple, env: str | None, message: str
) -> None:
    if env is not None:
        monkeypatch.setenv("FORECAST_JOBS", env)
    pytester.makepyfile("def test_never_runs(): raise AssertionError")
    result = pytester.runpytest(*INNER_FLAGS, *args)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
