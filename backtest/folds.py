"""The walk-forward specification and the folds it yields.

A :class:`WalkForward` describes *where* a model is evaluated; it never touches data. Given only the
length of a series (and its dates when ``initial`` is a date), it yields :class:`Fold` values, so the
fold count and every origin are known before any model is fit.

Positions are integers into the series. For a fold whose training data ends at position ``t``
(exclusive), the model may see ``[t - window, t)`` (or ``[0, t)`` when the window expands), and is
scored on ``[t + gap, t + gap + horizon)``. The *origin* is the last point the model saw, ``t - 1``.

Expanding window, ``initial=6, step=2, gap=1, horizon=3`` on 14 points::

    fold 0  ******-xxx....
    fold 1  ********-xxx..
    fold 2  **********-xxx

``*`` training data, ``-`` gap (embargo), ``x`` scored forecasts, ``.`` unseen.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, TypeGuard

import numpy as np
import pandas as pd

__all__ = ["Fold", "SpecificationError", "WalkForward"]


class SpecificationError(ValueError):
    """A walk-forward specification that cannot produce a fold on the given series."""


@dataclass(frozen=True)
class Fold:
    """One forecast origin: half-open ``[start, stop)`` position ranges and whether the model is refit."""

    index: int
    train_start: int
    train_stop: int
    test_start: int
    test_stop: int
    refit: bool
    origin: pd.Timestamp | int = field(default=0)

    @property
    def train(self) -> slice:
        return slice(self.train_start, self.train_stop)

    @property
    def test(self) -> slice:
        return slice(self.test_start, self.test_stop)

    @property
    def origin_position(self) -> int:
        """Position of the last observation the model saw."""
        return self.train_stop - 1


@dataclass(frozen=True)
class WalkForward:
    """A walk-forward (rolling-origin) evaluation schedule.

    Parameters
    ----------
    horizon:
        Steps ahead scored at every origin (``>= 1``).
    step:
        Positions between consecutive origins (``>= 1``).
    initial:
        Training size of the first fold: a count of points, or a date (the first fold trains on every
        point dated on or before it). Defaults to ``window`` for a sliding window.
    gap:
        Points left out between the last training point and the first scored point (embargo).
    window:
        Sliding-window length; ``None`` lets the training window expand.
    refit:
        Refit the model every ``refit`` folds; ``0`` fits once, on the first fold.
    max_folds:
        Keep this many folds: the first ones when ``anchor="start"``, the last ones when
        ``anchor="end"``. Asking for more folds than the series allows is an error, not a silent
        reduction: the message says how many the series allows.
    anchor:
        ``"start"`` lays origins forward from ``initial``; ``"end"`` lays them backward so that the
        last fold's scored range ends on the last point of the series.
    """

    horizon: int
    step: int = 1
    initial: int | str | datetime.date | np.datetime64 | None = None
    gap: int = 0
    window: int | None = None
    refit: int = 1
    max_folds: int | None = None
    anchor: Literal["start", "end"] = "start"

    def __post_init__(self) -> None:
        problems = []
        for name in ("horizon", "step"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                problems.append(f"{name} must be a whole number >= 1, got {value!r}")
        if not _is_int(self.gap) or self.gap < 0:
            problems.append(f"gap must be a whole number >= 0, got {self.gap!r}")
        if self.window is not None and (not _is_int(self.window) or self.window < 1):
            problems.append(f"window must be None (expanding) or a whole number >= 1, got {self.window!r}")
        if not _is_int(self.refit) or self.refit < 0:
            problems.append(f"refit must be a whole number >= 0 (0 fits once), got {self.refit!r}")
        if self.max_folds is not None and (not _is_int(self.max_folds) or self.max_folds < 1):
            problems.append(f"max_folds must be None or a whole number >= 1, got {self.max_folds!r}")
        if self.anchor not in ("start", "end"):
            problems.append(f"anchor must be 'start' or 'end', got {self.anchor!r}")
        if self.initial is not None and not _is_int(self.initial):
            problem = _date_problem(self.initial)
            if problem:
                problems.append(problem)
        if self.initial is None and self.window is None:
            problems.append("initial is required with an expanding window (a count of points or a date)")
        if _is_int(self.initial) and self.initial < 1:
            problems.append(f"initial must be >= 1 point, got {self.initial!r}")
        if _is_int(self.initial) and self.window is not None and _is_int(self.window) and self.initial < self.window:
            problems.append(
                f"initial ({self.initial}) is shorter than the sliding window ({self.window}); "
                f"use initial >= {self.window} or leave it unset"
            )
        if problems:
            raise SpecificationError("invalid walk-forward specification: " + "; ".join(problems))

    # -- positions ---------------------------------------------------------------------------------

    def initial_size(self, n: int, index: Sequence | pd.Index | None = None) -> int:
        """Training size of the first fold on a series of ``n`` points."""
        if self.initial is None:
            assert self.window is not None
            return self.window
        if _is_int(self.initial):
            return int(self.initial)
        if index is None or not isinstance(index, pd.DatetimeIndex):
            raise SpecificationError(
                f"initial={self.initial!r} is a date, but the series has no DatetimeIndex; "
                "pass a count of points instead"
            )
        cutoff = pd.Timestamp(self.initial)
        if len(index) == 0:
            raise SpecificationError(
                f"initial date {cutoff.date()} cannot be placed: the series is empty; pass a series with dates"
            )
        size = int(index.searchsorted(cutoff, side="right"))
        if size < 1:
            raise SpecificationError(
                f"initial date {cutoff.date()} is before the first observation ({index[0].date()}); choose a later date"
            )
        if self.window is not None and size < self.window:
            raise SpecificationError(
                f"initial date {cutoff.date()} leaves {size} training points, fewer than the sliding "
                f"window ({self.window}); choose a date at least {self.window} points in"
            )
        return size

    def stops(self, n: int, index: Sequence | pd.Index | None = None) -> np.ndarray:
        """Training stop positions (exclusive) of every fold, in order."""
        t0 = self.initial_size(n, index)
        needed = t0 + self.gap + self.horizon
        if n < needed:
            first = "initial" if self.initial is not None else "window"  # the first fold trains on the window
            raise SpecificationError(
                f"series has {n} points; {first} {t0} + gap {self.gap} + horizon {self.horizon} "
                f"needs at least {needed} for one fold. Use a longer series or a smaller {first}/horizon."
            )
        last = n - self.gap - self.horizon
        count = (last - t0) // self.step + 1
        if self.max_folds is not None and self.max_folds > count:
            raise SpecificationError(
                f"max_folds={self.max_folds}, but the series allows only {count} fold(s): {n} points with "
                f"initial {t0}, gap {self.gap}, horizon {self.horizon} and step {self.step} give "
                f"({n} - {t0} - {self.gap} - {self.horizon}) // {self.step} + 1 = {count}. Lower max_folds to "
                f"{count} or less, leave it None for every fold, or use a longer series or a smaller step."
            )
        if self.anchor == "start":
            stops = t0 + self.step * np.arange(count)
            if self.max_folds is not None:
                stops = stops[: self.max_folds]
        else:
            stops = last - self.step * np.arange(count)[::-1]
            if self.max_folds is not None:
                stops = stops[-self.max_folds :]
        return stops.astype(np.int64)

    def n_folds(self, n: int, index: Sequence | pd.Index | None = None) -> int:
        """How many folds the schedule yields on a series of ``n`` points."""
        return len(self.stops(n, index))

    def folds(self, n: int, index: Sequence | pd.Index | None = None) -> Iterator[Fold]:
        """Yield the folds for a series of ``n`` points (``index`` labels the origins)."""
        stops = self.stops(n, index)
        origins = list(pd.Index(index)[stops - 1]) if index is not None else list(stops - 1)
        refits = self.refit_mask(len(stops))
        for k, (stop, origin, refit) in enumerate(zip(stops.tolist(), origins, refits.tolist())):
            yield Fold(
                index=k,
                train_start=0 if self.window is None else stop - self.window,
                train_stop=stop,
                test_start=stop + self.gap,
                test_stop=stop + self.gap + self.horizon,
                refit=refit,
                origin=origin,
            )

    def refit_mask(self, n_folds: int) -> np.ndarray:
        """Which of ``n_folds`` folds refit the model: every ``refit``-th, or only the first."""
        k = np.arange(n_folds)
        return k == 0 if self.refit == 0 else k % self.refit == 0

    def diagram(self, n: int, index: Sequence | pd.Index | None = None, width: int = 72) -> str:
        """Draw the folds as ASCII art: ``*`` train, ``-`` gap, ``x`` test, ``.`` unseen.

        Series longer than ``width`` are drawn to scale, one character per ``ceil(n / width)`` points.
        """
        scale = max(1, math.ceil(n / width))
        cells = math.ceil(n / scale)
        lines = []
        folds = list(self.folds(n, index))
        for fold in folds:
            row = ["."] * cells
            for lo, hi, mark in (
                (fold.train_start, fold.train_stop, "*"),
                (fold.train_stop, fold.test_start, "-"),
                (fold.test_start, fold.test_stop, "x"),
            ):
                for cell in range(lo // scale, (hi - 1) // scale + 1) if hi > lo else ():
                    row[cell] = mark
            refit = " refit" if fold.refit else ""
            lines.append(f"fold {fold.index:>{len(str(len(folds)))}}  {''.join(row)}{refit}")
        header = f"{len(folds)} folds over {n} points" + (f", 1 char = {scale} points" if scale > 1 else "")
        return "\n".join([header, *lines])

    def as_params(self) -> dict[str, str]:
        """The specification as flat string parameters (for experiment trackers)."""
        return {
            "horizon": str(self.horizon),
            "step": str(self.step),
            "initial": str(self.initial),
            "gap": str(self.gap),
            "window": "expanding" if self.window is None else str(self.window),
            "refit": "once" if self.refit == 0 else str(self.refit),
            "max_folds": str(self.max_folds),
            "anchor": self.anchor,
        }


def _is_int(value: object) -> TypeGuard[int | np.integer]:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _date_problem(initial: object) -> str | None:
    """Why ``initial`` (neither ``None`` nor a count) is not a usable date, or ``None`` when it is one."""
    accepted = "a whole number of points (e.g. 500) or a date such as 2016-01-04"
    if not isinstance(initial, (str, datetime.date, np.datetime64)):
        return f"initial must be {accepted}, got {initial!r} ({type(initial).__name__})"
    try:
        parsed = pd.Timestamp(initial)
    except (ValueError, TypeError, OverflowError) as exc:
        stripped = initial.strip() if isinstance(initial, str) else ""
        hint = f"; for a count write initial={stripped} without quotes" if stripped.isdigit() else ""
        return f"initial must be {accepted}, got {initial!r}, which is not a date ({exc}){hint}"
    if pd.isna(parsed):
        return f"initial must be {accepted}, got {initial!r}, which parses as no date (NaT)"
    return None
