"""Live forecasts: recording what the served champion forecast, and reading it back to score it.

**Layout.** One run per registered model version and horizon label in the live experiment (tags
``forecast.role = live``, ``forecast.live.model``, ``forecast.live.version``, ``forecast.label``), named
``live <model> v<version> <label>``. Each forecast is one step of that run: step = the origin's day
number (days since 1970-01-01) and timestamp = the origin date, so the run's charts read forecasts by
date. Per forecast: ``<label>/forecast_last`` (the value ``h`` steps ahead), ``<label>/forecast_first``
and, when the model gives an interval, ``<label>/lower_last`` / ``<label>/upper_last``. The exact
forecasts (every step, every bound) are in ``forecasts/<label>/<first>_<last>.json``, one file per
call. ``<label>/forecasts`` is the step-less count. Once the monitor scores a forecast, its realized
error lands in the same run as ``<label>/<metric>`` at the same step: the same key as the backtest's
per-fold errors, so comparing the live run with the champion's run charts both over time.

Why not one run per forecast: a year of daily forecasts at four horizons would be 1,000 runs a year in
the runs table, each with one point, where no chart can show an error over time; here it is four runs
whose charts are the time series. Recording an origin already recorded for that version and label
does nothing, so a backfill can be rerun.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..records import sanitize
from ..store import first_line
from .connection import Connection, TrackingError, quiet_mlflow

if TYPE_CHECKING:
    import pandas as pd

    from ..gate import BaselineHorizon

ROLE = "live"
MODEL_TAG = "forecast.live.model"
VERSION_TAG = "forecast.live.version"
LABEL_TAG = "forecast.label"
HORIZON_TAG = "forecast.horizon"
DRIFT_TAG = "forecast.drift"
"""Registry version tag set by the monitor when a horizon drifts: what drifted, when, by how much."""
DEFAULT_HISTORY = 1000
_DAY_MS = 86_400_000
_MODEL_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>\d+))$")


@dataclass(frozen=True)
class ModelRef:
    """``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``, resolved to a version."""

    name: str
    version: str
    alias: str | None = None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def parse_model_uri(uri: str) -> tuple[str, str | None, str | None]:
    """``(name, alias, version)`` of ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``; ValueError otherwise."""
    match = _MODEL_URI.match(uri.strip())
    if match is None:
        raise ValueError(
            f"{uri!r} is not a registered model URI; write models:/NAME@champion (an alias) or models:/NAME/3"
        )
    return match["name"], match["alias"], match["version"]


@dataclass(frozen=True)
class LiveForecast:
    """One forecast the service made: from data up to and including ``origin``, ``horizon`` steps ahead."""

    origin: str
    label: str
    horizon: int
    model: str
    version: str
    values: tuple[float, ...]
    lower: tuple[float, ...] | None = None
    upper: tuple[float, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LiveForecast:
        def floats(key: str) -> tuple[float, ...] | None:
            return None if data.get(key) is None else tuple(float(v) for v in data[key])

        return cls(
            origin=str(data["origin"]),
            label=str(data["label"]),
            horizon=int(data["horizon"]),
            model=str(data["model"]),
            version=str(data["version"]),
            values=floats("values") or (),
            lower=floats("lower"),
            upper=floats("upper"),
        )


@dataclass(frozen=True)
class Recorded:
    """What a call to :meth:`LiveTracker.record` did."""

    run_id: str
    new: tuple[LiveForecast, ...]
    skipped: int
    seconds: float = 0.0


@dataclass(frozen=True)
class LiveRun:
    run_id: str
    model: str
    version: str
    label: str
    horizon: int
    metrics: dict[str, float] = field(default_factory=dict)


def day_number(date: str) -> int:
    """Days since 1970-01-01: the MLflow step of the forecast from ``date``."""
    import numpy as np

    return int(np.datetime64(date[:10], "D").astype("int64"))


def _origin_ms(date: str) -> int:
    return max(day_number(date), 0) * _DAY_MS


# ------------------------------------------------------------------------------------- pure pieces


def resolve_origins(series: pd.Series, origin: str | None) -> list[pd.Timestamp]:
    """The series dates to forecast from: its last date (None), the last date on or before DATE, or every
    date in ``START..END``. Never a date after the series' end: there is no data for it yet."""
    import pandas as pd

    first, last = series.index[0], series.index[-1]

    def parse(text: str) -> pd.Timestamp:
        try:
            return pd.Timestamp(text)
        except (ValueError, TypeError):
            raise ValueError(f"origin {text!r} is not a date; write YYYY-MM-DD or START..END") from None

    if origin is None:
        return [last]
    if ".." in origin:
        start_text, _, end_text = origin.partition("..")
        start, end = parse(start_text), parse(end_text)
        if start > end:
            raise ValueError(f"origin range {origin!r} ends before it starts; write START..END with START <= END")
        chosen = [t for t in series.index if start <= t <= end]
        if not chosen:
            raise ValueError(
                f"no date of the series falls in {origin} (the series runs {first.date()} .. {last.date()})"
            )
        return chosen
    when = parse(origin)
    if when > last:
        raise ValueError(
            f"origin {when.date()} is after the series' last date {last.date()}: a forecast uses data up to and "
            "including its origin, and there is none yet; add the data or choose an earlier origin"
        )
    if when < first:
        raise ValueError(f"origin {when.date()} is before the series' first date {first.date()}")
    return [series.index[int(series.index.searchsorted(when, side="right")) - 1]]


