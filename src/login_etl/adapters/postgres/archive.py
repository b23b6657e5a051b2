"""The SQL of `archive` and `restore`: a day's rows read and locked, deleted, or copied back, and
the commit markers in login_etl.archived_parts (migration 0006).

A day is archived in one REPEATABLE READ transaction: its rows are read (COPY) and deleted (one
DELETE) in the same snapshot, so the DELETE removes exactly the rows written to the file. A row
a concurrent `run` inserts for that day meanwhile is invisible to both and stays for the next
archive run; a row changed or deleted meanwhile by someone else (a rekey) makes the DELETE fail
with a serialization error, so nothing commits. No row locks: one `archive` or `restore` at a
time per database is enough, and an advisory lock (`lock_archive`) sees to that.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import cast

import psycopg
from psycopg import sql

from login_etl.adapters.postgres.connection import translated


@dataclass(frozen=True)
class Source:
    """A table archived by day: its columns as stored in the files, and what names its day."""

    name: str  # also the archive's directory for tables other than user_logins
    table: str  # schema-qualified
    columns: tuple[str, ...]
    day: str  # SQL expression of the day a row belongs to
    day_column: str  # the Hive partition key in the path
    key_ids: str  # SQL expression: the Tink key id a row's ciphertexts need, one per column

    @property
    def directory(self) -> str:
        """Where this source's days go, relative to the archive root."""
        return "" if self.name == "user_logins" else f"{self.name}/"


USER_LOGINS = Source(
    name="user_logins",
    table="public.user_logins",
    columns=(
        "user_id",
        "device_type",
        "masked_ip",
        "masked_device_id",
        "locale",
        "app_version",
    ),
    day="create_date",
    day_column="create_date",
    key_ids="ARRAY[login_etl.masked_key_id(masked_ip), login_etl.masked_key_id(masked_device_id)]",
)

REJECTED = Source(
    name="rejected_messages",
    table="login_etl.rejected_messages",
    columns=("message_id", "rejected_at", "sent_at", "reason", "body"),
    day="(rejected_at AT TIME ZONE 'UTC')::date",
    day_column="rejected_date",
    key_ids="ARRAY[login_etl.tink_key_id(body)]",
)

Row = tuple[object, ...]
Conn = psycopg.Connection[tuple[object, ...]]


def _table(source: Source) -> sql.Composable:
    schema, name = source.table.split(".")
    return sql.Identifier(schema, name)


def _columns(source: Source) -> sql.Composable:
    return sql.SQL(", ").join(map(sql.Identifier, source.columns))


def days_before(conn: Conn, source: Source, before: dt.date) -> list[dt.date]:
    """The days with rows in `source` before `before`, oldest first."""
    query = sql.SQL("SELECT DISTINCT {day} FROM {table} WHERE {day} < %s ORDER BY 1").format(
        day=sql.SQL(source.day), table=_table(source)
    )
    with translated(f"list the days of {source.name}"):
        return [cast("dt.date", r[0]) for r in conn.execute(query, (before,)).fetchall()]


# Any fixed number, distinct from the ledger's (migrations 0005/0007) and the migrations' locks.
_ARCHIVE_LOCK = 4994113284425355621


def lock_archive(conn: Conn) -> bool:
    """Take the session's advisory lock that one `archive` or `restore` at a time holds (kept
    until the connection closes, a kill -9 included); False if another holds it. Also makes
    COPY's text UTF-8, whatever the database's encoding, for pyarrow."""
    with translated("take the archive lock"):
        conn.execute("SET client_encoding TO 'UTF8'")
        found = conn.execute("SELECT pg_try_advisory_lock(%s)", (_ARCHIVE_LOCK,)).fetchone()
    return bool(found and found[0])


