"""Stash keys shared by the plugin's modules (state lives in ``config.stash``, never on ``config``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    pass

SETTINGS_KEY = pytest.StashKey["Settings"]()
SESSION_KEY = pytest.StashKey["ForecastSession"]()