def histories(series: pd.Series, origins: Sequence[pd.Timestamp], limit: int = DEFAULT_HISTORY) -> list[list[float]]:
    """For each origin, the values up to and including it (never later), the last ``limit`` of them (0: all)."""
    values = series.to_numpy(dtype=float)
    out = []
    for origin in origins:
        stop = int(series.index.searchsorted(origin, side="right"))
        start = max(0, stop - limit) if limit else 0
        out.append(values[start:stop].tolist())
    return out


def predict(
    model: Any,
    series: pd.Series,
    origins: Sequence[pd.Timestamp],
    *,
    label: str,
    horizon: int,
    ref: ModelRef,
    history: int = DEFAULT_HISTORY,
) -> list[LiveForecast]:
    """Ask ``model`` (a loaded pyfunc) for one forecast per origin, in one call; an interval when it gives one.

    The model returns ``forecast`` per row, and may return ``lower``/``upper`` of the same length.
    """
    import pandas as pd

    if not origins:
        return []
    frame = pd.DataFrame({"label": [label] * len(origins), "history": histories(series, origins, history)})
    out = model.predict(frame)
    forecasts = []
    for row, origin in enumerate(origins):
        values = tuple(float(v) for v in out["forecast"].iloc[row])
        if len(values) != horizon or not all(math.isfinite(v) for v in values):
            raise TrackingError(
                f"{ref.name} v{ref.version} forecast {len(values)} values for {label} from {origin.date()} "
                f"(horizon {horizon}), {sum(not math.isfinite(v) for v in values)} of them not finite"
            )
        bounds = []
        for column in ("lower", "upper"):
            cell = out[column].iloc[row] if column in out.columns else None
            bounds.append(None if cell is None else tuple(float(v) for v in cell))
        forecasts.append(
            LiveForecast(str(origin.date()), label, horizon, ref.name, ref.version, values, bounds[0], bounds[1])
        )
    return forecasts


def forecast_metrics(forecasts: Iterable[LiveForecast]) -> list[tuple[str, float, int, int]]:
    """Per forecast, ``(key, value, timestamp, step)`` of what the live run charts."""
    out = []
    for fc in forecasts:
        key, ts, step = sanitize(fc.label), _origin_ms(fc.origin), day_number(fc.origin)
        out.append((f"{key}/forecast_first", fc.values[0], ts, step))
        out.append((f"{key}/forecast_last", fc.values[-1], ts, step))
        if fc.lower is not None and fc.upper is not None:
            out.append((f"{key}/lower_last", fc.lower[-1], ts, step))
            out.append((f"{key}/upper_last", fc.upper[-1], ts, step))
    return out


# --------------------------------------------------------------------------------------- the store


