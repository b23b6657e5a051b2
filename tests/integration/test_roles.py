"""Separation of duties: `migrate --create-roles` makes an analyst role that reads user_logins
and nothing of login_etl, and a service role that can run the worker and nothing more."""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg import errors as pgerrors
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from login_etl.adapters.postgres import SCHEMA_VERSION, PostgresSink, Roles, connect, migrate
from login_etl.adapters.postgres import roles as roles_module
from login_etl.adapters.postgres import schema as schema_module
from login_etl.adapters.postgres.ledger import maintain_ledger
from login_etl.core.model import Message
from login_etl.core.timestamps import epoch_ms
from login_etl.core.transform import Transformer
from login_etl.demo.data import generate_bodies
from login_etl.errors import ConfigError
from login_etl.keys import KeyRing
from tests.support import DB, Cli, as_user, body, count

MakeUser = Callable[[str | None], str]


def drop_roles(url: str, names: list[str]) -> None:
    """Roles are per server, not per database: drop what a test made (its privileges first)."""
    with psycopg.connect(url, autocommit=True) as conn:
        for name in names:
            role = sql.Identifier(name)
            with contextlib.suppress(pgerrors.UndefinedObject):
                conn.execute(sql.SQL("DROP OWNED BY {}").format(role))
            # Still granted in another database of a shared server: leave it there.
            with contextlib.suppress(pgerrors.DependentObjectsStillExist):
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(role))


@pytest.fixture
def roles(database_url: str) -> Iterator[Roles]:
    """Group roles with names of this test's own, dropped afterwards."""
    suffix = uuid.uuid4().hex[:8]
    made = Roles(analyst=f"analyst_{suffix}", service=f"service_{suffix}")
    yield made
    drop_roles(database_url, [made.analyst, made.service])


@pytest.fixture
def make_user(database_url: str) -> Iterator[MakeUser]:
    """A LOGIN user, member of the given group role (or of none); returns its database URL."""
    made: list[str] = []

    def make(group: str | None) -> str:
        name = f"user_{uuid.uuid4().hex[:8]}"
        made.append(name)
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'x' {}").format(
                    sql.Identifier(name),
                    sql.SQL("IN ROLE {}").format(sql.Identifier(group)) if group else sql.SQL(""),
                )
            )
        return as_user(database_url, name, "x")

    yield make
    drop_roles(database_url, made)


@pytest.fixture
def owner(database_url: str, roles: Roles) -> Iterator[DB]:
    """The schema owner's connection (the fixtures' superuser), migrated with the roles."""
    with connect(database_url) as conn:
        migrate(conn, roles)
        conn.autocommit = True
        yield conn


def login_etl_tables(conn: DB) -> list[str]:
    rows = conn.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'login_etl'"
        " ORDER BY 1"
    ).fetchall()
    return [str(name) for (name,) in rows]


def denied(url: str, statement: str) -> bool:
    """True if PostgreSQL refuses `statement` for lack of privilege."""
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            conn.execute(statement.encode())
        except pgerrors.InsufficientPrivilege:
            return True
    return False


def test_migrate_create_roles_twice_with_the_default_names(cli: Cli, database_url: str) -> None:
    try:
        first = cli("migrate", "--create-roles")
        assert first.returncode == 0, first.stderr
        assert f"schema at version {SCHEMA_VERSION}." in first.stdout
        assert "Roles login_etl_analyst (analysts) and login_etl_service (the worker)" in (
            first.stdout
        )
        second = cli("migrate", "--create-roles")
        assert second.returncode == 0, second.stderr
        assert f"Schema is up to date (version {SCHEMA_VERSION})." in second.stdout
        with psycopg.connect(database_url) as conn:
            found = conn.execute(
                "SELECT rolname, rolcanlogin FROM pg_roles"
                " WHERE rolname IN ('login_etl_analyst', 'login_etl_service') ORDER BY 1"
            ).fetchall()
        assert found == [("login_etl_analyst", False), ("login_etl_service", False)]
    finally:
        drop_roles(database_url, ["login_etl_analyst", "login_etl_service"])


