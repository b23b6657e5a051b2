"""`migrate`: idempotent, fine with the exercise's pre-created table, strict about its shape."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from login_etl.adapters.postgres import SCHEMA_VERSION, connect, migrate
from login_etl.core.app_version import decode_app_version
from login_etl.errors import SinkError
from tests.support import EXERCISE_DDL


def columns(conn: psycopg.Connection[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return conn.execute(
        "SELECT column_name, data_type, character_maximum_length FROM information_schema.columns"
        " WHERE table_schema = 'public' AND table_name = 'user_logins' ORDER BY ordinal_position"
    ).fetchall()


def test_migrate_is_idempotent_and_records_its_version(database_url: str) -> None:
    with connect(database_url) as conn:
        every = list(range(1, SCHEMA_VERSION + 1))
        assert migrate(conn) == every
        assert migrate(conn) == []
        versions = conn.execute(
            "SELECT version FROM login_etl.schema_version ORDER BY version"
        ).fetchall()
        assert versions == [(v,) for v in every]


def test_migrate_keeps_the_exercise_table_as_it_is(database_url: str) -> None:
    with connect(database_url) as conn:
        conn.execute(EXERCISE_DDL)
        conn.execute("INSERT INTO user_logins (user_id) VALUES ('already-here')")
        conn.commit()
        before = columns(conn)
        migrate(conn)
        assert columns(conn) == before
        assert conn.execute("SELECT user_id FROM user_logins").fetchall() == [("already-here",)]


def test_a_user_logins_of_another_shape_is_refused(database_url: str) -> None:
    with connect(database_url) as conn:
        conn.execute(EXERCISE_DDL.replace("masked_ip           varchar(256)", "masked_ip text"))
        conn.commit()
        with pytest.raises(
            SinkError,
            match=r"user_logins.masked_ip is text\(None\), expected character varying\(256\)",
        ):
            migrate(conn)


def test_a_newer_schema_is_refused(database_url: str) -> None:
    with connect(database_url) as conn:
        migrate(conn)
        conn.execute("INSERT INTO login_etl.schema_version (version, name) VALUES (999, 'future')")
        conn.commit()
        with pytest.raises(SinkError, match="newer than this login-etl"):
            migrate(conn)


@pytest.mark.parametrize("value", [0, 1, 999, 1_000, 2_003_000, 8_003, 2_146_999_999])
def test_app_version_text_matches_python(
    db: psycopg.Connection[tuple[Any, ...]], value: int
) -> None:
    row = db.execute("SELECT login_etl.app_version_text(%s)", (value,)).fetchone()
    assert row == (decode_app_version(value),)
    assert db.execute("SELECT login_etl.app_version_text(NULL)").fetchone() == (None,)


def test_a_user_logins_partitioned_by_create_date_works(database_url: str) -> None:
    """docs/scaling.md: the table may be partitioned once it grows; its columns stay the same."""
    with connect(database_url) as conn:
        conn.execute(EXERCISE_DDL.replace(");", ") PARTITION BY RANGE (create_date);"))
        conn.execute(
            "CREATE TABLE user_logins_2023 PARTITION OF user_logins"
            " FOR VALUES FROM ('2023-01-01') TO ('2024-01-01')"
        )
        conn.commit()
        migrate(conn)
        conn.execute("INSERT INTO user_logins (user_id, create_date) VALUES ('u', '2023-11-14')")
        assert conn.execute("SELECT count(*) FROM user_logins_2023").fetchone() == (1,)


def test_a_version_1_schema_is_upgraded_in_place(database_url: str) -> None:
    with connect(database_url) as conn:
        migrate(conn)
        conn.execute("DROP TABLE login_etl.reveal_audit")
        conn.execute("DELETE FROM login_etl.schema_version WHERE version >= 2")
        conn.execute("INSERT INTO login_etl.processed_messages (message_id) VALUES ('m-1')")
        conn.commit()
        assert migrate(conn) == list(range(2, SCHEMA_VERSION + 1))
        assert conn.execute("SELECT count(*) FROM login_etl.reveal_audit").fetchone() == (0,)
        assert conn.execute("SELECT message_id FROM login_etl.processed_messages").fetchall() == [
            ("m-1",)
        ]


def test_the_audit_trail_refuses_a_blank_reason(db: psycopg.Connection[tuple[Any, ...]]) -> None:
    for reason in ("", "  "):
        with pytest.raises(psycopg.errors.CheckViolation):
            db.execute(
                "INSERT INTO login_etl.reveal_audit (requester, os_user, action, value_count,"
                " reason) VALUES ('r', 'o', 'reveal', 1, %s)",
                (reason,),
            )