class LiveTracker:
    """The live experiment of one store: its runs, the forecasts recorded in them, their scores."""

    def __init__(self, connection: Connection, experiment: str) -> None:
        self.connection = connection
        self.client = connection.client
        self.experiment = experiment

    # ---- the registered model

    def resolve(self, uri: str) -> ModelRef:
        """The version ``uri`` names (an alias is read now: the version it points at today)."""
        from mlflow.exceptions import MlflowException

        name, alias, version = parse_model_uri(uri)
        try:
            if alias is not None:
                version = str(self.client.get_model_version_by_alias(name, alias).version)
            else:
                self.client.get_model_version(name, str(version))
        except MlflowException:
            from .registry import registered_models

            known = registered_models(self.client)
            raise TrackingError(
                f"{uri} does not resolve to a registered version in this store (registered models: "
                f"{', '.join(known) or 'none'}); check the name, the alias or the version"
            ) from None
        return ModelRef(name, str(version), alias)

    def horizons(self, ref: ModelRef) -> dict[str, BaselineHorizon]:
        """The version's backtest per label (horizon, per-fold losses), from its run's fold manifests."""
        from .baseline import BaselineReader

        return BaselineReader(self.connection)._baseline_horizons(self._source_run(ref))

    def _source_run(self, ref: ModelRef) -> str:
        run_id = self.client.get_model_version(ref.name, ref.version).run_id
        if not run_id:
            raise TrackingError(f"{ref.name} v{ref.version} has no source run, so its backtest is unknown")
        return str(run_id)

    def one_step_errors(self, ref: ModelRef, label: str) -> list[float]:
        """The backtest's one-step errors at ``label`` (actual minus forecast at each fold's first target
        date), from its fold manifest: what the monitor's fast lane holds live one-step errors against."""
        with tempfile.TemporaryDirectory(prefix="forecast-live-") as tmp, quiet_mlflow():
            path = self.client.download_artifacts(self._source_run(ref), f"manifests/{sanitize(label)}.json", tmp)
            folds = json.loads(Path(path).read_text())["folds"]
        errors = [float(f["actuals"][0]) - float(f["forecasts"][0]) for f in folds if f.get("forecasts")]
        return [e for e in errors if math.isfinite(e)]

    def load_model(self, ref: ModelRef) -> Any:
        try:
            with quiet_mlflow(prints=True):
                return self.connection.mlflow.pyfunc.load_model(ref.uri)
        except Exception as exc:
            raise TrackingError(
                f"the model of {ref.name} v{ref.version} does not load here ({type(exc).__name__}: "
                f"{first_line(str(exc))[:300]}); install what its requirements.txt lists, or run from the project "
                "whose code it needs"
            ) from None

    def log_plot(self, run: LiveRun, fig: Any) -> None:
        """``plots/<label>_live_vs_backtest.png`` in the live run (replaced at each check that logs new errors)."""
        with tempfile.TemporaryDirectory(prefix="forecast-live-") as tmp:
            path = Path(tmp) / f"{sanitize(run.label)}_live_vs_backtest.png"
            fig.savefig(path)
            with quiet_mlflow():
                self.client.log_artifact(run.run_id, str(path), "plots")

    def tag_drift(self, ref: ModelRef, text: str) -> None:
        self.client.set_model_version_tag(ref.name, ref.version, DRIFT_TAG, text[:5000])

    # ---- runs

    def _experiment_id(self, create: bool) -> str | None:
        if create:
            return self.connection.experiment_id(self.experiment)
        found = self.client.get_experiment_by_name(self.experiment)
        return None if found is None or found.lifecycle_stage == "deleted" else found.experiment_id

    def runs(self) -> list[LiveRun]:
        """Every live run of the experiment, by model, version and label."""
        experiment_id = self._experiment_id(create=False)
        if experiment_id is None:
            return []
        found = self.client.search_runs(
            [experiment_id], filter_string=f"tags.`forecast.role` = '{ROLE}'", max_results=5000
        )
        return sorted(
            (
                LiveRun(
                    run.info.run_id,
                    run.data.tags.get(MODEL_TAG, ""),
                    run.data.tags.get(VERSION_TAG, ""),
                    run.data.tags.get(LABEL_TAG, ""),
                    int(run.data.tags.get(HORIZON_TAG, "0") or 0),
                    dict(run.data.metrics),
                )
                for run in found
            ),
            key=lambda r: (r.model, int(r.version or 0), r.horizon, r.label),
        )

    def _run_for(self, ref: ModelRef, label: str, horizon: int) -> str:
        for existing in self.runs():
            if (existing.model, existing.version, existing.label) == (ref.name, ref.version, label):
                return existing.run_id
        experiment_id = self.connection.experiment_id(self.experiment)
        tags = {
            "forecast.role": ROLE,
            MODEL_TAG: ref.name,
            VERSION_TAG: ref.version,
            LABEL_TAG: label,
            HORIZON_TAG: str(horizon),
            "mlflow.runName": f"live {ref.name} v{ref.version} {label}",
        }
        run = self.client.create_run(experiment_id, tags=tags, run_name=tags["mlflow.runName"])
        # a live run is never "running": it is a ledger, written to by many short calls
        self.client.set_terminated(run.info.run_id, "FINISHED")
        return run.info.run_id

    def logged_steps(self, run_id: str, key: str) -> set[int]:
        return {m.step for m in self.client.get_metric_history(run_id, key)}

    def log_metrics(self, run_id: str, metrics: Sequence[tuple[str, float, int, int]]) -> None:
        """``(key, value, timestamp, step)`` through log_batch, 1000 at a time (MLflow's limit)."""
        from mlflow.entities import Metric

        for i in range(0, len(metrics), 1000):
            chunk = [Metric(k, float(v), ts, step) for k, v, ts, step in metrics[i : i + 1000]]
            self.client.log_batch(run_id, metrics=chunk)

    # ---- forecasts

    def record(self, forecasts: Sequence[LiveForecast]) -> list[Recorded]:
        """Record forecasts (one run per version and label); origins already recorded there are skipped."""
        groups: dict[tuple[str, str, str, int], list[LiveForecast]] = {}
        for fc in forecasts:
            groups.setdefault((fc.model, fc.version, fc.label, fc.horizon), []).append(fc)
        done = []
        for (model, version, label, horizon), items in groups.items():
            ref = ModelRef(model, version)
            run_id = self._run_for(ref, label, horizon)
            key = sanitize(label)
            known = self.logged_steps(run_id, f"{key}/forecast_last")
            new, seen = [], set(known)
            for fc in sorted(items, key=lambda f: f.origin):
                step = day_number(fc.origin)
                if step not in seen:
                    new.append(fc)
                    seen.add(step)
            if new:
                with tempfile.TemporaryDirectory(prefix="forecast-live-") as tmp:
                    path = Path(tmp) / f"{new[0].origin}_{new[-1].origin}.json"
                    path.write_text(json.dumps([fc.to_json() for fc in new]))
                    with quiet_mlflow():
                        self.client.log_artifact(run_id, str(path), f"forecasts/{key}")
                self.log_metrics(run_id, forecast_metrics(new))
                self.log_metrics(run_id, [(f"{key}/forecasts", float(len(seen)), _now_ms(), 0)])
            done.append(Recorded(run_id, tuple(new), len(items) - len(new)))
        return done

    def read(self, run: LiveRun) -> list[LiveForecast]:
        """Every forecast recorded in ``run``, by origin (the first record of an origin wins)."""
        key = sanitize(run.label)
        listed = self.client.list_artifacts(run.run_id, f"forecasts/{key}")
        by_origin: dict[str, LiveForecast] = {}
        if listed:
            with tempfile.TemporaryDirectory(prefix="forecast-live-") as tmp, quiet_mlflow():
                local = self.client.download_artifacts(run.run_id, f"forecasts/{key}", tmp)
                for path in sorted(Path(local).glob("*.json")):
                    for item in json.loads(path.read_text()):
                        fc = LiveForecast.from_json(item)
                        by_origin.setdefault(fc.origin, fc)
        return [by_origin[o] for o in sorted(by_origin)]


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


