"""Loading and validating the series a backtest runs on."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["DataError", "Fingerprint", "fingerprint", "load_series"]


class DataError(ValueError):
    """Input data that cannot be backtested, with the rows at fault."""


@dataclass(frozen=True)
class Fingerprint:
    """What identifies a series: a content hash, its length and its first and last dates (or index labels)."""

    sha256: str
    length: int
    first: str
    last: str

    def as_params(self) -> dict[str, str]:
        return {
            "data.sha256": self.sha256,
            "data.length": str(self.length),
            "data.first": self.first,
            "data.last": self.last,
        }


_MISSING = {"", "nan", "na", "n/a", "null", "none"}  # written-out missing values: reported as missing


def _rows(labels, limit: int = 5) -> str:
    labels = list(labels)
    shown = ", ".join(str(label) for label in labels[:limit])
    more = f" and {len(labels) - limit} more" if len(labels) > limit else ""
    return f"{shown}{more}"


def load_series(
    source: str | Path | pd.Series | pd.DataFrame,
    *,
    date_column: str = "date",
    value_column: str = "value",
    name: str | None = None,
    positive: bool = False,
) -> pd.Series:
    """Load a ``date,value`` CSV, a Series or a DataFrame into a validated float Series.

    The result has a sorted, unique ``DatetimeIndex`` and finite float values (strictly positive ones
    with ``positive=True``, as prices and exchange rates must be). Anything else raises
    :class:`DataError` naming the offending rows and how to fix them. A CSV's path is kept in
    ``series.attrs["source"]``, which experiment trackers record.
    """
    origin = "series"
    if isinstance(source, (str, Path)):
        path = Path(source)
        origin = str(path)
        if not path.is_file():
            raise DataError(f"{path}: no such file. Point the series path at a 'date,value' CSV.")
        if path.stat().st_size == 0:
            raise DataError(f"{path}: the file is empty; expected a header '{date_column},{value_column}' and rows.")
        try:
            # Both columns as text: a YYYYMMDD date read as an integer would parse as nanoseconds since 1970.
            frame = pd.read_csv(path, dtype={date_column: "string", value_column: "string"}, keep_default_na=False)
        except pd.errors.EmptyDataError:
            raise DataError(
                f"{path}: the file is empty; expected a header '{date_column},{value_column}' and rows."
            ) from None
        except pd.errors.ParserError as exc:
            raise DataError(
                f"{path}: not a '{date_column},{value_column}' CSV ({exc}); every row must hold one date and one "
                "value (quote a value written with a decimal comma)."
            ) from None
        source = frame
    if isinstance(source, pd.DataFrame):
        missing = [c for c in (date_column, value_column) if c not in source.columns]
        if missing:
            raise DataError(
                f"{origin}: missing column(s) {', '.join(map(repr, missing))}; found {list(source.columns)}. "
                f"Rename the columns to '{date_column}' and '{value_column}' or pass date_column=/value_column=."
            )
        dates = source[date_column]
        values = source[value_column]
        series = pd.Series(values.to_numpy(), index=dates.to_numpy(), name=name or value_column)
    elif isinstance(source, pd.Series):
        series = source.copy()
        if name:
            series.name = name
    else:
        raise DataError(f"cannot load a series from {type(source).__name__}; pass a CSV path, a Series or a DataFrame")
    if series.empty:
        raise DataError(
            f"{origin}: the series has no rows; add at least one row with a '{date_column}' and a '{value_column}'."
        )
    validated = _validated(series, origin, positive=positive)
    if origin != "series":
        validated.attrs["source"] = str(Path(origin).resolve())
    return validated


def _validated(series: pd.Series, origin: str, *, positive: bool = False) -> pd.Series:
    rownum = np.arange(len(series)) + 2  # 1-based file lines, after the header
    index = pd.to_datetime(pd.Index(series.index), errors="coerce", format="mixed")
    bad_dates = np.flatnonzero(pd.isna(index))
    if bad_dates.size:
        raise DataError(
            f"{origin}: unparseable date(s) at line(s) {_rows(rownum[bad_dates])} "
            f"({_rows(series.index[bad_dates])}); use ISO dates such as 2024-01-31."
        )
    raw = series.to_numpy()
    numeric = pd.to_numeric(pd.Series(raw).replace("", np.nan), errors="coerce").to_numpy(dtype=float)
    text = pd.Series(raw).astype(str).str.strip().str.lower()
    given = ~pd.isna(pd.Series(raw)).to_numpy() & ~text.isin(_MISSING).to_numpy()
    not_numeric = np.flatnonzero(np.isnan(numeric) & given)
    if not_numeric.size:
        raise DataError(
            f"{origin}: non-numeric value(s) at line(s) {_rows(rownum[not_numeric])} "
            f"({_rows(raw[not_numeric])}); every value must be a number."
        )
    checks = [("missing (NaN)", np.isnan(numeric)), ("infinite", np.isinf(numeric))]
    if positive:
        checks.append(("zero or negative", ~np.isnan(numeric) & (numeric <= 0)))
    for label, mask in checks:
        bad = np.flatnonzero(mask)
        if bad.size:
            raise DataError(
                f"{origin}: {label} value(s) at {_rows(index[bad].date)} (line(s) {_rows(rownum[bad])}); "
                "drop or fill those rows before backtesting."
            )
    if not index.is_monotonic_increasing:
        order = np.flatnonzero(np.diff(index.asi8) < 0) + 1
        raise DataError(
            f"{origin}: dates are not sorted: {_rows(index[order].date)} (line(s) {_rows(rownum[order])}) "
            "come after a later date; sort the rows by date."
        )
    duplicated = np.flatnonzero(index.duplicated())
    if duplicated.size:
        raise DataError(
            f"{origin}: duplicate date(s) {_rows(index[duplicated].date)} (line(s) {_rows(rownum[duplicated])}); "
            "keep one row per date."
        )
    return pd.Series(numeric, index=pd.DatetimeIndex(index, name="date"), name=series.name or "value")


def fingerprint(series: pd.Series) -> Fingerprint:
    """A stable identity for a validated series: sha256 over its index and its values (float64).

    A dated series hashes its dates (ns) and names its first and last dates. Any other series (a plain
    array or a ``RangeIndex``) names its first and last index labels, ``"0"`` and ``"n-1"`` for an array;
    no dates are invented for it.
    """
    if series.empty:
        raise DataError("cannot fingerprint an empty series; a backtest needs at least one point")
    digest = hashlib.sha256()
    index = series.index
    if isinstance(index, pd.DatetimeIndex):
        # Dates in nanoseconds whatever the index resolution (pandas parses to us, date_range may give ns):
        # the same dates must give the same hash.
        digest.update(np.ascontiguousarray(index.as_unit("ns").asi8, dtype="<i8").tobytes())
        first, last = str(index[0].date()), str(index[-1].date())
    else:
        digest.update(b"labels\0")  # never equal to the bytes of a dated series
        if pd.api.types.is_integer_dtype(index.dtype):
            digest.update(np.ascontiguousarray(index.to_numpy(), dtype="<i8").tobytes())
        else:
            digest.update("\0".join(map(str, index)).encode("utf-8"))
        first, last = str(index[0]), str(index[-1])
    digest.update(np.ascontiguousarray(series.to_numpy(dtype=float), dtype="<f8").tobytes())
    return Fingerprint(digest.hexdigest(), len(series), first, last)