def test_the_analyst_reads_user_logins_and_nothing_of_login_etl(
    owner: DB, roles: Roles, make_user: MakeUser
) -> None:
    owner.execute("INSERT INTO user_logins (user_id) VALUES ('u-1')")
    analyst = make_user(roles.analyst)
    with psycopg.connect(analyst) as conn:
        assert conn.execute("SELECT user_id FROM user_logins").fetchall() == [("u-1",)]

    tables = login_etl_tables(owner)
    assert {"rejected_messages", "masked_values", "processed_messages", "reveal_audit"} <= set(
        tables
    )
    for table in tables:
        assert denied(analyst, f"SELECT * FROM login_etl.{table}"), table
    assert denied(analyst, "SELECT login_etl.app_version_text(1)")
    assert denied(analyst, "INSERT INTO user_logins (user_id) VALUES ('u-2')")
    assert denied(analyst, "DELETE FROM user_logins")
    assert denied(analyst, "CREATE TABLE login_etl.mine (x int)")

    # Nor does any other user, through PUBLIC.
    nobody = make_user(None)
    for table in tables:
        assert denied(nobody, f"SELECT * FROM login_etl.{table}"), table
    assert denied(nobody, "SELECT login_etl.app_version_text(1)")
    assert count(owner, "user_logins") == 1


def test_the_service_role_runs_the_worker_and_cannot_read_the_audit_trail(
    cli: Cli,
    send: Callable[[list[str]], int],
    owner: DB,
    roles: Roles,
    make_user: MakeUser,
) -> None:
    service = make_user(roles.service)
    send([*generate_bodies(30, malformed=2), body(device_id="é" * 200)])  # one vault entry

    result = cli("run", "--until-empty", LOGIN_ETL_DATABASE_URL=service)
    assert result.returncode == 0, result.stderr
    assert " 29 loaded, 2 rejected" in result.stdout
    assert count(owner, "user_logins") == 29
    assert count(owner, "login_etl.rejected_messages") == 2
    assert count(owner, "login_etl.masked_values") == 1
    assert count(owner, "login_etl.processed_messages") == 31

    again = cli("migrate", LOGIN_ETL_DATABASE_URL=service)
    assert again.returncode == 0, again.stderr
    assert "Schema is up to date" in again.stdout

    assert denied(service, "SELECT * FROM login_etl.reveal_audit")
    assert denied(
        service,
        "INSERT INTO login_etl.reveal_audit (requester, os_user, action, value_count, reason)"
        " VALUES ('x', 'x', 'reveal', 0, 'x')",
    )
    assert denied(service, "SELECT body FROM login_etl.rejected_messages")
    assert denied(service, "SELECT ciphertext FROM login_etl.masked_values")
    assert denied(service, "SELECT * FROM user_logins")
    assert denied(service, "DELETE FROM user_logins")
    assert denied(service, "DELETE FROM login_etl.processed_messages")
    assert denied(service, "CREATE TABLE login_etl.mine (x int)")


def test_a_schema_behind_tells_the_service_to_have_the_owner_migrate(
    cli: Cli, owner: DB, roles: Roles, make_user: MakeUser
) -> None:
    service = make_user(roles.service)
    owner.execute(  # an older schema
        "DELETE FROM login_etl.schema_version WHERE version = %s", (SCHEMA_VERSION,)
    )
    result = cli("run", "--until-empty", LOGIN_ETL_DATABASE_URL=service)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    behind = f"may not migrate the schema from version {SCHEMA_VERSION - 1} to {SCHEMA_VERSION}"
    assert behind in result.stderr
    assert "run `login-etl migrate` as the schema owner" in result.stderr

    # A user with no role at all, on a database never migrated: the same advice.
    with psycopg.connect(owner.info.dsn, autocommit=True) as conn:
        conn.execute("DROP SCHEMA login_etl CASCADE")
    stranger = cli("run", "--until-empty", LOGIN_ETL_DATABASE_URL=make_user(None))
    assert stranger.returncode == 1
    assert "run `login-etl migrate` as the schema owner" in stranger.stderr


