"""``pytest_forecast_mlflow.store``: store paths, credential masking, URI validation, relocation.

Pure string and path work: no MLflow store is opened here.
"""

from __future__ import annotations

import re
import string
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from pytest_forecast_mlflow.store import (
    canonical_uri,
    default_artifact_root,
    default_tracking_uri,
    first_line,
    has_masked_credentials,
    mask_text,
    mask_uri,
    relocate,
    sqlite_path,
    validate_tracking_uri,
)

PASSWORD = "ab/cd#S3cret"  # ends the authority twice over when written raw


def test_store_paths(tmp_path: Path) -> None:
    assert default_tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve()}/data/mlflow/mlflow.db"
    assert default_artifact_root(tmp_path) == tmp_path.resolve() / "data" / "mlflow" / "mlruns"
    assert sqlite_path(default_tracking_uri(tmp_path)) == tmp_path.resolve() / "data" / "mlflow" / "mlflow.db"
    assert sqlite_path("sqlite:///rel/m.db?timeout=20") == Path("rel/m.db")
    assert sqlite_path("sqlite:///:memory:") is None
    assert sqlite_path("https://host") is None


def test_first_line_quotes_the_first_non_blank_line_stripped() -> None:
    assert first_line("\n  database is locked  \n(Background on this error at: https://sqlalche.me)") == (
        "database is locked"
    )
    assert first_line(" \n\t\n") == ""
    assert first_line("") == ""


def test_store_module_does_not_import_mlflow() -> None:
    code = "import sys, pytest_forecast_mlflow.store; assert 'mlflow' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


# ------------------------------------------------------------------------------------------ mask_uri


@pytest.mark.parametrize(
    ("uri", "masked"),
    [
        ("https://user:token@mlflow.example.com/path", "https://***@mlflow.example.com/path"),
        ("https://token@mlflow.example.com", "https://***@mlflow.example.com"),
        ("http://user:p@ss@host:5000", "http://***@host:5000"),
        ("http://alice:ab/cdS3cret@127.0.0.1:5000", "http://***@127.0.0.1:5000"),
        ("http://alice:ab#cd?S3:cret@127.0.0.1:5000/", "http://***@127.0.0.1:5000/"),
        ("http://alice:1234/abcd@host:1", "http://***@host:1"),  # digits then '/': still a password here
        ("http://alice:a@b/c@host:1/x", "http://***@host:1/x"),
        ("postgresql://u:pw@db/mlflow", "postgresql://***@db/mlflow"),
        ("postgresql+psycopg://user:p%40ss@db:5432/mlflow", "postgresql+psycopg://***@db:5432/mlflow"),
        ("https://me@corp.example:pw@[::1]:5000", "https://***@[::1]:5000"),
        ("https://mlflow.example.com/a@b", "https://mlflow.example.com/a@b"),
        ("https://mlflow.example.com/#/experiments/a@b", "https://mlflow.example.com/#/experiments/a@b"),
        ("sqlite:////tmp/x/mlflow.db", "sqlite:////tmp/x/mlflow.db"),
        ("sqlite:////tmp/a@b/mlflow.db", "sqlite:////tmp/a@b/mlflow.db"),
        ("sqlite:////tmp/a:b@c/mlflow.db", "sqlite:////tmp/a:b@c/mlflow.db"),
        ("", ""),
    ],
)
def test_mask_uri(uri: str, masked: str) -> None:
    assert mask_uri(uri) == masked


# ----------------------------------------------------------------------------------------- mask_text


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        (
            "API request to https://alice:s3cret@host/api failed; retried http://bob:pw@other:5000/x",
            "API request to https://***@host/api failed; retried http://***@other:5000/x",
        ),
        (
            f"Invalid url: 'http://alice:{PASSWORD}@127.0.0.1:9/api/2.0/mlflow/experiments/search'",
            "Invalid url: 'http://***@127.0.0.1:9/api/2.0/mlflow/experiments/search'",
        ),
        (f'("http://alice:{PASSWORD}@h:1")', '("http://***@h:1")'),
        (f"(see http://alice:{PASSWORD}@h:1)", "(see http://***@h:1)"),
        ("a=http://a:b@h1,b=https://c:d@h2/x", "a=http://***@h1,b=https://***@h2/x"),
        ("next=http%3A%2F%2Fcarol%3As3cret%40host%2Fx&y=1", "next=http%3A%2F%2F***%40host%2Fx&y=1"),
        ("HTTP%3a%2f%2fcarol%3as3cret%40host", "HTTP%3a%2f%2f***%40host"),
    ],
)
def test_mask_text_masks_every_url_in_free_text(text: str, masked: str) -> None:
    assert mask_text(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "cannot open sqlite:////tmp/a@b/mlflow.db: locked",
        "file:///home/me/a:b@c/mlruns and /tmp/a:b@c",
        "GET http://host:5000/#/experiments?owner=me@example.com",
        "http://host:5000/a@b",
        "https://mlflow.example.com/users/a@b.com is not a URL with credentials",
        "mail me@example.com, or alice:secret@host without a scheme",
    ],
)
def test_mask_text_leaves_paths_and_addresses_alone(text: str) -> None:
    assert mask_text(text) == text


