"""Re-encrypt everything stored under old keys to the current primary keys, online.

Deterministic tokens depend on the key: after `keys rotate`, new rows get new-key tokens while old
rows keep old-key ones, so equal values stop grouping until every stored token is rewritten
under the new key. That is this module's job, for user_logins' masked values (and the vault
ciphertexts of over-long ones) and for rejected bodies.

- Online: one short transaction per slice of pages; `run` keeps inserting (new rows are written
  under the new primary once workers have the rotated key file, and need nothing).
- Resumable and idempotent: progress is the data itself. A value already under the primary is
  never selected, so a rerun after a crash or Ctrl-C only re-reads.
- Checked: at the end it counts what still needs an old key (`keys check` shows the same), and
  passes again if a worker that still had the old key file wrote behind it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar, cast

import psycopg

from login_etl.adapters.postgres import connect, credentials
from login_etl.adapters.postgres.keyuse import KeyUse, key_usage
from login_etl.adapters.postgres.reencrypt import RekeyStore, Row
from login_etl.config import Settings
from login_etl.core.masking import (
    VAULT_PREFIX,
    Field,
    Masked,
    key_id_of,
    token_key_id,
)
from login_etl.core.model import VaultEntry
from login_etl.errors import RevealError
from login_etl.keys import KeyRing, load_keys

log = logging.getLogger(__name__)

Item = TypeVar("Item", bound=tuple[str, *tuple[object, ...]])

BATCH_PAGES = 128  # ~5,000 rows of user_logins per transaction
BODY_BATCH = 500
MAX_PASSES = 3


@dataclass
class RekeyStats:
    rows: int = 0  # user_logins rows rewritten
    values: int = 0  # masked values re-encrypted (a row has up to two)
    bodies: int = 0  # rejected bodies re-encrypted
    unreadable: int = 0  # values no enabled key decrypts: left as they are, and counted
    vault_retired: int = 0  # old-key vault entries re-encrypted and marked retired
    passes: int = 0
    remaining: int = 0  # values still under an old key at the end, unreadable ones included


def stale(usage: list[KeyUse], keys: KeyRing) -> int:
    """How many stored values need a key other than their keyset's primary."""
    return sum(
        u.values
        for u in usage
        if u.retired_token or (u.key_id is not None and u.key_id != keys.primary(u.keyset))
    )


class _Remasker:
    """Old token → token under the primary key, each distinct value decrypted once."""

    def __init__(self, keys: KeyRing, store: RekeyStore, stats: RekeyStats) -> None:
        self._keys = keys
        self._store = store
        self._stats = stats
        self._cache: dict[tuple[Field, str], Masked | None] = {}

    def rows(self, rows: list[Row]) -> tuple[list[Row], list[VaultEntry]]:
        vault = self._store.vault(
            t
            for r in rows
            for t in (r.ip, r.device_id)
            if t is not None and t.startswith(VAULT_PREFIX)
        )
        changed: list[Row] = []
        entries: list[VaultEntry] = []
        for row in rows:
            new_ip, new_device_id = (
                self._value("ip", row.ip, vault),
                self._value("device_id", row.device_id, vault),
            )
            if new_ip == (row.ip, None) and new_device_id == (row.device_id, None):
                continue
            changed.append(Row(row.ctid, new_ip[0], new_device_id[0]))
            entries.extend(v for _, v in (new_ip, new_device_id) if v is not None)
        return changed, entries

    def _value(
        self, field: Field, token: str | None, vault: dict[str, tuple[bytes, bool]]
    ) -> tuple[str | None, VaultEntry | None]:
        if token is None:
            return None, None
        if token.startswith(VAULT_PREFIX):
            ciphertext, retired = vault.get(token, (b"", False))
            # A retired entry's token came from an old key, even though its ciphertext is new.
            key_id = None if retired else key_id_of(ciphertext)
        else:
            key_id = token_key_id(token)
        if key_id == self._keys.masking_primary:
            return token, None
        key = (field, token)
        if key not in self._cache:
            try:
                plaintext = self._keys.masker.reveal(
                    field, token, lambda t: vault[t][0] if t in vault else None
                )
                self._cache[key] = self._keys.masker.mask(field, plaintext)
            except RevealError:
                self._cache[key] = None
        masked = self._cache[key]
        if masked is None:
            self._stats.unreadable += 1
            return token, None
        self._stats.values += 1
        return masked.token, masked.vault


