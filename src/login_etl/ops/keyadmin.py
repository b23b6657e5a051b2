"""Key administration: `keys create|wrap|list|rotate|check|disable|enable`.

Every change to an existing key file is read, checked and written in one `editing()` of its store
(keys.store): under the file's lock, or, for a key file kept as a secret, as a new secret version
written only if the version read is still current. So two administrators (or a rotation and a
disable) do not lose each other's keys. A key is disabled only once nothing stored needs it
(`keys check` shows the same evidence).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path

import tink

from login_etl.adapters.postgres import connect, credentials
from login_etl.adapters.postgres.keyuse import KeyUse, key_usage
from login_etl.config import Settings
from login_etl.errors import AlreadyWrapped, KeyStillNeeded, UnknownKeyId
from login_etl.keys import KeyFile, KeyRing, create_key_file
from login_etl.keys.keyfile import TEMPLATES
from login_etl.keys.loading import key_store
from login_etl.keys.rotation import DISABLED, ENABLED, describe, rotated, with_status
from login_etl.ops.rekey import stale

KEYSETS = tuple(TEMPLATES)  # the keysets of a key file: "masking", "quarantine"


@dataclass(frozen=True, slots=True)
class KeyFileRef:
    """A key file written or changed (a path, or the secret keeping it), and the KMS key
    wrapping it (None: cleartext)."""

    where: str
    kms_key_uri: str | None
    in_secret: bool = False


def create_keys(settings: Settings, out_file: Path) -> KeyFileRef:
    """`keys create`: a new key file, wrapped by LOGIN_ETL_KMS_KEY_URI if set; never overwrites."""
    create_key_file(out_file, kms_key_uri=settings.kms_key_uri)
    return KeyFileRef(str(out_file), settings.kms_key_uri)


def wrap_keys(settings: Settings) -> KeyFileRef:
    """`keys wrap`: wrap a cleartext key file with LOGIN_ETL_KMS_KEY_URI, in place, keeping every
    key (a new file would change every token)."""
    store = key_store(settings)
    with store.editing() as edit:
        key_file = edit.read()
        if key_file.kms_key_uri is not None:
            raise AlreadyWrapped(f"{store.where} is already wrapped by {key_file.kms_key_uri}")
        edit.write(replace(key_file, kms_key_uri=settings.kms_key_uri))
    return KeyFileRef(store.where, settings.kms_key_uri, store.in_secret)


@dataclass(frozen=True, slots=True)
class ListedKey:
    """One key of a keyset, without its material."""

    keyset: str
    key_id: int
    status: str  # ENABLED or DISABLED
    primary: bool


@dataclass(frozen=True, slots=True)
class KeyListing:
    """The keys of a key file, keyset by keyset, oldest first."""

    file: KeyFileRef
    keys: tuple[ListedKey, ...]


def list_keys(settings: Settings) -> KeyListing:
    """`keys list`."""
    store = key_store(settings)
    key_file = store.read(required_kms_key_uri=settings.kms_key_uri)
    keys = tuple(
        ListedKey(name, key.key_id, key.status, key.primary)
        for name, handle in key_file.keysets.items()
        for key in describe(handle)
    )
    return KeyListing(KeyFileRef(store.where, key_file.kms_key_uri, store.in_secret), keys)


@dataclass(frozen=True, slots=True)
class Rotated:
    """The key file rotated (path or secret), and each rotated keyset's new primary key id."""

    where: str
    new_primaries: dict[str, int]


def rotate_keys(settings: Settings, keysets: Iterable[str] = KEYSETS) -> Rotated:
    """`keys rotate`: add a new primary key to each of `keysets`; old keys stay."""
    store = key_store(settings)
    # Another rotation's new key is not lost to this one's write (keys.store: a lock, or a
    # version check).
    with store.editing() as edit:
        key_file = edit.read(required_kms_key_uri=settings.kms_key_uri)
        handles = {n: rotated(key_file.keysets[n], TEMPLATES[n]) for n in keysets}
        edit.write(key_file.with_keysets(**handles))
    return Rotated(store.where, {n: h.keyset_info().primary_key_id for n, h in handles.items()})


def stored_key_usage(settings: Settings) -> list[KeyUse]:
    """Counts of the values stored in the database by the key each needs."""
    with connect(credentials(settings)) as conn:
        return key_usage(conn)


class Need(StrEnum):
    """What a group of stored values needs, against the key file's primaries."""

    PRIMARY = "primary"  # its keyset's primary key: nothing to do
    OLD_KEY = "old key"  # a non-primary key: rekey
    RETIRED_VAULT_ENTRY = "retired vault entry"  # its token came from an old key: rekey
    UNRECOGNISED = "unrecognised"  # not a token, or a vault token whose entry is missing


def need(use: KeyUse, ring: KeyRing) -> Need:
    """Whether `use`'s values are under their keyset's primary key, and if not, why."""
    if use.retired_token:
        return Need.RETIRED_VAULT_ENTRY
    if use.key_id is None:
        return Need.UNRECOGNISED
    return Need.PRIMARY if use.key_id == ring.primary(use.keyset) else Need.OLD_KEY


@dataclass(frozen=True, slots=True)
class KeyCheck:
    """`keys check`: each group of stored values with what it needs, and how many values need a
    key other than their keyset's primary (0: old keys can be disabled)."""

    uses: tuple[tuple[KeyUse, Need], ...]
    stale: int


def check_keys(settings: Settings) -> KeyCheck:
    """`keys check`."""
    ring = key_store(settings).read(required_kms_key_uri=settings.kms_key_uri).ring()
    usage = stored_key_usage(settings)
    return KeyCheck(tuple((u, need(u, ring)) for u in usage), stale(usage, ring))


def _with_status(
    where: str, key_file: KeyFile, key_ids: Sequence[int], status: int
) -> dict[str, tink.KeysetHandle]:
    """The keysets holding `key_ids`, with those keys set to `status`."""
    owners = {key.key_id: name for name, h in key_file.keysets.items() for key in describe(h)}
    if unknown := [k for k in key_ids if k not in owners]:
        raise UnknownKeyId(f"no key with id {', '.join(map(str, unknown))} in {where}")
    return {
        name: with_status(key_file.keysets[name], [k for k in key_ids if owners[k] == name], status)
        for name in {owners[k] for k in key_ids}
    }


def disable_keys(settings: Settings, key_ids: Sequence[int]) -> Path | str:
    """`keys disable`: stop keys from decrypting; KeyStillNeeded (the file unchanged) if stored
    values still need one of them. Returns the key file's path, or the secret as `keys.store`
    names it."""
    store = key_store(settings)
    with store.editing() as edit:
        key_file = edit.read(required_kms_key_uri=settings.kms_key_uri)
        changed = _with_status(store.where, key_file, key_ids, DISABLED)
        needing = [u for u in stored_key_usage(settings) if u.key_id in key_ids]
        if needing:
            raise KeyStillNeeded(
                "refusing to disable a key that stored values need; run rekey first",
                tuple(f"{u.values} values in {u.place} need key {u.key_id}" for u in needing),
            )
        edit.write(key_file.with_keysets(**changed))
    return store.location


def enable_keys(settings: Settings, key_ids: Sequence[int]) -> Path | str:
    """`keys enable`: undo `keys disable`. Returns the key file's path, or the secret as
    `keys.store` names it."""
    store = key_store(settings)
    with store.editing() as edit:
        key_file = edit.read(required_kms_key_uri=settings.kms_key_uri)
        changed = _with_status(store.where, key_file, key_ids, ENABLED)
        edit.write(key_file.with_keysets(**changed))
    return store.location
