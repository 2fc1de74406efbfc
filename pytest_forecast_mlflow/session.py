"""The plugin object: collects backtest records, decides the verdict, logs to MLflow, writes the summary.

One instance per process when the plugin is on. Roles (one check, ``hasattr(config, "workerinput")``):

* a worker (xdist) records and compares, then ships its records in ``config.workeroutput``;
* the controller (or a plain session) alone talks to MLflow, merges, judges and prints.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import shutil
import signal
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from . import scratch
from .gate import Baseline, Row, Verdict, compare_for, fails_session, judge, promotion_blocker
from .models import save_model
from .records import Record, from_result
from .result import SessionResult
from .settings import Settings
from .store import mask_text, mask_uri

if TYPE_CHECKING:
    from .tracking.agent import Forked, InProcess, Pending

WORKER_KEY = "forecast_mlflow"
#: the pseudo-test that carries a failing verdict (see ForecastSession._report_gate_error)
GATE_NODE = "forecast-gate"


def _report_error(
    session: pytest.Session, nodeid: str, longrepr: str, properties: Sequence[tuple[str, object]]
) -> None:
    """Report ``nodeid`` errored at setup, then its teardown: junitxml writes a test's properties (those of
    the teardown report), and closes its testcase, when the teardown is reported."""
    hook = session.config.hook.pytest_runtest_logreport
    location = (nodeid, None, nodeid)
    session.testscollected += 1  # one more outcome than collected tests would read "[150%]" in the progress
    properties = list(properties)
    hook(report=pytest.TestReport(nodeid, location, {}, "failed", longrepr, "setup", user_properties=properties))
    hook(report=pytest.TestReport(nodeid, location, {}, "passed", None, "teardown", user_properties=properties))


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


class ForecastSession:
    def __init__(self, config: pytest.Config, settings: Settings) -> None:
        self.config = config
        self.settings = settings
        self.worker = is_worker(config)
        self.records: list[Record] = []
        self.outcomes: dict[str, str] = {}
        self.baseline: Baseline | None = None
        self.baseline_note = "not resolved"
        self.baseline_error: str | None = None
        self.unavailable: str | None = None
        #: the store, worked in a child process while the tests run (see tracking/agent.py)
        self.service: Forked | InProcess | None = None
        self.connected = False
        self._opening: Pending | None = None
        self._starting: tuple[Pending, Pending | None] | None = None
        self.experiment_id: str | None = None
        self.verdict: Verdict | None = None
        self.summary: list[str] = []
        self.problems: list[str] = []
        self.git: dict[str, str] = {}
        self.session_id = uuid.uuid4().hex
        self.started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        self.models_dir: Path | None = None
        self._owns_models_dir = False
        self._previous_sigterm: Any = None
        self.interrupted_logging = False
        if self.worker:
            # xdist sets workerinput on a worker's config; pytest's Config does not declare it
            shipped = config.workerinput.get(WORKER_KEY, {})  # type: ignore[attr-defined]
            self.baseline = Baseline.from_json(shipped.get("baseline"))
            self.baseline_note = shipped.get("baseline_note", "")
            self.session_id = shipped.get("session_id", self.session_id)
            self.models_dir = Path(shipped["models_dir"]) if shipped.get("models_dir") else None

    # -- controller start-up -----------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """Start opening the store, closing runs of killed sessions and reading the baseline, in the background.

        The answers are awaited where they are first needed: the store before the first test runs
        (:meth:`pytest_runtestloop`), the baseline when a candidate is compared or an xdist worker starts.
        """
        if self.worker:
            return
        from .tracking import git_info
        from .tracking.agent import open_service

        # first: the session's first test waits for the store to open (importing mlflow, 1.7 s)
        self.service = open_service(self.settings)
        self._opening = self.service.request("open")
        reading = self.service.request("resolve_baseline") if self.settings.gate != "off" else None
        self._starting = (self.service.request("reap_dead_runs"), reading)
        scratch.sweep()  # the model files and plots of sessions killed before they could remove them
        self.models_dir = scratch.make("models")
        self._owns_models_dir = True
        self._install_sigterm()
        self.git = git_info(self.settings.rootdir)
        if self.settings.gate == "off":
            self.baseline_note = "gate off"
        if session.config.pluginmanager.has_plugin("dsession"):  # xdist: workers start with the baseline
            self._await_start()

    def _await_open(self, *, stop: bool = True) -> None:
        """Wait for the store to be open; unavailable: a usage error (``stop``), else spooled at the end."""
        from .tracking import StoreUnavailable, TrackingError

        if self._opening is None:
            return
        opening, self._opening = self._opening, None
        try:
            self.experiment_id = opening.result()
            self.connected = True
        except StoreUnavailable as exc:
            if self.settings.on_unavailable == "spool" or not stop:
                self.unavailable = f"{exc}; results are spooled to a journal"
                self.baseline_note = "not resolved (store unavailable)"
                return
            raise pytest.UsageError(
                f"{exc}. Start the server, point --mlflow-tracking-uri elsewhere, or use "
                "--mlflow-on-unavailable=spool to keep the results in a journal"
            ) from None
        except TrackingError as exc:
            if not stop:
                self.unavailable = f"{exc}; results are spooled to a journal"
                return
            raise pytest.UsageError(str(exc)) from None

    def _await_start(self, *, stop: bool = True) -> None:
        """Wait for the whole start-up: the store open, runs of killed sessions closed, the baseline read."""
        self._await_open(stop=stop)
        if self._starting is None:
            return
        (reaping, reading), self._starting = self._starting, None
        if not self.connected:
            return
        self._reap_dead_runs(reaping)
        if reading is not None:
            self._read_baseline(reading)

    def _reap_dead_runs(self, reaping: Pending) -> None:
        from .tracking import StoreUnavailable, TrackingError

        try:
            killed = reaping.result()
        except (StoreUnavailable, TrackingError) as exc:
            killed = []
            self.problems.append(f"runs of killed sessions could not be closed: {exc}")
        if killed:
            self.summary.append(
                f"marked {len(killed)} run(s) KILLED whose session died without closing them: " + ", ".join(killed)
            )

    def _read_baseline(self, reading: Pending) -> None:
        from .tracking import StoreUnavailable, TrackingError

        try:
            self.baseline, self.baseline_note = reading.result()
        except (StoreUnavailable, TrackingError) as exc:
            self.baseline_error = f"the baseline cannot be read: {exc}"
            self.baseline_note = "unreadable"

    def _install_sigterm(self) -> None:
        """SIGTERM ends the session like Ctrl-C: runs end KILLED, computed folds are kept."""

        def interrupt(signum, frame):  # noqa: ARG001
            raise KeyboardInterrupt("SIGTERM")

        try:
            self._previous_sigterm = signal.signal(signal.SIGTERM, interrupt)
        except ValueError:  # not the main thread
            self._previous_sigterm = None

    def worker_input(self) -> dict[str, Any]:
        """What the controller decided once, shipped to each xdist worker."""
        self._await_start()
        return {
            "baseline": self.baseline.to_json() if self.baseline else None,
            "baseline_note": self.baseline_note,
            "session_id": self.session_id,
            "models_dir": str(self.models_dir) if self.models_dir else None,
        }

    # -- recording (every process) -----------------------------------------------------------------

    def _check_unique(self, model: str, label: str, nodeid: str) -> None:
        """One backtest per model and horizon label in a session: metrics and manifests are keyed by both."""
        for other in self.records:
            if other.ok and other.model == model and other.label == label:
                raise ValueError(
                    f"{model!r} was already backtested at {label!r} in this session ({other.nodeid}); its "
                    f"metrics and manifest would be overwritten. Give this backtest another name= or label= "
                    f"(in {nodeid})"
                )

    def duplicates(self) -> list[str]:
        """Backtests of one model at one label recorded by different xdist workers (the first one is kept)."""
        seen: dict[tuple[str, str], str] = {}
        problems, kept = [], []
        for record in self.records:
            key = (record.model, record.label)
            if record.ok and key in seen:
                problems.append(
                    f"{record.model!r} at {record.label!r} was backtested twice ({seen[key]} and "
                    f"{record.nodeid}); only the first is logged. Give one another name= or label="
                )
                continue
            if record.ok:
                seen[key] = record.nodeid
            kept.append(record)
        self.records = kept
        return problems

    def record(
        self, item: pytest.Item, result: Any, *, model: Any, role: str, label: str, source: str, series_name: str = ""
    ) -> None:
        self._check_unique(result.model, label, item.nodeid)
        record = from_result(
            result,
            nodeid=item.nodeid,
            location=item.location,
            role=role,
            label=label,
            data_source=source,
            series_name=series_name,
        )
        if role == "candidate":
            if self.models_dir is not None:
                save_model(model, record, self.models_dir)
            if self.settings.gate != "off":
                self._await_start()  # the baseline, read while the tests ran
            if self.settings.gate != "off" and self.baseline_error is None and self.unavailable is None:
                rows = compare_for(record, self.baseline, self.settings)
                record.comparisons = [row.to_json() for row in rows]
                for row in rows:
                    prefix = f"forecast.{row.label}.{row.metric}"
                    item.user_properties += [
                        (f"{prefix}.baseline", row.baseline),
                        (f"{prefix}.candidate", row.candidate),
                        (f"{prefix}.delta_pct", row.delta_pct),
                        (f"{prefix}.p_unadjusted", row.p_value),
                        (f"{prefix}.folds", row.n_folds),
                        (f"{prefix}.status", row.status),
                    ]
        self.records.append(record)
        if self.connected and self.service is not None and record.ok:
            # a candidate's per-fold series are written (and its plots drawn, once the naive reference is
            # there) while the later tests run; the session's end completes its run
            self.service.request("stream", record, self.session_id, self._tags(), wanted=False)

    def record_error(self, item: pytest.Item, *, model: str, role: str, label: str, error: BaseException) -> None:
        self.records.append(
            Record(
                nodeid=item.nodeid,
                location=item.location,
                model=model,
                role=role,
                label=label,
                error=f"{type(error).__name__}: {error}"[:2000],
            )
        )

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if self.worker:
            return
        current = self.outcomes.get(report.nodeid)
        if report.failed:
            self.outcomes[report.nodeid] = "failed"
        elif report.when == "call" and current != "failed":
            self.outcomes[report.nodeid] = report.outcome
        elif report.skipped and current is None:
            self.outcomes[report.nodeid] = "skipped"

    # -- workers ship, the controller merges --------------------------------------------------------

    def worker_output(self) -> str:
        return json.dumps([record.to_json() for record in self.records])

    def merge_worker_output(self, payload: str | None) -> None:
        if payload:
            self.records.extend(Record.from_json(item) for item in json.loads(payload))

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session: pytest.Session):
        if not self.worker:
            self._await_open()  # a store that cannot be opened stops the session before any test runs
        result = yield
        if not self.worker:
            self._judge(session, interrupted=False)
        return result

    # -- the verdict ---------------------------------------------------------------------------------

    def _ordered(self) -> list[Record]:
        return sorted(self.records, key=lambda r: (r.role != "candidate", r.model, r.horizon, r.label, r.nodeid))

    def _judge(self, session: pytest.Session, *, interrupted: bool) -> None:
        self._await_start(stop=False)
        if self.settings.gate == "off":
            self.verdict = Verdict("off", (), self.baseline_note)
            return
        candidates = [r for r in self._ordered() if r.role == "candidate"]
        rows = [Row(**row) for record in candidates for row in record.comparisons]
        incomplete = [f"{r.model} {r.label}" for r in candidates if not r.ok]
        unavailable = self.unavailable or self.baseline_error
        self.verdict = judge(
            rows,
            self.settings,
            baseline=self.baseline,
            incomplete=incomplete,
            interrupted=interrupted,
            unavailable=unavailable,
            baseline_note=self.baseline_note,
        )
        if self.verdict.regressions and not interrupted and self.settings.notify:
            self._notify_regressions()
        if interrupted or not self.fails_session:
            return
        if self.verdict.regressions or self.verdict.session_reasons:  # else a failed test already says why
            self._report_gate_error(session)

    def _notify_regressions(self) -> None:
        """One notification per session (the controller's) through ``--forecast-notify``; failures are lines
        of the summary, never errors: the session's data matters more than the alert."""
        from .notify import send

        assert self.verdict is not None
        rows = self.verdict.regressions
        title = f"forecast gate: {len(rows)} regression(s) in {self.settings.experiment}"
        body = "\n".join(
            f"{row.model} horizon {row.label} {row.metric}: verdict regressed, "
            f"ratio {row.candidate / row.baseline:.3f} (candidate {row.candidate:.4g} vs champion "
            f"{row.baseline:.4g}, p {row.p_adjusted:.3g}, {row.nodeid})"
            for row in rows
        )
        delivery = send(self.settings.notify, self.mask(title), self.mask(body))
        if delivery.sent:
            self.summary.append(f"notified {delivery.sent} URL(s) of the regression")
        self.summary += [f"notification not delivered: {failure}" for failure in delivery.failures]

    @property
    def fails_session(self) -> bool:
        return fails_session(self.verdict, self.settings)

    def _report_gate_error(self, session: pytest.Session) -> None:
        """A failing verdict is an error of the pseudo-test ``forecast-gate``; each test is counted once.

        That is where CI users look: the short summary ("ERROR forecast-gate - forecast gate: 10d rmse
        regressed (test_x[10d])"), the final line ("12 passed, 1 error") and the JUnit XML (a
        ``forecast-gate`` testcase with an ``<error>`` and each regression's Holm p-value as properties).
        A regressed horizon's own test passed (its backtest ran and its assertions held), so it is
        reported passed, with the comparison's properties on its own testcase.
        """
        from .report import failure_message

        assert self.verdict is not None  # called once the session was judged
        regressions = self.verdict.regressions
        reasons = [f"{row.label} {row.metric} regressed ({row.nodeid.rpartition('::')[2]})" for row in regressions]
        details = [failure_message(row, self.verdict.baseline) for row in regressions]
        text = self.mask(
            "\n".join(["forecast gate: " + "; ".join(reasons + list(self.verdict.session_reasons)), *details])
        )
        properties: list[tuple[str, object]] = [("forecast.verdict", self.verdict.status)]
        for row in regressions:
            prefix = f"forecast.{row.label}.{row.metric}"
            properties += [
                (f"{prefix}.p_holm", row.p_adjusted),
                (f"{prefix}.verdict", "regressed"),
                (f"{prefix}.test", row.nodeid),
            ]
        _report_error(session, GATE_NODE, text, properties)

    # -- the end: log, register, report ------------------------------------------------------------

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if self.worker:
            if hasattr(self.config, "workeroutput"):
                self.config.workeroutput[WORKER_KEY] = self.worker_output()
            return
        interrupted = exitstatus == pytest.ExitCode.INTERRUPTED
        if interrupted or self.verdict is None:
            self._judge(session, interrupted=interrupted)
        duplicates = self.duplicates()
        self.problems += duplicates
        result = self._result("KILLED" if interrupted else "FINISHED")
        try:
            logged_ok = self._log(result) and not duplicates
        finally:
            if self.service is not None:
                sys.stderr.write(self.service.take_output())
        if self.interrupted_logging:
            session.exitstatus = pytest.ExitCode.INTERRUPTED
        elif not logged_ok and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        self._summarise(result)

    def mask(self, text: str) -> str:
        """``text`` without the tracking URI's credentials: applied wherever text leaves the process."""
        return mask_text(text, secrets_from=self.settings.tracking_uri)

    def _result(self, status: str) -> SessionResult:
        """What the session produced, as the one value logging, the journal and replay take."""
        from .report import skill

        records = tuple(self._ordered())
        return SessionResult(
            session_id=self.session_id,
            status=status,
            records=records,
            outcomes=dict(self.outcomes),
            verdict=self.verdict,
            baseline=self.baseline,
            skill=skill(list(records)),
            tags=self._tags(),
        )

    def _tags(self) -> dict[str, str]:
        """The tags every run of the session carries: the checkout, the user's --mlflow-tag, the start."""
        return {**self.git, **dict(self.settings.tags), "forecast.started": self.started}

    def _summarise(self, result: SessionResult) -> None:
        """The verdict's lines first in the terminal section, the skill last; the report files written."""
        from .report import skill_lines, terminal_lines
        from .report_files import write_reports

        if self.verdict is not None:
            self.summary = terminal_lines(self.verdict, self.settings.gate) + self.summary
        self.summary += skill_lines(result.skill)
        if self.verdict is not None:
            write_reports(self.verdict, self.settings, session_id=self.session_id)

    def _log(self, result: SessionResult) -> bool:
        """Log every record; on an unavailable store, spool a journal instead. Returns False on failure."""
        if not self.records:
            self.summary.append("nothing to log: no test called the walk_forward fixture")
            return True
        if not self.connected or self.service is None:
            path = self._spool(result, reason=self.unavailable or "store unavailable")
            self.summary.append(f"results saved to {path}; replay with: {self._replay_hint(path)}")
            return True
        from .tracking import StoreUnavailable

        try:
            self.service.request("use_path", list(sys.path), wanted=False)
            logged = self.service.request("log_session", result).result()
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM while writing: the runs end KILLED, the results are kept
            path = self._spool(
                dataclasses.replace(result, status="KILLED"), reason="the session was interrupted while logging"
            )
            self.problems.append(
                f"interrupted while logging: the runs written so far are KILLED; every result is "
                f"saved to {path}; replay with: {self._replay_hint(path)}"
            )
            self.interrupted_logging = True
            return False
        except Exception as exc:  # the store failed mid-session: spool, or fail loudly; never lose results
            path = self._spool(result, reason=str(exc))
            message = (
                f"logging to {mask_uri(self.settings.tracking_uri)} failed ({exc}); results saved to "
                f"{path}; replay with: {self._replay_hint(path)}"
            )
            if self.settings.on_unavailable == "spool" and isinstance(exc, StoreUnavailable):
                self.summary.append(message)
                return True
            self.problems.append(message)
            return False
        where = f"in experiment {self.settings.experiment!r} ({mask_uri(self.settings.tracking_uri)})"
        for run in logged:
            if run.reused:
                self.summary.append(
                    f"{run.role} {run.model}: unchanged since run {run.run_id} (same params, data and results), "
                    "not logged again"
                )
            else:
                self.summary.append(f"logged {run.role} {run.model}: run {run.run_id} {where}")
        failures = [run for run in logged if run.error]
        for run in failures:
            self.problems.append(
                f"{run.model}: its metrics are logged (run {run.run_id}) but the model could not be logged: {run.error}"
            )
        if failures:
            return False
        if self.settings.register and result.status == "FINISHED":
            try:
                self._register(logged)
            except Exception as exc:
                self.problems.append(f"registering the candidate failed: {exc}")
                return False
        return True

    def _replay_hint(self, path: Path) -> str:
        hint = f"forecast-mlflow replay {path}"
        if mask_uri(self.settings.tracking_uri) != self.settings.tracking_uri:
            hint += " --tracking-uri <the full URI> (a journal never keeps credentials)"
        return hint

    def _register(self, logged) -> None:
        candidates = [run for run in logged if run.role == "candidate"]
        promote = self.settings.promote
        failed = sorted(
            {r.nodeid for r in self.records if r.role == "candidate" and self.outcomes.get(r.nodeid) == "failed"}
        )
        blocker = promotion_blocker([run.model for run in candidates], failed) if promote else None
        if blocker:
            self.summary.append(f"alias {self.settings.alias!r} NOT moved: {blocker}")
            promote = False
        assert self.service is not None  # registering follows logging, which needs the store
        for run in candidates:
            outcome = self.service.request("register", run, self.verdict, promote, self.baseline).result()
            where = f"{self.settings.registered_model} v{outcome.version}"
            if outcome.moved:
                self.summary.append(f"registered {run.model} as {where} and moved alias {self.settings.alias!r} to it")
            elif promote and self.settings.gate == "off":
                self.summary.append(
                    f"registered {run.model} as {where}; alias {self.settings.alias!r} NOT moved: "
                    "promotion needs a passing gate verdict and the gate is off (--forecast-gate off)"
                )
            elif promote:
                self.summary.append(
                    f"registered {run.model} as {where}; alias {self.settings.alias!r} NOT moved: {outcome.why}"
                )
            else:
                self.summary.append(f"registered {run.model} as {where}")

    def _spool(self, result: SessionResult, *, reason: str) -> Path:
        from .journal import write_journal

        return write_journal(self.settings, result, reason=reason)

    # -- output --------------------------------------------------------------------------------------

    def header_lines(self) -> list[str]:
        commit = self.git.get("mlflow.source.git.commit", "unknown")[:12]
        dirty = " (dirty)" if self.git.get("git.dirty") == "true" else ""
        lines = [
            f"forecast-mlflow: experiment {self.settings.experiment!r} at {mask_uri(self.settings.tracking_uri)}",
            f"forecast-mlflow: commit {commit}{dirty}; gate {self.settings.gate} ({self.settings.method}, "
            f"metrics {','.join(self.settings.gate_metrics)}, tolerance {self.settings.tolerance:g}, "
            f"alpha {self.settings.alpha:g}, min folds {self.settings.min_folds}, max detectable "
            f"{self.settings.max_detectable:g}%)",
        ]
        return [self.mask(line) for line in lines]

    def pytest_terminal_summary(self, terminalreporter, exitstatus: int, config: pytest.Config) -> None:
        if self.worker or not (self.summary or self.problems):
            return
        terminalreporter.write_sep("=", "forecast-mlflow")
        for line in self.summary:
            terminalreporter.write_line(self.mask(line))
        for line in self.problems:
            terminalreporter.write_line(self.mask(f"ERROR: {line}"), red=True)

    def close(self) -> None:
        if self.service is not None:
            self.service.close()
            self.service = None
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)
        if self._owns_models_dir and self.models_dir is not None:
            shutil.rmtree(self.models_dir, ignore_errors=True)
