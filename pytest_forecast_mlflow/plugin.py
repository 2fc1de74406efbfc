"""The pytest11 entry point. It wires; the work happens in the modules it registers.

Off (no ``--mlflow-experiment``) means off: the ``walk_forward`` fixture still runs backtests, but
nothing imports mlflow or pandas and nothing touches a store.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from . import fixtures
from .keys import SESSION_KEY, SETTINGS_KEY
from .settings import addoptions, resolve
from .store import STORE_DIR

_SESSION_NAME = "forecast-mlflow-session"
_XDIST_NAME = "forecast-mlflow-xdist"


def pytest_addoption(parser: pytest.Parser) -> None:
    addoptions(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(fixtures, "forecast-mlflow-fixtures")
    settings = resolve(config)
    config.stash[SETTINGS_KEY] = settings
    if not settings.enabled:
        return
    _require_known_gate_metrics(settings.gate_metrics)
    from .session import ForecastSession

    session = ForecastSession(config, settings)
    config.stash[SESSION_KEY] = session
    config.pluginmanager.register(session, _SESSION_NAME)
    if config.pluginmanager.hasplugin("xdist") and not session.worker:
        from .xdist import XdistHooks

        config.pluginmanager.register(XdistHooks(session), _XDIST_NAME)


def _require_known_gate_metrics(names: tuple[str, ...]) -> None:
    """Refuse, before any test runs, a gate metric that nothing registered once the conftest files loaded.

    The command line is parsed before them (see ``settings._metrics``), so a misspelt metric of your own
    could otherwise only be named by the first backtest, after the tests before it had run.
    """
    from .settings import KNOWN_METRICS, unknown_metrics

    unknown = [name for name in names if name not in KNOWN_METRICS]
    if not unknown:
        return
    from backtest.metrics import registered_metrics

    registered = registered_metrics()
    missing = [name for name in unknown if name not in registered]
    if missing:
        fix = (
            "correct the name, or register a metric of your own with backtest.register_metric in a conftest.py "
            "(pytest loads those before the tests)"
        )
        raise pytest.UsageError(f"--forecast-gate-metrics: {unknown_metrics(missing, registered, fix)}")


def pytest_unconfigure(config: pytest.Config) -> None:
    session = config.stash.get(SESSION_KEY, None)
    if session is not None:
        session.close()
        del config.stash[SESSION_KEY]
    for name in (_SESSION_NAME, _XDIST_NAME):
        plugin = config.pluginmanager.get_plugin(name)
        if plugin is not None:
            config.pluginmanager.unregister(plugin)


def pytest_ignore_collect(collection_path, config: pytest.Config) -> bool | None:
    """Never collect the embedded store: logged models ship their code (a conftest.py, a test module)."""
    settings = config.stash.get(SETTINGS_KEY, None)
    roots = [Path(config.rootpath, *STORE_DIR.parts)]
    if settings is not None and settings.enabled:
        roots.append(settings.artifact_root)
    path = Path(collection_path)
    if any(path == root or root in path.parents for root in roots):
        return True
    return None


def pytest_report_header(config: pytest.Config) -> list[str] | None:
    session = config.stash.get(SESSION_KEY, None)
    return session.header_lines() if session is not None else None
