"""Root fixtures for the repository's own suites.

numpy and pandas are imported here, once, before any in-process ``pytester`` run: numpy 2 refuses to
be imported a second time into one interpreter, which in-process runs would otherwise attempt.
"""

from __future__ import annotations

import numpy  # noqa: F401
import pandas  # noqa: F401

pytest_plugins = ["pytester"]
