"""The SQL of `login-etl rekey` (the use case is `ops/rekey.py`): find stored values under old
keys, a slice of the table at a time, and re-encrypt them in place.

user_logins has no key column (the exercise's DDL), so rows are addressed by ctid, only inside
the transaction that locked them (FOR UPDATE), where a ctid cannot change. The table is walked in
ranges of pages (TID range scans, PostgreSQL 14+), so each batch reads a bounded slice however
much of the table is already done, and `run` keeps inserting meanwhile.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple, cast

import psycopg
from psycopg.rows import class_row

from login_etl.adapters.postgres.connection import translated
from login_etl.adapters.postgres.statements import VAULT_INSERT
from login_etl.core.model import VaultEntry


class Row(NamedTuple):
    """A user_logins row's masked values, addressed by its ctid (valid in its transaction)."""

    ctid: str
    ip: str | None  # masked_ip
    device_id: str | None  # masked_device_id


_STALE_ROWS = """
SELECT ctid::text AS ctid, masked_ip AS ip, masked_device_id AS device_id
FROM public.user_logins
WHERE ctid >= %(first)s::tid AND ctid < %(end)s::tid
  AND (login_etl.masked_key_id(masked_ip) <> %(primary)s
       OR login_etl.masked_key_id(masked_device_id) <> %(primary)s)
FOR UPDATE
"""

_UPDATE_ROWS = """
UPDATE public.user_logins u SET masked_ip = v.ip, masked_device_id = v.device_id
FROM unnest(%s::tid[], %s::text[], %s::text[]) AS v(ctid, ip, device_id)
WHERE u.ctid = v.ctid
"""

_STALE_VAULT = """
SELECT token, field, ciphertext FROM login_etl.masked_values
WHERE token > %(after)s AND login_etl.tink_key_id(ciphertext) <> %(primary)s
ORDER BY token LIMIT %(limit)s
FOR UPDATE
"""

_STALE_BODIES = """
SELECT message_id, body FROM login_etl.rejected_messages
WHERE message_id > %(after)s AND login_etl.tink_key_id(body) <> %(primary)s
ORDER BY message_id LIMIT %(limit)s
FOR UPDATE
"""

# (token, ciphertext) pairs; the old ciphertext is replaced and the entry marked retired.
_RETIRE_VAULT = """
UPDATE login_etl.masked_values m SET ciphertext = v.ciphertext, retired = true
FROM unnest(%s::text[], %s::bytea[]) AS v(token, ciphertext)
WHERE m.token = v.token
"""

# (message id, body) pairs.
_UPDATE_BODIES = """
UPDATE login_etl.rejected_messages r SET body = v.body
FROM unnest(%s::text[], %s::bytea[]) AS v(message_id, body)
WHERE r.message_id = v.message_id
"""


def _tid(page: int) -> str:
    return f"({page},0)"


class RekeyStore:
    """Statements of one rekey; the caller owns the transactions."""

    def __init__(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        self.conn = conn

    def pages(self) -> int:
        with translated("size user_logins"):
            row = self.conn.execute(
                "SELECT pg_relation_size('public.user_logins')"
                " / current_setting('block_size')::bigint"
            ).fetchone()
        return int(cast("int", row[0])) if row else 0

    def stale_rows(self, first_page: int, end_page: int, primary: int) -> list[Row]:
        """Rows in pages [first_page, end_page) holding a value under another key; locked."""
        params = {"first": _tid(first_page), "end": _tid(end_page), "primary": primary}
        with translated("read rows to rekey"), self.conn.cursor(row_factory=class_row(Row)) as cur:
            return cur.execute(_STALE_ROWS, params).fetchall()

    def vault(self, tokens: Iterable[str]) -> dict[str, tuple[bytes, bool]]:
        """Vault token → (ciphertext, retired)."""
        with translated("read masked values"):
            rows = self.conn.execute(
                "SELECT token, ciphertext, retired FROM login_etl.masked_values"
                " WHERE token = ANY(%s)",
                (list(tokens),),
            ).fetchall()
        return {str(t): (bytes(cast("bytes", c)), bool(r)) for t, c, r in rows}

    def update_rows(self, rows: Sequence[Row], vault: Sequence[VaultEntry]) -> None:
        with translated("rekey rows"), self.conn.cursor() as cur:
            if vault:
                cur.executemany(VAULT_INSERT, vault)
            cur.execute(
                _UPDATE_ROWS,
                ([r.ctid for r in rows], [r.ip for r in rows], [r.device_id for r in rows]),
            )

    def stale_vault(self, after: str, primary: int, limit: int) -> list[VaultEntry]:
        rows = self._stale("read vault entries to rekey", _STALE_VAULT, after, primary, limit)
        return [VaultEntry(str(t), str(f), bytes(cast("bytes", c))) for t, f, c in rows]

    def retire_vault(self, entries: Sequence[tuple[str, bytes]]) -> None:
        self._update_by_key("retire vault entries", _RETIRE_VAULT, entries)

    def stale_bodies(self, after: str, primary: int, limit: int) -> list[tuple[str, bytes]]:
        rows = self._stale("read bodies to rekey", _STALE_BODIES, after, primary, limit)
        return [(str(m), bytes(cast("bytes", b))) for m, b in rows]

    def update_bodies(self, bodies: Sequence[tuple[str, bytes]]) -> None:
        self._update_by_key("rekey bodies", _UPDATE_BODIES, bodies)

    def _stale(
        self, action: str, query: str, after: str, primary: int, limit: int
    ) -> list[tuple[object, ...]]:
        """Up to `limit` rows after `after` under another key than `primary`; locked."""
        params = {"after": after, "primary": primary, "limit": limit}
        with translated(action):
            return self.conn.execute(query, params).fetchall()

    def _update_by_key(self, action: str, query: str, pairs: Sequence[tuple[str, bytes]]) -> None:
        """Run an UPDATE over unnest(keys, values) for (key, value) pairs, in one round trip."""
        with translated(action):
            self.conn.execute(query, ([k for k, _ in pairs], [v for _, v in pairs]))
