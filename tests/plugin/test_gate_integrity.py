"""The gate cannot be dodged by what users do every day: renamed labels, other metrics, ``-k`` subsets,
too few folds, two sessions promoting at once; and a gate failure shows where CI users look.

Each end-to-end case starts from a copy of the champion store (v1: the naive candidate at 5d and 10d,
gated on rmse) or makes its own champion, runs the inner suite in a subprocess, and checks the exit
code, what the user reads, and where the alias points afterwards. The pure decision rules are tested
directly on :func:`pytest_forecast_mlflow.gate.decide`.
"""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import pytest

from pytest_forecast_mlflow.gate import Baseline, BaselineHorizon, Row, decide

from .conftest import EXPERIMENT, INNER_FLAGS, SUITE, Store, make_project, run_tracked

# The inner suite, with labels and metrics chosen by environment variables (FORECAST_E2E_LABELS="5d=x5",
# FORECAST_E2E_METRICS="rmse") so one suite serves every scenario; same test ids as the default suite.
LABELLED_SUITE = """
    import os

    import pytest

    from backtest import WalkForward
    from forecast_e2e.models import candidate, data

    LABELS = dict(item.split("=", 1) for item in os.environ.get("FORECAST_E2E_LABELS", "").split(",") if item)
    METRICS = tuple(m for m in os.environ.get("FORECAST_E2E_METRICS", "").split(",") if m) or None


    @pytest.mark.parametrize("horizon", [5, 10])
    def test_backtest(walk_forward, horizon):
        label = f"{horizon}d"
        spec = WalkForward(horizon=horizon, step=5, initial=200)
        walk_forward(candidate(label), data(label), spec, name="candidate", label=LABELS.get(label, label),
                     metrics=METRICS)
        assert not os.environ.get("FORECAST_E2E_FAIL"), "the user's own quality bar"
"""


def labelled_project(pytester: pytest.Pytester) -> None:
    make_project(pytester)
    pytester.makepyfile(**{SUITE[:-3]: textwrap.dedent(LABELLED_SUITE)})


def alias_version(store: Store) -> str:
    return str(store.client().get_model_version_by_alias(EXPERIMENT, "champion").version)


# -- end to end ------------------------------------------------------------------------------------------


@pytest.mark.mlflow
@pytest.mark.usefixtures("hermetic")
def test_a_renamed_label_fails_closed_and_is_never_promoted(
    pytester: pytest.Pytester, champion_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    labelled_project(pytester)
    monkeypatch.setenv("FORECAST_E2E_LABELS", "5d=x5,10d=x10")
    monkeypatch.setenv("FORECAST_E2E_MODELS", "5d=degraded,10d=degraded")

    result = run_tracked(pytester, champion_store, "--mlflow-promote", "--junitxml", "junit.xml")

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "forecast gate: FAIL against forecaster v1 (alias champion, run *)",
            "candidate  x5  * rmse * FAIL: not in champion",
            "candidate  x10 * rmse * FAIL: not in champion",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "reason: candidate x10 rmse: the champion forecaster v1 has no 'x10' backtest (its horizons: 10d, 5d); the "
            "gate fails closed. Use the champion's labels and metrics, or pass --forecast-allow-scope-change *",
            "*alias 'champion' NOT moved: gate verdict fail*",
            "ERROR forecast-gate - forecast gate: candidate x5 rmse: the champion forecast*",
            "*= 2 passed, 1 error in *",
        ]
    )
    assert alias_version(champion_store) == "1"
    (case,) = [
        c for c in ET.parse(pytester.path / "junit.xml").getroot().iter("testcase") if c.get("name") == "forecast-gate"
    ]
    (error,) = case.iter("error")
    assert "has no 'x10' backtest" in error.get("message", "")


@pytest.mark.mlflow
@pytest.mark.usefixtures("hermetic")
def test_a_scope_change_passes_only_deliberately_and_is_recorded_on_the_version(
    pytester: pytest.Pytester, champion_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    labelled_project(pytester)
    monkeypatch.setenv("FORECAST_E2E_LABELS", "5d=x5,10d=x10")

    result = run_tracked(pytester, champion_store, "--mlflow-promote", "--forecast-allow-scope-change")

    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "forecast gate: PASSED against forecaster v1 * (scope change accepted by --forecast-allow-scope-change)",
            "*moved alias 'champion' to it",
        ]
    )
    version = champion_store.client().get_model_version_by_alias(EXPERIMENT, "champion")
    assert str(version.version) == "2"
    override = version.tags["forecast.scope_override"]
    assert "x5 rmse ungated" in override
    assert "not compared: 10d rmse, 5d rmse" in override


