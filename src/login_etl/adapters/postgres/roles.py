"""Separation of duties: group roles for analysts and for the worker, and what each may touch.

Analysts read `public.user_logins` and nothing in schema `login_etl` (quarantine, vault, ledger,
audit trail); the worker's role may do what `login-etl run` needs and no more. Both are NOLOGIN
group roles: people and applications are granted membership. Grants on the service's objects
are reset, then given, so applying them twice changes nothing; a role that already exists keeps
its attributes (LOGIN, password, memberships) and its privileges on other objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import LiteralString

import psycopg
from psycopg import errors as pgerrors
from psycopg import sql

from login_etl.errors import ConfigError

DEFAULT_ANALYST_ROLE = "login_etl_analyst"
DEFAULT_SERVICE_ROLE = "login_etl_service"
# PostgreSQL truncates longer names (NAMEDATALEN - 1), which would grant to another name.
_MAX_NAME_BYTES = 63

# PUBLIC (every role) gets nothing in login_etl. New schemas and tables grant PUBLIC nothing,
# but functions grant it EXECUTE; revoked here, after every migration that may add one.
_LOCK_DOWN_PUBLIC: tuple[LiteralString, ...] = (
    "REVOKE ALL ON SCHEMA login_etl FROM PUBLIC",
    "REVOKE ALL ON ALL TABLES IN SCHEMA login_etl FROM PUBLIC",
    "REVOKE ALL ON ALL SEQUENCES IN SCHEMA login_etl FROM PUBLIC",
    "REVOKE ALL ON ALL FUNCTIONS IN SCHEMA login_etl FROM PUBLIC",
)

# Reset: everything on the service's objects, so that a re-run removes what a past one gave.
_RESET: tuple[LiteralString, ...] = (
    "REVOKE ALL ON SCHEMA login_etl FROM {role}",
    "REVOKE ALL ON ALL TABLES IN SCHEMA login_etl FROM {role}",
    "REVOKE ALL ON ALL SEQUENCES IN SCHEMA login_etl FROM {role}",
    "REVOKE ALL ON ALL FUNCTIONS IN SCHEMA login_etl FROM {role}",
    "REVOKE ALL ON public.user_logins FROM {role}",
)

_ANALYST: tuple[LiteralString, ...] = (
    "GRANT CONNECT ON DATABASE {database} TO {role}",
    "GRANT USAGE ON SCHEMA public TO {role}",
    "GRANT SELECT ON public.user_logins TO {role}",
)

# What the sink's statements need (adapters/postgres/sink.py): a temporary staging table; INSERT
# into the four tables it writes; SELECT on the two conflict keys that ON CONFLICT … RETURNING
# reads; and the schema version that `run` checks at start. Nothing on reveal_audit.
_SERVICE: tuple[LiteralString, ...] = (
    "GRANT CONNECT, TEMPORARY ON DATABASE {database} TO {role}",
    "GRANT USAGE ON SCHEMA public, login_etl TO {role}",
    "GRANT INSERT ON public.user_logins, login_etl.processed_messages,"
    " login_etl.rejected_messages, login_etl.masked_values TO {role}",
    "GRANT SELECT (message_id) ON login_etl.processed_messages TO {role}",
    "GRANT SELECT (token) ON login_etl.masked_values TO {role}",
    "GRANT SELECT ON login_etl.schema_version TO {role}",
)


@dataclass(frozen=True, slots=True)
class Roles:
    """The two group roles' names; ConfigError if either cannot be a role of its own."""

    analyst: str = DEFAULT_ANALYST_ROLE
    service: str = DEFAULT_SERVICE_ROLE

    def __post_init__(self) -> None:
        for option, name in (("--analyst-role", self.analyst), ("--service-role", self.service)):
            if not name or len(name.encode("utf-8")) > _MAX_NAME_BYTES:
                raise ConfigError(f"{option}: a role name has 1 to {_MAX_NAME_BYTES} bytes")
            if name.lower().startswith("pg_"):
                raise ConfigError(f"{option}: names starting with pg_ are reserved")
        if self.analyst == self.service:
            raise ConfigError("--analyst-role and --service-role must differ")


def lock_down_public(conn: psycopg.Connection[tuple[object, ...]]) -> None:
    """Take from PUBLIC every privilege in schema login_etl."""
    for statement in _LOCK_DOWN_PUBLIC:
        conn.execute(statement)


def apply_roles(conn: psycopg.Connection[tuple[object, ...]], roles: Roles) -> list[str]:
    """Create the roles if missing and (re)apply their grants; returns the names created.

    Runs in the caller's transaction (the migration's), and needs CREATEROLE and ownership of
    the service's objects; psycopg errors propagate for the caller to translate.
    """
    created = [name for name in (roles.analyst, roles.service) if _create_if_missing(conn, name)]
    _refuse_privileged(conn, roles)
    lock_down_public(conn)
    row = conn.execute("SELECT current_database()").fetchone()
    database = sql.Identifier(str(row[0] if row else ""))
    for name, grants in ((roles.analyst, _ANALYST), (roles.service, _SERVICE)):
        role = sql.Identifier(name)
        for statement in (*_RESET, *grants):
            conn.execute(sql.SQL(statement).format(role=role, database=database))
    return created


def _create_if_missing(conn: psycopg.Connection[tuple[object, ...]], name: str) -> bool:
    if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (name,)).fetchone():
        return False
    try:
        # A savepoint: another migration (of another database on this server) may create the
        # same role at the same moment, which is fine.
        with conn.transaction():
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(name)))
    except (pgerrors.DuplicateObject, pgerrors.UniqueViolation):
        return False
    return True


def _refuse_privileged(conn: psycopg.Connection[tuple[object, ...]], roles: Roles) -> None:
    """A superuser, the schema owner or one of its members sees everything: grants would not
    separate anything, and revoking from the owner would harm it."""
    rows = conn.execute(
        "SELECT r.rolname, r.rolsuper OR pg_has_role(r.oid, n.nspowner, 'MEMBER')"
        " FROM pg_roles r, pg_namespace n"
        " WHERE n.nspname = 'login_etl' AND r.rolname = ANY(%s)",
        ([roles.analyst, roles.service],),
    ).fetchall()
    for name, privileged in rows:
        if privileged:
            option = "--analyst-role" if name == roles.analyst else "--service-role"
            raise ConfigError(
                f"{option}: {name} is a superuser or a member of the schema owner; "
                "give it a role of its own"
            )
    row = conn.execute(
        "SELECT pg_has_role(%s, %s, 'MEMBER')", (roles.analyst, roles.service)
    ).fetchone()
    if row and row[0]:
        raise ConfigError(
            f"--analyst-role: {roles.analyst} is a member of {roles.service}, the service role, "
            "and would get its privileges"
        )
