"""Writing runs: one MLflow run per model of a session, with params, metrics, manifests, plots and the model.

:func:`run_params` and :func:`run_metrics` are pure: they turn records into the names and values a run
carries, and are tested without a store.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import math
import platform
import shutil
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__, scratch
from ..gate import MULTI_HORIZON, TESTED, Verdict, fails_session
from ..records import Record, naive_reference, sanitize
from ..result import SessionResult
from ..store import mask_text
from .connection import Connection, quiet_mlflow

if TYPE_CHECKING:
    from ..gate import Baseline
    from ..plots import Drawing, Job

log = logging.getLogger(__name__)

#: ``(key, value, timestamp in ms, step)``: one metric value as :func:`run_metrics` yields it
MetricValue = tuple[str, float, int, int]


@dataclass
class _Streamed:
    """A candidate's run opened by :meth:`RunWriter.stream`: its id, start (ms) and the labels written."""

    run_id: str
    start: int
    labels: set[str] = field(default_factory=set)


@dataclass
class LoggedRun:
    model: str
    role: str
    run_id: str
    model_uri: str | None = None
    error: str | None = None
    #: an unchanged reference model's earlier run, not logged again (see :meth:`RunWriter.unchanged_run`)
    reused: bool = False


def mark_dead_runs(client: Any, experiment_ids: list[str]) -> list[str]:
    """End as KILLED the RUNNING runs whose writing process is gone (SIGKILL); returns their ids.

    Only runs this plugin wrote carry writer tags (see :mod:`..liveness`); a run of a live session, of
    another host or of another tool is left alone.
    """
    from ..liveness import HOST_TAG, is_dead

    if not experiment_ids:
        return []
    runs = client.search_runs(
        experiment_ids, filter_string=f"attributes.status = 'RUNNING' and tags.`{HOST_TAG}` != ''", max_results=1000
    )
    killed = []
    for run in runs:
        if is_dead(run.data.tags):
            client.set_tag(run.info.run_id, "forecast.killed_reason", "its session's process ended without closing it")
            client.set_terminated(run.info.run_id, "KILLED")
            killed.append(run.info.run_id)
    return killed


