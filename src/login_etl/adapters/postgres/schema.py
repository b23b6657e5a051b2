"""Idempotent migrations of the service's schema, and the check that `run` relies on.

Migrations are the numbered SQL files beside this module, applied in order under an advisory
lock (so that workers starting together do not race), each recorded in
`login_etl.schema_version`. `public.user_logins` is created only if missing and never altered;
its columns are checked against the exercise's DDL.
"""

from __future__ import annotations

import logging
from importlib import resources

import psycopg

from login_etl.adapters.postgres.connection import translated
from login_etl.errors import SinkError

log = logging.getLogger(__name__)

_LOCK_KEY = 0x4C4F47494E45544C  # "LOGINETL": any fixed bigint, the same in every worker
_MIGRATIONS = sorted(
    (int(entry.name.split("_", 1)[0]), entry.name)
    for entry in resources.files("login_etl.adapters.postgres.migrations").iterdir()
    if entry.name.endswith(".sql")
)
SCHEMA_VERSION = _MIGRATIONS[-1][0]

# The exercise's DDL: name → (data type, character maximum length).
USER_LOGINS_COLUMNS: dict[str, tuple[str, int | None]] = {
    "user_id": ("character varying", 128),
    "device_type": ("character varying", 32),
    "masked_ip": ("character varying", 256),
    "masked_device_id": ("character varying", 256),
    "locale": ("character varying", 32),
    "app_version": ("integer", None),
    "create_date": ("date", None),
}


def _sql(name: str) -> str:
    return resources.files("login_etl.adapters.postgres.migrations").joinpath(name).read_text()


def check_user_logins(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """SinkError if `public.user_logins` lacks a column or has one of another type."""
    rows = conn.execute(
        "SELECT column_name, data_type, character_maximum_length FROM information_schema.columns"
        " WHERE table_schema = 'public' AND table_name = 'user_logins'"
    ).fetchall()
    found = {str(name): (str(kind), width) for name, kind, width in rows}
    for name, expected in USER_LOGINS_COLUMNS.items():
        if name not in found:
            raise SinkError(f"public.user_logins has no column {name}; expected the exercise's DDL")
        if found[name] != expected:
            kind, width = found[name]
            raise SinkError(
                f"public.user_logins.{name} is {kind}({width}), expected "
                f"{expected[0]}({expected[1]})"
            )


def migrate(conn: psycopg.Connection[tuple[object, ...]]) -> list[int]:
    """Bring the schema to SCHEMA_VERSION; returns the versions applied (empty when current)."""
    applied: list[int] = []
    with translated("migrate"), conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute("CREATE SCHEMA IF NOT EXISTS login_etl")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS login_etl.schema_version ("
            " version integer PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now(),"
            " name text NOT NULL)"
        )
        row = conn.execute(
            "SELECT coalesce(max(version), 0) FROM login_etl.schema_version"
        ).fetchone()
        current = int(row[0]) if row else 0  # type: ignore[call-overload]
        if current > SCHEMA_VERSION:
            raise SinkError(
                f"database schema is version {current}, newer than this login-etl "
                f"({SCHEMA_VERSION}); upgrade login-etl"
            )
        for version, name in _MIGRATIONS:
            if version <= current:
                continue
            log.info("applying migration %s", name)
            conn.execute(_sql(name).encode())
            conn.execute(
                "INSERT INTO login_etl.schema_version (version, name) VALUES (%s, %s)",
                (version, name),
            )
            applied.append(version)
        check_user_logins(conn)
    return applied
