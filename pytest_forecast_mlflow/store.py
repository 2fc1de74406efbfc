"""Where the embedded MLflow store lives, and how to name a tracking URI without leaking secrets.

Shared by the plugin and the ``forecast-mlflow`` command. Pure path and string work: this module
never imports mlflow, so importing the plugin stays light.

The embedded store is one folder, ``data/mlflow`` under the project root::

    data/mlflow/
      mlflow.db      runs, metrics, tags, the model registry (tracking URI sqlite:///<abs>/mlflow.db)
      mlruns/        artifacts, one folder per experiment

Masking has two layers, applied by :func:`mask_text` in this order:

1. **Known secrets.** Given the configured tracking URI(s), the password (or the token of a
   ``https://token@host`` URI) is replaced by ``***`` wherever it appears, raw, percent-decoded or
   percent-encoded, whatever surrounds it. Only secrets of at least :data:`MIN_SECRET` characters
   are replaced this way: a shorter one would blank out ordinary words.
2. **Any URL's userinfo.** In ``scheme://userinfo@host``, the userinfo becomes ``***``, also when a
   password holds ``/``, ``#``, ``?``, ``@`` or ``:`` unencoded (the URL ends at whitespace or at the
   next ``scheme://``). The ``@`` taken to end the userinfo is the last one followed by a host name;
   a URL whose path holds another ``host@name`` after credentials may therefore lose its host too:
   masking errs toward hiding. In free text ``http://host:5000/a@b`` is read as a port and a path,
   not masked, so a password that starts with digits and a ``/`` is only caught by layer 1; a
   configured URI (``mask_uri``, ``secrets_from``) is read as credentials either way. ``sqlite:``
   and ``file:`` URIs never carry credentials: an ``@`` in them is a path character, never masked.
   Percent-encoded URLs (``http%3A%2F%2Fuser%3Apw%40host``) are masked up to their last ``%40``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from urllib.parse import quote, quote_plus, unquote, urlsplit

#: The console script (``[project.scripts]`` in pyproject.toml), as messages name it.
COMMAND = "forecast-mlflow"
STORE_DIR = Path("data", "mlflow")
DB_NAME = "mlflow.db"
ARTIFACTS_DIR = "mlruns"
TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"

SUPPORTED_SCHEMES = ("sqlite", "http", "https")
DATABASE_SCHEMES = ("postgresql", "postgres", "mysql", "mssql")
MASK = "***"
#: Where a database URI is sent instead: the production layout, and the README section explaining it.
SERVER_RECIPE = "data/docker-compose.postgres.yml, README section 'Scaling out'"
#: Shortest secret replaced wherever it appears in text (layer 1 of :func:`mask_text`).
MIN_SECRET = 4

_NO_CREDENTIALS = frozenset({"sqlite", "file"})
_SCHEME = re.compile(r"(?<![A-Za-z0-9+.\-])([A-Za-z][A-Za-z0-9+.\-]*)://")
_ENCODED_SCHEME = re.compile(r"(?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]*%3A%2F%2F", re.IGNORECASE)
_ENCODED_END = re.compile(r"%2F|%3F|%23|[\s&\"'<>()]", re.IGNORECASE)
_ENCODED_AT = re.compile(r"%40", re.IGNORECASE)
_WHITESPACE = re.compile(r"\s")
# a host (name, IPv4 or [IPv6]) with an optional port, then the end of the URL or what may follow it
_HOST = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%]+)(?::\d*)?(?=$|[/?#\s\"'()<>\[\]{},;|])")
# "host:5000/..." read as a port and a path rather than "user:password"
_PORT_AND_PATH = re.compile(r"\d{1,5}[/?#]")


def default_tracking_uri(root: Path) -> str:
    """The tracking URI of the embedded store under ``root``: ``sqlite:///<abs root>/data/mlflow/mlflow.db``."""
    return "sqlite:///" + (Path(root).resolve() / STORE_DIR / DB_NAME).as_posix()


def default_artifact_root(root: Path) -> Path:
    """The absolute artifact folder of the embedded store under ``root``."""
    return Path(root).resolve() / STORE_DIR / ARTIFACTS_DIR