def test_mask_text_removes_a_known_password_wherever_and_however_it_appears() -> None:
    encoded = quote(PASSWORD, safe="")
    lower_escapes = re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), encoded)
    uri = f"http://alice:{encoded}@127.0.0.1:5000"
    text = (
        f"raw {PASSWORD}; encoded {encoded}; lower-case escapes {lower_escapes}; "
        f"in a broken URL http://alice:{PASSWORD}@127.0.0.1:5000/x; twice encoded {quote(encoded, safe='')}"
    )

    masked = mask_text(text, secrets_from=uri)

    for part in ("S3cret", "ab/cd", "ab%2F", "ab%2f"):
        assert part not in masked, masked
    assert "http://***@127.0.0.1:5000/x" in masked
    assert masked.startswith("raw ***; encoded ***; lower-case escapes ***;")


def test_mask_text_takes_secrets_from_several_uris_and_ignores_short_ones() -> None:
    sources = ["--tracking-uri=https://tok3n-value@a.example", None, "http://bob:pw@b.example", ""]
    text = "token tok3n-value, password pw, passwords like pwned stay"

    assert mask_text(text, secrets_from=sources) == "token ***, password pw, passwords like pwned stay"


def test_mask_text_without_credentials_changes_nothing() -> None:
    text = "sqlite:////tmp/x/mlflow.db and http://127.0.0.1:5000/api"
    assert mask_text(text, secrets_from="sqlite:////tmp/x/mlflow.db") == text
    assert mask_text(text, secrets_from="http://127.0.0.1:5000") == text


# any printable character, spaces, quotes and "/#?@:%" included (no control characters or line breaks)
_PRINTABLE = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=4, max_size=24)


@settings(max_examples=300, deadline=None)
@given(password=_PRINTABLE)
@example(password="ab/cdS3cret")
@example(password="1234/abcd")
@example(password="p@ss@host:1/")
@example(password="%2F%23x")
@example(password="a b'c\"d)")
def test_property_a_known_password_never_survives(password: str) -> None:
    uri = f"http://alice:{password}@host:1"
    text = f"... API request to http://alice:{password}@host:1/x failed (retrying {uri}) ..."
    assume(password not in text.replace(f":{password}@", ":@"))  # nor may it be a part of the text around it

    masked = mask_text(text, secrets_from=uri)

    assert password not in masked
    assert "host:1" in masked
    assert password not in mask_uri(uri)


_URL_SAFE = st.text(alphabet=string.ascii_letters + string.digits + "/#?@:%!$&'()*+,;=-._~[]", min_size=1, max_size=24)


@settings(max_examples=300, deadline=None)
@given(password=_URL_SAFE)
def test_property_an_unknown_password_is_masked_by_the_url_around_it(password: str) -> None:
    """Without being told the secret: any password with no whitespace and no '://' inside, unless it
    starts like a port and path (``5000/...``), which free text reads as ``host:port/path``."""
    assume("://" not in password and not re.match(r"\d{1,5}[/?#]", password))
    text = f"error: http://alice:{password}@host:1/x failed"

    masked = mask_text(text)

    assert masked == "error: http://***@host:1/x failed"


# ---------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize("uri", ["./mlruns", "mlruns", "file:///tmp/mlruns", "ftp://u:pw@host/x", "sqlite://"])
def test_validate_tracking_uri_rejects_what_mlflow_cannot_store_in(uri: str) -> None:
    with pytest.raises(ValueError, match=r"use a database such as sqlite:///") as info:
        validate_tracking_uri(uri)
    assert "pw" not in str(info.value)