def test_create_roles_keeps_an_existing_role_and_its_other_privileges(
    database_url: str, roles: Roles, make_user: MakeUser
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD 'x' CONNECTION LIMIT 3").format(
                sql.Identifier(roles.analyst)
            )
        )
        conn.execute("CREATE TABLE public.other (x int)")
        conn.execute(
            sql.SQL("GRANT SELECT ON public.other TO {}").format(sql.Identifier(roles.analyst))
        )
    with connect(database_url) as conn:
        migrate(conn)
        conn.execute(
            sql.SQL("GRANT SELECT ON login_etl.rejected_messages TO {}").format(
                sql.Identifier(roles.analyst)
            )
        )
        conn.commit()
        migrate(conn, roles)
        migrate(conn, roles)
        attributes = conn.execute(
            "SELECT rolcanlogin, rolconnlimit FROM pg_roles WHERE rolname = %s", (roles.analyst,)
        ).fetchone()
    assert attributes == (True, 3)
    analyst = as_user(database_url, roles.analyst, "x")
    with psycopg.connect(analyst) as conn:
        conn.execute("SELECT * FROM public.other")
        conn.execute("SELECT * FROM user_logins")
    assert denied(analyst, "SELECT * FROM login_etl.rejected_messages"), "reset, then granted"


def test_create_roles_refuses_roles_that_would_separate_nothing(
    database_url: str, roles: Roles
) -> None:
    with connect(database_url) as conn:
        superuser = conn.info.user
        with pytest.raises(ConfigError, match=f"{superuser} is a superuser"):
            migrate(conn, Roles(analyst=superuser, service=roles.service))
        # One transaction: the service role it had created and the schema are rolled back.
        assert (
            conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (roles.service,)).fetchone()
            is None
        )
        assert conn.execute("SELECT to_regnamespace('login_etl')").fetchone() == (None,)

        conn.execute(
            sql.SQL("CREATE ROLE {} IN ROLE {}").format(
                sql.Identifier(roles.analyst), sql.Identifier(superuser)
            )
        )
        conn.commit()
        with pytest.raises(ConfigError, match=f"is a member of {superuser}, which is a superuser"):
            migrate(conn, roles)
    with pytest.raises(ConfigError, match="must differ"):
        Roles(analyst="same", service="same")
    with pytest.raises(ConfigError, match="reserved"):
        Roles(analyst="pg_read_all_data")


def test_a_schema_owner_that_is_no_superuser_can_create_the_roles(
    database_url: str, roles: Roles, make_user: MakeUser
) -> None:
    owner_url = make_user(None)
    owner_name = str(conninfo_to_dict(owner_url)["user"])
    database = str(conninfo_to_dict(database_url)["dbname"])
    with psycopg.connect(database_url, autocommit=True) as conn:
        superuser = conn.info.user
        conn.execute(sql.SQL("ALTER ROLE {} CREATEROLE").format(sql.Identifier(owner_name)))
        conn.execute(
            sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                sql.Identifier(database), sql.Identifier(owner_name)
            )
        )
    try:
        with connect(owner_url) as conn:
            assert migrate(conn, roles) == list(range(1, SCHEMA_VERSION + 1))
            assert migrate(conn, roles) == []
        analyst = make_user(roles.analyst)
        with psycopg.connect(analyst) as conn:
            assert conn.execute("SELECT count(*) FROM user_logins").fetchone() == (0,)
        assert denied(analyst, "SELECT * FROM login_etl.reveal_audit")
        with connect(make_user(roles.service)) as conn:
            assert migrate(conn) == []
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("ALTER DATABASE {} OWNER TO {}").format(
                    sql.Identifier(database), sql.Identifier(superuser)
                )
            )


# --- issue 9 (j): a role that sees everything whatever is granted is refused, changing nothing ---

