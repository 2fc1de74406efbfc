"""PNG figures per horizon: forecasts against actuals, per-fold error against the champion, error by step.

Drawn with matplotlib's object-oriented API (``Figure`` + Agg), so no global pyplot state is touched, in
a child process while the session runs (:func:`spawn`).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .inbox import drain
from .liveness import die_with_parent
from .records import Record, sanitize


def _dates(origins: list[str]):
    import pandas as pd

    parsed = pd.to_datetime(pd.Index(origins), errors="coerce")
    return parsed if not parsed.isna().any() else np.arange(len(origins))


def _margins(fig) -> None:
    """Fixed margins in inches, room for tick labels, axis labels and the title: what ``tight_layout``
    would compute, without the extra rendering pass it takes (half of drawing a figure)."""
    width, height = fig.get_size_inches()
    fig.subplots_adjust(left=0.85 / width, right=1 - 0.2 / width, bottom=0.55 / height, top=1 - 0.35 / height)


def figures(
    record: Record, folder: Path, *, baseline=None, reference: Record | None = None, metric: str = "rmse"
) -> Iterator[Path]:
    """Write the three PNGs of one horizon into ``folder`` and yield their paths; a fourth, the coverage of
    the forecast interval by step ahead, when the model forecast one."""
    from matplotlib.figure import Figure

    label = sanitize(record.label)
    actuals = np.asarray(record.actuals, dtype=float)
    forecasts = np.asarray(record.forecasts, dtype=float)
    x = _dates(record.origins)

    fig = Figure(figsize=(10, 4), dpi=100)
    ax = fig.subplots()
    ax.plot(x, actuals[:, -1], color="black", linewidth=1, label=f"actual at origin + {record.horizon}")
    ax.plot(x, forecasts[:, -1], color="tab:blue", linewidth=1, label=f"{record.model} forecast")
    if reference is not None and len(reference.origins) == len(record.origins):
        ax.plot(
            x,
            np.asarray(reference.forecasts)[:, -1],
            color="tab:gray",
            linewidth=0.8,
            linestyle="--",
            label=f"{reference.model} forecast",
        )
    ax.set_title(f"{record.model} {record.label}: {record.horizon}-step forecast against actual, by origin")
    ax.set_xlabel("forecast origin")
    ax.set_ylabel(record.series_name or "series value")
    ax.legend(loc="best", fontsize=8)
    _margins(fig)
    path = folder / f"{label}_forecast_vs_actual.png"
    fig.savefig(path)
    yield path

    if metric not in record.fold_metrics:  # the backtest was scored without the gate metric
        metric = next(iter(record.fold_metrics))
    fig = Figure(figsize=(10, 4), dpi=100)
    ax = fig.subplots()
    ax.plot(x, record.fold_metrics[metric], color="tab:blue", linewidth=1, label=f"{record.model} (candidate)")
    if baseline is not None and metric in baseline.fold_metrics:
        index = {origin: k for k, origin in enumerate(baseline.origins)}
        paired = [baseline.fold_metrics[metric][index[o]] if o in index else np.nan for o in record.origins]
        ax.plot(x, paired, color="tab:orange", linewidth=1, label="champion")
    if reference is not None and len(reference.origins) == len(record.origins) and metric in reference.fold_metrics:
        ax.plot(
            x,
            reference.fold_metrics[metric],
            color="tab:gray",
            linewidth=0.8,
            linestyle="--",
            label=f"{reference.model}",
        )
    against = "candidate against champion" if baseline is not None else "candidate (no champion yet to compare with)"
    ax.set_title(f"{record.label}: per-fold {metric}, {against}")
    ax.set_xlabel("forecast origin")
    ax.set_ylabel(metric)
    ax.legend(loc="best", fontsize=8)
    _margins(fig)
    path = folder / f"{label}_fold_error_vs_champion.png"
    fig.savefig(path)
    yield path

    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.subplots()
    steps = np.arange(1, record.horizon + 1)
    ax.plot(steps, np.sqrt(np.mean((forecasts - actuals) ** 2, axis=0)), marker=".", label=record.model)
    if reference is not None and len(reference.origins) == len(record.origins):
        ref_errors = np.asarray(reference.forecasts) - np.asarray(reference.actuals)
        ax.plot(
            steps,
            np.sqrt(np.mean(ref_errors**2, axis=0)),
            marker=".",
            linestyle="--",
            color="tab:gray",
            label=reference.model,
        )
    ax.set_title(f"{record.label}: RMSE by step ahead")
    ax.set_xlabel("steps ahead")
    ax.set_ylabel("RMSE (pooled over folds)")
    ax.legend(loc="best", fontsize=8)
    _margins(fig)
    path = folder / f"{label}_error_by_step.png"
    fig.savefig(path)
    yield path

    if record.coverage_by_step and record.nominal is not None:
        yield coverage_figure(record, folder / f"{label}_coverage_by_step.png")


def coverage_figure(record: Record, path: Path) -> Path:
    """The interval's coverage at each step ahead (pooled over folds) against its nominal level."""
    from matplotlib.figure import Figure

    assert record.nominal is not None
    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.subplots()
    steps = np.arange(1, len(record.coverage_by_step) + 1)
    ax.plot(steps, record.coverage_by_step, marker=".", label=f"{record.model}")
    ax.axhline(record.nominal, color="black", linewidth=0.8, linestyle=":", label=f"nominal {record.nominal:.0%}")
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{record.label}: coverage of the {record.nominal:.0%} interval by step ahead")
    ax.set_xlabel("steps ahead")
    ax.set_ylabel("share of actuals inside (pooled over folds)")
    ax.legend(loc="lower left", fontsize=8)
    _margins(fig)
    fig.savefig(path)
    return path


