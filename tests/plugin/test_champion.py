"""``forecast-mlflow champion`` in-process against copies of temporary ``sqlite:///`` stores.

Most cases copy the champion store conftest makes once per session (``champion_store``: the inner
suite's naive candidate promoted by a real session, so its history starts with a ``bootstrap`` event)
and add versions with MlflowClient calls, which cost milliseconds. The lifecycle with real gated
sessions and a real model server is test_champion_lifecycle.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from unittest.mock import ANY

import pytest

from pytest_forecast_mlflow.cli import main
from pytest_forecast_mlflow.tracking.history import (
    MAX_EVENT_CHARS,
    PREFIX,
    AliasEvent,
    ci_run,
    previous_champion,
    timeline,
)

from .conftest import EXPERIMENT, Store

pytestmark = [pytest.mark.usefixtures("hermetic")]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def champion_cli(capsys: pytest.CaptureFixture[str], store: Store, *argv: str) -> tuple[int, str, str]:
    return run_cli(capsys, "champion", *argv, "--tracking-uri", store.uri)


def history_rows(out: str) -> list[list[str]]:
    """The rows of ``champion history`` as cells: time, from, to, kind, who, commit, verdict, reason."""
    return [re.split(r"\s{2,}", line) for line in out.splitlines()[2:]]


def alias_of(store: Store) -> str:
    return str(store.client().get_model_version_by_alias(EXPERIMENT, "champion").version)


def history_tags(store: Store) -> dict[str, dict[str, str]]:
    tags = store.client().get_registered_model(EXPERIMENT).tags
    return {key: json.loads(value) for key, value in sorted(tags.items()) if key.startswith(PREFIX)}


def add_version(store: Store, *, status: str = "FINISHED", source: str | None = None, copy_run: bool = True) -> str:
    """A new version of ``forecaster``: v1's run and model again by default (cheap, and it serves), or a
    version of a fresh run ending ``status`` without manifests (``copy_run=False``)."""
    client = store.client()
    v1 = client.get_model_version(EXPERIMENT, "1")
    run_id, tags = v1.run_id, dict(v1.tags)  # registered by the session: its verdict and gate settings
    if not copy_run:
        run = client.create_run(client.get_experiment_by_name(EXPERIMENT).experiment_id)
        client.log_text(run.info.run_id, "not a backtest", "note.txt")
        client.set_terminated(run.info.run_id, status)
        run_id, tags = run.info.run_id, {}
    source = source or client.get_model_version_download_uri(EXPERIMENT, "1")
    # (not models:/m-... as the session's v1: MLflow 3 resolves that with the global client, not this one)
    return str(client.create_model_version(EXPERIMENT, source, run_id=run_id, tags=tags).version)


# ------------------------------------------------------------------------------------- pure history


def move(kind: str, before: str | None, after: str | None, seq: int) -> AliasEvent:
    return AliasEvent("champion", before, after, kind, seq=seq, time="2026-01-01T00:00:00Z")


def test_moves_made_outside_the_tool_show_as_external_where_the_record_has_a_gap() -> None:
    events = [move("bootstrap", None, "1", 1), move("promotion", "2", "3", 2)]  # someone moved 1 -> 2 by hand

    moves = timeline(events, "champion", current="4")  # and 3 -> 4

    assert [(m.kind, m.from_version, m.to_version) for m in moves] == [
        ("bootstrap", None, "1"),
        ("external", "1", "2"),
        ("promotion", "2", "3"),
        ("external", "3", "4"),
    ]
    assert timeline([], "champion", current="7")[0].kind == "external"  # set before any history was kept
    assert timeline(events, "other", current=None) == []  # each alias has its own history


def test_repeated_rollbacks_walk_back_instead_of_undoing_each_other() -> None:
    moves = [move("bootstrap", None, "1", 1), move("promotion", "1", "2", 2), move("promotion", "2", "3", 3)]
    assert previous_champion(moves) == "2"
    moves.append(move("rollback", "3", "2", 4))
    assert previous_champion(moves) == "1"
    moves.append(move("rollback", "2", "1", 5))
    assert previous_champion(moves) is None  # the first champion: nothing before it
    assert previous_champion([*moves, move("manual", "1", "3", 6)]) == "1"


def test_an_event_names_its_ci_job_and_fits_mlflow_216_tag_values() -> None:
    github = {"GITHUB_RUN_ID": "42", "GITHUB_REPOSITORY": "o/r", "GITHUB_SERVER_URL": "https://github.com"}
    assert ci_run(github) == "https://github.com/o/r/actions/runs/42"
    assert ci_run({"CI_JOB_URL": "https://gitlab.example/o/r/-/jobs/7", "CI_JOB_ID": "7"}).endswith("/jobs/7")
    assert ci_run({}) == ""

    long = AliasEvent("champion", "1", "2", "manual", reason="x" * 20_000, baseline="b" * 20_000, ci="c" * 20_000)
    text = long.to_json()
    assert len(text) <= MAX_EVENT_CHARS  # MLflow 2.16 keeps 5,000 characters of a registered model tag
    back = AliasEvent.from_tag(f"{PREFIX}000001", text)
    assert back is not None
    assert (back.kind, back.to_version, back.seq) == ("manual", "2", 1)
    assert AliasEvent.from_tag(f"{PREFIX}000002", "not json") is None


# -------------------------------------------------------------------------------------- the commands


@pytest.mark.mlflow
def test_show_and_history_of_a_champion_a_gated_session_bootstrapped(
    champion_store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = champion_cli(capsys, champion_store, "history", "--model", EXPERIMENT)

    assert (code, err) == (0, ""), err
    assert out.splitlines()[0] == f"history of alias 'champion' of {EXPERIMENT}, newest first:"
    assert re.split(r"\s{2,}", out.splitlines()[1]) == [
        "time (UTC)", "from", "to", "kind", "who", "commit", "verdict", "reason"
    ]  # fmt: skip
    ((when, before, after, kind, who, _, verdict, reason),) = history_rows(out)
    assert (before, after, kind, verdict, reason) == ("-", "v1", "bootstrap", "no-baseline", "-")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ", when)
    assert "@" in who

    code, out, err = champion_cli(capsys, champion_store, "show")  # the store's only registered model

    assert (code, err) == (0, ""), err
    lines = out.splitlines()
    assert lines[0] == f"champion of {EXPERIMENT} (alias 'champion') in {champion_store.uri}:"
    fields = {line.split()[0]: line.split(None, 1)[1] for line in lines[1:]}
    run = champion_store.runs()[0].info
    assert fields["version"].startswith(f"v1, run {run.run_id[:8]} {run.run_name}, FINISHED")
    assert "bootstrap (first champion, promoted by a gated session) by " in fields["since"]
    assert fields["gate"].startswith("verdict no-baseline against no registered model")
    assert fields["data"].startswith("2021-01-04 .. 2022-02-25, 300 points (sha256 ")
    assert fields["5d"].endswith("(means over 20 folds)")
    assert "rmse " in fields["5d"]
    assert fields["10d"].endswith("(means over 19 folds)")


@pytest.mark.mlflow
def test_promote_by_hand_then_roll_back_records_every_move(
    champion_store: Store, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    two = add_version(champion_store)
    monkeypatch.setenv("GITHUB_RUN_ID", "42")
    monkeypatch.setenv("GITHUB_REPOSITORY", "o/r")

    code, out, err = champion_cli(capsys, champion_store, "promote", "--version", two, "--reason", "try the copy")

    assert (code, err) == (0, ""), err
    assert out.splitlines() == [
        f"promoted by hand (ungated): alias 'champion' of {EXPERIMENT} moved from v1 to v2 (history entry 2)",
        f"checked: run {champion_store.runs()[0].info.run_id[:8]} FINISHED; fold manifests of 10d, 5d; "
        "model loads and forecasts 10d (10 values), 5d (5 values)",
    ]
    assert alias_of(champion_store) == "2"
    code, out, _ = champion_cli(capsys, champion_store, "show")
    assert "manual promotion (ungated) by " in out
    assert "(CI https://github.com/o/r/actions/runs/42)" in out
    assert "gate     ungated (manual); its own session's verdict no-baseline" in out

    code, out, err = champion_cli(capsys, champion_store, "rollback", "--dry-run")
    assert (code, err) == (0, ""), err
    assert out.startswith(f"dry run: would roll back alias 'champion' of {EXPERIMENT} from v2 to v1\nchecked: run ")
    assert out.endswith("nothing changed (--dry-run)\n")
    assert alias_of(champion_store) == "2"

    code, out, err = champion_cli(capsys, champion_store, "rollback", "--reason", "the copy is no better")
    assert (code, err) == (0, ""), err
    assert out.startswith(f"rolled back: alias 'champion' of {EXPERIMENT} moved from v2 to v1 (history entry 3)")
    assert alias_of(champion_store) == "1"

    code, _, err = champion_cli(capsys, champion_store, "rollback", "--reason", "again")
    assert code == 1
    assert err == (
        f"forecast-mlflow champion: error: the history of alias 'champion' of '{EXPERIMENT}' has no champion "
        "before v1, so there is nothing to roll back to; name the version with --to VERSION "
        f"(see: forecast-mlflow champion history --model {EXPERIMENT})\n"
    )

    champion_store.client().set_registered_model_alias(EXPERIMENT, "champion", two)  # by hand, unrecorded
    code, out, _ = champion_cli(capsys, champion_store, "history")
    assert [(row[0], *row[1:4], row[6], row[7]) for row in history_rows(out)] == [
        ("unknown", "v1", "v2", "external", "-", "no record of who or why"),
        (ANY, "v2", "v1", "rollback", "ungated", "the copy is no better"),
        (ANY, "v1", "v2", "manual", "ungated", "try the copy"),
        (ANY, "-", "v1", "bootstrap", "no-baseline", "-"),
    ]
    recorded = list(history_tags(champion_store).values())
    assert [(e["kind"], e.get("from"), e["to"]) for e in recorded] == [
        ("bootstrap", None, "1"),
        ("manual", "1", "2"),
        ("rollback", "2", "1"),
    ]
    assert recorded[1]["reason"] == "try the copy"
    assert recorded[1]["ci"] == "https://github.com/o/r/actions/runs/42"

    code, out, _ = champion_cli(capsys, champion_store, "rollback", "--reason", "undo the hand move")
    assert (code, alias_of(champion_store)) == (0, "1")  # the external move counts as a champion too


@pytest.mark.mlflow
def test_rollback_and_promote_refuse_a_version_that_would_not_serve(
    champion_store: Store, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    failed = add_version(champion_store, status="FAILED", copy_run=False)
    no_manifests = add_version(champion_store, copy_run=False)
    broken_model = add_version(champion_store, source=(tmp_path / "nowhere").as_uri())
    deleted = add_version(champion_store, status="FINISHED", copy_run=False)
    run_of_deleted = champion_store.client().get_model_version(EXPERIMENT, deleted).run_id
    champion_store.client().delete_run(run_of_deleted)
    before = history_tags(champion_store)

    cases = {
        ("rollback", "--to", "99"): f"{EXPERIMENT} v99 does not exist; its versions are 1, 2, 3, 4, 5",
        ("rollback", "--to", failed): "which ended FAILED: its session failed or was killed",
        ("promote", "--version", no_manifests): "has no fold manifests (manifests/*.json)",
        ("promote", "--version", broken_model): f"the model of {EXPERIMENT} v{broken_model} does not load here (",
        ("rollback", "--to", deleted): f"which is deleted; restore it (mlflow runs restore --run-id {run_of_deleted})",
    }
    for argv, fragment in cases.items():
        code, out, err = champion_cli(capsys, champion_store, *argv, "--reason", "r")
        assert (code, out) == (1, ""), (argv, out, err)
        assert err.startswith("forecast-mlflow champion: error: "), (argv, err)
        assert fragment in err, (argv, err)
        assert err.count("\n") == 1
        assert "Traceback" not in err

    assert alias_of(champion_store) == "1"
    assert history_tags(champion_store) == before  # a refusal records nothing

    for argv in (("promote", "--version", "1"), ("promote", "--reason", "r"), ("rollback", "--to", "0")):
        code, _, err = champion_cli(capsys, champion_store, *argv)
        assert code == 2, (argv, err)
    assert "say why with --reason TEXT" in champion_cli(capsys, champion_store, "promote", "--version", "1")[2]
    code, _, err = champion_cli(capsys, champion_store, "show", "--model", "nope")
    assert code == 1
    assert f"no registered model 'nope' in {champion_store.uri}; registered models: {EXPERIMENT}" in err


@pytest.mark.mlflow
def test_best_ranks_versions_by_the_whole_backtest_not_by_the_last_fold(
    empty_store: Store, capsys: pytest.CaptureFixture[str]
) -> None:
    """The guide's get_best_run ordered by a stepped metric: MLflow ranks that by its last step only."""
    from mlflow.entities import Metric

    from pytest_forecast_mlflow.tracking.registry import rank_versions

    client = empty_store.client()
    experiment_id = client.create_experiment("ranked", artifact_location=(empty_store.db.parent / "a").as_uri())
    client.create_registered_model("ranked")
    folds = {"steady": [1.0, 1.0, 1.0, 1.0], "lucky-last": [5.0, 5.0, 5.0, 0.5], "unmeasured": []}
    for name, values in folds.items():
        run_id = client.create_run(experiment_id, run_name=name).info.run_id
        metrics = [Metric("30d/rmse", v, 0, step) for step, v in enumerate(values)]
        if values:
            metrics.append(Metric("30d/rmse_mean", sum(values) / len(values), 0, 0))
        client.log_batch(run_id, metrics=metrics)
        client.set_terminated(run_id)
        client.create_model_version("ranked", f"runs:/{run_id}/model", run_id=run_id, tags={"forecast.verdict": "pass"})

    # what the guide did: the "best" run is the one whose last fold happened to be best
    guide = client.search_runs([experiment_id], order_by=["metrics.`30d/rmse` ASC"], max_results=1)
    assert guide[0].info.run_name == "lucky-last"

    ranked = rank_versions(client, "ranked", "30d/rmse_mean")
    assert [(r.version, r.value) for r in ranked] == [("1", 1.0), ("2", 3.875), ("3", None)]

    code, out, err = champion_cli(capsys, empty_store, "best", "--model", "ranked", "--metric", "30d/rmse_mean")
    assert (code, err) == (0, ""), err
    assert [line.split()[:3] for line in out.splitlines()[2:]] == [
        ["1", "v1", "1.000"],
        ["2", "v2", "3.875"],
        ["-", "v3", "-"],
    ]
    code, out, err = champion_cli(capsys, empty_store, "best", "--model", "ranked", "--metric", "30d/rmse")
    assert (code, out) == (2, "")
    assert "30d/rmse is logged once per fold (step = fold)" in err
    assert "e.g. 30d/rmse_mean" in err


