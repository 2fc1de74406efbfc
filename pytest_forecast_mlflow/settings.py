"""Every option, read once into a frozen :class:`Settings`.

Precedence is the same for every option: command line > environment variable > ini key > default.
A bad value fails before any test runs: ``argparse.ArgumentTypeError`` from the command line,
``pytest.UsageError`` (exit code 4) from the environment or the ini file, naming where it came from.
"""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pytest itself is imported where an error is raised: the CLI reads OPTIONS without it
    import pytest

GROUP = "forecast-mlflow"

#: Gate metrics the plugin knows, with their direction (kept here so the plugin needs no pandas).
KNOWN_METRICS = (
    "rmse",
    "mae",
    "mape",
    "smape",
    "mase",
    "directional_accuracy",
    "mse",
    "pinball",
    "coverage",
    "coverage_error",
    "interval_score",
)
GATE_MODES = ("fail", "warn", "off")
GATE_METHODS = ("dm", "dm-hln", "threshold", "mh-uspa", "mh-aspa")
UNAVAILABLE_MODES = ("fail", "spool")
PLOT_MODES = ("on", "off")
INCONCLUSIVE_MODES = ("pass", "fail")
_EXPERIMENT_NAME = re.compile(r"^[^\x00-\x1f/\\]{1,200}$")


def _name(what: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        value = value.strip()
        if not _EXPERIMENT_NAME.match(value):
            raise argparse.ArgumentTypeError(
                f"invalid {what} {value!r}: use 1-200 printable characters without '/' or '\\'"
            )
        return value

    return parse


_experiment = _name("experiment name")


def _choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(value: str) -> str:
        value = value.strip().lower()
        if value not in choices:
            raise argparse.ArgumentTypeError(f"{value!r} is not one of {', '.join(choices)}")
        return value

    return parse


def _fraction(low: float, high: float, *, what: str) -> Callable[[str], float]:
    def parse(value: str) -> float:
        try:
            number = float(str(value).strip().rstrip("%")) / (100 if str(value).strip().endswith("%") else 1)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be a number such as 0.05 or 5%, got {value!r}") from None
        if not (math.isfinite(number) and low <= number < high):
            raise argparse.ArgumentTypeError(f"{what} must be in [{low}, {high}), got {value!r}")
        return number

    return parse


def _positive_seconds(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"timeout must be a number of seconds, got {value!r}") from None
    if not (math.isfinite(number) and number > 0):
        raise argparse.ArgumentTypeError(f"timeout must be > 0 seconds, got {value!r}")
    return number


def _metrics(value: str) -> tuple[str, ...]:
    """Gate metric names: built-in, or registered with ``backtest.register_metric`` (in a conftest.py).

    pytest parses the command line once before it imports conftest files: while ``backtest`` is not
    imported nothing can have registered a metric yet, so a well-formed unknown name waits for the parse
    after them (and for ``plugin._require_known_gate_metrics``, which refuses it at configure time).
    """
    import sys

    names = tuple(name.strip() for name in str(value).replace(";", ",").split(",") if name.strip())
    if not names:
        raise argparse.ArgumentTypeError("name at least one gate metric, e.g. rmse or rmse,mae")
    if "coverage" in names:
        raise argparse.ArgumentTypeError(
            "'coverage' cannot gate: it is best at its nominal level (a 90% interval should cover 90%), neither "
            "higher nor lower; gate on coverage_error (its distance to the nominal level, lower is better) or "
            "interval_score"
        )
    unknown = [name for name in names if name not in KNOWN_METRICS]
    library = sys.modules.get("backtest.metrics")
    registered: tuple[str, ...] = () if library is None else tuple(library.registered_metrics())
    malformed = [name for name in unknown if not re.match(r"^[A-Za-z][A-Za-z0-9_]*$", name)]
    unknown = [name for name in unknown if name not in registered]
    if malformed or (unknown and library is not None):
        raise argparse.ArgumentTypeError(
            unknown_metrics(
                malformed or unknown,
                registered,
                "a metric of your own must be registered before the options are read (backtest.register_metric in "
                "conftest.py)",
            )
        )
    return names


def unknown_metrics(unknown: Sequence[str], registered: Sequence[str], fix: str) -> str:
    """The message refusing gate metrics nothing knows: the names, every known metric, then ``fix``."""
    return (
        f"unknown gate metric(s) {', '.join(map(repr, unknown))}; known metrics: "
        f"{', '.join((*KNOWN_METRICS, *registered))}; {fix}"
    )


def _at_least_two(value: str) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"minimum paired folds must be a whole number such as 30, got {value!r}"
        ) from None
    if number < 2:
        raise argparse.ArgumentTypeError(f"minimum paired folds must be at least 2 (a test needs two), got {value!r}")
    return number