def copy_out(conn: Conn, source: Source, day: dt.date) -> bytes:
    """The day's rows as `COPY … TO STDOUT (FORMAT csv)` output (no header, UTF-8)."""
    query = sql.SQL(
        "COPY (SELECT {columns} FROM {table} WHERE {day} = %s) TO STDOUT (FORMAT csv)"
    ).format(columns=_columns(source), table=_table(source), day=sql.SQL(source.day))
    chunks: list[bytes] = []
    with translated(f"read {source.name} of {day}"), conn.cursor().copy(query, (day,)) as copy:
        chunks.extend(bytes(chunk) for chunk in copy)
    return b"".join(chunks)


def key_ids_of(conn: Conn, probes: list[str]) -> set[int]:
    """The key ids that login_etl.masked_key_id finds for these tokens (or token prefixes)."""
    with translated("read the key ids of the tokens"):
        found = conn.execute(
            "SELECT DISTINCT login_etl.masked_key_id(t) FROM unnest(%s::text[]) AS t", (probes,)
        ).fetchall()
    return {int(cast("int", k)) for (k,) in found if k}


def read_rows(conn: Conn, source: Source, day: dt.date) -> tuple[list[Row], set[int]]:
    """The day's rows and the key ids their tokens need, row by row (rejected messages: few)."""
    query = sql.SQL("SELECT {columns}, {key_ids} FROM {table} WHERE {day} = %s").format(
        columns=_columns(source),
        key_ids=sql.SQL(source.key_ids),
        table=_table(source),
        day=sql.SQL(source.day),
    )
    rows: list[Row] = []
    key_ids: set[int] = set()
    with translated(f"read {source.name} of {day}"):
        for record in conn.execute(query, (day,)):
            rows.append(tuple(record[:-1]))
            key_ids.update(int(k) for k in cast("list[int | None]", record[-1]) if k)
    return rows, key_ids


def delete_day(conn: Conn, source: Source, day: dt.date) -> int:
    """Delete the day's rows that this transaction's snapshot sees; how many."""
    query = sql.SQL("DELETE FROM {table} WHERE {day} = %s").format(
        table=_table(source), day=sql.SQL(source.day)
    )
    with translated(f"delete archived {source.name} of {day}"):
        return conn.execute(query, (day,)).rowcount


def copy_in_csv(conn: Conn, source: Source, data: bytes) -> None:
    """Insert CSV rows (pyarrow's, in the order of `source.columns`) with one COPY."""
    copy = sql.SQL("COPY {table} ({columns}) FROM STDIN (FORMAT csv)").format(
        table=_table(source), columns=_columns(source)
    )
    view = memoryview(data)
    with translated(f"restore {source.name}"), conn.cursor().copy(copy) as writer:
        for start in range(0, len(view), 1 << 20):
            writer.write(view[start : start + (1 << 20)])


def copy_in(conn: Conn, source: Source, rows: list[Row]) -> None:
    """Insert `rows` with COPY. Quarantined messages already present (same id) are kept."""
    columns = _columns(source)
    with translated(f"restore {source.name}"):
        if source.name == USER_LOGINS.name:  # no key: COPY straight in
            copy = sql.SQL("COPY {table} ({columns}) FROM STDIN").format(
                table=_table(source), columns=columns
            )
            with conn.cursor().copy(copy) as writer:
                for row in rows:
                    writer.write_row(row)
            return
        conn.execute(
            sql.SQL(
                "CREATE TEMP TABLE restore_rows ON COMMIT DROP AS SELECT {columns} FROM {table} "
                "WITH NO DATA"
            ).format(columns=columns, table=_table(source))
        )
        copy = sql.SQL("COPY restore_rows ({columns}) FROM STDIN").format(columns=columns)
        with conn.cursor().copy(copy) as writer:
            for row in rows:
                writer.write_row(row)
        conn.execute(
            sql.SQL(
                "INSERT INTO {table} ({columns}) SELECT {columns} FROM restore_rows "
                "ON CONFLICT DO NOTHING"
            ).format(table=_table(source), columns=columns)
        )


def marker(conn: Conn, source: Source, day: dt.date, part: str) -> str | None:
    """'archived' (the part's rows left this database), 'restored', or None (never here)."""
    with translated("read the archive markers"):
        found = conn.execute(
            "SELECT state FROM login_etl.archived_parts WHERE source = %s AND day = %s "
            "AND part = %s",
            (source.name, day, part),
        ).fetchone()
    return None if found is None else str(found[0])


