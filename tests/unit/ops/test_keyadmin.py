"""ops.keyadmin: what `keys check` says each group of stored values needs, and `keys disable`
refusing, with the file unchanged, while stored values still need a key."""

from __future__ import annotations

from pathlib import Path

import pytest

from login_etl.adapters.postgres.keyuse import KeyUse
from login_etl.config import Settings, load_settings
from login_etl.errors import ConfigError, KeyAdminError, KeyStillNeeded, UnknownKeyId
from login_etl.keys import create_key_file, read_key_file
from login_etl.keys.rotation import describe
from login_etl.ops import keyadmin
from login_etl.ops.keyadmin import Need, need
from login_etl.ops.rekey import stale


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    path = tmp_path / "keys.json"
    create_key_file(path)
    return load_settings(keyset_file=path)


def statuses(path: Path) -> dict[int, str]:
    return {k.key_id: k.status for h in read_key_file(path).keysets.values() for k in describe(h)}


def test_each_group_of_stored_values_is_named_by_what_it_needs(settings: Settings) -> None:
    assert settings.keyset_file is not None
    rotated = keyadmin.rotate_keys(settings, ["masking"])
    ring = read_key_file(settings.keyset_file).ring()
    old = next(k for k in statuses(settings.keyset_file) if k != rotated.new_primaries["masking"])
    quarantine = ring.quarantine_primary
    uses = [
        KeyUse("masking", "user_logins.masked_ip", ring.masking_primary, 5),
        KeyUse("masking", "user_logins.masked_ip", old, 3),
        KeyUse("masking", "user_logins.masked_device_id", None, 2, retired_token=True),
        KeyUse("masking", "user_logins.masked_device_id", None, 7),
        KeyUse("quarantine", "login_etl.rejected_messages", quarantine, 1),
    ]
    assert [need(u, ring) for u in uses] == [
        Need.PRIMARY,
        Need.OLD_KEY,
        Need.RETIRED_VAULT_ENTRY,
        Need.UNRECOGNISED,
        Need.PRIMARY,
    ]
    # Old-key values and retired vault entries need rekey; unrecognised ones cannot be rekeyed.
    assert stale(uses, ring) == 3 + 2


def test_disable_refuses_while_stored_values_need_the_key_and_leaves_the_file(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = settings.keyset_file
    assert path is not None
    keyadmin.rotate_keys(settings)
    old = [
        k.key_id for h in read_key_file(path).keysets.values() for k in describe(h) if not k.primary
    ]
    before = path.read_bytes()
    needing = [KeyUse("masking", "user_logins.masked_ip", old[0], 4)]
    monkeypatch.setattr(keyadmin, "stored_key_usage", lambda _settings: needing)

    with pytest.raises(KeyStillNeeded, match="run rekey first") as refused:
        keyadmin.disable_keys(settings, [old[0]])
    assert refused.value.needs == (f"4 values in user_logins.masked_ip need key {old[0]}",)
    assert not isinstance(refused.value, ConfigError)  # exit status 1, as before
    assert path.read_bytes() == before


def test_disable_and_enable_change_only_the_keys_named(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = settings.keyset_file
    assert path is not None
    first = list(statuses(path))
    keyadmin.rotate_keys(settings)
    monkeypatch.setattr(keyadmin, "stored_key_usage", lambda _settings: [])

    assert keyadmin.disable_keys(settings, first[:1]) == path
    after = statuses(path)
    assert after[first[0]] == "DISABLED"
    assert [s for k, s in after.items() if k != first[0]] == ["ENABLED"] * (len(after) - 1)

    keyadmin.enable_keys(settings, first[:1])
    assert set(statuses(path).values()) == {"ENABLED"}


def test_an_unknown_key_id_is_a_narrow_error_and_changes_nothing(settings: Settings) -> None:
    path = settings.keyset_file
    assert path is not None
    before = path.read_bytes()
    with pytest.raises(UnknownKeyId, match="no key with id 7 in"):
        keyadmin.enable_keys(settings, [7])
    assert issubclass(UnknownKeyId, KeyAdminError)
    assert path.read_bytes() == before


def test_list_names_every_key_and_its_primary(settings: Settings) -> None:
    listing = keyadmin.list_keys(settings)
    assert listing.file.kms_key_uri is None
    assert sorted(k.keyset for k in listing.keys) == ["masking", "quarantine"]
    assert all(k.primary and k.status == "ENABLED" for k in listing.keys)
