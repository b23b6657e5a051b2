"""Helpers shared by every test tier, in one place: factories for realistic events and
messages, the exercise's sample data and table, and plain helpers for the integration tests
(database reads, quarantine seeding, HTTP, worker processes). Fixtures live in the conftest files."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from login_etl.core.model import Message
from login_etl.keys import KeyRing

Cli = Callable[..., subprocess.CompletedProcess[str]]
DB = psycopg.Connection[tuple[Any, ...]]

# --- events and messages --------------------------------------------------------------------------

ABSENT = object()  # pass as a field's value to leave the field out

SAMPLE_DATA = Path(
    os.environ.get(
        "LOGIN_ETL_SAMPLE_DATA",
        Path(__file__).resolve().parents[2] / "shared" / "data" / "sample_data.json.gz",
    )
)

VALID_EVENT: dict[str, Any] = {
    "user_id": "424cdd21-063a-43a7-b91b-7ca1a833afae",
    "app_version": "2.3.0",
    "device_type": "android",
    "ip": "199.172.111.135",
    "locale": "RU",
    "device_id": "593-47-5928",
}


def event(**fields: Any) -> dict[str, Any]:
    """A valid event with some fields replaced (or removed with ABSENT)."""
    merged = {**VALID_EVENT, **fields}
    return {k: v for k, v in merged.items() if v is not ABSENT}


def body(**fields: Any) -> str:
    return json.dumps(event(**fields))


def message(
    body_text: str, *, message_id: str = "m-1", sent_ms: int = 1_700_000_000_000
) -> Message:
    return Message(message_id=message_id, body=body_text, sent_timestamp_ms=sent_ms, receipt="r")


def sample_bodies() -> list[str]:
    """The exercise's 100 messages as JSON bodies; skips the test when ../shared is absent."""
    if not SAMPLE_DATA.exists():
        pytest.skip(f"sample data not found at {SAMPLE_DATA}")
    with gzip.open(SAMPLE_DATA, "rt", encoding="utf-8") as stream:
        return [json.dumps(item) for item in json.load(stream)]


# One message per input class of the mapping table, with the reason it must be recorded with.
BAD_BODIES = {
    "not json": "body: not valid JSON (Expecting value at line 1 column 1)",
    "[1, 2]": "body: must be a JSON object, got array",
    '{"foo": "oops_wrong_msg_type", "bar": "123"}': "user_id: required; device_type: required; ip: required; device_id: required",
    body(user_id=""): "user_id: must be 1–128 characters, got 0",
    body(user_id="u" * 129): "user_id: must be 1–128 characters, got 129",
    body(user_id=123): "user_id: must be a string, got number",
    body(device_type=ABSENT): "device_type: required",
    body(device_type="d" * 33): "device_type: must be 1–32 characters, got 33",
    body(ip="10.0.0.256"): "ip: must be an IPv4 or IPv6 address",
    body(ip=None): "ip: must not be null",
    body(device_id=" "): "device_id: must be 1–256 characters after trimming whitespace, got 0",
    body(device_id=["x"]): "device_id: must be a string, got array",
    body(locale="x" * 33): "locale: must be 0–32 characters, got 33",
    body(app_version="2.3.x"): "app_version: must be MAJOR[.MINOR[.PATCH]] in decimal digits",
    body(app_version="3000.0.0"): "app_version: MAJOR must be at most 2146",
    body(app_version=230): "app_version: must be a string, got number",
    body(user_id="a\u0000b"): "user_id: must not contain NUL characters",
}

# The exercise's Postgres image creates exactly this table before the service ever runs.
EXERCISE_DDL = """
CREATE TABLE IF NOT EXISTS user_logins(
    user_id             varchar(128),
    device_type         varchar(32),
    masked_ip           varchar(256),
    masked_device_id    varchar(256),
    locale              varchar(32),
    app_version         integer,
    create_date         date
);
"""

# --- the database ---------------------------------------------------------------------------------


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


def as_user(url: str, user: str, password: str) -> str:
    """The same database URL, for another user (a URL still: the CLI accepts only URLs)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{quote(user)}:{quote(password)}@{host}"))


def user_logins(conn: DB) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT user_id, device_type, masked_ip, masked_device_id, locale, app_version, create_date"
        " FROM user_logins ORDER BY user_id, masked_ip"
    ).fetchall()


def count(conn: DB, table: str) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.SQL(table))).fetchone()
    assert row is not None
    return int(row[0])


# When an older, stricter login-etl would have quarantined the messages seeded below.
QUARANTINED_SENT_AT = dt.datetime(2024, 5, 17, 23, 59, 30, tzinfo=dt.UTC)


def quarantine(
    db: DB,
    keys: KeyRing,
    message_id: str,
    text: str,
    *,
    reason: str = "old rule",
    sent_at: dt.datetime | None = QUARANTINED_SENT_AT,
    rejected_at: dt.datetime | None = None,
) -> None:
    """What an older, stricter login-etl would have left: a ledger entry and a sealed body."""
    # The ledger is partitioned by SentTimestamp: the claim of a message sent at `sent_at`.
    db.execute(
        "INSERT INTO login_etl.processed_messages (message_id, sent_at)"
        " VALUES (%s, coalesce(%s, now()))",
        (message_id, sent_at),
    )
    db.execute(
        "INSERT INTO login_etl.rejected_messages (message_id, rejected_at, sent_at, reason, body)"
        " VALUES (%s, coalesce(%s, now()), %s, %s, %s)",
        (message_id, rejected_at, sent_at, reason, keys.sealer.seal(message_id, text)),
    )


# --- HTTP (the worker's /metrics, /healthz, /readyz) ----------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(url: str) -> tuple[int, str]:
    """Status and body of a GET, error statuses included."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


# --- worker processes -----------------------------------------------------------------------------


def start_worker(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    """`login-etl run ARGS` in a child process, its output piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "login_etl", "run", *args],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def wait_for_log(worker: subprocess.Popen[str], text: str) -> None:
    """Read the worker's stderr until a line holds `text` (e.g. "batch 2:": mid-stream)."""
    assert worker.stderr is not None
    for line in worker.stderr:
        if text in line:
            return
    raise AssertionError(f"the worker ended without logging {text!r}")
