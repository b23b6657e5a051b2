"""The ledger's housekeeping: `login_etl.maintain_ledger` (migration 0005), which creates the
hourly partitions ahead and drops those older than the queue's retention plus a margin.

The function is SECURITY DEFINER, owned by the schema owner: the service role runs it with
EXECUTE alone and no DDL privilege of its own. It takes an advisory lock, so one caller works at
a time ('busy' for the others), and skips when it ran less than `min_interval` ago, whichever
worker ran it ('skipped').
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import psycopg

from login_etl.adapters.postgres.connection import translated

# SQS's range for MessageRetentionPeriod; the function refuses anything else.
MIN_RETENTION_S = 60
MAX_RETENTION_S = 14 * 24 * 3600
# Kept beyond the retention, for clock skew between SQS, the producer and the database.
MARGIN = dt.timedelta(days=1)


@dataclass(frozen=True, slots=True)
class LedgerAction:
    """One thing maintenance did (or, in a dry run, would do): create, drop, delete (ids in the
    default partition), truncate (the legacy ledger), skipped or busy."""

    action: str
    relation: str | None
    detail: str | None


def maintain_ledger(
    conn: psycopg.Connection[tuple[object, ...]],
    retention_s: int,
    *,
    dry_run: bool = False,
    min_interval: dt.timedelta = dt.timedelta(0),
    timeout: dt.timedelta | None = None,
) -> list[LedgerAction]:
    """Run the ledger's maintenance in one transaction; returns what it did. `timeout` bounds
    it whole (lock waits and work: the statement is cancelled past it), for a caller with a
    deadline."""
    with translated("maintain the ledger"), conn.transaction():
        if timeout is not None:
            milliseconds = max(1, int(timeout.total_seconds() * 1000))
            conn.execute("SELECT set_config('statement_timeout', %s, true)", (f"{milliseconds}ms",))
        rows = conn.execute(
            "SELECT action, relation, detail FROM login_etl.maintain_ledger(%s, %s, %s)",
            (dt.timedelta(seconds=retention_s), dry_run, min_interval),
        ).fetchall()
    return [LedgerAction(*row) for row in rows]  # type: ignore[arg-type]
