"""Lookups in `login_etl.masked_values`, the ciphertexts behind vault tokens ("~…")."""

from __future__ import annotations

from typing import cast

import psycopg

from login_etl.adapters.postgres.connection import translated
from login_etl.core.masking import VaultLookup


def vault_lookup(conn: psycopg.Connection[tuple[object, ...]]) -> VaultLookup:
    """A function from vault token to ciphertext (None if unknown), for `TinkMasker.reveal`."""

    def lookup(token: str) -> bytes | None:
        with translated("read masked value"):
            row = conn.execute(
                "SELECT ciphertext FROM login_etl.masked_values WHERE token = %s", (token,)
            ).fetchone()
        return bytes(cast("bytes", row[0])) if row else None

    return lookup
