"""``python -m pytest_forecast_mlflow.cli``: the ``forecast-mlflow`` command."""

from __future__ import annotations

import sys

from pytest_forecast_mlflow.cli.main import main

sys.exit(main())
