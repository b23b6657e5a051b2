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
from psycopg import errors as pgerrors

from login_etl.adapters.postgres.connection import first_line, translate, translated
from login_etl.adapters.postgres.roles import (
    Roles,
    apply_roles,
    lock_down_public,
    refuse_privileged,
)
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


def _version(conn: psycopg.Connection[tuple[object, ...]]) -> int:
    """The schema's version, 0 if there is none; reads only (pg_tables is readable by all)."""
    exists = conn.execute(
        "SELECT EXISTS (SELECT FROM pg_catalog.pg_tables"
        " WHERE schemaname = 'login_etl' AND tablename = 'schema_version')"
    ).fetchone()
    if not exists or not exists[0]:
        return 0
    row = conn.execute("SELECT coalesce(max(version), 0) FROM login_etl.schema_version").fetchone()
    return int(row[0]) if row else 0  # type: ignore[call-overload]


def _refuse_newer(current: int) -> None:
    if current > SCHEMA_VERSION:
        raise SinkError(
            f"database schema is version {current}, newer than this login-etl "
            f"({SCHEMA_VERSION}); upgrade login-etl"
        )


def migrate(conn: psycopg.Connection[tuple[object, ...]], roles: Roles | None = None) -> list[int]:
    """Bring the schema to SCHEMA_VERSION; returns the versions applied (empty when current).

    A schema already current costs no DDL, so that a role which may not create anything (the
    service role of `migrate --create-roles`) can run the worker once the owner has migrated.
    With `roles`, the group roles are created and granted in the migration's transaction.
    """
    with translated("read the schema version"), conn.transaction():
        current = _version(conn)
        _refuse_newer(current)
        if current == SCHEMA_VERSION and roles is None:
            check_user_logins(conn)
            return []
    try:
        with conn.transaction():
            return _apply(conn, roles)
    except pgerrors.InsufficientPrivilege as err:
        task = (
            "create the roles and grant them"
            if roles
            else f"migrate the schema from version {current} to {SCHEMA_VERSION}"
        )
        raise SinkError(
            f"database user {conn.info.user} may not {task} ({first_line(err)}): "
            "run `login-etl migrate` as the schema owner"
        ) from None
    except psycopg.Error as err:
        raise translate(err, "migrate") from err


def _apply(conn: psycopg.Connection[tuple[object, ...]], roles: Roles | None) -> list[int]:
    applied: list[int] = []
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
    # Again, under the lock: another process may have just migrated, and then there is no DDL
    # to do (nor any privilege to need).
    current = _version(conn)
    _refuse_newer(current)
    if roles is not None:
        refuse_privileged(conn, roles)  # before any DDL: a refusal logs no migration
    if current < SCHEMA_VERSION:
        conn.execute("CREATE SCHEMA IF NOT EXISTS login_etl")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS login_etl.schema_version ("
            " version integer PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now(),"
            " name text NOT NULL)"
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
    if applied:
        lock_down_public(conn)  # a migration may have added a function, EXECUTE for PUBLIC
    if roles is not None:
        created = apply_roles(conn, roles)
        log.info("roles %s and %s granted (created: %s)", roles.analyst, roles.service, created)
    check_user_logins(conn)
    return applied
