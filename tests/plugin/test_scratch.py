"""Scratch folders: each names its writer, and a session removes only those whose writer is certainly gone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from pytest_forecast_mlflow import scratch
from pytest_forecast_mlflow.liveness import HOST_TAG, PID_TAG, writer_tags

from .conftest import process_state


@pytest.fixture
def tmp_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The temporary directory, for this test only."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def folder_of(root: Path, name: str, tags: dict[str, str] | None) -> Path:
    folder = root / name
    folder.mkdir()
    (folder / "0123.model").write_bytes(b"model")
    if tags is not None:
        (folder / scratch.WRITER_FILE).write_text(json.dumps(tags))
    return folder


def test_a_scratch_folder_names_its_writer_and_survives_its_own_sweep(tmp_root: Path) -> None:
    models, plots = scratch.make("models"), scratch.make("plots")

    assert models.parent == tmp_root
    assert models.name.startswith("forecast-models-")
    assert plots.name.startswith("forecast-plots-")
    assert json.loads((models / scratch.WRITER_FILE).read_text())[PID_TAG] == str(os.getpid())
    assert scratch.sweep() == []
    assert models.is_dir()
    assert plots.is_dir()
    with pytest.raises(ValueError, match="unknown scratch folder kind 'bundle'; one of models, plots"):
        scratch.make("bundle")


def test_only_folders_whose_writer_is_certainly_dead_are_removed(tmp_root: Path) -> None:
    finished = subprocess.Popen([sys.executable, "-c", "from pytest_forecast_mlflow.liveness import writer_tags"])
    finished.wait()
    live = subprocess.Popen(
        [sys.executable, "-c", "import json, sys, time\nfrom pytest_forecast_mlflow.liveness import writer_tags\n"
         "print(json.dumps(writer_tags()), flush=True)\nsys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert live.stdout is not None  # stdout=PIPE
        live_tags = json.loads(live.stdout.readline())
        dead_tags = {**writer_tags(), PID_TAG: str(finished.pid)}
        dead = [
            folder_of(tmp_root, "forecast-models-dead1", dead_tags),
            folder_of(tmp_root, "forecast-plots-dead2", dead_tags),
        ]
        kept = [
            folder_of(tmp_root, "forecast-models-alive", live_tags),
            folder_of(tmp_root, "forecast-models-nowriter", None),  # an older version's, or being made
            folder_of(tmp_root, "forecast-models-elsewhere", {**dead_tags, HOST_TAG: "another-host"}),
            folder_of(tmp_root, "forecast-data-dead", dead_tags),  # not a kind of ours
            folder_of(tmp_root, "my-forecast-models-dead", dead_tags),
        ]
        (tmp_root / "forecast-models-notafolder").write_text(json.dumps(dead_tags))

        removed = scratch.sweep()

        assert sorted(removed) == sorted(dead)
        assert not any(folder.exists() for folder in dead)
        assert all(folder.is_dir() for folder in kept)
        assert (tmp_root / "forecast-models-notafolder").is_file()
    finally:
        live.communicate("")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="process states are read from Linux's /proc")
def test_a_zombie_writer_is_dead(tmp_root: Path) -> None:
    # a killed session's tracking process stays a zombie where the container's init does not reap it
    ended = subprocess.Popen(
        [sys.executable, "-c", "import json\nfrom pytest_forecast_mlflow.liveness import writer_tags\n"
         "print(json.dumps(writer_tags()), flush=True)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert ended.stdout is not None  # stdout=PIPE
        tags = json.loads(ended.stdout.readline())
        for _ in range(200):  # not waited for: it stays a zombie until ended.wait()
            if process_state(ended.pid) == "Z":
                break
            time.sleep(0.05)
        else:
            raise AssertionError("the child never ended")
        folder = folder_of(tmp_root, "forecast-models-zombie", tags)

        assert scratch.sweep() == [folder]
    finally:
        ended.wait()
