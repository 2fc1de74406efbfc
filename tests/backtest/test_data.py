"""Loading and validating series: every bad input is refused with the rows at fault and the fix."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest import DataError, fingerprint, load_series

USDCLP = Path("/work/shared/data/usdclp_daily.csv")


@pytest.fixture
def csv(tmp_path: Path):
    """Write CSV text to a file and return its path."""

    def write(text: str) -> Path:
        path = tmp_path / "series.csv"
        path.write_text(text)
        return path

    return write


GOOD = "date,value\n2024-01-01,1.5\n2024-01-02,-2.25\n2024-01-04,3\n"


def test_a_good_csv_loads_as_a_sorted_float_series(csv) -> None:
    series = load_series(csv(GOOD))
    assert series.tolist() == [1.5, -2.25, 3.0]  # negative values are allowed: the library is generic
    assert series.dtype == np.float64
    assert isinstance(series.index, pd.DatetimeIndex)
    assert series.index.name == "date"
    assert series.name == "value"
    assert list(series.index) == [pd.Timestamp("2024-01-01"), pd.Timestamp("2024-01-02"), pd.Timestamp("2024-01-04")]


def test_a_csv_with_other_column_names_loads_when_told_which(csv) -> None:
    series = load_series(csv("day,close\n2024-01-01,1\n2024-01-02,2\n"), date_column="day", value_column="close")
    assert series.tolist() == [1.0, 2.0]
    assert series.name == "close"


def test_series_and_dataframe_round_trip(csv, tmp_path: Path) -> None:
    from_csv = load_series(csv(GOOD), name="usd")
    assert from_csv.name == "usd"
    frame = from_csv.rename("value").reset_index()
    pd.testing.assert_series_equal(load_series(frame), from_csv.rename("value"))
    pd.testing.assert_series_equal(load_series(from_csv), from_csv)
    again = tmp_path / "again.csv"
    from_csv.rename("value").to_csv(again)
    pd.testing.assert_series_equal(load_series(again), from_csv.rename("value"))


def test_loading_copies_a_series_instead_of_aliasing_it() -> None:
    original = pd.Series([1.0, 2.0], index=pd.to_datetime(["2024-01-01", "2024-01-02"]))
    loaded = load_series(original)
    loaded.iloc[0] = 99.0
    assert original.iloc[0] == 1.0


def test_compact_dates_are_read_as_dates_not_as_numbers(csv) -> None:
    series = load_series(csv("date,value\n20240130,1\n20240131,2\n20240201,3\n"))
    assert list(series.index) == list(pd.to_datetime(["2024-01-30", "2024-01-31", "2024-02-01"]))


# -- bad input: one row per case -------------------------------------------------------------------------


@dataclass(frozen=True)
class Csv:
    """CSV text, written to a file whose path is what ``load_series`` is given."""

    text: str


BAD_INPUTS = [
    # (source, fragments the message contains, pattern it matches; "{path}" stands for the file written)
    pytest.param(
        Csv("date,value\n2024-01-01,1\n2024-01-02,\n2024-01-03,3\n2024-01-04,\n"),
        ["missing (NaN) value(s) at 2024-01-02, 2024-01-04 (line(s) 3, 5)", "drop or fill those rows"],
        None,
        id="a-missing-value-names-its-date-and-line",
    ),
    pytest.param(
        pd.DataFrame({"date": ["2024-01-01", "2024-01-02"], "value": [1.0, np.nan]}),
        [],
        r"missing \(NaN\) value\(s\) at 2024-01-02 .*drop or fill",
        id="a-nan-in-a-frame-names-its-date",
    ),
    *[
        pytest.param(
            Csv(f"date,value\n2024-01-01,1\n2024-01-02,2\n2024-01-03,{text}\n"),
            ["infinite value(s) at 2024-01-03 (line(s) 4)", "drop or fill those rows"],
            None,
            id=f"an-infinite-value-names-its-date-and-line/{text}",
        )
        for text in ["inf", "-inf"]
    ],
    pytest.param(
        Csv("date,value\n2024-01-01,1\n2024-01-02,$2\n2024-01-03,7\n2024-01-04,abc\n"),
        ["non-numeric value(s) at line(s) 3, 5 ($2, abc)", "every value must be a number"],
        None,
        id="a-non-numeric-value-names-its-line-and-text",
    ),
    *[
        pytest.param(
            Csv(f"date,value\n2024-01-01,1\n2024-01-02,{text}\n"),
            [],
            r"missing \(NaN\) value\(s\) at 2024-01-02 \(line\(s\) 3\)",
            id=f"a-written-out-missing-value-is-reported-as-missing-naming-its-line/{text!r}",
        )
        for text in ["NaN", "nan", "n/a", "NA", "null", ""]
    ],
    pytest.param(
        Csv("date,value\n2024-01-01,1\n2024-01-02,1,5\n2024-01-03,2\n"),
        [
            "Expected 2 fields in line 3, saw 3",
            "every row must hold one date and one value (quote a value written with a decimal comma)",
        ],
        None,
        id="a-row-with-an-extra-field-names-its-line-and-the-fix",
    ),
    pytest.param(
        Csv("date,value\n" + "".join(f"2024-01-{day:02d},x\n" for day in range(1, 10))),
        [],
        r"line\(s\) 2, 3, 4, 5, 6 and 4 more",
        id="many-bad-lines-are-summarised",
    ),
    pytest.param(
        Csv("date,value\n2024-01-01,1\n2024-01-03,2\n2024-01-02,3\n2024-01-04,4\n"),
        ["dates are not sorted: 2024-01-02 (line(s) 4) come after a later date", "sort the rows by date"],
        None,
        id="unsorted-dates-name-the-rows-out-of-order",
    ),
    pytest.param(
        Csv("date,value\n2024-01-01,1\n2024-01-02,2\n2024-01-02,3\n2024-01-03,4\n"),
        ["duplicate date(s) 2024-01-02 (line(s) 4)", "keep one row per date"],
        None,
        id="duplicate-dates-name-the-repeated-rows",
    ),
    *[
        pytest.param(
            Csv(text),
            [],
            r"^{path}: the file is empty; expected a header 'date,value' and rows",
            id=f"an-empty-file-asks-for-a-header-and-rows/{text!r}",
        )
        for text in ["", "\n\n"]
    ],
    pytest.param(
        Csv("date,value\n"),
        [],
        r"^{path}: the series has no rows; add at least one row with a 'date'",
        id="a-header-only-file-says-it-has-no-rows",
    ),
    pytest.param("/nonexistent/nowhere.csv", [], "nowhere.csv: no such file", id="a-missing-file-is-named"),
    *[
        pytest.param(
            Csv(f"{header}\n2024-01-01,1\n"),
            [
                f"missing column(s) {missing}; found {header.split(',')}",
                "Rename the columns to 'date' and 'value' or pass date_column=/value_column=",
            ],
            None,
            id=f"missing-or-misnamed-columns-are-named-with-the-fix/{header}",
        )
        for header, missing in [("date,price", "'value'"), ("Date,value", "'date'"), ("when,price", "'date', 'value'")]
    ],
    pytest.param(
        Csv("date,value\n2024-01-01,1\n2024-02-30,2\nyesterday,3\n,4\n"),
        ["unparseable date(s) at line(s) 3, 4, 5 (2024-02-30, yesterday, )", "use ISO dates such as 2024-01-31"],
        None,
        id="unparseable-dates-name-their-lines-and-text",
    ),
    pytest.param(
        [1.0, 2.0],
        [],
        "cannot load a series from list; pass a CSV path, a Series or a DataFrame",
        id="an-unsupported-source-says-what-is-accepted",
    ),
]


@pytest.mark.parametrize(("source", "fragments", "pattern"), BAD_INPUTS)
def test_bad_input_is_refused_naming_the_cause_and_the_fix(
    csv, source: Any, fragments: list[str], pattern: str | None
) -> None:
    if isinstance(source, Csv):
        source = csv(source.text)
    with pytest.raises(DataError) as excinfo:
        load_series(source)
    message = str(excinfo.value)
    for fragment in fragments:
        assert fragment in message
    if pattern is not None:
        excinfo.match(pattern.replace("{path}", re.escape(str(source))))


# -- fingerprint ------------------------------------------------------------------------------------------


def dated(values, start: str = "2020-01-01") -> pd.Series:
    return pd.Series(np.asarray(values, dtype=float), index=pd.date_range(start, periods=len(values)))


def test_fingerprint_names_length_and_dates() -> None:
    print_ = fingerprint(dated([1.0, 2.0, 3.0]))
    assert (print_.length, print_.first, print_.last) == (3, "2020-01-01", "2020-01-03")
    assert len(print_.sha256) == 64
    assert print_.as_params() == {
        "data.sha256": print_.sha256,
        "data.length": "3",
        "data.first": "2020-01-01",
        "data.last": "2020-01-03",
    }


def test_the_same_series_has_the_same_fingerprint_however_it_was_loaded(csv) -> None:
    from_csv = load_series(csv(GOOD))
    from_frame = load_series(
        pd.DataFrame({"date": ["2024-01-01", "2024-01-02", "2024-01-04"], "value": [1.5, -2.25, 3.0]})
    )
    assert fingerprint(from_csv) == fingerprint(from_frame) == fingerprint(from_csv.copy())


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_the_fingerprint_does_not_depend_on_the_date_resolution(unit: Literal["s", "ms", "us", "ns"]) -> None:
    series = dated([1.0, 2.0, 3.0])
    assert isinstance(series.index, pd.DatetimeIndex)
    assert fingerprint(series.set_axis(series.index.as_unit(unit))) == fingerprint(series)


@settings(max_examples=50, deadline=None)
@given(
    values=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=30),
    data=st.data(),
)
def test_the_fingerprint_changes_with_any_one_value_or_date(values: list[float], data: st.DataObject) -> None:
    series = dated(values)
    position = data.draw(st.integers(0, len(values) - 1))
    changed = series.copy()
    changed.iloc[position] = data.draw(st.floats(-1e6, 1e6).filter(lambda v: v != values[position]))
    assert fingerprint(changed).sha256 != fingerprint(series).sha256
    later = pd.to_timedelta((np.arange(len(values)) >= position).astype(int), unit="D")  # dates from here on
    moved = series.set_axis(series.index + later)
    assert fingerprint(moved).sha256 != fingerprint(series).sha256


@pytest.mark.parametrize(
    ("series", "first", "last"),
    [
        (pd.Series([1.0, 2.0, 3.0]), "0", "2"),
        (pd.Series([1.0, 2.0, 3.0], index=pd.RangeIndex(100, 103)), "100", "102"),
        (pd.Series([1.0, 2.0, 3.0], index=["a", "b", "c"]), "a", "c"),
    ],
)
def test_a_series_without_dates_is_named_by_its_index_labels_never_by_invented_dates(
    series: pd.Series, first: str, last: str
) -> None:
    print_ = fingerprint(series)
    assert (print_.length, print_.first, print_.last) == (3, first, last)
    assert "1970" not in str(print_.as_params())


def test_positions_and_dates_never_share_a_fingerprint() -> None:
    values = [1.0, 2.0, 3.0]
    epoch = pd.Series(values, index=pd.to_datetime([0, 1, 2], unit="ns"))  # dates whose nanoseconds are 0, 1, 2
    assert fingerprint(pd.Series(values)).sha256 != fingerprint(epoch).sha256
    assert fingerprint(pd.Series(values)).sha256 != fingerprint(pd.Series(values, index=[1, 2, 3])).sha256


def test_an_empty_series_has_no_fingerprint() -> None:
    with pytest.raises(DataError, match="cannot fingerprint an empty series"):
        fingerprint(pd.Series([], dtype=float))


# -- the real series -------------------------------------------------------------------------------------------


@pytest.mark.skipif(not USDCLP.is_file(), reason=f"the USD/CLP series is not available at {USDCLP}")
def test_the_usdclp_series_loads_whole() -> None:
    series = load_series(USDCLP)
    assert len(series) == 6572
    assert series.index[0] == pd.Timestamp("2000-01-03")
    assert series.index[-1] == pd.Timestamp("2026-05-18")
    assert series.index.is_monotonic_increasing
    assert series.index.is_unique
    assert np.isfinite(series.to_numpy()).all()
    assert (series > 0).all()  # an exchange rate
    print_ = fingerprint(series)
    assert (print_.length, print_.first, print_.last) == (6572, "2000-01-03", "2026-05-18")