def artifact_root_for(uri: str) -> Path | None:
    """The artifact folder that goes with a ``sqlite:///`` store: ``mlruns`` next to the database.

    For the default store this is ``default_artifact_root(root)``. ``None`` for anything that is not
    a file-backed SQLite URI (a tracking server keeps its own artifacts).
    """
    db = sqlite_path(uri)
    return None if db is None else db.parent / ARTIFACTS_DIR


def local_path(location: str | None) -> Path:
    """The local path of an artifact location (``/abs``, ``file:///abs``); an empty path for remote ones."""
    parts = urlsplit(location or "")
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if len(parts.scheme) <= 1:  # no scheme, or a Windows drive letter
        return Path(location or "")
    return Path()


def sqlite_path(uri: str) -> Path | None:
    """The database file behind a ``sqlite:///`` URI, or ``None`` for any other URI or an in-memory one.

    As SQLAlchemy reads them, ``sqlite:///rel/x.db`` is relative to the current directory and
    ``sqlite:////abs/x.db`` is absolute; the path is returned as written (not resolved) and any
    ``?query`` is dropped.
    """
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    path = uri[len(prefix) :].split("?", 1)[0]
    if path in ("", ":memory:"):
        return None
    return Path(path)


# ------------------------------------------------------------------------------------------- masking


def _userinfo_end(text: str, start: int, end: int, *, strict: bool) -> int | None:
    """Where the userinfo of the URL whose authority starts at ``start`` ends (its ``@``), or ``None``.

    ``strict`` (free text) reads ``host:5000/...`` as a port and path; a configured URI is read
    generously, as credentials, since its ``@`` can hardly be anything else.
    """
    at = text.rfind("@", start, end)
    while at != -1:
        if _HOST.match(text, at + 1, end) and _plausible_userinfo(text[start:at], strict=strict):
            return at
        at = text.rfind("@", start, at)
    return None


def _plausible_userinfo(userinfo: str, *, strict: bool) -> bool:
    user, colon, password = userinfo.partition(":")
    if any(c in user for c in "/?#") or _WHITESPACE.search(user):
        return False
    if not colon:
        return bool(user)  # a bare token: https://token@host
    return not (strict and _PORT_AND_PATH.match(password))


def _url_spans(text: str, *, strict: bool) -> list[tuple[str, int, int]]:
    """``(scheme, userinfo start, userinfo end)`` of every URL with credentials in ``text``.

    ``strict`` reads free text; otherwise ``text`` is one URI (after an optional prefix such as
    ``--tracking-uri=``), whose password may hold anything, even whitespace or ``://``.
    """
    # free text: a URL ends at whitespace or where the next one starts; a URI is one URL to its end
    starts: list[re.Match[str]] = []
    for match in _SCHEME.finditer(text):
        if starts and (not strict or match.start() == starts[-1].end()):
            continue  # "http://alice://..." is a user "alice" with a password starting "//"
        starts.append(match)
    spans = []
    for k, match in enumerate(starts):
        scheme = match.group(1).lower()
        if scheme in _NO_CREDENTIALS:
            continue
        end = starts[k + 1].start() if k + 1 < len(starts) else len(text)
        if strict:
            space = _WHITESPACE.search(text, match.end(), end)
            end = space.start() if space else end
        at = _userinfo_end(text, match.end(), end, strict=strict)
        if at is not None:
            spans.append((scheme, match.end(), at))
    return spans


def _mask_structure(text: str) -> str:
    """Layer 2 of :func:`mask_text`: the userinfo of every URL, raw or percent-encoded."""
    out, last = [], 0
    for _, start, at in _url_spans(text, strict=True):
        out += [text[last:start], MASK]
        last = at
    text = "".join(out) + text[last:]
    out, last = [], 0
    for match in _ENCODED_SCHEME.finditer(text):
        if match.start() < last:
            continue
        stop = _ENCODED_END.search(text, match.end())
        region_end = stop.start() if stop else len(text)
        ats = list(_ENCODED_AT.finditer(text, match.end(), region_end))
        if ats:
            out += [text[last : match.end()], MASK]
            last = ats[-1].start()
    return "".join(out) + text[last:]


