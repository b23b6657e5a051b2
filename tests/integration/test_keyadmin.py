"""ops.keyadmin against PostgreSQL: `keys check` names what each group of stored values needs,
a retired vault entry's token included (SQL's -1 never reaches the caller)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

from login_etl.config import load_settings
from login_etl.keys import KeyRing
from login_etl.ops import keyadmin
from login_etl.ops.keyadmin import Need

LONG_DEVICE_ID = "device-" + "é" * 200  # too long for an inline token: a vault token


def test_check_names_a_retired_vault_entrys_token_and_counts_it_as_stale(
    db: psycopg.Connection[tuple[Any, ...]], database_url: str, key_file: Path, keys: KeyRing
) -> None:
    ip = keys.masker.mask("ip", "203.0.113.7").token
    device = keys.masker.mask("device_id", LONG_DEVICE_ID)
    assert device.vault is not None
    db.execute(
        "INSERT INTO login_etl.masked_values (token, field, ciphertext, retired)"
        " VALUES (%s, %s, %s, true)",
        device.vault,
    )
    db.execute(
        "INSERT INTO public.user_logins (user_id, device_type, masked_ip, masked_device_id,"
        " locale, app_version, create_date) VALUES ('u', 'ios', %s, %s, 'US', 1, '2026-11-01')",
        (ip, device.token),
    )

    check = keyadmin.check_keys(load_settings(database_url=database_url, keyset_file=key_file))

    needs = {use.place: (use.key_id, use.values, need) for use, need in check.uses}
    assert needs["user_logins.masked_device_id"] == (None, 1, Need.RETIRED_VAULT_ENTRY)
    assert needs["user_logins.masked_ip"] == (keys.masking_primary, 1, Need.PRIMARY)
    # The retired entry's own ciphertext is under the primary: only the row's token is stale.
    assert needs["login_etl.masked_values"] == (keys.masking_primary, 1, Need.PRIMARY)
    assert check.stale == 1
