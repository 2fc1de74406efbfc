"""A direct ``postgresql://`` tracking URI stays refused, even when the database is real and reachable.

Every pytest process (and every xdist worker) would open its own connection pool and race MLflow's schema
migrations, so the plugin refuses the URI before anything connects and sends the user to the server recipe.
"""

from __future__ import annotations

import pytest

from pytest_forecast_mlflow.store import SERVER_RECIPE

from .conftest import Cluster

pytestmark = [pytest.mark.mlflow, pytest.mark.usefixtures("hermetic")]


@pytest.mark.parametrize("where", ["option", "environment"])
def test_a_direct_postgresql_uri_is_refused_and_points_at_the_server_recipe(
    pytester: pytest.Pytester, postgres: Cluster, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    database = f"refused_{where}"
    postgres.create_database(database)
    uri = postgres.uri(database)
    pytester.makepyfile(test_inner="def test_nothing(): pass")
    args = ["-p", "no:cacheprovider", "--mlflow-experiment", "direct"]
    if where == "option":
        args += ["--mlflow-tracking-uri", uri]
    else:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)

    result = pytester.runpytest_inprocess(*args)

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        [
            "* postgresql+psycopg2://***@127.0.0.1:*: direct database URIs from every pytest worker are "
            "refused (each process would open its own pool and race migrations); "
            f"put an `mlflow server --backend-store-uri postgresql://...` in front*{SERVER_RECIPE}*"
        ]
    )
    assert postgres.tables(database) == [], "the refused session created tables in the database"
