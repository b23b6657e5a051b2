"""No part of the database password reaches logs, errors or /readyz, with PostgreSQL's and
libpq's real answers: a password that PostgreSQL refuses, at start-up and in the readiness probe.

The test server trusts every local connection, so one role of this module's own gets password
authentication (scram-sha-256) in pg_hba.conf while it exists.
"""

from __future__ import annotations

import contextlib
import re
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from login_etl.adapters.postgres import connect
from login_etl.errors import SinkError
from tests.support import Cli, as_user, free_port, get, start_worker

PASSWORD = "my@Secret-Pw"
WRONG = "my@Secret-Pw-not"
# Bounded waits for the server to reload pg_hba.conf and for the worker's probe; never asserted.
POLLS = 100
POLL_S = 0.1


def leaks(text: str) -> bool:
    """True if `text` shows any part of either password ("my" as a word)."""
    return (
        any(part in text for part in ("Secret-Pw", "my@", "my%40", "-not"))
        or re.search(r"\bmy\b", text) is not None
    )


def refuses_password(url: str) -> bool:
    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.OperationalError as err:
        return "password authentication failed" in str(err)
    return False


@pytest.fixture
def password_user(database_url: str) -> Iterator[str]:
    """A superuser that must give PASSWORD; returns its name."""
    name = f"pw_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        hba_file = Path(str(conn.execute("SHOW hba_file").fetchone()[0]))  # type: ignore[index]
        try:
            original = hba_file.read_text()
        except OSError:
            pytest.skip("the test server's pg_hba.conf is not on this machine")
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
                sql.Identifier(name), sql.Literal(PASSWORD)
            )
        )
        # First match wins: these lines, for this role only, go before the trusting ones.
        lines = [
            f"{kind} all {name} {where} scram-sha-256"
            for kind, where in (("local", ""), ("host", "127.0.0.1/32"), ("host", "::1/128"))
        ]
        hba_file.write_text("\n".join(lines) + "\n" + original)
        conn.execute("SELECT pg_reload_conf()")
        try:
            wrong = as_user(database_url, name, WRONG)
            for _ in range(POLLS):
                if refuses_password(wrong):
                    break
                time.sleep(POLL_S)
            yield name
        finally:
            hba_file.write_text(original)
            conn.execute("SELECT pg_reload_conf()")
            with contextlib.suppress(psycopg.Error):
                conn.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(name)))
                conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(name)))


def test_postgresql_refusing_the_password_is_told_without_it(
    database_url: str, password_user: str
) -> None:
    wrong = as_user(database_url, password_user, WRONG)
    assert refuses_password(wrong), "the server must ask this role for its password"
    with pytest.raises(SinkError) as info:
        connect(wrong)
    assert "wrong password for the user" in str(info.value)
    assert not leaks(str(info.value))
    assert password_user not in str(info.value)  # libpq quotes the user; we do not
    connect(as_user(database_url, password_user, PASSWORD)).close()


@pytest.mark.parametrize("command", [["run", "--until-empty"], ["migrate"]])
def test_the_cli_stops_at_once_and_shows_no_password(
    cli: Cli, database_url: str, password_user: str, command: list[str]
) -> None:
    wrong = as_user(database_url, password_user, WRONG)
    result = cli(*command, LOGIN_ETL_DATABASE_URL=wrong)
    assert result.returncode == 1, result.stderr
    assert "wrong password for the user" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1
    assert not leaks(result.stderr + result.stdout)


def test_readyz_and_its_log_show_no_password(
    cli: Cli, database_url: str, password_user: str
) -> None:
    port = free_port()
    url = as_user(database_url, password_user, PASSWORD)
    env = cli.env | {"LOGIN_ETL_METRICS_PORT": str(port), "LOGIN_ETL_DATABASE_URL": url}  # type: ignore[attr-defined]
    worker = start_worker(env)
    base = f"http://127.0.0.1:{port}"
    try:
        ready = None
        for _ in range(POLLS * 3):
            with contextlib.suppress(OSError):
                ready = get(base + "/readyz")
                if ready[0] == 200:
                    break
            time.sleep(POLL_S)
        assert ready == (200, "ready\n")
        # The worker's own connections stay; the probe's next connection is refused.
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(password_user), sql.Literal("changed-elsewhere")
                )
            )
        for _ in range(POLLS):  # past the probe's cache
            ready = get(base + "/readyz")
            if ready[0] == 503:
                break
            time.sleep(POLL_S)
        assert ready == (503, "not ready: postgres\n")
    finally:
        worker.send_signal(signal.SIGTERM)
        _, stderr = worker.communicate(timeout=60)
    assert "readiness: postgres does not answer" in stderr
    assert "wrong password for the user" in stderr
    assert not leaks(stderr)