@pytest.mark.parametrize("uri", ["databricks", "databricks://my-profile", "databricks-uc"])
def test_validate_tracking_uri_names_databricks(uri: str) -> None:
    with pytest.raises(ValueError) as info:
        validate_tracking_uri(uri, source="--tracking-uri")
    message = str(info.value)
    assert "Databricks-hosted MLflow is not supported by this plugin" in message
    assert "file stores" not in message
    assert "sqlite:///" in message
    assert "https://" in message


@pytest.mark.parametrize(
    ("uri", "scheme"),
    [
        ("postgresql://u:hunter22@db/mlflow", "postgresql"),
        ("postgresql+psycopg://u:hunter22@db:5432/mlflow", "postgresql"),
        ("mysql+pymysql://u:hunter22@db/mlflow", "mysql"),
    ],
)
def test_validate_tracking_uri_sends_databases_behind_a_server(uri: str, scheme: str) -> None:
    with pytest.raises(ValueError) as info:
        validate_tracking_uri(uri)
    message = str(info.value)
    assert "direct database URIs from every pytest worker are refused" in message
    assert "race migrations" in message
    assert f"mlflow server --backend-store-uri {scheme}://..." in message
    assert "hunter22" not in message


@pytest.mark.parametrize("password", ["ab/cd", "ab#cd", "ab?cd", "a@b/cd"])
def test_validate_tracking_uri_refuses_a_raw_password_that_breaks_the_host_part_without_echoing_it(
    password: str,
) -> None:
    # urlsplit would read "alice" as the host and part of the password as a port or a path
    with pytest.raises(ValueError, match="host part cannot be parsed") as info:
        validate_tracking_uri(f"http://alice:{password}S3cret@mlflow.example.com")
    assert "S3cret" not in str(info.value)
    assert "alice" not in str(info.value)


def test_validate_tracking_uri_accepts_sqlite_and_http() -> None:
    for uri in ("sqlite:///data/mlflow/mlflow.db", "https://u:t@mlflow.example.com", "http://127.0.0.1:5000"):
        assert validate_tracking_uri(uri) == uri


# ---------------------------------------------------------------------------------- store identity


def test_canonical_uri_makes_sqlite_absolute_and_masks_servers(tmp_path: Path) -> None:
    assert canonical_uri("sqlite:///rel/x.db", cwd=tmp_path) == f"sqlite:///{(tmp_path / 'rel/x.db').resolve()}"
    assert canonical_uri(f"sqlite:///{tmp_path}/x.db") == f"sqlite:///{tmp_path.resolve()}/x.db"
    assert canonical_uri("http://alice:a/b@h:5000/") == "http://***@h:5000"
    assert canonical_uri("http://bob:other@h:5000") == canonical_uri("http://alice:pw@h:5000/")


def test_has_masked_credentials() -> None:
    assert has_masked_credentials("http://***@h:5000")
    assert not has_masked_credentials("http://h:5000")
    assert not has_masked_credentials("sqlite:////tmp/***@x/mlflow.db")


# ----------------------------------------------------------------------------------------- relocate


OLD, NEW = Path("/old/store/mlruns"), Path("/new place/mlruns")


@pytest.mark.parametrize(
    ("value", "moved"),
    [
        ("file:///old/store/mlruns/1", "file:///new%20place/mlruns/1"),
        ("file:///old/store/mlruns", "file:///new%20place/mlruns"),
        ("file:/old/store/mlruns/1/a/artifacts", "file:///new%20place/mlruns/1/a/artifacts"),
        ("/old/store/mlruns/1/models/m-1/artifacts", "/new place/mlruns/1/models/m-1/artifacts"),
        (
            '[{"artifact_path": "file:///old/store/mlruns/2/x"}]',
            '[{"artifact_path": "file:///new%20place/mlruns/2/x"}]',
        ),
        ("models:/m-123", "models:/m-123"),
        ("/old/store/mlruns2/x", "/old/store/mlruns2/x"),
        ("/elsewhere/old/store/mlruns/x", "/elsewhere/old/store/mlruns/x"),
        ("s3://bucket/old/store/mlruns/x", "s3://bucket/old/store/mlruns/x"),
    ],
)
def test_relocate(value: str, moved: str) -> None:
    assert relocate(value, OLD, NEW) == moved


def test_relocate_reads_percent_encoded_locations() -> None:
    old = Path("/old dir/mlruns")
    assert (
        relocate("file:///old%20dir/mlruns/3/r/artifacts", old, Path("/n/mlruns")) == "file:///n/mlruns/3/r/artifacts"
    )
