"""The quarantine: reads of rejected messages, and their replay under the current rules.

A replay batch is one transaction. Its rows are locked with `FOR UPDATE SKIP LOCKED`, so two
replays running at once take different rows; each row that now passes is inserted into
`public.user_logins` and deleted from the quarantine in the same transaction, so it loads once.
Its id stays in `login_etl.processed_messages`, so a later redelivery from SQS still loads
nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any

import psycopg
from psycopg import sql

from login_etl.adapters.postgres.connection import translated
from login_etl.adapters.postgres.statements import USER_LOGINS_INSERT, VAULT_INSERT, column_list
from login_etl.core.isolation import commit_isolating
from login_etl.core.model import Loaded, Outcome
from login_etl.core.reasons import row_refused
from login_etl.errors import RowRefused


@dataclass(frozen=True, slots=True)
class QuarantineEntry:
    """One rejected message; `body` is still encrypted."""

    message_id: str
    rejected_at: dt.datetime
    sent_at: dt.datetime | None
    reason: str
    body: bytes


# Every read of the quarantine: a QuarantineEntry's fields are the table's columns.
_SELECT_ENTRIES = sql.SQL("SELECT {} FROM login_etl.rejected_messages").format(
    column_list([f.name for f in fields(QuarantineEntry)])
)
_LIST = sql.SQL("{} ORDER BY rejected_at DESC, message_id LIMIT %s").format(_SELECT_ENTRIES)
_GET = sql.SQL("{} WHERE message_id = %s").format(_SELECT_ENTRIES)
# Keyset pagination on message_id: rows that still fail are not read again by the same replay.
_SELECT_BATCH = sql.SQL(
    "{entries} WHERE message_id > %(after)s {only_ids} ORDER BY message_id LIMIT %(limit)s {lock}"
)


def _entries(
    conn: psycopg.Connection[tuple[object, ...]], action: str, query: sql.Composed, *params: Any
) -> list[QuarantineEntry]:
    with translated(action):
        rows = conn.execute(query, params).fetchall()
    return [QuarantineEntry(*row) for row in rows]  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class ReplayedBatch:
    """What one replay transaction did (or, in a dry run, would do)."""

    message_ids: tuple[str, ...]  # read, in order; the last one is the next batch's cursor
    loaded: int
    still_rejected: tuple[str, ...]  # the current reason of each message still failing


class QuarantineStore:
    """Queries over `login_etl.rejected_messages`."""

    def __init__(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        self._conn = conn

    def list(self, limit: int = 100) -> list[QuarantineEntry]:
        return _entries(self._conn, "list quarantine", _LIST, limit)

    def count(self) -> int:
        with translated("count quarantine"):
            row = self._conn.execute("SELECT count(*) FROM login_etl.rejected_messages").fetchone()
        return int(row[0]) if row else 0  # type: ignore[call-overload]

    def get(self, message_id: str) -> QuarantineEntry | None:
        found = _entries(self._conn, "read quarantine", _GET, message_id)
        return found[0] if found else None

    def replay_batch(
        self,
        transform: Callable[[QuarantineEntry], Outcome],
        *,
        after: str = "",
        limit: int,
        message_ids: Sequence[str] | None = None,
        dry_run: bool = False,
    ) -> ReplayedBatch:
        """Replay up to `limit` rejected messages with ids after `after` (and among
        `message_ids`, if given), in one transaction.

        Those that `transform` now loads are inserted and leave the quarantine; the others get
        the reason the current rules give. A dry run locks nothing and changes nothing. An exception
        from `transform` rolls the batch back.
        """
        query = _SELECT_BATCH.format(
            entries=_SELECT_ENTRIES,
            only_ids=sql.SQL("AND message_id = ANY(%(ids)s)" if message_ids is not None else ""),
            lock=sql.SQL("" if dry_run else "FOR UPDATE SKIP LOCKED"),
        )
        params = {"after": after, "limit": limit, "ids": list(message_ids or ())}
        with translated("replay quarantine"), self._conn.transaction(), self._conn.cursor() as cur:
            entries = [QuarantineEntry(*row) for row in cur.execute(query, params)]  # type: ignore[arg-type]
            outcomes = [(entry, transform(entry)) for entry in entries]
            loaded = [o for _, o in outcomes if isinstance(o, Loaded)]
            refused = {} if dry_run else self._load(cur, loaded)
            reasons: dict[str, str] = {}
            for entry, outcome in outcomes:
                if isinstance(outcome, Loaded):
                    if outcome.message_id in refused:
                        reasons[entry.message_id] = refused[entry.message_id]
                else:
                    reasons[entry.message_id] = outcome.reason
            if not dry_run:
                gone = [o.message_id for o in loaded if o.message_id not in refused]
                cur.execute(
                    "DELETE FROM login_etl.rejected_messages WHERE message_id = ANY(%s)", (gone,)
                )
                changed = [
                    (reasons[e.message_id], e.message_id)
                    for e in entries
                    if e.message_id in reasons and reasons[e.message_id] != e.reason
                ]
                cur.executemany(
                    "UPDATE login_etl.rejected_messages SET reason = %s WHERE message_id = %s",
                    changed,
                )
        return ReplayedBatch(
            message_ids=tuple(e.message_id for e in entries),
            loaded=len(loaded) - len(refused),
            still_rejected=tuple(reasons.values()),
        )

    def _load(
        self, cur: psycopg.Cursor[tuple[object, ...]], loaded: Sequence[Loaded]
    ) -> dict[str, str]:
        """Insert the rows and their vault entries; returns {message id: reason} of the rows the
        database refused (a data or integrity error), found one by one as the committer finds
        them (`core.isolation`), each try in a savepoint."""
        refused: dict[str, str] = {}

        def insert(some: Sequence[Loaded]) -> None:
            with translated("replay quarantine"), self._conn.transaction():  # a savepoint
                self._insert(cur, some)

        def refuse(outcome: Loaded, err: RowRefused) -> None:
            refused[outcome.message_id] = row_refused(err.sqlstate).reason

        commit_isolating(loaded, insert, refuse)
        return refused

    @staticmethod
    def _insert(cur: psycopg.Cursor[tuple[object, ...]], loaded: Sequence[Loaded]) -> None:
        vault = [v for o in loaded for v in o.vault]
        if vault:
            cur.executemany(VAULT_INSERT, vault)
        if loaded:
            cur.executemany(USER_LOGINS_INSERT, [o.row for o in loaded])