def _user_logins_pass(
    store: RekeyStore,
    keys: KeyRing,
    stats: RekeyStats,
    batch_pages: int,
    progress: Callable[[RekeyStats], None],
) -> None:
    remasker = _Remasker(keys, store, stats)
    conn, first = store.conn, 0
    # The table may grow while we walk it (run inserts, our updates add row versions): walk on
    # until the end is reached.
    while first < (end := store.pages()):
        for start in range(first, end, batch_pages):
            with conn.transaction():
                rows = store.stale_rows(start, start + batch_pages, keys.masking_primary)
                changed, entries = remasker.rows(rows)
                if changed:
                    store.update_rows(changed, entries)
            stats.rows += len(changed)
            progress(stats)
        first = end


@dataclass(frozen=True, slots=True)
class _Stale(Generic[Item]):
    """Stored ciphertexts keyed by text, of which those under an old key are rewritten."""

    fetch: Callable[[str, int, int], Sequence[Item]]  # (after, primary key id, limit) → locked
    primary: int  # the key id the ciphertexts must end up under
    rewrite: Callable[[Item], tuple[str, bytes]]  # → (key, ciphertext); RevealError: unreadable
    write: Callable[[Sequence[tuple[str, bytes]]], None]


def _vault(store: RekeyStore, keys: KeyRing) -> _Stale[VaultEntry]:
    """Old-key vault entries: rows no longer point at them, except those a stale worker wrote;
    re-encrypted rather than deleted, so that such a row stays revealable (and, retired, gets
    rekeyed on the next pass) instead of pointing at nothing."""

    def reencrypt(entry: VaultEntry) -> tuple[str, bytes]:
        return entry.token, keys.masker.reencrypt(cast("Field", entry.field), entry.ciphertext)

    return _Stale(store.stale_vault, keys.masking_primary, reencrypt, store.retire_vault)


def _bodies(store: RekeyStore, keys: KeyRing) -> _Stale[tuple[str, bytes]]:
    """Rejected bodies, resealed under the quarantine keyset's primary."""

    def reseal(entry: tuple[str, bytes]) -> tuple[str, bytes]:
        message_id, body = entry
        return message_id, keys.sealer.seal(message_id, keys.sealer.open(message_id, body))

    return _Stale(store.stale_bodies, keys.quarantine_primary, reseal, store.update_bodies)


def _rewrite_in_batches(
    store: RekeyStore, stats: RekeyStats, batch: int, stale: _Stale[Item]
) -> int:
    """Walk the `stale` rows in key order, one transaction per batch, rewriting each; a row no
    enabled key opens is counted as unreadable and left alone. Returns rows written."""
    after, written = "", 0
    while True:
        with store.conn.transaction():
            rows = stale.fetch(after, stale.primary, batch)
            fresh = []
            for row in rows:
                try:
                    fresh.append(stale.rewrite(row))
                except RevealError:
                    stats.unreadable += 1
            if fresh:
                stale.write(fresh)
        written += len(fresh)
        if len(rows) < batch:
            return written
        after = rows[-1][0]


def rekey(
    conn: psycopg.Connection[tuple[object, ...]],
    keys: KeyRing,
    *,
    batch_pages: int = BATCH_PAGES,
    body_batch: int = BODY_BATCH,
    max_passes: int = MAX_PASSES,
    progress: Callable[[RekeyStats], None] = lambda _: None,
) -> RekeyStats:
    """Rewrite every stored value under an old key; `remaining` > 0 at the end means a
    worker still writes with an old key file (restart it with the rotated one, rerun).

    Switches `conn` to autocommit: each batch must be its own short transaction."""
    conn.autocommit = True
    store = RekeyStore(conn)
    stats = RekeyStats()
    while True:
        stats.passes += 1
        stats.unreadable = 0  # the same unreadable values are met again on every pass
        done_before = stats.values + stats.bodies
        _user_logins_pass(store, keys, stats, batch_pages, progress)
        stats.vault_retired += _rewrite_in_batches(store, stats, body_batch, _vault(store, keys))
        stats.bodies += _rewrite_in_batches(store, stats, body_batch, _bodies(store, keys))
        with conn.transaction():
            stats.remaining = stale(key_usage(conn), keys)
        progress(stats)
        progressed = stats.values + stats.bodies > done_before
        if stats.remaining <= stats.unreadable or not progressed or stats.passes >= max_passes:
            return stats
        log.warning(
            "%d values were written under an old key during the pass; passing again",
            stats.remaining,
        )


def rekey_stored(
    settings: Settings,
    *,
    batch_pages: int = BATCH_PAGES,
    progress: Callable[[RekeyStats], None] = lambda _: None,
) -> RekeyStats:
    """`login-etl rekey`: `rekey` with the keys and database of `settings`."""
    keys = load_keys(settings)
    with connect(credentials(settings)) as conn:
        return rekey(conn, keys, batch_pages=batch_pages, progress=progress)
