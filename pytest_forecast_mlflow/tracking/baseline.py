"""Reading the registry's champion back as the gate's :class:`~pytest_forecast_mlflow.gate.Baseline`."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from ..gate import Baseline, BaselineHorizon
from ..store import local_path
from .connection import Connection, StoreUnavailable, TrackingError, error_is, live_run


class BaselineReader:
    """Finds the champion (the alias, else the best version) and reads its folds from the fold manifests."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.client = connection.client
        self.settings = connection.settings

    def resolve(self) -> tuple[Baseline | None, str]:
        """The registry's champion (or best version) as a Baseline, and a sentence saying which."""
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST

        from .registry import alias_absent

        name, alias = self.settings.registered_model, self.settings.alias
        first_metric = self.settings.gate_metrics[0]
        try:
            try:
                self.client.get_registered_model(name)
            except MlflowException as exc:
                if error_is(exc, RESOURCE_DOES_NOT_EXIST):
                    return None, f"no registered model {name!r} yet"
                raise
            try:
                version = self.client.get_model_version_by_alias(name, alias)
                how = f"alias {alias}"
            except MlflowException as exc:
                if not alias_absent(exc):
                    raise
                version, how = self._best_version(name, first_metric)
                if version is None:
                    return None, f"registered model {name!r} has no alias {alias!r} and no version to rank"
            run = self._baseline_run(name, version)
            horizons = self._baseline_horizons(run.info.run_id)
        except (TrackingError, StoreUnavailable):
            raise
        except Exception as exc:
            raise self.connection.explain(exc, f"reading the baseline of {name!r}") from None
        gated = (version.tags or {}).get("forecast.gate_metrics", "")
        if not gated and any("rmse" in h.fold_metrics for h in horizons.values()):
            gated = "rmse"  # promoted before versions recorded their gate metrics: rmse was the default
        baseline = Baseline(
            registered_model=name,
            version=str(version.version),
            how=how,
            run_id=run.info.run_id,
            run_name=run.info.run_name or "",
            data_sha256=run.data.params.get("data.sha256", ""),
            horizons=horizons,
            gate_metrics=tuple(m for m in gated.split(",") if m),
        )
        return baseline, f"baseline {baseline.describe()}"

    def _best_version(self, name: str, metric: str) -> tuple[Any, str]:
        versions = [v for v in self.client.search_model_versions(f"name='{name}'") if v.run_id]
        if not versions:
            return None, ""
        ids = ", ".join(f"'{v.run_id}'" for v in versions)
        from backtest.metrics import get_metric

        direction = "DESC" if get_metric(metric).direction == "higher" else "ASC"
        runs = self.client.search_runs(
            experiment_ids=self._experiment_ids(),  # versions may come from runs in several experiments
            filter_string=f"attributes.run_id IN ({ids}) and metrics.`all/{metric}_mean` > -1e308",
            order_by=[f"metrics.`all/{metric}_mean` {direction}"],
            max_results=1,
        )
        if not runs:
            return None, ""
        best = runs[0].info.run_id
        version = max((v for v in versions if v.run_id == best), key=lambda v: int(v.version))
        return version, f"best all/{metric}_mean of {len(versions)} versions, no alias {self.settings.alias!r}"

    def _experiment_ids(self) -> list[str]:
        ids, token = [], None
        while True:
            page = self.client.search_experiments(max_results=1000, page_token=token)
            ids += [experiment.experiment_id for experiment in page]
            token = page.token
            if not token:
                return ids

    def _baseline_run(self, name: str, version: Any) -> Any:

        if not version.run_id:
            raise TrackingError(f"{name} v{version.version} has no source run; the gate cannot read its folds")
        run = live_run(self.client, version.run_id)
        if run is None:
            raise TrackingError(
                f"the baseline {name} v{version.version} points at run {version.run_id}, which is deleted; "
                f"restore it (mlflow runs restore --run-id {version.run_id}) or move the "
                f"{self.settings.alias!r} alias to another version"
            )
        return run

    def _baseline_horizons(self, run_id: str) -> dict[str, BaselineHorizon]:
        horizons: dict[str, BaselineHorizon] = {}
        listed = self.client.list_artifacts(run_id, "manifests")
        if not listed:
            where = self._missing_artifacts(run_id)
            if where is not None:
                raise TrackingError(
                    f"the artifacts of baseline run {run_id} are missing at {where} (the store was moved or "
                    "restored without its artifacts, or they were deleted); restore the store with "
                    "'forecast-mlflow restore', which rewrites artifact locations, or move the alias to a "
                    "version whose artifacts exist"
                )
            raise TrackingError(
                f"baseline run {run_id} has no fold manifests (manifests/*.json); it was not logged by this "
                "plugin, so the gate cannot pair folds. Promote a run logged by pytest-forecast-mlflow"
            )
        with tempfile.TemporaryDirectory(prefix="forecast-baseline-") as tmp:
            for item in listed:
                if not item.path.endswith(".json"):
                    continue
                local = self.client.download_artifacts(run_id, item.path, tmp)
                manifest = json.loads(Path(local).read_text())
                label = manifest["label"]
                folds = manifest["folds"]
                metrics = {
                    name: [f["metrics"].get(name, float("nan")) for f in folds]
                    for name in (folds[0]["metrics"] if folds else {})
                }
                for metric in self.settings.gate_metrics:
                    if metric not in metrics:
                        history = self._history(run_id, f"{label}/{metric}", len(folds))
                        if history is not None:
                            metrics[metric] = history
                horizons[label] = BaselineHorizon(
                    label=label,
                    horizon=int(manifest["horizon"]),
                    step=int(manifest["step"]),
                    origins=[f["origin"] for f in folds],
                    actuals=[f["actuals"] for f in folds],
                    fold_metrics=metrics,
                )
        return horizons

    def _missing_artifacts(self, run_id: str) -> str | None:
        """The local artifact folder of a run when it does not exist, else None (present, or remote)."""
        path = local_path(self.client.get_run(run_id).info.artifact_uri)
        return None if path == Path() or path.exists() else str(path)

    def _history(self, run_id: str, key: str, folds: int) -> list[float] | None:
        history = sorted(self.client.get_metric_history(run_id, key), key=lambda m: m.step)
        if len(history) != folds:
            return None
        return [m.value for m in history]
