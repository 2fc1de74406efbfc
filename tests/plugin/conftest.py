"""Shared pieces of the plugin's pytester suites: the inner test project and temporary MLflow stores.

Every inner session that touches MLflow runs in a subprocess against a ``sqlite:///`` store under
``tmp_path`` (never the default store under a repository). Creating an MLflow schema takes seconds, so
one empty database is made per session and copied; a second one, holding a promoted champion, is made
once by running the inner suite with ``--mlflow-promote`` and copied by the gate and xdist tests.

The inner project (:func:`project_files`) is tiny on purpose: a 300-point mean-reverting series,
horizons 5 and 10, origins 5 points apart, so a session takes a few seconds. Which candidate runs at a
horizon, and on which data, is chosen by environment variables the inner suite reads, so one suite
serves every scenario::

    FORECAST_E2E_MODELS="10d=degraded"   naive (default) | degraded (naive x 1.01) | improved (AR(1))
    FORECAST_E2E_DATA="5d=short"         base (default) | short | revised | shifted
"""

from __future__ import annotations

import gc
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

# In-process pytester runs restore sys.modules afterwards; the next run would import numpy's extension
# modules again (backtest -> scipy -> numpy.fft), which numpy 2 refuses. Importing the library here, like
# the root conftest does with numpy and pandas, keeps those modules loaded across runs.
import backtest  # noqa: F401
from pytest_forecast_mlflow.records import Record
from pytest_forecast_mlflow.settings import OPTIONS

EXPERIMENT = "forecaster"
SUITE = "test_backtests.py"
NODE_5D = f"{SUITE}::test_backtest[5]"
NODE_10D = f"{SUITE}::test_backtest[10]"

# Unrelated plugins installed next to this one cost seconds per subprocess and print nothing we check.
INNER_FLAGS = ("-p", "no:cacheprovider", "-p", "no:benchmark", "-p", "no:hypothesispytest", "-p", "no:randomly")

MODELS_SOURCE = '''
    """Series and forecasters of the inner sessions: a module of their own, so pickled models load back."""

    from __future__ import annotations

    import os

    import numpy as np
    import pandas as pd

    from backtest import Naive

    LEVEL = 300.0


    def make_series(kind: str = "base") -> pd.Series:
        """300 business days of an AR(1) around 300; the kinds change the data the way real data changes."""
        rng = np.random.default_rng(20240101)
        values = np.empty(300)
        level = LEVEL
        for t, shock in enumerate(rng.normal(0.0, 1.0, 300)):
            level = LEVEL + 0.9 * (level - LEVEL) + shock
            values[t] = level
        index = pd.bdate_range("2021-01-04", periods=300)
        if kind == "short":  # the last 20 days are not there yet
            return pd.Series(values[:280], index=index[:280])
        if kind == "revised":  # days 240..259 revised upwards
            values[240:260] += 5.0
        elif kind == "shifted":  # the same values two years later: no origin in common
            index = pd.bdate_range("2023-01-02", periods=300)
        return pd.Series(values, index=index)


    class Scaled(Naive):
        """The random walk times a factor: 1.01 makes a deliberately worse candidate."""

        def __init__(self, factor: float) -> None:
            self.factor = factor

        def predict_batch(self, contexts, steps):
            return super().predict_batch(contexts, steps) * self.factor


    class MeanReverting:
        """AR(1) toward the training mean: beats the random walk on this mean-reverting series."""

        def fit(self, history) -> None:
            values = np.asarray(history, dtype=float)
            self.mean = float(values.mean())
            centred = values - self.mean
            self.phi = float(centred[1:] @ centred[:-1] / (centred[:-1] @ centred[:-1]))

        def predict(self, history, steps):
            return self.mean + self.phi ** np.arange(1, steps + 1) * (history[-1] - self.mean)

        def get_params(self):
            return {"kind": "ar1"}


    MODELS = {"naive": Naive, "degraded": lambda: Scaled(1.01), "improved": MeanReverting}


    def _choice(variable: str) -> dict[str, str]:
        return dict(item.split("=", 1) for item in os.environ.get(variable, "").split(",") if item)


    def candidate(label: str):
        """The candidate at one horizon label, as FORECAST_E2E_MODELS chooses (default: naive)."""
        return MODELS[_choice("FORECAST_E2E_MODELS").get(label, "naive")]()


    def data(label: str) -> pd.Series:
        """The series at one horizon label, as FORECAST_E2E_DATA chooses (default: base)."""
        return make_series(_choice("FORECAST_E2E_DATA").get(label, "base"))
'''

