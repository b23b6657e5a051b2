"""No plaintext ip or device_id anywhere in the database, nor in the logs."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from login_etl.config import Settings
from login_etl.demo.data import generate_bodies
from login_etl.logs import configure_logging
from login_etl.runtime.wiring import open_worker
from tests.support import BAD_BODIES, body


def everything_stored(conn: psycopg.Connection[tuple[Any, ...]]) -> str:
    """Every row of every table of the service's schemas, as text (bytea as its raw bytes)."""
    tables = conn.execute(
        "SELECT table_schema, table_name FROM information_schema.tables"
        " WHERE table_schema IN ('public', 'login_etl')"
    ).fetchall()
    parts: list[str] = []
    for schema, table in tables:
        for row in conn.execute(
            sql.SQL("SELECT * FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
        ):
            for value in row:
                if isinstance(value, bytes | memoryview):
                    parts.append(bytes(value).decode("latin-1"))
                else:
                    parts.append(str(value))
    return "\n".join(parts)


class ListHandler(logging.Handler):
    def __init__(self, sink: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(self.format(record))


@pytest.fixture
def capture_logs() -> Iterator[list[str]]:
    """Everything the service logs with its own logging set-up at DEBUG, the chattiest level."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    lines: list[str] = []
    configure_logging("DEBUG")
    root.addHandler(ListHandler(lines))
    yield lines
    root.handlers[:], _ = saved
    root.setLevel(saved[1])


def test_no_plaintext_ip_or_device_id_is_stored_or_logged(
    make_settings: Callable[..., Settings],
    send: Callable[[list[str]], int],
    db: psycopg.Connection[tuple[Any, ...]],
    capture_logs: list[str],
) -> None:
    bodies = (
        generate_bodies(60)
        + list(BAD_BODIES)
        + [body(ip="2001:db8::7", device_id="dev-in-a-bad-one", app_version="x")]
    )
    send(bodies)
    with open_worker(make_settings()) as worker:
        worker.run(until_empty=True)

    secrets: set[str] = set()
    for text in bodies:
        try:
            item = json.loads(text)
        except json.JSONDecodeError:
            continue
        if not isinstance(item, dict):
            continue
        for field in ("ip", "device_id"):
            value = item.get(field)
            if isinstance(value, str) and len(value.strip()) >= 4:
                secrets.add(value.strip())
                with contextlib.suppress(ValueError):
                    secrets.add(str(ipaddress.ip_address(value.strip())))
    assert len(secrets) > 100

    stored = everything_stored(db)
    logged = "\n".join(capture_logs)
    assert "loaded" in logged
    assert stored
    for secret in secrets:
        assert secret not in stored, "plaintext PII in the database"
        assert secret not in logged, "plaintext PII in the logs"