def _jobs(value: str) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"forecast jobs must be a whole number such as 2 or -1, got {value!r}"
        ) from None
    if number < 1 and number != -1:
        raise argparse.ArgumentTypeError(
            f"forecast jobs must be >= 1 (worker processes) or -1 (one per CPU), got {value!r}"
        )
    return number


def _percent(value: str) -> float:
    text = str(value).strip().rstrip("%")
    try:
        number = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"give a percentage such as 25 or 25%, got {value!r}") from None
    if not (math.isfinite(number) and number > 0):
        raise argparse.ArgumentTypeError(f"the percentage must be a positive number such as 25, got {value!r}")
    return number


def _notify_urls(value: str) -> tuple[str, ...]:
    """Apprise URLs, space- or comma-separated; apprise must be installed (it is not imported here)."""
    import importlib.util
    import re

    urls = tuple(url for url in re.split(r"[\s,]+", str(value)) if url)
    bad = [url for url in urls if "://" not in url]
    if bad:
        raise argparse.ArgumentTypeError(
            f"{bad[0]!r} is not an Apprise URL; write one such as slack://..., mailto://... or json://host:port/path"
        )
    if urls and importlib.util.find_spec("apprise") is None:
        raise argparse.ArgumentTypeError('notifications need apprise: pip install "pytest-forecast-mlflow[notify]"')
    return urls


def _tracking_uri(value: str) -> str:
    from .store import validate_tracking_uri

    try:
        uri = validate_tracking_uri(value.strip(), source="tracking URI")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return uri


def _tag(value: str) -> tuple[str, str]:
    key, sep, tag_value = value.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"tags are KEY=VALUE, got {value!r}")
    return key.strip(), tag_value.strip()


@dataclass(frozen=True)
class Option:
    """One option: its flag, ini key, environment variable, parser and help text (shared by all three)."""

    flag: str
    ini: str
    env: str | None
    parse: Callable[[str], Any] | None
    help: str
    default: Any = None
    kind: str = "value"  # value | flag | append

    @property
    def dest(self) -> str:
        return self.ini