# ------------------------------------------------------------------------------------- public API


def log_forecast(
    model: str,
    series: Any,
    *,
    label: str,
    origin: str | None = None,
    experiment: str | None = None,
    tracking_uri: str | None = None,
    history: int = DEFAULT_HISTORY,
) -> list[LiveForecast]:
    """Forecast with a registered model and record it: what a forecasting service calls each day.

    ``model`` is ``models:/NAME@champion`` (or ``models:/NAME/3``); ``series`` a ``date,value`` CSV path
    or a pandas Series; ``origin`` a date (default: the series' last), or ``START..END`` to backfill every
    date of the series in that range in one call. Each forecast uses the values up to and including its
    origin, never later. ``experiment`` defaults to ``<NAME>-live``; ``tracking_uri`` to
    ``MLFLOW_TRACKING_URI``, else the embedded store. Returns the forecasts recorded now (an origin
    already recorded for that version and label is skipped).
    """
    from backtest.data import load_series

    from ..cli.base import resolve_store
    from ..settings import Settings

    data = load_series(series)
    store = resolve_store(tracking_uri)
    settings = Settings(
        experiment=None, tracking_uri=store.uri, artifact_root=store.artifacts or Path(), rootdir=Path.cwd()
    )
    connection = Connection(settings)
    try:
        return forecast_and_record(
            connection, model, data, label=label, origin=origin, experiment=experiment, history=history
        )[1]
    finally:
        connection.close()