def run_params(records: list[Record], *, mlflow_version: str) -> dict[str, str]:
    """The params of one model's run: library versions, each horizon's spec, model params and data fingerprint.

    A model parameter all horizons share is logged once as ``model.<key>``; one that differs between
    horizons (a per-horizon network's ``horizon``, say) as ``<label>.model.<key>``. The data fingerprint
    is logged once when every horizon saw the same data, else per label.
    """
    import numpy
    import pandas

    params: dict[str, str] = {
        "version.python": platform.python_version(),
        "version.mlflow": mlflow_version,
        "version.numpy": numpy.__version__,
        "version.pandas": pandas.__version__,
        "version.pytest-forecast-mlflow": __version__,
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        params["version.torch"] = torch.__version__
    shas = {r.data.get("data.sha256") for r in records if r.data}
    shared = {key for key in {k for r in records for k in r.params} if len({r.params.get(key) for r in records}) == 1}
    for record in records:
        for key, value in record.spec.items():
            params[f"{record.label}.{key}"] = value
        for key, value in record.params.items():
            params[f"model.{key}" if key in shared else f"{record.label}.model.{key}"] = value
        for key, value in record.data.items():
            params[key if len(shas) == 1 else f"{record.label}.{key}"] = value
        if record.data_source:
            params["data.source" if len(shas) == 1 else f"{record.label}.data.source"] = record.data_source[:500]
    return params


def run_metrics(
    records: list[Record], skill: dict[str, dict[str, float]], verdict: Verdict | None, timestamp: int
) -> list[MetricValue]:
    """The metrics of one model's run: per-fold series (step = fold) and, at step 0, their aggregates.

    Every stepped series comes first, each contiguous, so a 1,000-value batch rarely splits one; then
    :func:`aggregate_metrics`.
    """
    return fold_metrics(records, timestamp) + aggregate_metrics(records, skill, verdict, timestamp)


def fold_metrics(records: list[Record], timestamp: int) -> list[MetricValue]:
    """Each horizon's per-fold series, ``<label>/<metric>`` at step = fold index.

    A value's timestamp is its fold's origin date (:func:`origin_timestamps`), so a chart whose x axis is
    set to "Time (wall)" in the MLflow UI reads the folds by date; ``timestamp`` where origins are no dates.
    """
    out: list[MetricValue] = []
    for record in records:
        if record.ok:
            label = sanitize(record.label)
            times = origin_timestamps(record.origins) or [timestamp] * len(record.origins)
            for name, values in record.fold_metrics.items():
                out += [(f"{label}/{name}", float(v), times[step], step) for step, v in enumerate(values)]
    return out


def origin_timestamps(origins: list[str]) -> list[int] | None:
    """The fold origins as milliseconds since the epoch, or None when one is not a date or predates
    1970 (MLflow refuses negative timestamps)."""
    import numpy as np

    try:
        stamps = np.array(origins, dtype="datetime64[ms]").astype(np.int64)
    except ValueError:
        return None
    if len(stamps) != len(origins) or (stamps < 0).any():
        return None
    return [int(t) for t in stamps]


def aggregate_metrics(
    records: list[Record], skill: dict[str, dict[str, float]], verdict: Verdict | None, timestamp: int
) -> list[MetricValue]:
    """The step-less metrics, at step 0: per label the aggregates, the fold count and the skill;
    ``all/<name>_mean`` averages each ``_mean`` over the labels; the verdict's compared rows of these
    records add ``gate/<label>/<metric>_*``. These are what runs are ordered and compared by."""
    out: list[MetricValue] = []
    means: dict[str, list[float]] = {}
    for record in records:
        if not record.ok:
            continue
        label = sanitize(record.label)
        for name, value in record.aggregates.items():
            out.append((f"{label}/{name}", float(value), timestamp, 0))
            if name.endswith("_mean"):
                means.setdefault(name, []).append(float(value))
        out.append((f"{label}/folds", float(len(record.origins)), timestamp, 0))
        for key, value in skill.get(f"{record.model} {record.label}", {}).items():
            out.append((f"{label}/{key}", float(value), timestamp, 0))
    for name, values in means.items():
        out.append((f"all/{name}", sum(values) / len(values), timestamp, 0))
    if verdict is not None:
        for row in verdict.rows:
            if row.status != "compared" or row.model not in {r.model for r in records}:
                continue
            prefix = f"gate/{sanitize(row.label)}/{row.metric}"
            out.append((f"{prefix}_delta_pct", row.delta_pct, timestamp, 0))
            if row.method in (*TESTED, *MULTI_HORIZON):  # a joint test's p is its horizons' p
                out.append((f"{prefix}_p", row.p_adjusted, timestamp, 0))
                out.append((f"{prefix}_detectable_pct", row.min_detectable_pct, timestamp, 0))
    return out


def default_run_name(model: str, tags: dict[str, str]) -> str:
    """``<model> <short commit> <session start>``, e.g. ``direct_mlp 3f2a1c9 2026-11-27 20:55:03``.

    Unique across sessions and meaningful in the UI's run list and chart legends, where every session's
    run of one model would otherwise carry the same name. ``+dirty`` marks uncommitted changes.
    """
    commit = tags.get("mlflow.source.git.commit", "")[:7]
    if commit and tags.get("git.dirty") == "true":
        commit += "+dirty"
    started = tags.get("forecast.started", "")[:19].replace("T", " ")
    return " ".join(part for part in (model, commit, started) if part)


def _same(a: float, b: float) -> bool:
    """Equal, NaN included (a metric with nothing to score is NaN in both runs)."""
    return a == b or (math.isnan(a) and math.isnan(b))


def fingerprint(model: str, params: dict[str, str]) -> str:
    """What makes two reference runs the same backtest: the model's name and every param of its run
    (library versions, each horizon's schedule, the model's params, the data's fingerprint)."""
    import hashlib
    import json

    return hashlib.sha256(json.dumps([model, sorted(params.items())]).encode()).hexdigest()[:32]


class RunWriter:
    """Writes a session's runs, finds them again by session id, and closes runs of killed sessions."""

    def __init__(self, connection: Connection) -> None:
        from ..liveness import writer_tags

        self.connection = connection
        self.client = connection.client
        self.settings = connection.settings
        #: the process the runs name as their writer: the session's (see :mod:`.agent`)
        self.writer = writer_tags()
        #: candidates' runs opened by :meth:`stream`, by model, until :meth:`log_session` completes them
        self.streamed: dict[str, _Streamed] = {}
        self.stream_error: Exception | None = None
        #: the plots' child process, started with the first streamed candidate (see :meth:`_start_plots`)
        self.drawing: Drawing | None = None
        #: what :meth:`stream` saw for the plots: the champion, candidates and references, horizons sent
        self.baseline: Baseline | None = None
        self.candidates: dict[tuple[str, str], Record] = {}
        self.references: list[Record] = []
        self.drawn: dict[tuple[str, str], tuple[str, str | None, str | None]] = {}

    def stream(self, experiment_id: str, record: Record, session_id: str, tags: dict[str, str]) -> None:
        """Write a candidate's per-fold series while the session's later tests run.

        Its run is created with the first of its records (RUNNING, writer tags naming the session's
        process, so a killed session leaves it for the next to mark KILLED); :meth:`log_session` completes
        the run. A failure is kept and raised by :meth:`log_session`.
        """
        if not record.ok or self.stream_error is not None:
            return
        if record.role != "candidate":  # logged (or found unchanged) at the end; drawn on its candidate's plots
            self.references.append(record)
            self._feed_plots()
            return
        doing = f"logging the folds of {record.model} {record.label}"
        try:
            streamed = self.streamed.get(record.model)
            if streamed is None:
                start = int(time.time() * 1000)
                first = {**tags, **self._identity(record.model, "candidate", session_id)}
                run = self.client.create_run(
                    experiment_id,
                    start_time=start,
                    run_name=self._run_name(record.model, first),
                    tags=self._masked(first),
                )
                streamed = self.streamed[record.model] = _Streamed(run.info.run_id, start)
            if self.settings.plots and self.drawing is None:
                from ..plots import spawn

                self.drawing = spawn(scratch.make("plots"))
        except Exception as exc:
            self.stream_error = self.connection.explain(exc, doing)
            return
        # the plots' process draws this horizon while its series are written (the last one's are awaited)
        self.candidates[(record.model, record.label)] = record
        self._feed_plots()
        try:
            self._batched(streamed.run_id, metrics=fold_metrics([record], streamed.start), params=[], tags=[])
            streamed.labels.add(record.label)
        except Exception as exc:
            self.stream_error = self.connection.explain(exc, doing)

    def _plot_job(self, record: Record, baseline: Baseline | None, references: list[Record]) -> tuple[Job, tuple]:
        """A candidate horizon's plots (with the champion's folds and the naive reference), and what they show."""
        base = baseline.horizons.get(record.label) if baseline else None
        reference = naive_reference(references, record.label)
        shown = (record.nodeid, reference.nodeid if reference else None, baseline.run_id if baseline else None)
        return (record, base, reference), shown

    def _feed_plots(self) -> None:
        """Send the drawing each candidate horizon whose naive reference has arrived, while the tests run."""
        if self.drawing is None:
            return
        for key, record in self.candidates.items():
            if key in self.drawn:
                continue
            job, shown = self._plot_job(record, self.baseline, self.references)
            if job[2] is not None:
                self.drawing.draw(job, self.settings.gate_metrics[0])
                self.drawn[key] = shown

    def abandon(self, status: str) -> None:
        """End ``status`` the streamed runs :meth:`log_session` did not complete (incomplete: replay redoes them)."""
        self._stop_drawing(self.drawing)
        self.drawing = None
        while self.streamed:
            _, streamed = self.streamed.popitem()
            self.client.set_terminated(streamed.run_id, status)

    @staticmethod
    def _stop_drawing(drawing: Drawing | None) -> None:
        if drawing is not None:
            drawing.stop()
            shutil.rmtree(drawing.folder, ignore_errors=True)

    def reap_dead_runs(self, experiment_id: str) -> list[str]:
        """Mark KILLED the runs that killed sessions left RUNNING in this experiment (see :mod:`..liveness`)."""
        try:
            return mark_dead_runs(self.client, [experiment_id])
        except Exception as exc:
            raise self.connection.explain(exc, "closing runs of killed sessions") from None

    def session_runs(self, experiment_id: str, session_id: str) -> list[Any]:
        """The runs in the experiment that the session ``session_id`` wrote (its ``forecast.session`` tag)."""
        return self.client.search_runs(
            [experiment_id], filter_string=f"tags.`forecast.session` = '{session_id}'", max_results=1000
        )

    def delete_run(self, run_id: str) -> None:
        self.client.delete_run(run_id)

    def log_session(self, experiment_id: str, result: SessionResult) -> list[LoggedRun]:
        """One run per model, with params, stepped and aggregate metrics, manifests, plots and the model.

        A reference model whose backtest is unchanged since an earlier run in the experiment (same
        params, data and schedule, identical results) is not logged again: that run is its record
        (:meth:`unchanged_run`). The candidate's plots are drawn in a child process meanwhile.
        """
        by_model: dict[str, list[Record]] = {}
        for record in result.records:
            by_model.setdefault(record.model, []).append(record)
        drawing = self._start_plots(result) if self.settings.plots else None
        logged = []
        try:
            for model, model_records in by_model.items():
                logged.append(self._log_or_reuse(experiment_id, model, model_records, result, drawing))
        except Exception as exc:
            raise self.connection.explain(exc, "logging the session") from exc
        finally:
            self._stop_drawing(drawing)
        return logged

    def _log_or_reuse(
        self, experiment_id: str, model: str, records: list[Record], result: SessionResult, drawing: Drawing | None
    ) -> LoggedRun:
        role = "candidate" if any(r.role == "candidate" for r in records) else "reference"
        params = run_params(records, mlflow_version=self.connection.mlflow.__version__)
        if role == "reference":
            earlier = self.unchanged_run(experiment_id, model, records, params, result)
            if earlier is not None:
                return LoggedRun(model=model, role=role, run_id=earlier, reused=True)
        return self._log_model_run(experiment_id, model, role, records, params, result, drawing)

    def unchanged_run(
        self, experiment_id: str, model: str, records: list[Record], params: dict[str, str], result: SessionResult
    ) -> str | None:
        """The id of an earlier complete run of this reference backtest with identical results, or None.

        Same fingerprint (model name and every param: library versions, schedules, model params, data
        fingerprint), FINISHED and completely logged, and every step-less metric equal to this session's:
        a reference model whose code changed without a param changing gives other numbers and is logged.
        Only when all of this session's backtests of it passed.
        """
        if any(not r.ok for r in records) or any(result.outcomes.get(r.nodeid) != "passed" for r in records):
            return None
        found = self.client.search_runs(
            [experiment_id],
            filter_string=(
                f"tags.`forecast.fingerprint` = '{fingerprint(model, params)}' and attributes.status = 'FINISHED' "
                "and tags.`forecast.logged` = 'complete' and tags.`forecast.role` = 'reference'"
            ),
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if not found:
            return None
        expected = {key: value for key, value, _, _ in aggregate_metrics(records, result.skill, None, 0)}
        stored = found[0].data.metrics
        if any(key not in stored or not _same(stored[key], value) for key, value in expected.items()):
            return None
        return str(found[0].info.run_id)

    def _start_plots(self, result: SessionResult) -> Drawing | None:
        """The candidates' plots, drawn by the child :meth:`stream` started (else a new one) meanwhile."""
        from ..plots import spawn

        drawing, self.drawing = self.drawing, None
        jobs = []
        for record in result.records:
            if record.role == "candidate" and record.ok:  # a reference is drawn on its candidate's plots
                job, shown = self._plot_job(record, result.baseline, list(result.records))
                if self.drawn.get((record.model, record.label)) != shown:  # not drawn as the end sees it
                    jobs.append(job)
        drawn, self.drawn = self.drawn, {}
        self.candidates, self.references = {}, []
        if not jobs and not drawn:
            self._stop_drawing(drawing)
            return None
        drawing = drawing or spawn(scratch.make("plots"))
        drawing.send(jobs, self.settings.gate_metrics[0])
        return drawing

    def _log_model_artifact(
        self, experiment_id: str, run_id: str, records: list[Record], params: dict[str, str], tags: dict[str, str]
    ) -> tuple[str | None, str | None, str | None]:
        """Log the candidate's model: ``(model URI, logged model id, error)``; a failure is reported, never
        allowed to lose the run's metrics."""
        try:
            return (*self._log_model(experiment_id, run_id, records, params, tags), None)
        except Exception as exc:
            text = mask_text(str(exc), secrets_from=self.connection.uri)
            message = f"{type(exc).__name__}: {text.splitlines()[0][:500] if text else ''}"
            self.client.set_tag(run_id, "forecast.model_error", message)
            return None, None, message

    def _run_tags(self, model: str, role: str, records: list[Record], result: SessionResult) -> dict[str, str]:
        labels = [r.label for r in records if r.ok]
        node_outcomes = [result.outcomes.get(r.nodeid, "unknown") for r in records]
        tags = {
            "forecast.horizons": ",".join(labels),
            "forecast.tests": ",".join(f"{o}" for o in node_outcomes),
            "forecast.tests.failed": str(sum(o == "failed" for o in node_outcomes)),
            "forecast.tests.passed": str(sum(o == "passed" for o in node_outcomes)),
            **self._identity(model, role, result.session_id),
        }
        tags = {**result.tags, **tags}  # a --mlflow-tag never overrides what the plugin records
        if role == "candidate" and result.verdict is not None:
            tags["forecast.verdict"] = result.verdict.status
            tags["forecast.baseline"] = result.verdict.baseline
        errors = [f"{r.label}: {r.error}" for r in records if r.error]
        if errors:
            tags["forecast.errors"] = "; ".join(errors)[:4000]
        return self._masked(tags)

    def _identity(self, model: str, role: str, session_id: str) -> dict[str, str]:
        """The tags a run carries from its creation: whose it is and who writes it."""
        return {
            "forecast.model": model,
            "forecast.role": role,
            "forecast.session": session_id,
            "forecast.plugin_version": __version__,
            "mlflow.source.name": "pytest",
            "mlflow.source.type": "LOCAL",
            **self.writer,
        }

    def _masked(self, tags: dict[str, Any]) -> dict[str, str]:
        """Tag values as a run stores them: credentials masked, within MLflow 2.16's 5,000 characters."""
        return {key: mask_text(str(value), secrets_from=self.connection.uri)[:5000] for key, value in tags.items()}

    def _run_name(self, model: str, tags: dict[str, str]) -> str:
        return f"{self.settings.run_name}-{model}" if self.settings.run_name else default_run_name(model, tags)

    def _log_model_run(
        self,
        experiment_id: str,
        model: str,
        role: str,
        records: list[Record],
        params: dict[str, str],
        result: SessionResult,
        drawing: Drawing | None,
    ) -> LoggedRun:
        from mlflow.entities import Param, RunTag

        verdict = result.verdict
        if self.stream_error is not None:
            raise self.stream_error
        node_outcomes = [result.outcomes.get(r.nodeid, "unknown") for r in records]
        # FAILED: one of its tests failed, a backtest did not complete, or the gate failed it for a regression
        regressed = verdict is not None and any(row.model == model for row in verdict.regressions)
        failed = (
            any(o == "failed" for o in node_outcomes)
            or any(not r.ok for r in records)
            or (regressed and fails_session(verdict, self.settings))
        )
        run_status = result.status if result.status != "FINISHED" else ("FAILED" if failed else "FINISHED")
        tags = {**self._run_tags(model, role, records, result), "forecast.fingerprint": fingerprint(model, params)}
        streamed = self.streamed.pop(model, None)
        if streamed is None:
            start = int(time.time() * 1000)
            run_id = self.client.create_run(
                experiment_id, start_time=start, run_name=self._run_name(model, tags), tags=tags
            ).info.run_id
        else:  # opened by stream() while the tests ran; the tags that depend on the outcomes are set now
            run_id, start = streamed.run_id, streamed.start
        model_uri = None
        try:
            if streamed is not None:
                self._batched(run_id, metrics=[], params=[], tags=[RunTag(k, v) for k, v in tags.items()])
            self._batched(run_id, metrics=[], params=[Param(k, v) for k, v in params.items()], tags=[])
            model_error = model_id = None
            if role == "candidate":
                model_uri, model_id, model_error = self._log_model_artifact(
                    experiment_id, run_id, records, params, tags
                )
            aggregates = aggregate_metrics(records, result.skill, verdict, start)
            self._batched(run_id, metrics=aggregates, params=[], tags=[], model_id=model_id)
            done = streamed.labels if streamed is not None else set()
            folds = fold_metrics([r for r in records if r.label not in done], start)
            self._batched(run_id, metrics=folds, params=[], tags=[])
            for record in records:
                if record.ok:
                    # compact JSON: log_dict indents, which takes json's pure-Python encoder (~10x slower)
                    manifest = json.dumps(record.manifest(), separators=(",", ":"))
                    self.client.log_text(run_id, manifest, f"manifests/{sanitize(record.label)}.json")
            self._log_dataset(run_id, records)
            if drawing is not None and role == "candidate":
                for path in drawing.collect().get(model, []):
                    self.client.log_artifact(run_id, str(path), "plots")
            if verdict is not None and role == "candidate":
                from ..report import markdown, to_json

                self.client.log_text(run_id, markdown(verdict, self.settings.gate), "gate/verdict.md")
                self.client.log_text(run_id, to_json(verdict, self.settings.gate), "gate/verdict.json")
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the run ends KILLED, as the README promises
            self.client.set_terminated(run_id, "KILLED")
            raise
        except BaseException:
            self.client.set_terminated(run_id, "FAILED")
            raise
        self.client.set_tag(run_id, "forecast.logged", "complete")
        self.client.set_terminated(run_id, "FAILED" if model_error else run_status)
        return LoggedRun(model=model, role=role, run_id=run_id, model_uri=model_uri, error=model_error)

    def _batched(
        self, run_id: str, *, metrics: list[MetricValue], params: list, tags: list, model_id: str | None = None
    ) -> None:
        """log_batch in chunks within MLflow's limits (1000 metrics, 100 params, 100 tags per call).

        ``metrics`` are ``(key, value, timestamp, step)`` tuples, turned into entities chunk by chunk;
        ``model_id`` links them to a logged model (MLflow 3).
        """
        from mlflow.entities import Metric

        for i in range(0, len(params), 100):
            self.client.log_batch(run_id, params=params[i : i + 100])
        for i in range(0, len(tags), 100):
            self.client.log_batch(run_id, tags=tags[i : i + 100])
        # Thousands of short-lived Metric entities would trigger full garbage-collection passes over the
        # whole session's heap mid-write; nothing here forms reference cycles, so pause the collector.
        collecting = gc.isenabled()
        gc.disable()
        try:
            for i in range(0, len(metrics), 1000):
                linked = {"model_id": model_id} if model_id else {}  # MLflow 3: the metric belongs to that model
                chunk = [Metric(k, v, ts, step, **linked) for k, v, ts, step in metrics[i : i + 1000]]
                self.client.log_batch(run_id, metrics=chunk)
        finally:
            if collecting:
                gc.enable()

    def _log_dataset(self, run_id: str, records: list[Record]) -> None:
        seen = set()
        for record in records:
            sha = record.data.get("data.sha256")
            if not sha or sha in seen:
                continue
            seen.add(sha)
            try:
                from mlflow.data.dataset_source_registry import resolve_dataset_source
                from mlflow.data.meta_dataset import MetaDataset
                from mlflow.entities import DatasetInput, InputTag

                source = record.data_source or "in-memory series"
                try:
                    with warnings.catch_warnings():  # "can be interpreted in multiple ways": same class twice
                        warnings.simplefilter("ignore")
                        resolved = resolve_dataset_source(source)
                except Exception:
                    from mlflow.data.code_dataset_source import CodeDatasetSource

                    resolved = CodeDatasetSource({"source": source})
                name = Path(source).stem if record.data_source else "series"
                # mlflow marks Dataset.profile abstract without ABCMeta; MetaDataset lacks it and instantiates fine
                dataset = MetaDataset(source=resolved, name=name, digest=sha[:12])  # type: ignore[abstract]
                entity = dataset._to_mlflow_entity()
                self.client.log_inputs(run_id, [DatasetInput(entity, [InputTag("mlflow.data.context", "backtest")])])
            except Exception as exc:  # a UI nicety; the fingerprint params carry the same facts
                log.warning("could not record the dataset input: %s", exc)

    def _log_model(
        self, experiment_id: str, run_id: str, records: list[Record], params: dict[str, str], tags: dict[str, str]
    ) -> tuple[str | None, str | None]:
        files = {
            r.label: (r.model_file, r.model_kind, r.input_example, r.horizon) for r in records if r.ok and r.model_file
        }
        if not files:
            return None, None
        from ..pyfunc import log_bundle, logs_into_models

        if logs_into_models():
            # MLflow 3: the logged model is made here, linked to the run as its source and output, and the
            # bundle logged into it outside the run. Logged inside the run, MLflow would read back the whole
            # history of every metric the run has (the per-fold series streamed during the tests: ~0.5 s at the
            # session's end) to link their step-0 values, the first fold's, to the model as if they were its
            # scores; the model's metrics are the run's step-less aggregates, linked by _log_model_run.
            from mlflow.entities import LoggedModelOutput

            model = self.client.create_logged_model(
                experiment_id,
                name="model",
                source_run_id=run_id,
                params=params,
                tags={k: v for k, v in tags.items() if k.startswith(("mlflow.source.", "forecast."))},
            )
            try:
                with quiet_mlflow():
                    uri, model_id = log_bundle(files, model_id=model.model_id)
            except Exception:
                with contextlib.suppress(Exception):  # the run's forecast.model_error tag says why
                    self.client.finalize_logged_model(model.model_id, "FAILED")
                raise
            self.client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=0)])
            return uri, model_id
        try:
            with self.connection.mlflow.start_run(run_id=run_id, nested=False), quiet_mlflow():
                return log_bundle(files)
        finally:
            # leaving start_run ends the run (FINISHED, or FAILED on an error); the rest of it is still
            # to be written, and a session killed meanwhile must leave it RUNNING for the next to reap
            self.client.update_run(run_id, status="RUNNING")
