"""The candidate forecaster as one MLflow model: a pyfunc bundle of its per-horizon models.

One registered version is one complete forecaster, for every horizon the session evaluated. torch
modules are saved inside the bundle through MLflow's pytorch flavour (with an input example, so their
signature is recorded); other forecasters are pickled. Loading::

    model = mlflow.pyfunc.load_model("models:/forecaster_30d@champion")
    model.predict(pd.DataFrame({"label": ["30d"], "history": [recent_values]}))

returns one row per input row with the forecast for that label's horizon. The signature is explicit
(:func:`signature`): MLflow checks inputs against it, so ``recent_values`` must be floats. The model
carries its code: this package's ``pyfunc`` module and, for a forecaster class defined outside an
installed package (such as ``tests/forecasters/candidate.py``), the files of its package chain, so it
loads anywhere its pip requirements are installed. Requirements are given explicitly (never
inferred), so logging takes well under a second.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel


def prepare(kind: str | None) -> bool:
    """Import what :func:`log_bundle` will need for a model of ``kind``, ahead of time (see tracking/agent.py);
    True when that imported something."""
    if kind == "torch" and "mlflow.pytorch" not in sys.modules:
        import mlflow.pytorch  # noqa: F401 - imports torch

        return True
    return False


def _requirements(torch_used: bool) -> list[str]:
    import cloudpickle
    import pandas

    reqs = [
        f"mlflow=={mlflow.__version__}",
        f"numpy=={np.__version__}",
        f"pandas=={pandas.__version__}",
        f"cloudpickle=={cloudpickle.__version__}",
    ]
    if torch_used:
        import torch

        reqs.append(f"torch=={torch.__version__.split('+')[0]}")
    return reqs


def _code_paths(objects: list[Any], folder: Path) -> list[str]:
    """Folders to ship with the model so its classes import where it is loaded.

    This package always travels (it defines :class:`ForecasterBundle`). A forecaster class from a
    module outside site-packages travels as its package chain (``__init__.py`` files and the module).
    """
    import site
    import sysconfig

    installed = {Path(p).resolve() for p in (*site.getsitepackages(), sysconfig.get_paths()["stdlib"])}
    package = Path(__file__).resolve().parent
    paths = {package.name: package}
    for obj in objects:
        module = sys.modules.get(type(obj).__module__)
        source = Path(getattr(module, "__file__", "") or "").resolve()
        parts = type(obj).__module__.split(".")
        if not source.is_file() or parts[0] in paths or any(p in source.parents for p in installed):
            continue
        root = source.parents[len(parts) - 1]  # the folder holding the top-level package
        target = folder / "code"
        target.mkdir(parents=True, exist_ok=True)
        for depth in range(1, len(parts)):
            init = root.joinpath(*parts[:depth], "__init__.py")
            destination = target.joinpath(*parts[:depth], "__init__.py")
            destination.parent.mkdir(parents=True, exist_ok=True)
            if init.is_file():
                destination.write_bytes(init.read_bytes())
            else:
                destination.touch()
        target.joinpath(*parts[:-1], source.name).write_bytes(source.read_bytes())
        paths[parts[0]] = target / parts[0] if len(parts) > 1 else target / source.name
    return [str(path) for path in paths.values()]


def signature():
    """The bundle's schema, given explicitly: a pandas type hint lets MLflow infer nothing.

    Inputs ``label`` (string) and ``history`` (array of double); outputs ``label`` and ``forecast``
    (array of double). MLflow enforces it on ``predict``: histories must be floats.
    """
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, Schema

    return ModelSignature(
        inputs=Schema([ColSpec("string", "label"), ColSpec(Array("double"), "history")]),
        outputs=Schema([ColSpec("string", "label"), ColSpec(Array("double"), "forecast")]),
    )


def _name_kwarg(name: str) -> dict[str, str]:
    """MLflow 3 names logged models with ``name=``; 2.x only knows ``artifact_path=``."""
    major = int(mlflow.__version__.split(".")[0])
    return {"name": name} if major >= 3 else {"artifact_path": name}


def logs_into_models() -> bool:
    """MLflow 3: models are entities of their own (logged models), logged without an active run."""
    import inspect

    client = mlflow.MlflowClient
    return "model_id" in inspect.signature(mlflow.pyfunc.log_model).parameters and all(
        hasattr(client, name) for name in ("create_logged_model", "finalize_logged_model", "log_outputs")
    )


def _pickle_format() -> dict[str, str]:
    """MLflow 3.x may default to torch.export ('pt2'), which needs tensor signatures; pickle works for any module."""
    import inspect

    params = inspect.signature(mlflow.pytorch.save_model).parameters
    return {"serialization_format": "pickle"} if "serialization_format" in params else {}


class ForecasterBundle(PythonModel):
    """pyfunc over per-horizon forecasters: input rows (label, history), output rows (label, forecast)."""

    def load_context(self, context) -> None:
        meta = json.loads(Path(context.artifacts["bundle"]).read_text())
        self.horizons = meta["horizons"]
        self.models: dict[str, Any] = {}
        for label, kind in meta["kinds"].items():
            path = context.artifacts[f"model-{label}"]
            if kind == "torch":
                self.models[label] = mlflow.pytorch.load_model(path)
            else:
                with open(path, "rb") as handle:
                    self.models[label] = pickle.load(handle)  # noqa: S301 - the user's own model

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        frame = pd.DataFrame(model_input)
        forecasts = []
        for label, history in zip(frame["label"], frame["history"]):
            if label not in self.models:
                raise ValueError(f"no model for horizon {label!r}; this bundle has {', '.join(self.models)}")
            model = self.models[label]
            values = np.asarray(history, dtype=float)
            forecasts.append(np.asarray(model.predict(values, int(self.horizons[label])), dtype=float).tolist())
        return pd.DataFrame({"label": list(frame["label"]), "forecast": forecasts})


@contextlib.contextmanager
def _pinned_requirements_trusted() -> Iterator[None]:
    """Skip MLflow's check that the current environment satisfies the model's requirements.

    :func:`_requirements` pins exactly the versions this process runs, so they cannot mismatch; the
    check would scan every installed distribution (about a second) for each of the bundle's models.
    Where MLflow has no such function (a version that moved it), nothing is skipped.
    """
    from mlflow.utils import environment

    if not hasattr(environment, "warn_dependency_requirement_mismatches"):
        yield
        return
    with mock.patch.object(environment, "warn_dependency_requirement_mismatches", return_value=None):
        yield


def log_bundle(
    files: dict[str, tuple[str, str | None, Any, int]], model_id: str | None = None
) -> tuple[str, str | None]:
    """Log the per-label model files as one pyfunc model: into the logged model ``model_id`` (MLflow 3),
    else into the active run; return its model URI and, on MLflow 3, its logged model's id (None on 2.x)."""
    torch_used = any(kind == "torch" for _, kind, _, _ in files.values())
    requirements = _requirements(torch_used)
    with tempfile.TemporaryDirectory(prefix="forecast-bundle-") as tmp, _pinned_requirements_trusted():
        artifacts: dict[str, str] = {}
        kinds: dict[str, str | None] = {}
        horizons = {label: int(horizon) for label, (_, _, _, horizon) in files.items()}
        loaded = []
        for label, (path, kind, example, _) in files.items():
            kinds[label] = kind
            if kind == "torch":
                import torch

                module = torch.load(path, weights_only=False)
                loaded.append(module)
                target = Path(tmp) / f"torch-{label}"
                example_array = np.asarray(example, dtype=np.float32) if example is not None else None
                mlflow.pytorch.save_model(
                    module, str(target), input_example=example_array, pip_requirements=requirements, **_pickle_format()
                )
                artifacts[f"model-{label}"] = str(target)
            else:
                with open(path, "rb") as handle:
                    loaded.append(pickle.load(handle))  # noqa: S301 - the session's own model
                artifacts[f"model-{label}"] = path
        code_paths = _code_paths(loaded, Path(tmp))
        meta = Path(tmp) / "bundle.json"
        meta.write_text(json.dumps({"horizons": horizons, "kinds": kinds, "python": sys.version.split()[0]}))
        artifacts["bundle"] = str(meta)
        info = mlflow.pyfunc.log_model(
            python_model=ForecasterBundle(),
            artifacts=artifacts,
            pip_requirements=requirements,
            code_paths=code_paths,
            signature=signature(),
            **_name_kwarg("model"),
            **({"model_id": model_id} if model_id else {}),
        )
    return info.model_uri, getattr(info, "model_id", None)