def forecast_and_record(
    connection: Connection,
    model_uri: str,
    series: pd.Series,
    *,
    label: str,
    origin: str | None,
    experiment: str | None,
    history: int = DEFAULT_HISTORY,
) -> tuple[Recorded, list[LiveForecast]]:
    """The work of ``forecast-mlflow forecast`` and :func:`log_forecast`."""
    import time

    started = time.perf_counter()
    probe = LiveTracker(connection, experiment or "")
    ref = probe.resolve(model_uri)
    tracker = LiveTracker(connection, experiment or f"{ref.name}-live")
    horizons = tracker.horizons(ref)
    if label not in horizons:
        raise TrackingError(
            f"{ref.name} v{ref.version} has no horizon {label!r}; its backtest has "
            f"{', '.join(sorted(horizons, key=lambda k: horizons[k].horizon))}"
        )
    origins = resolve_origins(series, origin)
    loaded = tracker.load_model(ref)
    forecasts = predict(loaded, series, origins, label=label, horizon=horizons[label].horizon, ref=ref, history=history)
    recorded = tracker.record(forecasts)[0]
    seconds = time.perf_counter() - started
    return Recorded(recorded.run_id, recorded.new, recorded.skipped, seconds), list(recorded.new)


# ------------------------------------------------------------------------------------- monitoring


@dataclass(frozen=True)
class Scored:
    """One live forecast scored on the steps whose dates have arrived (``realized`` of ``horizon``)."""

    origin: str
    realized: int
    horizon: int
    loss: float
    first_error: float = math.nan
    """Actual minus forecast at the first target date: the fast lane's one-step error."""

    @property
    def complete(self) -> bool:
        return self.realized == self.horizon


def score_forecasts(series: pd.Series, forecasts: Sequence[LiveForecast], metric: str) -> list[Scored]:
    """Score each forecast on the series' values after its origin (the next ``h`` dates of the series).

    A forecast with no realized step yet is left out; one with some is scored on those alone.
    """
    import numpy as np
    import pandas as pd

    from backtest.metrics import score

    values = series.to_numpy(dtype=float)
    out = []
    for fc in forecasts:
        position = int(series.index.searchsorted(pd.Timestamp(fc.origin), side="right"))  # first date after it
        realized = min(fc.horizon, len(values) - position)
        if realized <= 0 or position == 0:
            continue
        actual = values[position : position + realized][None, :]
        history = values[:position]
        scale = float(np.mean(np.abs(np.diff(history)))) if history.size > 1 else float("nan")
        loss = score(
            actual, np.asarray(fc.values[:realized])[None, :], last=[history[-1]], scale=[scale], metrics=metric
        )
        first_error = float(actual[0, 0]) - fc.values[0]
        out.append(Scored(fc.origin, realized, fc.horizon, float(loss.per_fold[metric][0]), first_error))
    return out


@dataclass(frozen=True)
class HorizonCheck:
    """One live run's check: what was scored, the drift test on the complete forecasts, what was logged."""

    run: LiveRun
    metric: str
    complete: int
    partial: int
    partial_error: float
    pending: int
    result: Any  # backtest.drift.DriftResult
    logged: int
    as_of: str

    @property
    def who(self) -> str:
        return f"{self.run.model} v{self.run.version}"


def check_run(tracker: LiveTracker, run: LiveRun, series: pd.Series, metric: str) -> HorizonCheck:
    """Score a live run's forecasts, decide drift, and log what is new (monitoring the same data twice logs nothing)."""
    import math

    from backtest import drift

    forecasts = tracker.read(run)
    scored = score_forecasts(series, forecasts, metric)
    complete = [s for s in scored if s.complete]
    partial = [s for s in scored if not s.complete]
    ref = ModelRef(run.model, run.version)
    horizons = tracker.horizons(ref)
    if run.label not in horizons:
        raise TrackingError(
            f"{ref.name} v{ref.version} has no backtest for {run.label}; its run has {', '.join(horizons)}"
        )
    backtest = horizons[run.label].fold_metrics.get(metric)
    if not backtest:
        raise TrackingError(
            f"the backtest of {ref.name} v{ref.version} has no per-fold {metric} at {run.label}; "
            f"monitor with one of {', '.join(horizons[run.label].fold_metrics)} (--metric)"
        )
    result = drift.assess(
        [s.loss for s in complete],
        backtest,
        run.horizon,
        live_errors=[s.first_error for s in scored],
        backtest_errors=tracker.one_step_errors(ref, run.label),
    )
    key = sanitize(run.label)
    as_of = str(series.index[-1].date())
    logged = _log_check(tracker, run, key, metric, complete, result, as_of)
    if logged and complete:
        tracker.log_plot(run, live_vs_backtest(run, horizons[run.label], complete, metric, result))
    partial_error = sum(s.loss for s in partial) / len(partial) if partial else math.nan
    return HorizonCheck(
        run, metric, len(complete), len(partial), partial_error, len(forecasts) - len(scored), result, logged, as_of
    )


