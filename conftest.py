"""Root fixtures for the repository's own suites.

numpy and pandas are imported here, once, before any in-process ``pytester`` run: numpy 2 refuses to
be imported a second time into one interpreter, which in-process runs would otherwise attempt.

The USD/CLP backtests in ``tests/forecasters`` read their series from ``--usdclp-series`` (ini key
``usdclp_series``, environment variable ``USDCLP_SERIES``). When no real series is configured or the
file is missing, they fall back to the synthetic sample ``data/usdclp_synthetic.csv`` and say so in
the report header and as a warning. ``--usdclp-degrade`` (``USDCLP_DEGRADE``) worsens the candidate
on purpose, to watch the regression gate fail.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy  # noqa: F401
import pandas  # noqa: F401
import pytest

pytest_plugins = ["pytester"]

SYNTHETIC = Path(__file__).parent / "data" / "usdclp_synthetic.csv"


@dataclass(frozen=True)
class SeriesChoice:
    path: Path
    synthetic: bool
    why: str


_CHOICE = pytest.StashKey[SeriesChoice]()
_DEGRADE = pytest.StashKey[float]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("usdclp", "the repository's own USD/CLP backtests")
    help_series = "Path of the USD/CLP date,value CSV (relative to the rootdir). Default: the synthetic sample."
    # argparse %-formats option help, so a percent sign is written %% (addini help is printed as is)
    help_degrade = "Worsen the candidate model on purpose (0.2 makes RMSE ~40%% worse), to see the gate fail."
    group.addoption("--usdclp-series", dest="usdclp_series", default=None, help=help_series)
    group.addoption("--usdclp-degrade", dest="usdclp_degrade", type=float, default=None, help=help_degrade)
    parser.addini("usdclp_series", help_series, default=None)


def _choose(config: pytest.Config) -> SeriesChoice:
    configured = config.getoption("usdclp_series") or os.environ.get("USDCLP_SERIES") or config.getini("usdclp_series")
    if not configured:
        return SeriesChoice(SYNTHETIC, True, "no real series configured (--usdclp-series / USDCLP_SERIES)")
    path = Path(configured)
    if not path.is_absolute():
        path = Path(config.rootpath) / path
    if not path.is_file():
        return SeriesChoice(SYNTHETIC, True, f"configured series {configured} not found")
    return SeriesChoice(path.resolve(), False, "")


def _degrade(config: pytest.Config) -> float:
    value = config.getoption("usdclp_degrade")
    if value is None:
        raw = os.environ.get("USDCLP_DEGRADE", "0")
        try:
            value = float(raw)
        except ValueError:
            raise pytest.UsageError(f"USDCLP_DEGRADE={raw!r} is not a number; use e.g. 0.2") from None
    if value < 0:
        raise pytest.UsageError(f"--usdclp-degrade must be >= 0, got {value}")
    return float(value)


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_CHOICE] = _choose(config)
    config.stash[_DEGRADE] = _degrade(config)


def pytest_report_header(config: pytest.Config) -> list[str]:
    choice = config.stash[_CHOICE]
    if choice.synthetic:
        lines = [f"usdclp series: SYNTHETIC sample {choice.path.name} ({choice.why})"]
    else:
        lines = [f"usdclp series: {choice.path}"]
    degrade = config.stash[_DEGRADE]
    if degrade:
        lines.append(f"usdclp candidate: DEGRADED on purpose by {degrade:g} (--usdclp-degrade / USDCLP_DEGRADE)")
    return lines


@pytest.fixture(scope="session")
def usdclp(pytestconfig: pytest.Config) -> pandas.Series:
    """The USD/CLP daily series (real when configured and present, else the synthetic sample)."""
    from backtest import load_series

    choice = pytestconfig.stash[_CHOICE]
    if choice.synthetic:
        warnings.warn(
            pytest.PytestWarning(
                f"USD/CLP backtests run on the SYNTHETIC sample {SYNTHETIC.name}: {choice.why}. Point "
                "--usdclp-series (or USDCLP_SERIES) at ../shared/data/usdclp_daily.csv for the real series."
            ),
            stacklevel=1,
        )
    series = load_series(choice.path, positive=True)
    series.name = "USD/CLP (pesos per dollar)"  # the y axis of the logged forecast plots
    return series


@pytest.fixture(scope="session")
def degrade(pytestconfig: pytest.Config) -> float:
    """How much to worsen the candidate on purpose (0 for the real model), shown in the report header."""
    return pytestconfig.stash[_DEGRADE]
