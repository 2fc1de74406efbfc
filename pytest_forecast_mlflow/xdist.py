"""pytest-xdist hooks, registered only when xdist is present: the controller ships and merges."""

from __future__ import annotations

import pytest

from .session import WORKER_KEY, ForecastSession


class XdistHooks:
    def __init__(self, session: ForecastSession) -> None:
        self.session = session

    def pytest_configure_node(self, node) -> None:
        """Ship what the controller decided once (the baseline) to a starting worker."""
        node.workerinput[WORKER_KEY] = self.session.worker_input()

    @pytest.hookimpl(tryfirst=True)
    def pytest_testnodedown(self, node, error) -> None:
        """Merge a finished worker's records."""
        output = getattr(node, "workeroutput", None) or {}
        self.session.merge_worker_output(output.get(WORKER_KEY))
