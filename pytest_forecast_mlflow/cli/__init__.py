"""The ``forecast-mlflow`` command: look at, serve, back up and restore the embedded MLflow store, and
manage the champion.

::

    forecast-mlflow dashboard [--experiment NAME ...] [--limit N] [--horizon H ...] [--metric M]
                              [--registered-model NAME]
    forecast-mlflow ui        [--host 127.0.0.1] [--port 5000] [--artifact-root DIR]
    forecast-mlflow backup    DEST [--force] [--artifact-root DIR]
    forecast-mlflow restore   SRC [--force] [--artifact-root DIR]
    forecast-mlflow replay    [JOURNAL ...] [--to-other-store]
    forecast-mlflow champion  show | history | rollback | promote | best  [--model NAME] ...

One module per command group over a thin entry: :mod:`.main` (the parser, :func:`main`, the masked
output, exit codes), :mod:`.base` (the store a command works on, :class:`CliError`), then
:mod:`.dashboard`, :mod:`.ui`, :mod:`.backup` (backup and restore), :mod:`.replay` and
:mod:`.champion` (the champion's lifecycle). They handle
arguments and output; the work is in the library: :mod:`pytest_forecast_mlflow.backup`,
:mod:`pytest_forecast_mlflow.tracking.views` (the only MLflow calls) and
:mod:`pytest_forecast_mlflow.journal`.

Every command takes ``--tracking-uri``; without it ``MLFLOW_TRACKING_URI`` is used, else the embedded
store ``sqlite:///<current directory>/data/mlflow/mlflow.db`` with artifacts in ``mlruns`` next to it.
``replay`` is the exception: it logs each journal to the store the journal records, and a URI given
must name that store (``--to-other-store`` to log elsewhere on purpose).

``ui`` runs ``mlflow server`` in its own process group and, on Ctrl-C or SIGTERM, stops that whole
group (SIGTERM, then SIGKILL after 10 s), so no uvicorn process outlives the command. MLflow's
background job runner stays off unless ``MLFLOW_SERVER_ENABLE_JOB_EXECUTION`` is set.

Errors are one line that names the cause and the fix, never a traceback. Everything the command
prints (its own lines, MLflow's, exception texts) goes through
:func:`~pytest_forecast_mlflow.store.mask_text` with the tracking URIs in play, and MLflow's
"View run ... at: URL" lines are switched off.

Exit codes: 0 done, 1 an operation failed (store unreadable or locked, server died, disk error, a
model that replay could not log, replay refusing a store other than the journal's without
``--to-other-store``), 2 a usage error (bad arguments, a store of the wrong kind, a folder that is
not a backup, refusing to overwrite without ``--force``, a journal whose store must be given, or
given again with its credentials). mlflow is imported inside the commands that need it, so ``--help``
stays fast; ``backup`` and ``restore`` do not import it at all.
"""

from __future__ import annotations

from pytest_forecast_mlflow.cli.base import CliError
from pytest_forecast_mlflow.cli.main import build_parser, main

__all__ = ["CliError", "build_parser", "main"]
