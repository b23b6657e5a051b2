"""Which key every stored ciphertext needs: the evidence behind `keys check` and `keys disable`."""

from __future__ import annotations

from typing import NamedTuple, cast

import psycopg

from login_etl.adapters.postgres.connection import translated


class KeyUse(NamedTuple):
    """`values` values in `place`, all needing key `key_id` of keyset `keyset`.

    `key_id` is None when no key can be named: either `retired_token` (vault tokens whose entry
    rekey retired; the token itself came from an old key, so the row needs rekeying) or nothing
    recognisable (not a token, or a vault token whose ciphertext is missing).
    """

    keyset: str
    place: str
    key_id: int | None
    values: int
    retired_token: bool = False

    @property
    def unrecognised(self) -> bool:
        """No key is recognisable: not a token, or a vault token whose entry is missing."""
        return self.key_id is None and not self.retired_token


# What login_etl.masked_key_id answers for a token of a retired vault entry (migration 0003).
_RETIRED = -1

_USAGE = """
SELECT 'masking', 'user_logins.masked_ip', login_etl.masked_key_id(masked_ip), count(*)
  FROM public.user_logins WHERE masked_ip IS NOT NULL GROUP BY 3
UNION ALL
SELECT 'masking', 'user_logins.masked_device_id', login_etl.masked_key_id(masked_device_id),
       count(*)
  FROM public.user_logins WHERE masked_device_id IS NOT NULL GROUP BY 3
UNION ALL
SELECT 'masking', 'login_etl.masked_values', login_etl.tink_key_id(ciphertext), count(*)
  FROM login_etl.masked_values GROUP BY 3
UNION ALL
SELECT 'quarantine', 'login_etl.rejected_messages', login_etl.tink_key_id(body), count(*)
  FROM login_etl.rejected_messages GROUP BY 3
ORDER BY 1, 2, 3
"""


def key_usage(conn: psycopg.Connection[tuple[object, ...]]) -> list[KeyUse]:
    """Counts of stored values by the key they need; one scan of each table."""
    with translated("count values by key"):
        rows = conn.execute(_USAGE).fetchall()
    uses = []
    for keyset, place, key_id, values in rows:
        retired = key_id == _RETIRED
        known = None if key_id is None or retired else int(cast("int", key_id))
        uses.append(KeyUse(str(keyset), str(place), known, int(cast("int", values)), retired))
    return uses