OPTIONS: tuple[Option, ...] = (
    Option(
        "--mlflow-experiment",
        "mlflow_experiment",
        "FORECAST_MLFLOW_EXPERIMENT",
        _experiment,
        "Log backtests to this MLflow experiment (switches the plugin on).",
    ),
    Option(
        "--mlflow-tracking-uri",
        "mlflow_tracking_uri",
        "MLFLOW_TRACKING_URI",
        _tracking_uri,
        "Tracking URI. Default: the embedded store sqlite:///<rootdir>/data/mlflow/mlflow.db.",
    ),
    Option(
        "--mlflow-run-name",
        "mlflow_run_name",
        "FORECAST_MLFLOW_RUN_NAME",
        str,
        "Run name prefix; each model's run is named '<prefix>-<model>'. Default: the model name.",
    ),
    Option(
        "--mlflow-tag",
        "mlflow_tags",
        None,
        _tag,
        "Extra run tag KEY=VALUE (repeatable; ini: one per line).",
        default=(),
        kind="append",
    ),
    Option(
        "--mlflow-register",
        "mlflow_register",
        "FORECAST_MLFLOW_REGISTER",
        None,
        "Register the candidate's logged model as a new version of the registered model.",
        default=False,
        kind="flag",
    ),
    Option(
        "--mlflow-promote",
        "mlflow_promote",
        "FORECAST_MLFLOW_PROMOTE",
        None,
        "Register the candidate and move the champion alias to it, only when the gate passed.",
        default=False,
        kind="flag",
    ),
    Option(
        "--mlflow-on-unavailable",
        "mlflow_on_unavailable",
        "FORECAST_MLFLOW_ON_UNAVAILABLE",
        _choice(UNAVAILABLE_MODES),
        "When the tracking store cannot be reached: fail the session, or spool results to a journal "
        "for 'forecast-mlflow replay'. Default: fail.",
        default="fail",
    ),
    Option(
        "--mlflow-plots",
        "mlflow_plots",
        "FORECAST_MLFLOW_PLOTS",
        _choice(PLOT_MODES),
        "Log PNG plots on the candidate's run (on), or skip drawing them (off: a faster gated run; the "
        "per-fold metrics and manifests are logged either way). Default: on.",
        default="on",
    ),
    Option(
        "--mlflow-timeout",
        "mlflow_timeout",
        "FORECAST_MLFLOW_TIMEOUT",
        _positive_seconds,
        "Seconds to wait for a remote tracking server before giving up. Default: 10.",
        default=10.0,
    ),
    Option(
        "--forecast-gate",
        "forecast_gate",
        "FORECAST_GATE",
        _choice(GATE_MODES),
        "Regression gate: fail the session, warn only, or off. Default: fail.",
        default="fail",
    ),
    Option(
        "--forecast-gate-metrics",
        "forecast_gate_metrics",
        "FORECAST_GATE_METRICS",
        _metrics,
        "Comma-separated gate metrics, the first also ranks baselines. Default: rmse.",
        default=("rmse",),
    ),
    Option(
        "--forecast-tolerance",
        "forecast_tolerance",
        "FORECAST_TOLERANCE",
        _fraction(0.0, 1.0, what="tolerance"),
        "Relative margin a candidate may be worse by before it counts as a regression (0.02 or 2%). Default: 0.",
        default=0.0,
    ),
    Option(
        "--forecast-alpha",
        "forecast_alpha",
        "FORECAST_ALPHA",
        _fraction(1e-9, 1.0, what="alpha"),
        "Significance level of the gate's one-sided test (Holm-corrected). Default: 0.05.",
        default=0.05,
    ),
    Option(
        "--forecast-method",
        "forecast_method",
        "FORECAST_METHOD",
        _choice(GATE_METHODS),
        "Gate decision: dm (Diebold-Mariano with a fixed-smoothing long-run variance that allows for skill "
        "drifting over stretches of origins), dm-hln (the earlier Diebold-Mariano test with HLN correction, "
        "overlap-only variance), threshold (aggregate worse by more than the tolerance), or one joint test of "
        "each model and metric over all its horizons (Quaedvlieg 2021): mh-aspa (fails a candidate worse on the "
        "average over the horizons) or mh-uspa (fails it only when worse at every horizon). Default: dm.",
        default="dm",
    ),
    Option(
        "--forecast-registered-model",
        "forecast_registered_model",
        "FORECAST_REGISTERED_MODEL",
        _name("registered model name"),
        "Registered model holding the champion. Default: the experiment name.",
    ),
    Option(
        "--forecast-alias",
        "forecast_alias",
        "FORECAST_ALIAS",
        _name("alias"),
        "Registry alias of the baseline. Default: champion.",
        default="champion",
    ),
    Option(
        "--forecast-require-baseline",
        "forecast_require_baseline",
        "FORECAST_REQUIRE_BASELINE",
        None,
        "Fail the gate when there is nothing to compare against (no registered model, horizon or metric).",
        default=False,
        kind="flag",
    ),
    Option(
        "--forecast-min-folds",
        "forecast_min_folds",
        "FORECAST_MIN_FOLDS",
        _at_least_two,
        "Fewest paired folds a comparison needs to be conclusive; below it the verdict is inconclusive "
        "and the alias never moves. Default: 30.",
        default=30,
    ),
    Option(
        "--forecast-max-detectable",
        "forecast_max_detectable",
        "FORECAST_MAX_DETECTABLE",
        _percent,
        "Largest minimum-detectable regression (percent of the baseline) a conclusive comparison may "
        "have; a comparison that could only catch a larger one is inconclusive. Default: 25.",
        default=25.0,
    ),
    Option(
        "--forecast-inconclusive",
        "forecast_inconclusive",
        "FORECAST_INCONCLUSIVE",
        _choice(INCONCLUSIVE_MODES),
        "Session outcome of an inconclusive verdict (too few folds, too little power): pass or fail. "
        "The alias never moves either way. Default: pass.",
        default="pass",
    ),
    Option(
        "--forecast-allow-scope-change",
        "forecast_allow_scope_change",
        "FORECAST_ALLOW_SCOPE_CHANGE",
        None,
        "Deliberately accept a candidate whose horizons or gate metrics differ from the champion's: new ones "
        "pass ungated, missing ones are not required. Recorded on the registered version.",
        default=False,
        kind="flag",
    ),
    Option(
        "--forecast-report",
        "forecast_report",
        "FORECAST_REPORT",
        str,
        "Write the gate table as Markdown to this path (also appended to $GITHUB_STEP_SUMMARY when set).",
    ),
    Option(
        "--forecast-json", "forecast_json", "FORECAST_JSON", str, "Write the verdict as JSON to this path, for scripts."
    ),
    Option(
        "--forecast-notify",
        "forecast_notify",
        "FORECAST_NOTIFY",
        _notify_urls,
        "Apprise URL(s) to alert when the gate finds a regression (space- or comma-separated: slack://..., "
        "mailto://..., json://host:port/path); needs the notify extra. Delivery failures are reported, not fatal.",
    ),
    Option(
        "--forecast-jobs",
        "forecast_jobs",
        "FORECAST_JOBS",
        _jobs,
        "Worker processes for the refit blocks of each walk_forward backtest (joblib; -1: one per CPU; inside "
        "joblib.parallel_config(backend='dask'): a Dask cluster's workers); each fit must depend on its "
        "training window alone. Default: 1.",
        default=1,
    ),
)