def _secrets(uri: str) -> list[str]:
    """The passwords and tokens in ``uri`` (a tracking URI, or any text naming one)."""
    found = []
    for _, start, at in _url_spans(uri, strict=False):
        user, colon, password = uri[start:at].partition(":")
        found.append(password if colon else user)
    return found


def _forms(secret: str) -> set[str]:
    """A secret as it may appear in text: raw, percent-decoded, percent-encoded (also twice)."""
    decoded = unquote(secret)
    forms = set()
    for value in {secret, decoded}:
        forms |= {value, quote(value, safe=""), quote(value), quote_plus(value, safe=""), quote_plus(value)}
        forms.add(quote(quote(value, safe=""), safe=""))
    return {form for form in forms if len(form) >= MIN_SECRET}


def _pattern_of(form: str) -> str:
    """A regex for ``form`` whose ``%XX`` escapes match in either case (``%2F`` and ``%2f``)."""
    pieces = re.split(r"(%[0-9A-Fa-f]{2})", form)
    return "".join(f"%(?i:{p[1:]})" if k % 2 else re.escape(p) for k, p in enumerate(pieces))


@functools.lru_cache(maxsize=64)
def _secrets_pattern(uris: tuple[str, ...]) -> re.Pattern[str] | None:
    forms = {form for uri in uris for secret in _secrets(uri) if len(secret) >= MIN_SECRET for form in _forms(secret)}
    if not forms:
        return None
    return re.compile("|".join(_pattern_of(form) for form in sorted(forms, key=len, reverse=True)))


def mask_text(text: str, *, secrets_from: str | Iterable[str | None] | None = None) -> str:
    """``text`` with every credential replaced by ``***``: call it wherever text leaves the process.

    ``secrets_from`` names the tracking URI(s) in play (``--tracking-uri``, ``MLFLOW_TRACKING_URI``,
    the settings' URI): their passwords are removed wherever they appear, in any encoding. Then the
    userinfo of every URL in the text is masked (see the module docstring for the rules).
    """
    uris = (secrets_from,) if isinstance(secrets_from, str) else tuple(secrets_from or ())
    pattern = _secrets_pattern(tuple(uri for uri in uris if uri))
    if pattern is not None:
        text = pattern.sub(MASK, text)
    return _mask_structure(text)


def mask_uri(uri: str) -> str:
    """``uri`` with its credentials replaced: ``https://user:token@host/x`` -> ``https://***@host/x``."""
    return mask_text(uri, secrets_from=uri)


def canonical_uri(uri: str, *, cwd: Path | None = None) -> str:
    """The masked, absolute name of the store ``uri`` points at: what a journal records and replay compares.

    A ``sqlite:///`` path is made absolute (against ``cwd``, default the current directory), since
    SQLAlchemy reads a relative one against the current directory; other URIs are masked and lose a
    trailing ``/``. Two URIs naming one store with different credentials give the same name.
    """
    db = sqlite_path(uri)
    if db is not None:
        path = (Path(cwd) if cwd is not None else Path.cwd()) / db.expanduser()
        query = uri.partition("?")[2]
        return "sqlite:///" + path.resolve().as_posix() + (f"?{query}" if query else "")
    return mask_uri(uri).rstrip("/")


def has_masked_credentials(uri: str) -> bool:
    """True when ``uri`` (as a journal records it) had credentials, now ``***``: the full URI must be given again."""
    return any(uri[start:at] == MASK for _, start, at in _url_spans(uri, strict=False))


# ------------------------------------------------------------------------------------------ messages