SUITE_SOURCE = '''
    """One candidate backtest per horizon."""

    import pytest

    from backtest import WalkForward
    from forecast_e2e.models import candidate, data


    @pytest.mark.parametrize("horizon", [5, 10])
    def test_backtest(walk_forward, horizon):
        label = f"{horizon}d"
        spec = WalkForward(horizon=horizon, step=5, initial=200)
        result = walk_forward(candidate(label), data(label), spec, name="candidate")
        assert result.n_folds >= 2
'''


def project_files() -> dict[str, str]:
    """The inner project, as ``pytester.makepyfile`` keywords: a package with the models, and the suite."""
    return {
        "forecast_e2e/__init__": "",
        "forecast_e2e/models": textwrap.dedent(MODELS_SOURCE),
        SUITE[:-3]: textwrap.dedent(SUITE_SOURCE),
    }


#: The inner project's ini: it pins the rootdir (the git commit and default store hang off it). Its
#: backtests have about 20 folds a horizon, so the promotion guard is loosened here (10 folds, 60%); the
#: guard itself is tested with its defaults in test_gate_integrity. Plots are off (drawing them was
#: about a second of every inner session); the tests about plots pass --mlflow-plots on.
INNER_INI = "[pytest]\nforecast_min_folds = 10\nforecast_max_detectable = 60\nmlflow_plots = off\n"


def candidate_record(label: str, horizon: int, origins: list[str], fold_metrics: dict[str, list[float]]) -> Record:
    """A candidate's backtest record at one horizon (step 1, zero actuals), for the gate's pure functions."""
    return Record(
        nodeid=f"test_x.py::test[{label}]",
        location=("test_x.py", 1, "test"),
        model="candidate",
        role="candidate",
        label=label,
        horizon=horizon,
        step=1,
        origins=origins,
        actuals=[[0.0] * horizon for _ in origins],
        fold_metrics=fold_metrics,
        data={"data.sha256": "same"},
    )


def process_state(pid: int) -> str:
    """A process's state letter from Linux's /proc (``Z`` a zombie), ``"gone"`` once it is reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return "gone"


def make_project(pytester: pytest.Pytester) -> None:
    pytester.makeini(INNER_INI)
    pytester.makepyfile(**project_files())
    pytester.syspathinsert()  # the pickled candidate's module must import here too, to load the model


@dataclass(frozen=True)
class Store:
    """A temporary ``sqlite:///`` MLflow store."""

    db: Path

    @property
    def uri(self) -> str:
        return f"sqlite:///{self.db}"

    def client(self):
        import mlflow

        return mlflow.MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def runs(self, experiment: str = EXPERIMENT) -> list:
        """The experiment's runs, oldest first."""
        client = self.client()
        found = client.get_experiment_by_name(experiment)
        assert found is not None, f"no experiment {experiment!r} in {self.uri}"
        return client.search_runs([found.experiment_id], order_by=["attributes.start_time ASC"])

    def latest(self, experiment: str = EXPERIMENT):
        return self.runs(experiment)[-1]

    def copy_to(self, folder: Path) -> Store:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.db, folder / self.db.name)
        return Store(folder / self.db.name)


def run_tracked(pytester: pytest.Pytester, store: Store, *args: str, timeout: float = 180) -> pytest.RunResult:
    """Run the inner suite in a subprocess with the plugin on, logging to ``store``."""
    return pytester.runpytest_subprocess(
        *INNER_FLAGS, "--mlflow-experiment", EXPERIMENT, "--mlflow-tracking-uri", store.uri, *args, timeout=timeout
    )


def assert_quiet(result: pytest.RunResult) -> None:
    """None of MLflow's own chatter reaches a session's output: progress bars, "View run" lines, warnings."""
    output = result.stdout.str() + result.stderr.str()
    for noise in ("Downloading artifacts", "Uploading artifacts", "View run", "View experiment", "%|", "it/s]"):
        assert noise not in output, f"{noise!r} in the session output:\n{output}"


def metric_history(store: Store, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in store.client().get_metric_history(run_id, key))


#: Variables the plugin reads, or that decide where an inner session logs: none may leak in from outside.
LEAKY_VARIABLES = frozenset(
    {option.env for option in OPTIONS if option.env}
    | {
        "MLFLOW_TRACKING_URI",
        "MLFLOW_REGISTRY_URI",
        "MLFLOW_EXPERIMENT_NAME",
        "GITHUB_STEP_SUMMARY",
        "FORECAST_E2E_MODELS",
        "FORECAST_E2E_DATA",
        "PYTEST_ADDOPTS",
        "PYTEST_PLUGINS",
    }
)