# Each: how the analyst role is made beforehand ({role}, and {mid}: a role between it and the
# privilege), and what the one line says. {mid} is dropped afterwards.
PRIVILEGED_ANALYSTS = {
    "superuser": (["CREATE ROLE {role} SUPERUSER"], "{role} is a superuser"),
    "BYPASSRLS": (["CREATE ROLE {role} BYPASSRLS"], "{role} has BYPASSRLS"),
    "member of pg_read_all_data": (
        ["CREATE ROLE {role} IN ROLE pg_read_all_data"],
        "{role} is a member of pg_read_all_data, which is able to read or write every table",
    ),
    "member of pg_read_all_data through another role": (
        ["CREATE ROLE {mid} IN ROLE pg_read_all_data", "CREATE ROLE {role} IN ROLE {mid}"],
        "{role} is a member of pg_read_all_data",
    ),
    "member of pg_write_all_data": (
        ["CREATE ROLE {role} IN ROLE pg_write_all_data"],
        "{role} is a member of pg_write_all_data",
    ),
    "may only SET ROLE to a superuser": (
        [
            "CREATE ROLE {mid} SUPERUSER",
            "CREATE ROLE {role}",
            "GRANT {mid} TO {role} WITH INHERIT FALSE, SET TRUE",
        ],
        "{role} is a member of {mid}, which is a superuser",
    ),
    "member of a role with BYPASSRLS": (
        ["CREATE ROLE {mid} BYPASSRLS", "CREATE ROLE {role} IN ROLE {mid}"],
        "{role} is a member of {mid}, which has BYPASSRLS",
    ),
    # COPY t FROM PROGRAM 'psql ...' connects as whoever the server trusts locally.
    "member of pg_execute_server_program": (
        ["CREATE ROLE {role} IN ROLE pg_execute_server_program"],
        "{role} is a member of pg_execute_server_program, which is able to run programs",
    ),
    "member of pg_read_server_files": (
        ["CREATE ROLE {role} IN ROLE pg_read_server_files"],
        "{role} is a member of pg_read_server_files, which is able to run programs or read",
    ),
    "member of pg_write_server_files through another role": (
        ["CREATE ROLE {mid} IN ROLE pg_write_server_files", "CREATE ROLE {role} IN ROLE {mid}"],
        "{role} is a member of pg_write_server_files",
    ),
    "REPLICATION": (["CREATE ROLE {role} REPLICATION"], "{role} has REPLICATION"),
    "CREATEROLE": (["CREATE ROLE {role} CREATEROLE"], "{role} has CREATEROLE"),
    "member of a role with CREATEROLE": (
        ["CREATE ROLE {mid} CREATEROLE", "CREATE ROLE {role} IN ROLE {mid}"],
        "{role} is a member of {mid}, which has CREATEROLE",
    ),
}


@pytest.mark.parametrize(
    ("setup", "message"), PRIVILEGED_ANALYSTS.values(), ids=PRIVILEGED_ANALYSTS.keys()
)
@pytest.mark.parametrize("which", ["analyst", "service"])
def test_create_roles_refuses_a_role_that_sees_everything_and_changes_nothing(
    cli: Cli, database_url: str, roles: Roles, setup: list[str], message: str, which: str
) -> None:
    mid = f"mid_{uuid.uuid4().hex[:8]}"
    role, other = (
        (roles.analyst, roles.service) if which == "analyst" else (roles.service, roles.analyst)
    )
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            for statement in setup:
                conn.execute(
                    sql.SQL(statement).format(role=sql.Identifier(role), mid=sql.Identifier(mid))
                )
            before = conn.execute(
                "SELECT r.*, ARRAY(SELECT roleid::regrole::text FROM pg_auth_members"
                " WHERE member = r.oid ORDER BY 1) FROM pg_roles r WHERE rolname = %s",
                (role,),
            ).fetchone()
        result = cli(
            "migrate",
            "--create-roles",
            "--analyst-role",
            roles.analyst,
            "--service-role",
            roles.service,
        )
        assert result.returncode == 2, result.stdout + result.stderr
        assert result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith(f"login-etl: --{which}-role: ")
        assert message.format(role=role, mid=mid) in result.stderr
        assert "docs/operations.md" in result.stderr
        assert "Traceback" not in result.stderr
        with psycopg.connect(database_url, autocommit=True) as conn:
            # One transaction: no schema, the other role not created, this one as it was.
            assert conn.execute("SELECT to_regnamespace('login_etl')").fetchone() == (None,)
            assert (
                conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (other,)).fetchone()
                is None
            )
            after = conn.execute(
                "SELECT r.*, ARRAY(SELECT roleid::regrole::text FROM pg_auth_members"
                " WHERE member = r.oid ORDER BY 1) FROM pg_roles r WHERE rolname = %s",
                (role,),
            ).fetchone()
        assert after == before
    finally:
        drop_roles(database_url, [role, mid])


def test_create_roles_accepts_a_plain_existing_role(
    cli: Cli, database_url: str, roles: Roles, make_user: MakeUser
) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(roles.analyst)))
    result = cli(
        "migrate",
        "--create-roles",
        "--analyst-role",
        roles.analyst,
        "--service-role",
        roles.service,
    )
    assert result.returncode == 0, result.stderr
    assert denied(make_user(roles.analyst), "SELECT * FROM login_etl.reveal_audit")


