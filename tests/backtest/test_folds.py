"""The walk-forward schedule: fold positions, counts, refits, dates and the ASCII diagram.

The properties are checked against closed formulas written out here, independently of the library.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest import Fold, SpecificationError, WalkForward

FAST = settings(max_examples=100, deadline=None)


@dataclass(frozen=True)
class Case:
    spec: WalkForward
    n: int
    t0: int  # training size of the first fold when origins are laid from the start


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """Any valid specification and a series long enough for at least one fold."""
    horizon = draw(st.integers(1, 6))
    step = draw(st.integers(1, 5))
    gap = draw(st.integers(0, 4))
    window = draw(st.none() | st.integers(1, 10))
    initial = draw(st.integers(1, 15)) if window is None else draw(st.none() | st.integers(window, window + 8))
    t0 = initial if initial is not None else window
    assert t0 is not None  # initial is drawn whenever window is None
    n = draw(st.integers(t0 + gap + horizon, t0 + gap + horizon + 40))
    possible = (n - gap - horizon - t0) // step + 1
    spec = WalkForward(
        horizon=horizon,
        step=step,
        initial=initial,
        gap=gap,
        window=window,
        refit=draw(st.integers(0, 4)),
        max_folds=draw(st.none() | st.integers(1, min(possible, 6))),  # more than possible is an error
        anchor=draw(st.sampled_from(["start", "end"])),
    )
    return Case(spec, n, t0)


def possible_folds(case: Case) -> int:
    spec = case.spec
    return (case.n - spec.gap - spec.horizon - case.t0) // spec.step + 1


def expected_count(case: Case) -> int:
    return possible_folds(case) if case.spec.max_folds is None else case.spec.max_folds


@FAST
@given(cases())
def test_fold_count_matches_the_closed_formula(case: Case) -> None:
    folds = list(case.spec.folds(case.n))
    assert len(folds) == expected_count(case)
    assert case.spec.n_folds(case.n) == len(folds)
    assert [f.index for f in folds] == list(range(len(folds)))


@FAST
@given(cases(), st.integers(1, 5))
def test_max_folds_beyond_what_the_series_allows_is_an_error_naming_every_number(case: Case, extra: int) -> None:
    spec, possible = case.spec, possible_folds(case)
    asked = possible + extra
    too_many = WalkForward(**{**vars(spec), "max_folds": asked})
    with pytest.raises(SpecificationError) as excinfo:
        too_many.stops(case.n)
    message = str(excinfo.value)
    assert f"max_folds={asked}, but the series allows only {possible} fold(s)" in message
    assert f"{case.n} points with initial {case.t0}, gap {spec.gap}, horizon {spec.horizon} and step {spec.step}" in (
        message
    )
    assert f"Lower max_folds to {possible} or less" in message
    assert WalkForward(**{**vars(spec), "max_folds": possible}).n_folds(case.n) == possible


@FAST
@given(cases())
def test_train_and_test_never_overlap_and_the_gap_is_exact(case: Case) -> None:
    spec = case.spec
    for fold in spec.folds(case.n):
        assert 0 <= fold.train_start < fold.train_stop
        assert fold.test_start - fold.train_stop == spec.gap
        assert fold.test_stop - fold.test_start == spec.horizon
        assert fold.test_stop <= case.n
        assert not set(range(case.n)[fold.train]) & set(range(case.n)[fold.test])
        assert fold.origin_position == fold.train_stop - 1
        assert fold.origin == fold.train_stop - 1  # no index: origins are positions


@FAST
@given(cases())
def test_anchor_pins_the_first_or_the_last_fold(case: Case) -> None:
    spec = case.spec
    folds = list(spec.folds(case.n))
    if spec.anchor == "end":
        assert folds[-1].test_stop == case.n
    else:
        assert folds[0].train_stop == case.t0


@FAST
@given(cases())
def test_expanding_windows_grow_and_sliding_windows_keep_their_length(case: Case) -> None:
    spec = case.spec
    folds = list(spec.folds(case.n))
    stops = [f.train_stop for f in folds]
    assert all(b - a == spec.step for a, b in pairwise(stops))
    if spec.window is None:
        assert all(f.train_start == 0 for f in folds)
    else:
        assert all(f.train_stop - f.train_start == spec.window for f in folds)


@FAST
@given(cases())
def test_refits_follow_the_declared_cadence(case: Case) -> None:
    spec = case.spec
    refits = [f.refit for f in spec.folds(case.n)]
    if spec.refit == 0:
        expected = [k == 0 for k in range(len(refits))]
    else:
        expected = [k % spec.refit == 0 for k in range(len(refits))]
    assert refits == expected


@FAST
@given(cases())
def test_folds_agree_with_stops(case: Case) -> None:
    stops = case.spec.stops(case.n)
    assert stops.dtype == np.int64
    assert [f.train_stop for f in case.spec.folds(case.n)] == stops.tolist()


@FAST
@given(cases())
def test_folds_are_known_before_any_data_and_generating_them_twice_gives_the_same(case: Case) -> None:
    assert list(case.spec.folds(case.n)) == list(case.spec.folds(case.n))


def expected_row(fold: Fold, n: int) -> str:
    row = []
    for p in range(n):
        if fold.train_start <= p < fold.train_stop:
            row.append("*")
        elif fold.train_stop <= p < fold.test_start:
            row.append("-")
        elif fold.test_start <= p < fold.test_stop:
            row.append("x")
        else:
            row.append(".")
    return "".join(row)


LINE = re.compile(r"^fold +(\d+)  ([*\-x.]+)( refit)?$")


@FAST
@given(cases())
def test_diagram_marks_every_point_of_every_fold(case: Case) -> None:
    spec, n = case.spec, case.n
    folds = list(spec.folds(n))
    header, *lines = spec.diagram(n).splitlines()
    assert header == f"{len(folds)} folds over {n} points"
    assert len(lines) == len(folds)
    for fold, line in zip(folds, lines, strict=True):
        match = LINE.match(line)
        assert match, line
        assert int(match.group(1)) == fold.index
        assert match.group(2) == expected_row(fold, n)
        assert bool(match.group(3)) == fold.refit


def test_diagram_worked_example_from_the_docstring() -> None:
    spec = WalkForward(horizon=3, step=2, initial=6, gap=1)
    assert spec.diagram(14) == "\n".join(
        [
            "3 folds over 14 points",
            "fold 0  ******-xxx.... refit",
            "fold 1  ********-xxx.. refit",
            "fold 2  **********-xxx refit",
        ]
    )


def test_diagram_of_a_sliding_window_fit_once() -> None:
    spec = WalkForward(horizon=2, step=3, window=4, refit=0)
    assert spec.diagram(12) == "\n".join(
        [
            "3 folds over 12 points",
            "fold 0  ****xx...... refit",
            "fold 1  ...****xx...",
            "fold 2  ......****xx",
        ]
    )


def test_diagram_of_a_long_series_is_drawn_to_scale() -> None:
    spec = WalkForward(horizon=20, step=50, initial=100)
    header, *lines = spec.diagram(300, width=30).splitlines()
    assert header == "4 folds over 300 points, 1 char = 10 points"
    rows = [match.group(2) for match in map(LINE.match, lines) if match]
    assert len(rows) == len(lines), lines
    assert rows[0] == "*" * 10 + "x" * 2 + "." * 18
    assert rows[-1] == "*" * 25 + "x" * 2 + "." * 3


def test_a_scaled_diagram_marks_every_cell_a_range_touches_with_the_gap_and_test_on_top() -> None:
    # 3 points per cell; fold 0 trains on 0..6, skips 7..8 and scores 9..12: cell 2 holds train and gap
    spec = WalkForward(horizon=4, gap=2, initial=7, step=10)
    assert spec.diagram(30, width=10) == "\n".join(
        [
            "2 folds over 30 points, 1 char = 3 points",
            "fold 0  **-xx..... refit",
            "fold 1  *****-xx.. refit",
        ]
    )


# -- dates --------------------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(
    n=st.integers(10, 60),
    offset_days=st.integers(0, 80),
    horizon=st.integers(1, 3),
    gap=st.integers(0, 2),
)
def test_a_date_initial_trains_the_first_fold_on_every_point_dated_on_or_before_it(
    n: int, offset_days: int, horizon: int, gap: int
) -> None:
    index = pd.bdate_range("2024-01-01", periods=n)  # weekends missing: cut-offs may fall between dates
    cutoff = index[0] + pd.Timedelta(days=offset_days)
    on_or_before = int(sum(date <= cutoff for date in index))
    spec = WalkForward(horizon=horizon, initial=str(cutoff.date()), gap=gap)
    if on_or_before + gap + horizon > n:
        with pytest.raises(SpecificationError, match=f"series has {n} points"):
            spec.stops(n, index)
        return
    first = next(spec.folds(n, index))
    assert first.train_start == 0
    assert first.train_stop == on_or_before
    assert first.origin == index[on_or_before - 1]
    assert first.origin <= cutoff


def test_date_origins_label_each_fold_with_its_last_training_date() -> None:
    index = pd.date_range("2024-01-01", periods=10)
    folds = list(WalkForward(horizon=2, initial=pd.Timestamp("2024-01-05"), step=3).folds(10, index))
    assert [f.origin for f in folds] == [pd.Timestamp("2024-01-05"), pd.Timestamp("2024-01-08")]


def test_an_initial_date_before_the_first_observation_is_rejected() -> None:
    index = pd.date_range("2024-01-10", periods=20)
    spec = WalkForward(horizon=1, initial="2024-01-09")
    with pytest.raises(SpecificationError, match=r"2024-01-09 is before the first observation \(2024-01-10\)"):
        spec.stops(20, index)


def test_an_initial_date_needs_a_datetime_index() -> None:
    with pytest.raises(SpecificationError, match="no DatetimeIndex; pass a count of points"):
        WalkForward(horizon=1, initial="2024-01-05").stops(20)


@pytest.mark.parametrize(
    ("initial", "message"),
    [
        ("notadate", r"got 'notadate', which is not a date \(Unknown datetime string format"),
        ("2016-13-01", r"got '2016-13-01', which is not a date \(month must be in 1..12"),
        ("500", r"got '500', which is not a date .*; for a count write initial=500 without quotes"),
        ("NaT", r"got 'NaT', which parses as no date \(NaT\)"),
        (5.5, r"got 5.5 \(float\)"),
    ],
)
def test_an_initial_that_is_neither_a_count_nor_a_date_is_rejected_when_the_spec_is_made(
    initial: Any, message: str
) -> None:
    accepted = r"initial must be a whole number of points \(e.g. 500\) or a date such as 2016-01-04, "
    with pytest.raises(SpecificationError, match=accepted + message):
        WalkForward(horizon=1, initial=initial)


@pytest.mark.parametrize("initial", ["2016-01-04", "20160104", pd.Timestamp("2016-01-04"), np.datetime64("2016-01-04")])
def test_every_spelling_of_a_date_is_an_initial_date(initial: str | pd.Timestamp | np.datetime64) -> None:
    index = pd.bdate_range("2015-12-01", periods=60)
    assert WalkForward(horizon=1, initial=initial).initial_size(60, index) == 25  # business days 2015-12-01..2016-01-04


def test_an_initial_date_on_an_empty_series_says_the_series_is_empty() -> None:
    with pytest.raises(SpecificationError, match="initial date 2016-01-04 cannot be placed: the series is empty"):
        WalkForward(horizon=1, initial="2016-01-04").stops(0, pd.DatetimeIndex([]))


def test_an_initial_date_leaving_fewer_points_than_the_window_is_rejected() -> None:
    index = pd.date_range("2024-01-01", periods=20)
    spec = WalkForward(horizon=1, initial="2024-01-03", window=5)
    with pytest.raises(SpecificationError, match=r"leaves 3 training points, fewer than the sliding window \(5\)"):
        spec.stops(20, index)


# -- bad specifications ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"horizon": 0, "initial": 5}, "horizon must be a whole number >= 1, got 0"),
        ({"horizon": 1, "step": 0, "initial": 5}, "step must be a whole number >= 1, got 0"),
        ({"horizon": 1, "step": -2, "initial": 5}, "step must be a whole number >= 1, got -2"),
        ({"horizon": 1.5, "initial": 5}, "horizon must be a whole number >= 1, got 1.5"),
        ({"horizon": 1, "initial": 5, "gap": -1}, "gap must be a whole number >= 0, got -1"),
        ({"horizon": 1, "window": 0}, r"window must be None \(expanding\) or a whole number >= 1, got 0"),
        ({"horizon": 1, "initial": 5, "refit": -1}, "refit must be a whole number >= 0"),
        ({"horizon": 1, "initial": 5, "max_folds": 0}, "max_folds must be None or a whole number >= 1, got 0"),
        ({"horizon": 1, "initial": 5, "anchor": "middle"}, "anchor must be 'start' or 'end', got 'middle'"),
        ({"horizon": 1}, "initial is required with an expanding window"),
        ({"horizon": 1, "initial": 0}, "initial must be >= 1 point, got 0"),
        ({"horizon": 1, "initial": 3, "window": 5}, r"initial \(3\) is shorter than the sliding window \(5\)"),
    ],
)
def test_bad_specifications_are_rejected_naming_the_argument(kwargs: dict, message: str) -> None:
    with pytest.raises(SpecificationError, match=message):
        WalkForward(**kwargs)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(SpecificationError, match="horizon must.*step must"):
        WalkForward(horizon=0, step=0, initial=5)


def test_a_series_too_short_names_every_number_and_the_fix() -> None:
    spec = WalkForward(horizon=30, initial=1000, gap=1)
    with pytest.raises(SpecificationError) as excinfo:
        spec.stops(900)
    message = str(excinfo.value)
    assert "series has 900 points" in message
    assert "initial 1000 + gap 1 + horizon 30 needs at least 1031" in message
    assert "longer series or a smaller initial/horizon" in message


def test_a_series_exactly_long_enough_gives_one_fold() -> None:
    spec = WalkForward(horizon=30, initial=1000, gap=1)
    assert [(f.train_stop, f.test_start, f.test_stop) for f in spec.folds(1031)] == [(1000, 1001, 1031)]


def test_as_params_is_flat_strings() -> None:
    params = WalkForward(horizon=5, step=2, initial=10, window=None, refit=0).as_params()
    assert params == {
        "horizon": "5",
        "step": "2",
        "initial": "10",
        "gap": "0",
        "window": "expanding",
        "refit": "once",
        "max_folds": "None",
        "anchor": "start",
    }