def live_vs_backtest(run: LiveRun, backtest: BaselineHorizon, complete: list[Scored], metric: str, result: Any):
    """A figure of the live per-forecast errors against the backtest's per-fold errors, by origin date, with
    both means: what the drift test compares, for a reader."""
    import pandas as pd
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), dpi=100)
    ax = fig.subplots()
    folds = backtest.fold_metrics[metric]
    ax.plot(
        pd.to_datetime(backtest.origins[: len(folds)]),
        folds,
        color="tab:gray",
        linewidth=0.8,
        label=f"backtest {metric} per fold (mean {result.backtest_error:.4g})",
    )
    ax.plot(
        pd.to_datetime([s.origin for s in complete]),
        [s.loss for s in complete],
        color="tab:red",
        linewidth=1,
        label=f"live {metric} per forecast (mean {result.live_error:.4g})",
    )
    ax.axhline(result.backtest_error, color="tab:gray", linestyle="--", linewidth=0.8)
    ax.axhline(result.live_error, color="tab:red", linestyle="--", linewidth=0.8)
    ax.set_title(
        f"{run.model} v{run.version} {run.label}: live against backtest {metric} "
        f"(ratio {result.ratio:.2f}, {result.verdict}; {result.lane} lane nearest its threshold)"
    )
    ax.set_ylabel(metric)
    ax.legend(loc="upper left", fontsize=8)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.12, top=0.9)
    return fig


def _log_check(
    tracker: LiveTracker, run: LiveRun, key: str, metric: str, complete: list[Scored], result: Any, as_of: str
) -> int:
    """Per complete forecast ``<label>/<metric>`` at its origin's step; the check's aggregates at the step of
    the series' last date. Steps already logged are skipped."""
    per_forecast = f"{key}/{metric}"
    known = tracker.logged_steps(run.run_id, per_forecast)
    new = [
        (per_forecast, s.loss, _origin_ms(s.origin), day_number(s.origin))
        for s in complete
        if day_number(s.origin) not in known
    ]
    step = day_number(as_of)
    aggregates = []
    if step not in tracker.logged_steps(run.run_id, f"{key}/drift_statistic"):
        stamp = _origin_ms(as_of)
        values = {
            f"{key}/drift_statistic": result.statistic,
            f"{key}/drift_threshold": result.threshold,
            f"{key}/drift": 1.0 if result.verdict == "drift" else 0.0,
            f"{key}/scored": float(result.scored),
            f"{key}/drift_fast_statistic": result.fast_statistic,
            f"{key}/scored_one_step": float(result.fast_scored),
        }
        if math.isfinite(result.fast_threshold):
            values[f"{key}/drift_fast_threshold"] = result.fast_threshold
        if result.scored:
            values[f"{key}/live_{metric}_mean"] = result.live_error
            values[f"{key}/live_{metric}_ratio"] = result.ratio
        aggregates = [(k, v, stamp, step) for k, v in values.items()]
    tracker.log_metrics(run.run_id, new + aggregates)
    return len(new)


def monitor(connection: Connection, experiment: str, series: pd.Series, metric: str = "rmse") -> list[HorizonCheck]:
    """Check every live run of ``experiment`` against ``series``; tag each drifted version in the registry."""
    tracker = LiveTracker(connection, experiment)
    runs = tracker.runs()
    if not runs:
        raise TrackingError(
            f"experiment {experiment!r} holds no live forecasts; record some with forecast-mlflow forecast "
            "(or log_forecast) first"
        )
    checks = [check_run(tracker, run, series, metric) for run in runs]
    notes: dict[tuple[str, str], list[str]] = {}
    for check in checks:
        if check.result.verdict == "drift":
            r = check.result
            notes.setdefault((check.run.model, check.run.version), []).append(
                f"{check.run.label} on {check.as_of}: live {metric} {r.ratio:.2f}x the backtest's over {r.scored} "
                f"forecasts; {r.explain()}"
            )
    for (model, version), texts in notes.items():
        tracker.tag_drift(ModelRef(model, version), "; ".join(texts))
    return checks