def first_line(text: str) -> str:
    """The first non-blank line of ``text``, stripped: how a one-line message quotes another library's error."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    return lines[0] if lines else ""


# ------------------------------------------------------------------------------------- validation


def _check_authority(uri: str) -> None:
    """Refuse an http(s) URI whose host part does not parse, without echoing any of it.

    A password holding ``/``, ``#`` or ``?`` ends the host part early (``http://alice:ab/cd@host``
    reads as host ``alice`` with port ``ab``), so part of the password would land in an error message.
    """
    parts = urlsplit(uri)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port == -1 or not parts.hostname or "@" in parts.path or "@" in parts.query or "@" in parts.fragment:
        raise ValueError(
            "the tracking URI's host part cannot be parsed (the URI is not shown: it may hold a password). "
            "If the user name or password contains '/', '#', '?' or '@', percent-encode them "
            "('/' as %2F, '#' as %23, '?' as %3F, '@' as %40), or pass them in MLFLOW_TRACKING_USERNAME "
            "and MLFLOW_TRACKING_PASSWORD instead of the URI"
        )


def validate_tracking_uri(uri: str, source: str = "tracking URI") -> str:
    """Return ``uri`` if it names a store this project supports, else raise ``ValueError`` that teaches.

    MLflow >= 3.13 no longer writes file stores (``./mlruns``, ``file:///...``, plain paths), so
    only ``sqlite:///`` databases and ``http(s)://`` tracking servers are accepted. ``source`` names
    where the value came from (``--tracking-uri``, ``MLFLOW_TRACKING_URI``) for the message.
    """
    scheme = uri.split("://", 1)[0].lower() if "://" in uri else ""
    base = scheme.split("+", 1)[0]
    if scheme == "sqlite" and sqlite_path(uri) is not None:
        return uri
    if scheme in ("http", "https") and uri.split("://", 1)[1].strip("/"):
        _check_authority(uri)
        return uri
    shown = mask_uri(uri) or "''"
    sqlite_example = f"sqlite:///{STORE_DIR.as_posix()}/{DB_NAME}"
    fix = f"use a database such as {sqlite_example} or a server such as https://mlflow.example.com"
    if uri.strip().lower() in ("databricks", "databricks-uc") or base in ("databricks", "databricks-uc"):
        reason = "Databricks-hosted MLflow is not supported by this plugin"
    elif base in DATABASE_SCHEMES:
        reason = (
            "direct database URIs from every pytest worker are refused (each process would open its own pool "
            "and race migrations)"
        )
        fix = (
            f"put an `mlflow server --backend-store-uri {base}://...` in front (it alone opens the pool and runs "
            f"the migrations; the recipe: {SERVER_RECIPE}) and use its http(s) URL, "
            f"or use a database such as {sqlite_example}"
        )
    elif scheme == "sqlite":
        reason = "a SQLite URI without a file path is an in-memory database that keeps nothing"
    elif scheme in ("", "file"):
        reason = "file stores are not supported by MLflow >= 3.13"
    else:
        reason = f"scheme {scheme!r} is not supported (use sqlite:/// or http(s)://)"
    raise ValueError(f"{source} {shown}: {reason}; {fix}")


# ----------------------------------------------------------------------------------- restored stores


def relocate(value: str, old_root: Path, new_root: Path) -> str:
    """``value`` with every location under ``old_root`` moved under ``new_root``.

    Locations are plain absolute paths or ``file:`` URIs (``file:///abs``, percent-encoded as
    ``Path.as_uri`` writes them, or raw), alone or inside JSON. A path that merely shares a prefix
    (``/old/mlruns2`` for ``/old/mlruns``) or sits inside another path is left alone.
    """
    pattern, replace = _relocation(Path(old_root).as_posix(), Path(new_root).as_posix())
    return pattern.sub(replace, value)


@functools.lru_cache(maxsize=8)
def _relocation(old_root: str, new_root: str) -> tuple[re.Pattern[str], Callable[[re.Match[str]], str]]:
    old_raw, old_encoded = old_root, Path(old_root).as_uri()[len("file://") :]
    new_raw, new_encoded = new_root, Path(new_root).as_uri()[len("file://") :]
    paths = "|".join(re.escape(p) for p in sorted({old_raw, old_encoded}, key=len, reverse=True))
    pattern = re.compile(
        rf"(?<![\w.~/%-])(?P<prefix>file:(?://(?:localhost)?)?)?(?P<path>{paths})(?=$|[/\\\"'\s,;)\]}}?#])"
    )

    def replace(match: re.Match[str]) -> str:
        if not match.group("prefix"):
            return new_raw
        return "file://" + (new_encoded if match.group("path") == old_encoded else new_raw)

    return pattern, replace