# -- drawing in another process ------------------------------------------------------------------------
#
# Importing matplotlib and rendering a session's PNGs takes seconds of one core; a gated session spends
# the same seconds writing metrics to the store. So the drawing happens in a child process: started
# (:func:`spawn`) as soon as a candidate is known, it imports matplotlib while the tests still run, and
# draws each horizon as it is sent (:meth:`Drawing.draw`, possibly while the tests run, until
# :meth:`Drawing.finish`); the session picks the files up (:meth:`Drawing.collect`) when its candidate's
# run needs them. A horizon sent twice is drawn twice, the later drawing kept.

#: one horizon to draw: the candidate's record, the champion's folds at its label, the naive reference
Job = tuple[Record, Any, "Record | None"]


class Drawing:
    """A child process drawing the PNGs of some horizons into ``folder``, once it is sent them."""

    def __init__(self, process: subprocess.Popen[bytes], folder: Path) -> None:
        self.process = process
        self.folder = folder

    def draw(self, job: Job, metric: str) -> None:
        """Hand the child one horizon to draw (it reads them from its stdin)."""
        if self.process.stdin is None:
            raise RuntimeError("the drawing was finished already")
        try:
            pickle.dump((job, metric), self.process.stdin)
            self.process.stdin.flush()
        except OSError:  # the child died: collect() says why
            pass

    def finish(self) -> None:
        """Nothing more to draw: the child writes its list of files and ends."""
        stdin, self.process.stdin = self.process.stdin, None  # communicate() must not touch it again
        if stdin is None:
            return
        try:
            with stdin:
                pickle.dump(None, stdin)
        except OSError:
            pass

    def send(self, jobs: list[Job], metric: str) -> None:
        """Draw ``jobs``, and nothing more."""
        for job in jobs:
            self.draw(job, metric)
        self.finish()

    def collect(self, timeout: float = 300.0) -> dict[str, list[Path]]:
        """The PNGs drawn, by the model they belong to; raises with the child's error when drawing failed."""
        try:
            _, stderr = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise RuntimeError(f"drawing the plots took longer than {timeout:.0f} s") from None
        if self.process.returncode != 0:
            lines = stderr.decode(errors="replace").strip().splitlines()
            raise RuntimeError(f"drawing the plots failed: {lines[-1] if lines else f'exit {self.process.returncode}'}")
        drawn: dict[str, list[Path]] = {}
        for line in (self.folder / "drawn.txt").read_text().splitlines():
            model, _, path = line.partition("\t")
            drawn.setdefault(model, []).append(Path(path))
        return drawn

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        if self.process.stdin is not None:
            self.process.stdin.close()


def spawn(folder: Path) -> Drawing:
    """Start a child of this interpreter that imports matplotlib and then waits for its jobs; it dies with
    this process (a killed session leaves no drawing behind, its folder swept by the next: see ..scratch)."""
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p), "MPLBACKEND": "Agg"}
    process = subprocess.Popen(
        [sys.executable, "-m", __name__, str(folder), str(os.getpid())],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    return Drawing(process, folder)


def _draw(folder: Path, parent: int) -> None:
    die_with_parent(parent)
    # nothing waits for a drawing until the session's end, while the tests need the cores now: the
    # drawing yields to them (and to the tracking process) and draws in their idle time (on the main job's
    # gated rerun a small gain, 0.3 s in the paired median, within a 2-core host's variation)
    if hasattr(os, "nice"):  # POSIX
        os.nice(10)
    # read as they arrive (see ..inbox): the tracking process never waits for a drawing to finish
    jobs = drain(lambda: pickle.load(sys.stdin.buffer), "forecast-plots-inbox")  # noqa: S301 - the session's own
    import matplotlib.figure  # noqa: F401 - the slow import, done while the session still runs
    import pandas  # noqa: F401

    drawn: dict[Path, str] = {}
    while (item := jobs.get()) is not None:
        (record, baseline, reference), metric = item
        target = folder / sanitize(record.model)
        target.mkdir(exist_ok=True)
        for path in figures(record, target, baseline=baseline, reference=reference, metric=metric):
            drawn[path] = record.model
    (folder / "drawn.txt").write_text("".join(f"{model}\t{path}\n" for path, model in drawn.items()))


if __name__ == "__main__":
    _draw(Path(sys.argv[1]), int(sys.argv[2]))
