"""SQL that several modules run, written once: the inserts into `public.user_logins` and into the
vault (`login_etl.masked_values`).

Column lists come from the core's NamedTuples, which hold each table's columns in the table's
order (a LoginRow is the row executemany and COPY write), and are composed with psycopg.sql so
that psycopg quotes every identifier.
"""

from __future__ import annotations

from collections.abc import Sequence

from psycopg import sql

from login_etl.core.model import LoginRow, VaultEntry


def column_list(names: Sequence[str], table: str | None = None) -> sql.Composed:
    """`a, b, c` (or `t.a, t.b, t.c` with `table`), each name a quoted identifier."""
    return sql.SQL(", ").join(
        sql.Identifier(table, name) if table else sql.Identifier(name) for name in names
    )


def _insert(table: sql.Identifier, names: Sequence[str]) -> sql.Composed:
    return sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
        table, column_list(names), sql.SQL(", ").join(sql.Placeholder() * len(names))
    )


USER_LOGINS = sql.Identifier("public", "user_logins")
# user_logins's columns, in LoginRow's (and the table's) order.
LOGIN_COLUMNS: tuple[str, ...] = LoginRow._fields

# One LoginRow per execution.
USER_LOGINS_INSERT = _insert(USER_LOGINS, LOGIN_COLUMNS)

# One VaultEntry per execution. A token is deterministic: an entry already stored is the same.
VAULT_INSERT = _insert(sql.Identifier("login_etl", "masked_values"), VaultEntry._fields) + sql.SQL(
    " ON CONFLICT (token) DO NOTHING"
)