@pytest.mark.mlflow
def test_the_history_survives_backup_and_restore(
    champion_store: Store, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    two = add_version(champion_store)
    assert champion_cli(capsys, champion_store, "promote", "--version", two, "--reason", "kept")[0] == 0
    artifacts = ("--artifact-root", str(tmp_path / "no-artifacts"))  # the history lives in the database
    (tmp_path / "no-artifacts").mkdir()
    assert run_cli(capsys, "backup", str(tmp_path / "bk"), "--tracking-uri", champion_store.uri, *artifacts)[0] == 0
    restored = Store(tmp_path / "restored" / "mlflow.db")
    code, _, err = run_cli(capsys, "restore", str(tmp_path / "bk"), "--tracking-uri", restored.uri)
    assert code == 0, err

    code, out, err = champion_cli(capsys, restored, "history")

    assert (code, err) == (0, ""), err
    assert [(row[3], row[7]) for row in history_rows(out)] == [("manual", "kept"), ("bootstrap", "-")]


@pytest.mark.parametrize(
    ("metric", "direction"),
    [
        ("30d/rmse_mean", "lower"),
        ("all/directional_accuracy_median", "higher"),
        ("7d/interval_score_pooled", "lower"),
        ("7d/coverage_error_mean", "lower"),
    ],
)
def test_versions_rank_each_aggregate_in_its_metrics_direction(metric: str, direction: str) -> None:
    from pytest_forecast_mlflow.tracking.registry import ranking_direction

    assert ranking_direction(metric) == direction


def test_coverage_cannot_rank_versions_and_the_message_names_what_can() -> None:
    from pytest_forecast_mlflow.tracking.registry import ranking_direction

    with pytest.raises(ValueError, match=r"best at its nominal level.*rank by 7d/coverage_error_mean or 7d/interval"):
        ranking_direction("7d/coverage_mean")