@pytest.mark.mlflow
@pytest.mark.usefixtures("hermetic")
def test_a_k_subset_passes_but_never_promotes_and_the_champion_keeps_every_horizon(
    pytester: pytest.Pytester, champion_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_project(pytester)

    equal = run_tracked(pytester, champion_store, "--mlflow-promote", "-k", "5")

    assert equal.ret == pytest.ExitCode.OK, equal.stdout.str()
    equal.assert_outcomes(passed=1, deselected=1)
    equal.stdout.fnmatch_lines(
        [
            "forecast gate: PARTIAL against forecaster v1 *: no regression in what ran, but not every horizon *",
            "reason: the candidate was not compared on every horizon and gate metric of the champion forecaster v1 * "
            "missing 10d rmse. It is never promoted that way; run every horizon (no -k subset) *",
            "*alias 'champion' NOT moved: gate verdict partial*",
        ]
    )
    assert alias_version(champion_store) == "1"

    monkeypatch.setenv("FORECAST_E2E_MODELS", "10d=degraded")
    worse = run_tracked(pytester, champion_store, "--mlflow-promote", "-k", "10")

    assert worse.ret == pytest.ExitCode.TESTS_FAILED
    worse.stdout.fnmatch_lines(["forecast gate: FAIL against forecaster v1 *", "*candidate  10d * REGRESSED"])
    assert alias_version(champion_store) == "1"


@pytest.mark.mlflow
@pytest.mark.usefixtures("hermetic")
def test_gate_metrics_must_cover_the_champions(
    pytester: pytest.Pytester, empty_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A metric the champion never logged fails closed; dropping one it was gated on blocks promotion."""
    labelled_project(pytester)
    monkeypatch.setenv("FORECAST_E2E_METRICS", "rmse")
    made = run_tracked(pytester, empty_store, "--mlflow-promote")
    assert made.ret == pytest.ExitCode.OK, made.stdout.str()

    on_mae = run_tracked(pytester, empty_store, "--mlflow-promote", "--forecast-gate-metrics", "rmse,mae")

    assert on_mae.ret == pytest.ExitCode.TESTS_FAILED
    on_mae.assert_outcomes(passed=2, errors=1)
    on_mae.stdout.fnmatch_lines(
        [
            "reason: candidate 10d mae: the champion forecaster v1 has no per-fold mae at 10d; the gate fails closed*",
            "ERROR forecast-gate - *",
        ]
    )
    assert alias_version(empty_store) == "1"

    monkeypatch.delenv("FORECAST_E2E_METRICS")
    both = run_tracked(
        pytester,
        empty_store,
        "--mlflow-promote",
        "--forecast-gate-metrics",
        "rmse,mae",
        "--forecast-allow-scope-change",
    )
    assert both.ret == pytest.ExitCode.OK, both.stdout.str()
    assert alias_version(empty_store) == "3"  # v2 is the refused mae run; v3 was gated on rmse and mae, and says so
    gated = empty_store.client().get_model_version(EXPERIMENT, "3").tags["forecast.gate_metrics"]
    assert gated == "rmse,mae"

    rmse_only = run_tracked(pytester, empty_store, "--mlflow-promote")

    assert rmse_only.ret == pytest.ExitCode.OK
    rmse_only.stdout.fnmatch_lines(["forecast gate: PARTIAL against forecaster v3 *", "*missing 10d mae, 5d mae*"])
    assert alias_version(empty_store) == "3"


@pytest.mark.mlflow
@pytest.mark.usefixtures("hermetic")
def test_too_few_folds_is_inconclusive_and_never_promotes(pytester: pytest.Pytester, champion_store: Store) -> None:
    make_project(pytester)
    defaults = ("-o", "forecast_min_folds=30", "-o", "forecast_max_detectable=25")  # the shipped defaults

    result = run_tracked(pytester, champion_store, "--mlflow-promote", *defaults)

    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.stdout.fnmatch_lines(
        [
            "forecast gate: INCONCLUSIVE against forecaster v1 *; the alias stays",
            "*candidate  10d * 19/19 * inconclusive",
            "reason: candidate 10d rmse: inconclusive, 19 paired folds (need 30, --forecast-min-folds)*",
            "*alias 'champion' NOT moved: gate verdict inconclusive*",
        ]
    )
    assert alias_version(champion_store) == "1"

    strict = run_tracked(pytester, champion_store, *defaults, "--forecast-inconclusive", "fail")

    assert strict.ret == pytest.ExitCode.TESTS_FAILED
    strict.assert_outcomes(passed=2, errors=1)
    strict.stdout.fnmatch_lines(["ERROR forecast-gate - forecast gate: candidate 5d rmse: inconclusive*"])


@pytest.mark.mlflow
@pytest.mark.usefixtures("hermetic")
def test_a_champion_promoted_before_versions_recorded_their_gate_metrics_keeps_rmse_in_scope(
    pytester: pytest.Pytester, champion_store: Store
) -> None:
    """Older versions carry no forecast.gate_metrics tag: rmse, then the default, stays required."""
    make_project(pytester)
    champion_store.client().delete_model_version_tag(EXPERIMENT, "1", "forecast.gate_metrics")

    result = run_tracked(pytester, champion_store, "--mlflow-promote", "--forecast-gate-metrics", "mae")

    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.stdout.fnmatch_lines(["forecast gate: PARTIAL against forecaster v1 *", "*missing 10d rmse, 5d rmse*"])
    assert alias_version(champion_store) == "1"


@pytest.mark.mlflow
@pytest.mark.usefixtures("hermetic")
def test_a_candidate_whose_own_tests_fail_is_never_promoted(
    pytester: pytest.Pytester, champion_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    labelled_project(pytester)
    monkeypatch.setenv("FORECAST_E2E_MODELS", "5d=improved,10d=improved")
    monkeypatch.setenv("FORECAST_E2E_FAIL", "1")

    result = run_tracked(pytester, champion_store, "--mlflow-promote")

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        ["*alias 'champion' NOT moved: 2 candidate test(s) failed (*); a model whose own tests fail is never promoted"]
    )
    assert alias_version(champion_store) == "1"


BARRIER_CONFTEST = '''
    """Both sessions resolve their baseline before either registers: a deterministic race."""
    import os
    import time
    from pathlib import Path

    import pytest

    BARRIER = Path(os.environ["FORECAST_BARRIER"])


    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(session):  # before the plugin's, which registers and promotes
        # the baseline is read while the tests run, and awaited to compare the first candidate: read by now
        (BARRIER / str(os.getpid())).touch()
        deadline = time.monotonic() + 120
        while len(list(BARRIER.iterdir())) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
'''


@pytest.mark.mlflow
@pytest.mark.usefixtures("hermetic")
def test_two_sessions_promoting_at_once_move_the_alias_once(
    pytester: pytest.Pytester, champion_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_project(pytester)
    pytester.makeconftest(textwrap.dedent(BARRIER_CONFTEST))
    barrier = pytester.mkdir("barrier")
    monkeypatch.setenv("FORECAST_BARRIER", str(barrier))
    monkeypatch.setenv("FORECAST_E2E_MODELS", "5d=improved,10d=improved")
    command = [
        sys.executable,
        "-m",
        "pytest",
        *INNER_FLAGS,
        "--mlflow-experiment",
        EXPERIMENT,
        "--mlflow-tracking-uri",
        champion_store.uri,
        "--mlflow-promote",
    ]
    sessions = [
        subprocess.Popen(command, cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    outputs = [session.communicate(timeout=300)[0] for session in sessions]

    assert [session.returncode for session in sessions] == [0, 0], outputs
    moved = [out for out in outputs if "moved alias 'champion' to it" in out]
    refused = [out for out in outputs if "the champion changed while this session ran (gated against v1, now v" in out]
    assert len(moved) == 1, outputs
    assert len(refused) == 1, outputs
    assert "rerun the session to be gated against it" in refused[0]
    assert alias_version(champion_store) in ("2", "3")
    names = [m.name for m in champion_store.client().search_registered_models()]
    assert names == [EXPERIMENT], "the promotion lock is released"


# -- the decision rules, directly -----------------------------------------------------------------------


def _row(label: str, metric: str = "rmse", status: str = "compared", **values) -> Row:
    defaults = dict(
        nodeid=f"t[{label}]",
        model="m",
        label=label,
        horizon=5,
        metric=metric,
        direction="lower",
        status=status,
        n_folds=100,
        candidate_folds=100,
        p_value=0.5,
        min_detectable_pct=5.0,
    )
    return Row(**{**defaults, **values})


def _baseline(*labels: str, metrics=("rmse",), gated=()) -> Baseline:
    horizons = {label: BaselineHorizon(label, 5, 1, [], [], {m: [] for m in metrics}) for label in labels}
    return Baseline("fx", "3", "alias champion", "r" * 32, "run", "sha", horizons, tuple(gated))


def _decide(rows, baseline, **kwargs):
    options = dict(
        alpha=0.05,
        method="dm",
        require_baseline=False,
        incomplete=[],
        interrupted=False,
        metrics=("rmse",),
        min_folds=30,
        max_detectable_pct=25.0,
    )
    return decide(rows, baseline=baseline, **{**options, **kwargs})


def test_no_baseline_passes_only_when_there_is_no_champion_at_all() -> None:
    assert _decide([_row("5d", status="no-baseline")], None).status == "no-baseline"
    verdict = _decide([_row("x5", status="unmatched", note="not in champion")], _baseline("5d"))
    assert verdict.status == "fail"
    assert not verdict.promotable
    assert any("fails closed" in reason for reason in verdict.session_reasons)


def test_three_folds_and_a_large_regression_are_inconclusive_not_a_pass() -> None:
    """The reported case: max_folds=3, +45% RMSE, p = 0.59, detectable 156-283%."""
    row = _row("5d", n_folds=3, candidate_folds=3, delta_pct=45.0, p_value=0.59, min_detectable_pct=156.0)

    verdict = _decide([row], _baseline("5d"))

    assert verdict.status == "inconclusive"
    assert not verdict.promotable
    assert not verdict.failed
    assert "3 paired folds (need 30" in verdict.reasons[0]
    assert "detectable regression 156%" in verdict.reasons[0]


def test_a_regression_found_with_few_folds_still_fails() -> None:
    row = _row("5d", n_folds=12, p_value=1e-4, min_detectable_pct=math.inf)
    assert _decide([row], _baseline("5d")).status == "fail"


def test_enough_folds_and_power_on_every_horizon_and_metric_pass() -> None:
    rows = [_row("5d"), _row("10d"), _row("5d", "mae"), _row("10d", "mae")]
    verdict = _decide(rows, _baseline("5d", "10d", gated=("rmse", "mae")), metrics=("rmse", "mae"))
    assert verdict.status == "pass"
    assert verdict.promotable


def test_a_champion_metric_left_out_of_the_gate_blocks_promotion() -> None:
    verdict = _decide([_row("5d")], _baseline("5d", gated=("rmse", "mae")))
    assert verdict.status == "partial"
    assert not verdict.promotable
    assert not verdict.failed
    assert "missing 5d mae" in verdict.reasons[0]


@pytest.mark.parametrize(
    ("label", "message"),
    [
        (".", "must start with a letter or digit"),
        ("..", "must start with a letter or digit"),
        ("all", "is reserved"),
        ("gate", "is reserved"),
        ("Model", "is reserved"),
    ],
)
def test_degenerate_and_reserved_labels_are_refused_at_the_fixture(
    pytester: pytest.Pytester, label: str, message: str
) -> None:
    pytester.makepyfile(f"""
        import numpy as np
        from backtest import Naive, WalkForward

        def test_label(walk_forward):
            walk_forward(Naive(), np.arange(100.0), WalkForward(horizon=5, initial=50), label={label!r})
    """)

    result = pytester.runpytest("-p", "no:cacheprovider")

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([f"E *ValueError: label {label!r} *{message}*"])
    assert "INTERNALERROR" not in result.stdout.str()
