"""The audit trail of recoveries: one `login_etl.reveal_audit` row per `reveal` or `quarantine
show`, written and committed before any plaintext is shown.

A record holds who asked, why, and how many values; never a value, a token or a message id.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal, cast

import psycopg

from login_etl.adapters.postgres.connection import translated

Action = Literal["reveal", "quarantine show"]
AuditField = Literal["ip", "device_id", "body"]

_COLUMNS = (
    "id, at, requester, os_user, os_user_claimed, db_user, action, field, value_count, reason"
)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One recovery of plaintext."""

    id: int
    at: dt.datetime
    requester: str
    os_user: str  # the name of the uid that ran the command (its number if it has no name)
    os_user_claimed: str | None  # what LOGNAME/USER said, when it named someone else
    db_user: str
    action: str
    field: str | None
    value_count: int
    reason: str


@dataclass(frozen=True, slots=True)
class Recovery:
    """What one recovery leaves in the trail; the database adds its id, time and user."""

    action: Action
    field: AuditField
    value_count: int
    reason: str
    requester: str
    os_user: str
    os_user_claimed: str | None = None


class AuditLog:
    """Writes and reads `login_etl.reveal_audit`."""

    def __init__(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        self._conn = conn

    def record(self, recovery: Recovery) -> int:
        """Insert one record and commit the connection's transaction; returns the record's id.

        It commits at once because the record must be durable before anything is shown: if this
        raises, the caller shows nothing.
        """
        with translated("record the audit entry"):
            row = cast(
                "tuple[int]",
                self._conn.execute(
                    "INSERT INTO login_etl.reveal_audit"
                    " (requester, os_user, os_user_claimed, action, field, value_count, reason)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
                    (
                        recovery.requester,
                        recovery.os_user,
                        recovery.os_user_claimed,
                        recovery.action,
                        recovery.field,
                        recovery.value_count,
                        recovery.reason,
                    ),
                ).fetchone(),
            )
            self._conn.commit()
        return row[0]

    def list(self, limit: int = 100, since: dt.datetime | None = None) -> list[AuditRecord]:
        """Records at or after `since` (all if None), newest first, at most `limit`."""
        with translated("read the audit trail"):
            rows = self._conn.execute(
                f"SELECT {_COLUMNS} FROM login_etl.reveal_audit"
                " WHERE %(since)s::timestamptz IS NULL OR at >= %(since)s"
                " ORDER BY at DESC, id DESC LIMIT %(limit)s",
                {"since": since, "limit": limit},
            ).fetchall()
        return [AuditRecord(*row) for row in rows]  # type: ignore[arg-type]