def test_create_roles_refuses_an_analyst_that_reaches_login_etl_through_a_group(
    database_url: str, roles: Roles
) -> None:
    readers = f"readers_{uuid.uuid4().hex[:8]}"
    try:
        with connect(database_url) as conn:
            migrate(conn)
            for statement in (
                "CREATE ROLE {readers}",
                "GRANT USAGE ON SCHEMA login_etl TO {readers}",
                "GRANT SELECT ON login_etl.rejected_messages TO {readers}",
                "CREATE ROLE {analyst} IN ROLE {readers}",
            ):
                conn.execute(
                    sql.SQL(statement).format(
                        readers=sql.Identifier(readers), analyst=sql.Identifier(roles.analyst)
                    )
                )
            conn.commit()
            with pytest.raises(
                ConfigError, match=f"is a member of {readers}, which has USAGE on schema login_etl"
            ):
                migrate(conn, roles)
            conn.rollback()
            assert (
                conn.execute(
                    "SELECT 1 FROM pg_roles WHERE rolname = %s", (roles.service,)
                ).fetchone()
                is None
            )
    finally:
        drop_roles(database_url, [readers])


def test_the_service_role_maintains_the_ledger_without_ddl_of_its_own(
    owner: DB, roles: Roles, make_user: MakeUser
) -> None:
    service = make_user(roles.service)
    start = owner.execute("SELECT date_trunc('hour', now()) - interval '20 days'").fetchone()
    assert start
    owner.execute("SELECT login_etl.create_ledger_partition(%s)", (start[0],))
    name = f"processed_messages_p{start[0].astimezone(dt.UTC):%Y%m%dT%H}"

    with connect(service) as conn:
        actions = maintain_ledger(conn, 4 * 24 * 3600)
    assert name in {a.relation for a in actions if a.action == "drop"}
    assert owner.execute("SELECT to_regclass(%s)", (f"login_etl.{name}",)).fetchone() == (None,)

    assert denied(service, "DROP TABLE login_etl.processed_messages_default")
    assert denied(service, "DELETE FROM login_etl.processed_messages_legacy")
    assert denied(service, "SELECT login_etl.create_ledger_partition(now())")
    assert denied(make_user(None), "SELECT login_etl.maintain_ledger('1 day')")


def test_an_upgrade_from_version_4_keeps_the_service_role_claiming(
    database_url: str,
    roles: Roles,
    make_user: MakeUser,
    keys: KeyRing,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Roles made by an earlier release, then `migrate` without --create-roles: the service role
    may claim in the partitioned ledger, read (only) the legacy ids, and maintain the ledger."""
    with connect(database_url) as conn:
        monkeypatch.setattr(schema_module, "_MIGRATIONS", schema_module._MIGRATIONS[:4])
        monkeypatch.setattr(schema_module, "SCHEMA_VERSION", 4)
        v4_grants = [g for g in roles_module._SERVICE if "sent_at" not in g]
        v4_grants = [g for g in v4_grants if "ledger" not in g and "legacy" not in g]
        monkeypatch.setattr(
            roles_module,
            "_SERVICE",
            (*v4_grants, "GRANT SELECT (message_id) ON login_etl.processed_messages TO {role}"),
        )
        migrate(conn, roles)
        monkeypatch.undo()
        conn.execute("INSERT INTO login_etl.processed_messages (message_id) VALUES ('before')")
        conn.commit()
        migrate(conn)
        conn.commit()
    service = make_user(roles.service)
    transform = Transformer(keys.masker, keys.sealer)
    now_ms = epoch_ms(dt.datetime.now(dt.UTC))
    sink = PostgresSink(service)
    try:
        result = sink.commit(
            [transform(Message(mid, body(), now_ms, "r")) for mid in ("before", "after")]
        )
    finally:
        sink.close()
    assert (result.loaded, result.skipped) == (1, 1)
    with connect(service) as conn:  # EXECUTE on the SECURITY DEFINER function suffices
        actions = maintain_ledger(conn, 4 * 24 * 3600)
    assert {a.action for a in actions} <= {"create", "drop"}, actions
    assert denied(service, "INSERT INTO login_etl.processed_messages_legacy VALUES ('x', now())")
    assert denied(service, "DELETE FROM login_etl.processed_messages")
