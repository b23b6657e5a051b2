"""The batch sink: one transaction per batch, loaded with COPY.

A batch's outcomes are COPYed into a temporary staging table, then one statement claims the
batch's message ids in `login_etl.processed_messages` (`ON CONFLICT DO NOTHING`) and inserts rows
and rejections for exactly the ids it claimed. A redelivered message claims nothing and so loads
nothing: the ledger is partitioned by SentTimestamp, which a redelivery shares, so its claim is
routed to the partition holding the first one; ids from an unpartitioned ledger of an earlier
release (`processed_messages_legacy`, kept until the queue's retention has passed) are
anti-joined (docs/scaling.md). Two workers holding the same message serialise on its primary
key: the second waits for the first to commit and then finds it claimed. Rows, rejections and
ledger entries commit together or not at all.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import cast

import psycopg
from psycopg import sql

from login_etl.adapters.postgres.connection import connect, translated
from login_etl.adapters.postgres.credentials import Credentials
from login_etl.adapters.postgres.statements import (
    LOGIN_COLUMNS,
    USER_LOGINS,
    VAULT_INSERT,
    column_list,
)
from login_etl.core.model import Loaded, Outcome
from login_etl.core.timestamps import utc_datetime
from login_etl.errors import SinkUnavailable
from login_etl.logs import log_failure
from login_etl.ports import CommitResult

log = logging.getLogger(__name__)

# ON COMMIT DELETE ROWS: the table lives as long as the connection and empties at each commit,
# so a batch costs no DDL. COPY fills its columns in order (see `_stage_record`).
_CREATE_STAGE = """
CREATE TEMPORARY TABLE IF NOT EXISTS login_etl_stage (
    message_id       text NOT NULL,
    user_id          text,
    device_type      text,
    masked_ip        text,
    masked_device_id text,
    locale           text,
    app_version      integer,
    create_date      date,
    reason           text,
    body             bytea,
    sent_at          timestamptz
) ON COMMIT DELETE ROWS
"""

_COPY_STAGE = "COPY login_etl_stage FROM STDIN"

# The claim of a batch's ids in the ledger. ORDER BY message_id: concurrent batches that share
# ids lock them in the same order, so they wait for each other instead of deadlocking.
_CLAIM = sql.SQL("""
    INSERT INTO login_etl.processed_messages (message_id, sent_at)
    SELECT s.message_id, s.sent_at FROM login_etl_stage s
    WHERE NOT EXISTS (
        SELECT FROM login_etl.processed_messages_legacy l WHERE l.message_id = s.message_id
    )
    ORDER BY s.message_id
    ON CONFLICT (message_id, sent_at) DO NOTHING
    RETURNING message_id""")


def claim_and_load(claim: sql.Composable) -> sql.Composed:
    """One statement: `claim` (an INSERT … RETURNING message_id into the ledger), then the rows
    and rejections of exactly the ids it claimed, and the three counts."""
    return sql.SQL("""
WITH claimed AS ({claim}
), loaded AS (
    INSERT INTO {user_logins} ({columns})
    SELECT {staged}
    FROM login_etl_stage s JOIN claimed c USING (message_id)
    WHERE s.reason IS NULL
    RETURNING 1
), rejected AS (
    INSERT INTO login_etl.rejected_messages (message_id, sent_at, reason, body)
    SELECT s.message_id, s.sent_at, s.reason, s.body
    FROM login_etl_stage s JOIN claimed c USING (message_id)
    WHERE s.reason IS NOT NULL
    RETURNING 1
)
SELECT (SELECT count(*) FROM claimed),
       (SELECT count(*) FROM loaded),
       (SELECT count(*) FROM rejected)
""").format(
        claim=claim,
        user_logins=USER_LOGINS,
        columns=column_list(LOGIN_COLUMNS),
        staged=column_list(LOGIN_COLUMNS, "s"),
    )


_APPLY = claim_and_load(_CLAIM)


# A rejection's stage record has no row.
_NO_ROW = (None,) * len(LOGIN_COLUMNS)


def _stage_record(outcome: Outcome) -> tuple[object, ...]:
    # In _CREATE_STAGE's column order: message id, the row (a LoginRow is in LOGIN_COLUMNS'
    # order), then the rejection.
    sent_at = utc_datetime(outcome.sent_timestamp_ms)
    if isinstance(outcome, Loaded):
        return (outcome.message_id, *outcome.row, None, None, sent_at)
    return (outcome.message_id, *_NO_ROW, outcome.reason, outcome.sealed_body, sent_at)


class PostgresSink:
    """Commits batches of outcomes; reconnects after a lost connection."""

    # The claim-and-insert statement; the benchmark swaps in an earlier release's to compare.
    apply_statement: sql.Composed = _APPLY

    def __init__(self, target: str | Credentials) -> None:
        # Credentials: a reconnect after a lost connection asks them again (a rotated secret).
        self._target = target
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None

    def _connection(self) -> psycopg.Connection[tuple[object, ...]]:
        if self._conn is None or self._conn.closed:
            conn = connect(self._target)
            with translated("create staging table"):
                conn.execute(_CREATE_STAGE)
                conn.commit()
            self._conn = conn
        return self._conn

    def commit(self, outcomes: Sequence[Outcome]) -> CommitResult:
        """Load a batch in one transaction. Duplicate message ids in the batch count once."""
        unique = list({o.message_id: o for o in outcomes}.values())
        duplicates = len(outcomes) - len(unique)
        conn = self._connection()
        try:
            with translated("load batch"), conn.transaction(), conn.cursor() as cur:
                with cur.copy(_COPY_STAGE) as copy:
                    for outcome in unique:
                        copy.write_row(_stage_record(outcome))
                vault = [v for o in unique if isinstance(o, Loaded) for v in o.vault]
                if vault:
                    cur.executemany(VAULT_INSERT, vault)
                cur.execute(self.apply_statement)
                claimed, loaded, rejected = cast("tuple[int, int, int]", cur.fetchone())
        except SinkUnavailable:
            self.close()
            raise
        return CommitResult(
            loaded=loaded, rejected=rejected, skipped=len(unique) - claimed + duplicates
        )

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error as err:  # already broken; closing is best effort
                log_failure(log, err, "closing a broken connection failed", level=logging.DEBUG)
            self._conn = None


__all__ = ["CommitResult", "PostgresSink"]
