"""The load stage against a ledger that already holds many ids: the unpartitioned ledger of
schema version 4 against the hourly partitioned one of version 5 (docs/scaling.md).

The ids are synthesised with generate_series as `ledger_rows` messages arriving at the design
rate of 1,000 msgs/s would leave them: one SentTimestamp a millisecond, ending at the end of
the current hour, so the partition taking the benchmark's claims is as full as it gets (3.6 M
ids) and the older ones hold the rest. Ids are random-looking UUID text, as SQS's are.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import statistics
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql

from login_etl.adapters.postgres import PostgresSink, connect
from login_etl.adapters.postgres.sink import claim_and_load
from login_etl.bench.stages import commit_rate
from login_etl.core.model import Message
from login_etl.core.timestamps import epoch_ms
from login_etl.core.transform import Transformer

DESIGN_RATE = 1_000  # msgs/s
ROUNDS = 3  # loads per design and ledger size, each of the benchmark's messages with new ids

# Schema version 4's claim, against its unpartitioned ledger (a text primary key alone).
_V4_APPLY = claim_and_load(
    sql.SQL("""
    INSERT INTO login_etl.processed_messages (message_id)
    SELECT message_id FROM login_etl_stage ORDER BY message_id
    ON CONFLICT (message_id) DO NOTHING
    RETURNING message_id""")
)


_V4_PKEY = "processed_messages_v4_pkey"


class _V4Sink(PostgresSink):
    apply_statement = _V4_APPLY


@dataclass(frozen=True, slots=True)
class LedgerRate:
    """Load rows/s for one ledger design holding `ids` ids beforehand."""

    design: str  # "unpartitioned (v4)" or "partitioned hourly, keyed by time (v7)"
    ids: int
    rounds: tuple[float, ...]  # rows/s of each load, each with new message ids
    seconds_to_fill: float

    @property
    def rate(self) -> float:
        """The median round: one load of a few seconds varies by ±30% on a busy machine."""
        return statistics.median(self.rounds)


def end_of_hour(conn_url: str) -> dt.datetime:
    with connect(conn_url) as conn:
        row = conn.execute(
            "SELECT date_trunc('hour', now()) + interval '1 hour' - interval '1 millisecond'"
        ).fetchone()
    end = row[0] if row else None
    if not isinstance(end, dt.datetime):
        raise TypeError(f"now() was not a timestamp: {end!r}")
    return end


def current_messages(messages: Sequence[Message], end: dt.datetime) -> list[Message]:
    """The benchmark's messages re-timed into the current hour, just before its end (after the
    synthesised ids, which end `len(messages)` ms earlier), with random UUIDs for ids as SQS
    gives: claims land all over the primary key's index, not in one corner of it."""
    last = epoch_ms(end)
    return [
        m._replace(message_id=str(uuid.uuid4()), sent_timestamp_ms=last - i)
        for i, m in enumerate(messages)
    ]


def _reset(database_url: str) -> None:
    with connect(database_url) as conn:
        conn.execute(
            "TRUNCATE user_logins, login_etl.processed_messages, login_etl.rejected_messages,"
            " login_etl.processed_messages_legacy, login_etl.masked_values"
        )
        conn.commit()


def _fill(
    database_url: str, ids: int, end: dt.datetime, *, partitioned: bool, offset: int
) -> float:
    """Synthesise `ids` ledger entries, one a millisecond, ending `offset` ms before `end`;
    returns the seconds taken."""
    started = time.perf_counter()
    with connect(database_url) as conn:
        conn.autocommit = True
        if not partitioned:  # one sorted index build after the rows: minutes faster than inserts
            conn.execute(f"ALTER TABLE login_etl.processed_messages DROP CONSTRAINT {_V4_PKEY}")
        if ids:
            columns = "message_id, sent_at" if partitioned else "message_id"
            sent = (
                ", %(end)s - make_interval(secs => (g + %(offset)s) / 1000.0)"
                if partitioned
                else ""
            )
            conn.execute(
                sql.SQL(
                    "INSERT INTO login_etl.processed_messages ({columns})"
                    " SELECT md5(g::text)::uuid::text{sent}"
                    " FROM generate_series(1, %(ids)s) g"
                ).format(columns=sql.SQL(columns), sent=sql.SQL(sent)),
                {"end": end, "offset": offset, "ids": ids},
            )
        if not partitioned:
            conn.execute(
                f"ALTER TABLE login_etl.processed_messages ADD CONSTRAINT {_V4_PKEY}"
                " PRIMARY KEY (message_id)"
            )
        conn.execute("VACUUM ANALYZE login_etl.processed_messages")
        # Flush the fill's writes, so the measurement does not pay for the fill's checkpoint.
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
            conn.execute("CHECKPOINT")
    return time.perf_counter() - started


def _to_v4(database_url: str) -> None:
    """Put version 4's unpartitioned ledger where the claim looks for it."""
    with connect(database_url) as conn:
        conn.execute("ALTER TABLE login_etl.processed_messages RENAME TO processed_messages_v5")
        conn.execute(
            "CREATE TABLE login_etl.processed_messages ("
            " message_id text NOT NULL, processed_at timestamptz NOT NULL DEFAULT now(),"
            f" CONSTRAINT {_V4_PKEY} PRIMARY KEY (message_id))"
        )
        conn.commit()


def _to_v5(database_url: str) -> None:
    with connect(database_url) as conn:
        conn.execute("DROP TABLE login_etl.processed_messages")
        conn.execute("ALTER TABLE login_etl.processed_messages_v5 RENAME TO processed_messages")
        conn.commit()


def ledger_load_rates(
    database_url: str,
    transform: Transformer,
    messages: Sequence[Message],
    batch_size: int,
    ledger_rows: int,
) -> list[LedgerRate]:
    """Load rows/s with an empty ledger and with `ledger_rows` ids, for both designs. The
    database must be migrated; what the load stage leaves is truncated first."""
    end = end_of_hour(database_url)
    # One set of outcomes per round: new ids each time, so that no round skips as redeliveries
    # what an earlier one loaded. Transformed beforehand: only the load is timed.
    rounds = [[transform(m) for m in current_messages(messages, end)] for _ in range(ROUNDS)]
    offset = len(messages)  # the synthesised ids are older than every benchmark message
    rates: list[LedgerRate] = []
    designs: list[tuple[str, bool]] = [
        ("unpartitioned (v4)", False),
        ("partitioned hourly, keyed by time (v7)", True),
    ]
    for design, partitioned in designs:
        if not partitioned:
            _reset(database_url)
            _to_v4(database_url)
        try:
            for ids in sorted({0, ledger_rows}):
                _reset(database_url)
                filled = _fill(database_url, ids, end, partitioned=partitioned, offset=offset)
                measured = tuple(
                    commit_rate(
                        PostgresSink(database_url) if partitioned else _V4Sink(database_url),
                        outcomes,
                        batch_size,
                    )
                    for outcomes in rounds
                )
                rates.append(LedgerRate(design, ids, measured, filled))
        finally:
            if not partitioned:
                _reset(database_url)
                _to_v5(database_url)
    return rates
