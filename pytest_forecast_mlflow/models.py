"""Saving a session's candidate models to files, for :mod:`.pyfunc` to bundle when the run is logged.

Runs in every process (xdist workers save what they fit), so it imports neither mlflow nor pandas.
"""

from __future__ import annotations

import pickle
import sys
import uuid
import warnings
from pathlib import Path
from typing import Any

import pytest

from .records import Record


def save_model(model: Any, record: Record, folder: Path) -> None:
    """Save ``model`` under ``folder`` and note the file and its kind on ``record``.

    A torch module is saved with ``torch.save`` (its ``input_example`` noted for the signature); any
    other model is pickled. A model that cannot be saved is warned about and left out of the registry;
    the backtest itself still counts.
    """
    path = folder / f"{uuid.uuid4().hex}.model"
    torch = sys.modules.get("torch")
    try:
        if torch is not None and isinstance(model, torch.nn.Module):
            torch.save(model, path)
            record.model_kind = "torch"
            example = getattr(model, "input_example", None)
            if example is None:
                warnings.warn(
                    pytest.PytestWarning(
                        f"{record.model} is a torch module without an `input_example` attribute (a (1, n) "
                        "array its forward accepts): it is logged without a signature"
                    ),
                    stacklevel=2,
                )
            else:
                record.input_example = example.tolist() if hasattr(example, "tolist") else example
        else:
            with open(path, "wb") as handle:
                pickle.dump(model, handle)
            record.model_kind = "pickle"
    except Exception as exc:
        warnings.warn(
            pytest.PytestWarning(
                f"{record.model} ({record.label}) cannot be saved for the registry and will not be logged as "
                f"a model: {type(exc).__name__}: {exc}. Make it picklable (module-level class, no lambdas)."
            ),
            stacklevel=2,
        )
        return
    record.model_file = str(path)