@dataclass(frozen=True)
class Settings:
    """The resolved options, and where each came from (for error messages and the report header)."""

    experiment: str | None
    tracking_uri: str
    artifact_root: Path
    rootdir: Path
    run_name: str | None = None
    tags: tuple[tuple[str, str], ...] = ()
    register: bool = False
    promote: bool = False
    on_unavailable: str = "fail"
    plots: bool = True
    timeout: float = 10.0
    gate: str = "fail"
    gate_metrics: tuple[str, ...] = ("rmse",)
    tolerance: float = 0.0
    alpha: float = 0.05
    method: str = "dm"
    registered_model: str = ""
    alias: str = "champion"
    require_baseline: bool = False
    min_folds: int = 30
    max_detectable: float = 25.0
    inconclusive: str = "pass"
    allow_scope_change: bool = False
    report: Path | None = None
    json: Path | None = None
    notify: tuple[str, ...] = ()
    jobs: int = 1
    sources: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def enabled(self) -> bool:
        return self.experiment is not None


def _option(ini: str) -> Option:
    """The option whose ini key is ``ini``."""
    option = next((option for option in OPTIONS if option.ini == ini), None)
    if option is None:
        raise KeyError(f"no option with ini key {ini!r}")
    return option


def default_of(ini: str) -> Any:
    """The default of the option whose ini key is ``ini`` (the CLI shows what the plugin uses by default)."""
    return _option(ini).default


def addoptions(parser: pytest.Parser) -> None:
    group = parser.getgroup(GROUP, "walk-forward backtests tracked in MLflow")
    for option in OPTIONS:
        cli_help = option.help.replace("%", "%%")  # argparse formats help texts; ini help is shown as is
        if option.kind == "flag":
            group.addoption(option.flag, dest=option.dest, action="store_true", default=None, help=cli_help)
            parser.addini(option.ini, option.help, type="bool", default=None)
        elif option.kind == "append":
            group.addoption(
                option.flag,
                dest=option.dest,
                action="append",
                type=option.parse,
                default=None,
                metavar="KEY=VALUE",
                help=cli_help,
            )
            parser.addini(option.ini, option.help, type="linelist", default=[])
        else:
            group.addoption(option.flag, dest=option.dest, type=option.parse, default=None, help=cli_help)
            parser.addini(option.ini, option.help, default=None)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def resolve_one(config: pytest.Config, ini: str) -> tuple[Any, str]:
    """One option's value and where it came from (command line, environment, ini file or default), by its
    ini key, with the same precedence and validation as :func:`resolve`; also with the plugin off."""
    return _resolve(config, _option(ini))


