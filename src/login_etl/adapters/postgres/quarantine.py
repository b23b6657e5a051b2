"""Reads of the quarantine: rejected messages, their reasons and their sealed bodies."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import psycopg

from login_etl.adapters.postgres.connection import translated


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    """One rejected message; `body` is still encrypted."""

    message_id: str
    rejected_at: dt.datetime
    sent_at: dt.datetime | None
    reason: str
    body: bytes


class QuarantineStore:
    """Queries over `login_etl.rejected_messages`."""

    def __init__(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        self._conn = conn

    def list(self, limit: int = 100) -> list[QuarantineEntry]:
        with translated("list quarantine"):
            rows = self._conn.execute(
                "SELECT message_id, rejected_at, sent_at, reason, body"
                " FROM login_etl.rejected_messages ORDER BY rejected_at DESC, message_id LIMIT %s",
                (limit,),
            ).fetchall()
        return [QuarantineEntry(*row) for row in rows]  # type: ignore[arg-type]

    def count(self) -> int:
        with translated("count quarantine"):
            row = self._conn.execute("SELECT count(*) FROM login_etl.rejected_messages").fetchone()
        return int(row[0]) if row else 0  # type: ignore[call-overload]

    def get(self, message_id: str) -> QuarantineEntry | None:
        with translated("read quarantine"):
            row = self._conn.execute(
                "SELECT message_id, rejected_at, sent_at, reason, body"
                " FROM login_etl.rejected_messages WHERE message_id = %s",
                (message_id,),
            ).fetchone()
        return QuarantineEntry(*row) if row else None  # type: ignore[arg-type]
