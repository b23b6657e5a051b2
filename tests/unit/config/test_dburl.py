"""The database URL's checks against the libpq that psycopg loads, and connection failures told
without libpq's text: its messages quote the host, the user and the database, and, of a URL it
misread, part of the password. Real libpq answers here, with no server: a closed port on
127.0.0.1 and a host name that cannot resolve."""

from __future__ import annotations

import logging
import os
import re
import socket
import threading
from collections.abc import Iterator

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from login_etl.adapters.postgres.connection import connect, translate
from login_etl.config.dburl import CHOICES, TLS_PARAMETERS, TLS_VERSIONS, problem, server_address
from login_etl.errors import ConfigError, LoginEtlError, SinkUnavailable
from login_etl.runtime.retry import until_stopped
from login_etl.runtime.wiring import migrate_database

# The password of these URLs is "my@Secret-Pw"; none of it may be seen.
FRAGMENTS = ("Secret-Pw", "my@", "my%40")


def leaks(text: str) -> bool:
    return any(part in text for part in FRAGMENTS) or re.search(r"\bmy\b", text) is not None


@pytest.fixture(autouse=True)
def no_pg_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [name for name in os.environ if name.startswith("PG")]:
        monkeypatch.delenv(name)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections: bound, never listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


def libpq_error(url: str) -> str:
    """What libpq says when asked to connect to `url` (the server is never reached)."""
    with pytest.raises(psycopg.Error) as info:
        psycopg.connect(url, connect_timeout=2)
    return str(info.value)


@pytest.mark.parametrize(
    ("name", "value"), [(name, value) for name, values in CHOICES.items() for value in values]
)
def test_libpq_accepts_each_value_the_check_accepts(
    closed_port: int, name: str, value: str
) -> None:
    base = f"postgresql://u@127.0.0.1:{closed_port}/db?{name}={value}"
    url = base + ("&sslmode=require" if name == "sslnegotiation" else "")
    assert problem(url) is None
    assert not re.search(rf'invalid "?{name}"? value', libpq_error(url))


@pytest.mark.parametrize("name", [*CHOICES, *TLS_PARAMETERS])
def test_libpq_refuses_what_the_check_refuses(closed_port: int, name: str) -> None:
    url = f"postgresql://u@127.0.0.1:{closed_port}/db?{name}=bogus"
    assert problem(url) is not None
    assert re.search(rf'invalid "?{name}"? value', libpq_error(url))


@pytest.mark.parametrize("version", [*TLS_VERSIONS, "tlsv1.2"])
def test_tls_versions_are_libpq_s(closed_port: int, version: str) -> None:
    url = f"postgresql://u@127.0.0.1:{closed_port}/db?ssl_min_protocol_version={version}"
    assert problem(url) is None
    assert "ssl_min_protocol_version" not in libpq_error(url)


@pytest.mark.parametrize("port", ["0", "65536", "99999", "abc", "-1"])
def test_libpq_refuses_the_ports_the_check_refuses(port: str) -> None:
    url = f"postgresql://u@127.0.0.1:{port}/db"
    assert problem(url) is not None
    assert re.search(r"invalid (port number|integer value)", libpq_error(url))


def test_the_server_address_is_host_and_port_never_a_misread_password() -> None:
    assert server_address("postgresql://etl:my%40Secret-Pw@db:6432/etl") == "db:6432"
    assert server_address("postgresql://etl@[::1]/etl") == "[::1]:5432"
    assert server_address("postgresql://etl@h1:1,h2:2/etl") == "h1:1,h2:2"
    assert server_address("postgresql://etl:my@Secret-Pw@db/etl") == "the database server"
    assert server_address("postgresql://etl:my/Secret-Pw@db/etl") == "the database server"


# Passwords libpq misreads when not percent-encoded, and what of each must never be seen:
# "abc@Secret/Pw" makes the host 'Secret'; "9999/Secret" (base64 often holds '/') makes the
# host 'etl' and the port 9999; '?' ends the host as '/' does; '#' cuts the URL elsewhere.
MISREAD_PASSWORDS = [
    ("postgresql://etl:abc@Secret/Pw@127.0.0.1:5999/etl", ("abc", "Secret", "Pw")),
    ("postgresql://etl:9999/Secret@127.0.0.1/etl", ("9999", "Secret")),
    ("postgresql://etl:abc?Secret@127.0.0.1/etl", ("abc", "Secret")),
    ("postgresql://etl:abc#Secret@127.0.0.1/etl", ("abc", "Secret")),
    ("postgresql://etl:abc@127.0.0.1/etl#Secret", ("Secret",)),
    ("postgresql://etl:abc@127.0.0.1/etl?application_name=x@Secret", ("Secret",)),
]


