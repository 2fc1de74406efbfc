"""Loading and validating series: every bad input is refused with the rows at fault and the fix."""

from __future__ import annotations

from pathlib import Path

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


# -- one test per bad input -------------------------------------------------------------------------------


def test_a_missing_value_names_its_date_and_line(csv) -> None:
    with pytest.raises(DataError) as excinfo:
        load_series(csv("date,value\n2024-01-01,1\n2024-01-02,\n2024-01-03,3\n2024-01-04,\n"))
    message = str(excinfo.value)
    assert "missing (NaN) value(s) at 2024-01-02, 2024-01-04 (line(s) 3, 5)" in message
    assert "drop or fill those rows" in message


def test_a_nan_in_a_frame_names_its_date() -> None:
    frame = pd.DataFrame({"date": ["2024-01-01", "2024-01-02"], "value": [1.0, np.nan]})
    with pytest.raises(DataError, match=r"missing \(NaN\) value\(s\) at 2024-01-02 .*drop or fill"):
        load_series(frame)


@pytest.mark.parametrize("text", ["inf", "-inf"])
def test_an_infinite_value_names_its_date_and_line(csv, text: str) -> None:
    with pytest.raises(DataError) as excinfo:
        load_series(csv(f"date,value\n2024-01-01,1\n2024-01-02,2\n2024-01-03,{text}\n"))
    message = str(excinfo.value)
    assert "infinite value(s) at 2024-01-03 (line(s) 4)" in message
    assert "drop or fill those rows" in message


def test_a_non_numeric_value_names_its_line_and_text(csv) -> None:
    with pytest.raises(DataError) as excinfo:
        load_series(csv("date,value\n2024-01-01,1\n2024-01-02,$2\n2024-01-03,7\n2024-01-04,abc\n"))
    message = str(excinfo.value)
    assert "non-numeric value(s) at line(s) 3, 5 ($2, abc)" in message
    assert "every value must be a number" in message


@pytest.mark.parametrize("text", ["NaN", "nan", "n/a", "NA", "null", ""])
def test_a_written_out_missing_value_is_reported_as_missing_naming_its_line(csv, text: str) -> None:
    with pytest.raises(DataError, match=r"missing \(NaN\) value\(s\) at 2024-01-02 \(line\(s\) 3\)"):
        load_series(csv(f"date,value\n2024-01-01,1\n2024-01-02,{text}\n"))


def test_a_row_with_an_extra_field_names_its_line_and_the_fix(csv) -> None:
    with pytest.raises(DataError) as excinfo:
        load_series(csv("date,value\n2024-01-01,1\n2024-01-02,1,5\n2024-01-03,2\n"))
    message = str(excinfo.value)
    assert "Expected 2 fields in line 3, saw 3" in message
    assert "every row must hold one date and one value (quote a value written with a decimal comma)" in message


def test_compact_dates_are_read_as_dates_not_as_numbers(csv) -> None:
    series = load_series(csv("date,value\n20240130,1\n20240131,2\n20240201,3\n"))
    assert list(series.index) == list(pd.to_datetime(["2024-01-30", "2024-01-31", "2024-02-01"]))


def test_many_bad_lines_are_summarised(csv) -> None:
    rows = "".join(f"2024-01-{day:02d},x\n" for day in range(1, 10))
    with pytest.raises(DataError, match=r"line\(s\) 2, 3, 4, 5, 6 and 4 more"):
        load_series(csv("date,value\n" + rows))


def test_unsorted_dates_name_the_rows_out_of_order(csv) -> None:
    with pytest.raises(DataError) as excinfo:
        load_series(csv("date,value\n2024-01-01,1\n2024-01-03,2\n2024-01-02,3\n2024-01-04,4\n"))
    message = str(excinfo.value)
    assert "dates are not sorted: 2024-01-02 (line(s) 4) come after a later date" in message
    assert "sort the rows by date" in message


def test_duplicate_dates_name_the_repeated_rows(csv) -> None:
    with pytest.raises(DataError) as excinfo:
        load_series(csv("date,value\n2024-01-01,1\n2024-01-02,2\n2024-01-02,3\n2024-01-03,4\n"))
    message = str(excinfo.value)
    assert "duplicate date(s) 2024-01-02 (line(s) 4)" in message
    assert "keep one row per date" in message


@pytest.mark.parametrize("text", ["", "\n\n"])
def test_an_empty_file_asks_for_a_header_and_rows(csv, text: str) -> None:
    path = csv(text)
    with pytest.raises(DataError, match=rf"^{path}: the file is empty; expected a header 'date,value' and rows"):
        load_series(path)


def test_a_header_only_file_says_it_has_no_rows(csv) -> None:
    path = csv("date,value\n")
    with pytest.raises(DataError, match=rf"^{path}: the series has no rows; add at least one row with a 'date'"):
        load_series(path)


def test_a_missing_file_is_named() -> None:
    with pytest.raises(DataError, match="nowhere.csv: no such file"):
        load_series("/nonexistent/nowhere.csv")


@pytest.mark.parametrize(
    ("header", "missing"),
    [("date,price", "'value'"), ("Date,value", "'date'"), ("when,price", "'date', 'value'")],
)
def test_missing_or_misnamed_columns_are_named_with_the_fix(csv, header: str, missing: str) -> None:
    with pytest.raises(DataError) as excinfo:
        load_series(csv(f"{header}\n2024-01-01,1\n"))
    message = str(excinfo.value)
    assert f"missing column(s) {missing}; found {header.split(',')}" in message
    assert "Rename the columns to 'date' and 'value' or pass date_column=/value_column=" in message


def test_unparseable_dates_name_their_lines_and_text(csv) -> None:
    with pytest.raises(DataError) as excinfo:
        load_series(csv("date,value\n2024-01-01,1\n2024-02-30,2\nyesterday,3\n,4\n"))
    message = str(excinfo.value)
    assert "unparseable date(s) at line(s) 3, 4, 5 (2024-02-30, yesterday, )" in message
    assert "use ISO dates such as 2024-01-31" in message


def test_an_unsupported_source_says_what_is_accepted() -> None:
    with pytest.raises(DataError, match="cannot load a series from list; pass a CSV path, a Series or a DataFrame"):
        load_series([1.0, 2.0])


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
def test_the_fingerprint_does_not_depend_on_the_date_resolution(unit: str) -> None:
    series = dated([1.0, 2.0, 3.0])
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