def set_marker(
    conn: Conn, source: Source, day: dt.date, part: str, *, rows: int, checksum: str, state: str
) -> None:
    """Record, in the caller's transaction, that the part's rows left or came back."""
    with translated("write the archive markers"):
        conn.execute(
            "INSERT INTO login_etl.archived_parts (source, day, part, rows, row_checksum, state)"
            " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (source, day, part) DO UPDATE"
            " SET rows = EXCLUDED.rows, row_checksum = EXCLUDED.row_checksum,"
            " state = EXCLUDED.state, changed_at = now()",
            (source.name, day, part, rows, checksum, state),
        )


def drop_marker(conn: Conn, source: Source, day: dt.date, part: str) -> None:
    """Forget a part (its rows are in the table again and in a newer part)."""
    with translated("write the archive markers"):
        conn.execute(
            "DELETE FROM login_etl.archived_parts WHERE source = %s AND day = %s AND part = %s",
            (source.name, day, part),
        )


def table_bytes(conn: Conn, source: Source) -> int:
    """The table's size on disk, indexes and TOAST included."""
    with translated("measure the table"):
        found = conn.execute(
            "SELECT pg_total_relation_size(%s::regclass)", (source.table,)
        ).fetchone()
    return int(cast("int", found[0])) if found else 0


@dataclass(frozen=True)
class Partition:
    """A leaf partition of a range-partitioned table: its name and its [lower, upper) days."""

    schema: str
    name: str
    lower: dt.date
    upper: dt.date

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


_RANGE = re.compile(r"FROM \('(\d{4}-\d{2}-\d{2})'\) TO \('(\d{4}-\d{2}-\d{2})'\)")


def partitions_before(conn: Conn, source: Source, before: dt.date) -> list[Partition] | None:
    """None if the table is not partitioned (pg_partitioned_table); else its leaf partitions by
    range of the day column that hold only days before `before` (MINVALUE, MAXVALUE and DEFAULT
    partitions never qualify: they may still receive rows)."""
    with translated(f"read the partitions of {source.table}"):
        partitioned = conn.execute(
            "SELECT 1 FROM pg_partitioned_table WHERE partrelid = %s::regclass", (source.table,)
        ).fetchone()
        if partitioned is None:
            return None
        rows = conn.execute(
            "SELECT n.nspname, c.relname, pg_get_expr(c.relpartbound, c.oid)"
            " FROM pg_partition_tree(%s::regclass) t JOIN pg_class c ON c.oid = t.relid"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE t.isleaf AND t.level = 1 ORDER BY 2",
            (source.table,),
        ).fetchall()
    found = []
    for schema, name, bound in rows:
        match = _RANGE.search(str(bound))
        if match is None:
            continue
        lower, upper = (dt.date.fromisoformat(d) for d in match.groups())
        if upper <= before:
            found.append(Partition(str(schema), str(name), lower, upper))
    return found


def lock_partition(conn: Conn, partition: Partition) -> list[dt.date]:
    """Block writes to the partition until the transaction ends; the days it holds."""
    table = sql.Identifier(partition.schema, partition.name)
    with translated(f"lock partition {partition.qualified}"):
        conn.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(table))
        query = sql.SQL("SELECT DISTINCT create_date FROM {} ORDER BY 1").format(table)
        return [cast("dt.date", r[0]) for r in conn.execute(query).fetchall()]


def drop_partition(conn: Conn, source: Source, partition: Partition) -> None:
    """Detach the partition from its table and drop it, in the caller's transaction."""
    with translated(f"drop partition {partition.qualified}"):
        conn.execute(
            sql.SQL("ALTER TABLE {} DETACH PARTITION {}").format(
                _table(source), sql.Identifier(partition.schema, partition.name)
            )
        )
        conn.execute(
            sql.SQL("DROP TABLE {}").format(sql.Identifier(partition.schema, partition.name))
        )