def subprocess_variables(pycache: Path) -> dict[str, str]:
    """Set for every subprocess: no telemetry, and bytecode cached in a prefix folder (never next to the
    sources), because without a bytecode cache every subprocess would compile mlflow from source again."""
    return {"PYTHONPYCACHEPREFIX": str(pycache), "MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


def configured(pytester: pytest.Pytester, *args: str) -> pytest.Config:
    """``pytester.parseconfigure(*args)`` without the full garbage collection its unconfigure runs.

    pytest's unraisable-exception plugin collects garbage when a config is unconfigured; in an xdist worker
    whose heap holds what earlier tests made (mlflow's, torch's and SQLAlchemy's objects) that took 4-8 s
    of teardown per configure on a loaded 2-core machine. pytester's own in-process runs switch it off the
    same way (the stash key it sets); an unraisable exception is still reported, only not hunted for.
    """
    from _pytest.unraisableexception import gc_collect_iterations_key

    config = pytester.parseconfigure(*args)
    config.stash[gc_collect_iterations_key] = 0
    return config


def pytest_collection_finish(session: pytest.Session) -> None:  # noqa: ARG001 - the hook's signature
    """Move what collection imported (mlflow, torch, SQLAlchemy: millions of long-lived objects) out of the
    garbage collector's sight (:func:`gc.freeze`), once per process.

    Full collections (pytest runs one at each session's end, and every ``pytester.parseconfigure`` config
    at its unconfigure unless made by :func:`configured`) then walk only what the tests made since; those
    objects are still collected.
    """
    gc.collect()
    gc.freeze()


@pytest.fixture(scope="session")
def _pycache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One bytecode cache for every subprocess of the run, shared by xdist workers (whose base temporary
    folders are siblings): compiling mlflow once per worker cost 13-19 s each on a loaded 2-core machine.
    CPython writes each .pyc atomically, so concurrent writers are safe."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = tmp_path_factory.getbasetemp().parent / "pycache"
        shared.mkdir(exist_ok=True)
        return shared
    return tmp_path_factory.mktemp("pycache")


@pytest.fixture
def hermetic(monkeypatch: pytest.MonkeyPatch, _pycache: Path) -> None:
    """No plugin setting leaks in from the caller's environment, and subprocesses start fast.

    Requested by every module of this suite through ``pytestmark`` (not autouse: other modules share
    this folder and its conftest).
    """
    for name in LEAKY_VARIABLES | {"PYTHONDONTWRITEBYTECODE"}:
        monkeypatch.delenv(name, raising=False)
    for name, value in subprocess_variables(_pycache).items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="session")
def _empty_template(tmp_path_factory: pytest.TempPathFactory) -> Store:
    import mlflow

    store = Store(tmp_path_factory.mktemp("empty-store") / "mlflow.db")
    mlflow.MlflowClient(tracking_uri=store.uri).search_experiments()  # creates the schema, once
    return store


@pytest.fixture(scope="session")
def schema_db(_empty_template: Store) -> Path:
    """A database file with MLflow's schema and nothing else, to copy (never to write to)."""
    return _empty_template.db


@pytest.fixture
def empty_store(tmp_path: Path, _empty_template: Store) -> Store:
    """An MLflow store with a schema and nothing else."""
    return _empty_template.copy_to(tmp_path / "store")


@pytest.fixture(scope="session")
def _champion_template(tmp_path_factory: pytest.TempPathFactory, _empty_template: Store, _pycache: Path) -> Store:
    """A store whose registered model ``forecaster`` has v1, the naive candidate, under alias champion.

    Made once, by running the inner suite with ``--mlflow-promote`` in a subprocess (setup, not a test:
    the same session is tested through pytester in test_gate_e2e). Copies of the database share this
    folder's artifacts, where the champion's fold manifests live; later runs add artifacts of their own.
    """
    folder = tmp_path_factory.mktemp("champion")
    store = _empty_template.copy_to(folder)
    for name, source in project_files().items():
        (folder / f"{name}.py").parent.mkdir(exist_ok=True)
        (folder / f"{name}.py").write_text(source)
    (folder / "tox.ini").write_text(INNER_INI)
    env = {k: v for k, v in os.environ.items() if k not in LEAKY_VARIABLES | {"PYTHONDONTWRITEBYTECODE"}}
    env.update(subprocess_variables(_pycache))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            *INNER_FLAGS,
            "--mlflow-experiment",
            EXPERIMENT,
            "--mlflow-tracking-uri",
            store.uri,
            "--mlflow-promote",
            SUITE,
        ],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"making the champion failed:\n{done.stdout}\n{done.stderr}"
    return store


@pytest.fixture
def copy_champion(tmp_path: Path, _champion_template: Store):
    """Make a copy of the champion store under ``tmp_path/<name>``: ``copy_champion("store")``."""

    def copy(name: str) -> Store:
        return _champion_template.copy_to(tmp_path / name)

    return copy


@pytest.fixture
def champion_store(copy_champion) -> Store:
    """A store holding a champion (the naive candidate on the base series, v1); this test's own copy."""
    return copy_champion("store")