@pytest.mark.parametrize(("url", "fragments"), MISREAD_PASSWORDS)
def test_any_at_sign_but_the_one_after_the_password_or_any_hash_is_refused(
    url: str, fragments: tuple[str, ...]
) -> None:
    said = problem(url)
    assert said is not None
    assert "percent-encode" in said
    assert not any(part in said for part in fragments)
    assert server_address(url) == "the database server"


@pytest.mark.parametrize(("url", "fragments"), MISREAD_PASSWORDS[:2])
def test_a_misread_password_never_reaches_the_connection_error(
    url: str, fragments: tuple[str, ...]
) -> None:
    # libpq takes part of the password for the host or port, and its error quotes it.
    misread = conninfo_to_dict(url)
    assert any(part in f"{misread.get('host')}:{misread.get('port')}" for part in fragments)
    with pytest.raises(LoginEtlError) as info:
        connect(url)
    assert not any(part in str(info.value) for part in fragments), str(info.value)


@pytest.mark.parametrize(
    ("url", "said"),
    [
        # 2a as libpq sees it: host 'Secret-Pw@127.0.0.1', "failed to resolve host" quoting it.
        ("postgresql://etl:my@Secret-Pw@127.0.0.1:{port}/etl", "the host name does not resolve"),
        ("postgresql://etl:my%40Secret-Pw@127.0.0.1:{port}/etl", "connection refused"),
        ("postgresql://etl:my%40Secret-Pw@nonexistent.invalid:{port}/etl", "does not resolve"),
    ],
)
def test_a_failed_connection_is_told_in_our_words(closed_port: int, url: str, said: str) -> None:
    url = url.format(port=closed_port)
    assert any(part in libpq_error(url) for part in ("Secret-Pw", "127.0.0.1", "nonexistent"))
    with pytest.raises(SinkUnavailable) as info:
        connect(url)
    message = str(info.value)
    assert said in message
    assert not leaks(message)
    assert "connection to server" not in message  # none of libpq's text
    assert info.value.__cause__ is None and info.value.__suppress_context__


@pytest.mark.parametrize(
    "query", ["sslmode=bogus", "gssencmode=require", "require_auth=bogus", "tcp_user_timeout=x"]
)
def test_a_parameter_libpq_refuses_is_a_config_error_naming_the_setting(
    closed_port: int, query: str
) -> None:
    """Past the start-up check (connect is also called with URLs not read from settings)."""
    url = f"postgresql://etl:my%40Secret-Pw@127.0.0.1:{closed_port}/etl?{query}"
    with pytest.raises(ConfigError) as info:
        connect(url)
    assert str(info.value).startswith("LOGIN_ETL_DATABASE_URL (--database-url): ")
    assert query.partition("=")[2] not in str(info.value)
    assert not leaks(str(info.value))


def test_retry_warnings_and_the_final_error_never_show_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = "postgresql://etl:my@Secret-Pw@127.0.0.1:5999/etl"
    stop = threading.Event()
    seen: list[BaseException] = []

    def on_error(err: BaseException) -> None:
        seen.append(err)
        if len(seen) == 2:
            stop.set()

    caplog.set_level(logging.DEBUG)
    with pytest.raises(SinkUnavailable) as info:
        until_stopped("migrate", stop, max_wait_s=0.01, on_error=on_error)(migrate_database, url)
    warnings = [r.getMessage() for r in caplog.records if r.name == "login_etl.runtime.retry"]
    assert len(warnings) == 2
    assert not leaks(" ".join(warnings))
    assert not leaks(str(info.value))


def test_a_lost_connection_is_told_without_libpq_s_text() -> None:
    err = psycopg.OperationalError(
        'consuming input failed: connection to server at "db", port 5432 failed: '
        "server closed the connection unexpectedly"
    )
    message = str(translate(err, "load batch"))
    assert message == "PostgreSQL load batch: the connection was lost (OperationalError)"
