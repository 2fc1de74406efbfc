"""Stash keys shared by the plugin's modules (state lives in ``config.stash``, never on ``config``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .session import ForecastSession
    from .settings import Settings

# annotated rather than subscripted at run time: the names exist only for the type checker
SETTINGS_KEY: pytest.StashKey[Settings] = pytest.StashKey()
SESSION_KEY: pytest.StashKey[ForecastSession] = pytest.StashKey()