def _resolve(config: pytest.Config, option: Option) -> tuple[Any, str]:
    import pytest

    cli = config.getoption(option.dest)
    if cli is not None and cli != []:
        return cli, f"command line {option.flag}"
    if option.env and option.env in os.environ:
        raw = os.environ[option.env]
        where = f"environment variable {option.env}"
        if option.kind == "flag":
            if raw.strip().lower() not in _TRUE | _FALSE:
                raise pytest.UsageError(f"{where}={raw!r}: use 1/true/yes or 0/false/no")
            return raw.strip().lower() in _TRUE, where
        return _parsed(option, raw, where), where
    where = f"ini key {option.ini}"
    try:
        ini = config.getini(option.ini)
    except (ValueError, pytest.UsageError) as exc:  # pytest's "invalid truth value 'maybe'" names no key, no fix
        raise pytest.UsageError(f"{where}: {exc}; use true/false (or 1/0, yes/no)") from None
    if ini not in (None, [], ""):
        if option.kind == "append":
            return tuple(_parsed(option, line, where) for line in ini), where
        if option.kind == "flag":
            return bool(ini), where
        return _parsed(option, ini, where), where
    return option.default, "default"


def _parsed(option: Option, raw: str, where: str) -> Any:
    try:
        return option.parse(raw) if option.parse else raw
    except argparse.ArgumentTypeError as exc:
        import pytest

        raise pytest.UsageError(f"{where}: {exc}") from None


def resolve(config: pytest.Config) -> Settings:
    """Read every option once, with one precedence, into a :class:`Settings`."""
    from .store import default_artifact_root, default_tracking_uri, sqlite_path

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    rootdir = Path(config.rootpath)
    experiment_option = OPTIONS[0]
    values[experiment_option.ini], sources[experiment_option.ini] = _resolve(config, experiment_option)
    if values[experiment_option.ini] is None:
        # Off means off: environment and ini values of other options (MLFLOW_TRACKING_URI set for another
        # tool, say) are not read, so they cannot break sessions that do not use the plugin.
        return Settings(
            experiment=None,
            tracking_uri=default_tracking_uri(rootdir),
            artifact_root=default_artifact_root(rootdir),
            rootdir=rootdir,
            sources=sources,
        )
    for option in OPTIONS[1:]:
        values[option.ini], sources[option.ini] = _resolve(config, option)
    uri = values["mlflow_tracking_uri"] or default_tracking_uri(rootdir)
    db = sqlite_path(uri)
    artifact_root = db.parent / "mlruns" if db is not None else default_artifact_root(rootdir)
    experiment = values["mlflow_experiment"]
    return Settings(
        experiment=experiment,
        tracking_uri=uri,
        artifact_root=artifact_root,
        rootdir=rootdir,
        run_name=values["mlflow_run_name"],
        tags=tuple(values["mlflow_tags"] or ()),
        register=bool(values["mlflow_register"]) or bool(values["mlflow_promote"]),
        promote=bool(values["mlflow_promote"]),
        on_unavailable=values["mlflow_on_unavailable"],
        plots=values["mlflow_plots"] == "on",
        timeout=float(values["mlflow_timeout"]),
        gate=values["forecast_gate"],
        gate_metrics=tuple(values["forecast_gate_metrics"]),
        tolerance=float(values["forecast_tolerance"]),
        alpha=float(values["forecast_alpha"]),
        method=values["forecast_method"],
        registered_model=values["forecast_registered_model"] or (experiment or ""),
        alias=values["forecast_alias"],
        require_baseline=bool(values["forecast_require_baseline"]),
        min_folds=int(values["forecast_min_folds"]),
        max_detectable=float(values["forecast_max_detectable"]),
        inconclusive=values["forecast_inconclusive"],
        allow_scope_change=bool(values["forecast_allow_scope_change"]),
        report=Path(values["forecast_report"]) if values["forecast_report"] else None,
        json=Path(values["forecast_json"]) if values["forecast_json"] else None,
        notify=tuple(values["forecast_notify"] or ()),
        sources=sources,
        jobs=int(values["forecast_jobs"]),
    )
