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
# reads and on the legacy ledger's ids that the claim anti-joins; the schema version that `run`
# checks at start; and the ledger's maintenance function. Nothing on reveal_audit.
_SERVICE: tuple[LiteralString, ...] = (
    "GRANT CONNECT, TEMPORARY ON DATABASE {database} TO {role}",
    "GRANT USAGE ON SCHEMA public, login_etl TO {role}",
    "GRANT INSERT ON public.user_logins, login_etl.processed_messages,"
    " login_etl.rejected_messages, login_etl.masked_values TO {role}",
    "GRANT SELECT (message_id, sent_at) ON login_etl.processed_messages TO {role}",
    "GRANT SELECT (message_id) ON login_etl.processed_messages_legacy TO {role}",
    "GRANT SELECT (token) ON login_etl.masked_values TO {role}",
    "GRANT SELECT ON login_etl.schema_version TO {role}",
    # The ledger's housekeeping (partitions ahead, pruning): SECURITY DEFINER, no DDL of its own.
    "GRANT EXECUTE ON FUNCTION login_etl.maintain_ledger(interval, boolean, interval) TO {role}",
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
    refuse_privileged(conn, roles)  # migrate() checked already; apply_roles may be used alone
    lock_down_public(conn)
    row = conn.execute("SELECT current_database()").fetchone()
    database = sql.Identifier(str(row[0] if row else ""))
    for name, grants in ((roles.analyst, _ANALYST), (roles.service, _SERVICE)):
        role = sql.Identifier(name)
        for statement in (*_RESET, *grants):
            conn.execute(sql.SQL(statement).format(role=role, database=database))
    _refuse_analyst_reach(conn, roles)
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


# Built-in roles that read or write every table whatever is granted (PostgreSQL 14+): a member
# reads the quarantine and the audit trail, or can empty the audit trail.
_READ_WRITE_ALL = ("pg_read_all_data", "pg_write_all_data")
# Built-in roles that act on the server as its OS user: a member reads the data files, or runs
# `COPY ... FROM PROGRAM 'psql ...'`, which connects as whoever the server trusts locally.
_SERVER_FILES = ("pg_execute_server_program", "pg_read_server_files", "pg_write_server_files")

# For each of the two roles, every role it is a member of, directly or through others, itself
# included. MEMBER counts any membership, with or without INHERIT or SET: one that only allows
# SET ROLE still lets its holder act as that role. pg_has_role is true of every role for a
# superuser, so a superuser's rows include all the others.
_MEMBERSHIPS: LiteralString = (
    "SELECT r.rolname, g.rolname, g.rolsuper, g.rolbypassrls, g.oid = o.owner,"
    " g.rolname = ANY(%(all_data)s), g.rolname = ANY(%(server_files)s), g.rolreplication,"
    " g.rolcreaterole"
    " FROM pg_roles r JOIN pg_roles g ON pg_has_role(r.oid, g.oid, 'MEMBER'),"
    # The schema's owner; before the first migration, whoever is about to create it.
    " (SELECT coalesce((SELECT nspowner FROM pg_namespace WHERE nspname = 'login_etl'),"
    " (SELECT oid FROM pg_roles WHERE rolname = current_user)) AS owner) o"
    " WHERE r.rolname = ANY(%(names)s)"
    " ORDER BY r.rolname, g.oid <> r.oid, g.rolname"
)

# After the grants: a role the analyst belongs to that was granted USAGE on schema login_etl (the
# reset revokes only from the analyst itself). Without USAGE no table there is reachable; the
# roles that need none (superuser, owner, pg_read_all_data) are refused before.
_ANALYST_REACHES: LiteralString = (
    "SELECT g.rolname FROM pg_namespace n, aclexplode(n.nspacl) a"
    " JOIN pg_roles g ON g.oid = a.grantee"
    " WHERE n.nspname = 'login_etl' AND a.privilege_type = 'USAGE'"
    " AND pg_has_role(%s, g.oid, 'MEMBER')"
    " ORDER BY g.rolname LIMIT 1"
)


def _why_privileged(flags: tuple[object, ...]) -> tuple[str, str] | None:
    """("is" or "has", what) for the first privilege of a _MEMBERSHIPS row's flags; None if
    none."""
    superuser, bypassrls, owner, all_data, server_files, replication, createrole = map(bool, flags)
    reasons = (
        (superuser, "is", "a superuser"),
        (bypassrls, "has", "BYPASSRLS (row-level security does not apply to it)"),
        (owner, "is", "the owner of schema login_etl"),
        (all_data, "is", "able to read or write every table"),
        (server_files, "is", "able to run programs or read and write files on the server"),
        (replication, "has", "REPLICATION (a replication connection copies every table)"),
        (createrole, "has", "CREATEROLE (it can grant itself other roles)"),
    )
    return next(((verb, what) for held, verb, what in reasons if held), None)


def refuse_privileged(conn: psycopg.Connection[tuple[object, ...]], roles: Roles) -> None:
    """ConfigError if either role could see what grants are meant to hide: a superuser, a role
    with BYPASSRLS, REPLICATION or CREATEROLE, the schema owner, pg_read_all_data,
    pg_write_all_data, pg_execute_server_program, pg_read_server_files, pg_write_server_files,
    or a member of any of these (directly or through other roles). No grant or revoke separates
    such a role, and revoking from the owner would harm it. Roles that do not exist yet pass:
    they are made plain."""
    rows = conn.execute(
        _MEMBERSHIPS,
        {
            "names": [roles.analyst, roles.service],
            "all_data": list(_READ_WRITE_ALL),
            "server_files": list(_SERVER_FILES),
        },
    ).fetchall()
    for name, via, *flags in rows:
        reason = _why_privileged(tuple(flags))
        if reason is None:
            continue
        verb, why = reason
        option = "--analyst-role" if name == roles.analyst else "--service-role"
        who = f"{name} {verb}" if via == name else f"{name} is a member of {via}, which {verb}"
        raise ConfigError(
            f"{option}: {who} {why}, so it could read the quarantine and the audit trail "
            "whatever is granted; name a plain role of its own (see docs/operations.md, "
            "access control)"
        )
    row = conn.execute(
        "SELECT EXISTS (SELECT FROM pg_roles a, pg_roles s WHERE a.rolname = %s"
        " AND s.rolname = %s AND pg_has_role(a.oid, s.oid, 'MEMBER'))",
        (roles.analyst, roles.service),
    ).fetchone()
    if row and row[0]:
        raise ConfigError(
            f"--analyst-role: {roles.analyst} is a member of {roles.service}, the service role, "
            "and would get its privileges"
        )


def _refuse_analyst_reach(conn: psycopg.Connection[tuple[object, ...]], roles: Roles) -> None:
    """ConfigError if, once its own grants are reset, the analyst still reaches schema
    login_etl through a role it belongs to."""
    row = conn.execute(_ANALYST_REACHES, (roles.analyst,)).fetchone()
    if row:
        raise ConfigError(
            f"--analyst-role: {roles.analyst} is a member of {row[0]}, which has USAGE on schema "
            "login_etl, so it could read the quarantine and the audit trail; revoke that "
            "membership or privilege, or name a plain role of its own"
        )
