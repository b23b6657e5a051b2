"""`login-etl keys create|wrap|list|rotate|check|disable|enable`."""

from __future__ import annotations

from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import tink
import typer
from rich.table import Table

from login_etl.adapters.postgres import connect
from login_etl.adapters.postgres.keyuse import KeyUse, key_usage
from login_etl.cli import options
from login_etl.cli.app import err, keys_app, out
from login_etl.config import load_settings
from login_etl.errors import LoginEtlError
from login_etl.keys import KeyFile, create_key_file, read_key_file, write_key_file
from login_etl.keys.keyfile import TEMPLATES, locked
from login_etl.keys.rotation import DISABLED, ENABLED, describe, rotated, with_status
from login_etl.ops.rekey import stale


class Which(StrEnum):
    masking = "masking"
    quarantine = "quarantine"
    all = "all"


def _names(which: Which) -> list[str]:
    return list(TEMPLATES) if which is Which.all else [which.value]


@keys_app.command("create")
def keys_create(
    out_file: Annotated[Path, typer.Option("--out", help="Where to write the new key file.")],
    kms_key_uri: options.KmsKeyUri = None,
) -> None:
    """Write a new key file (mode 0600; never overwrites, nor follows a symlink). Keep it out of
    the repository.

    With a KMS key the keysets are stored wrapped by it: the file alone reveals nothing.
    """
    settings = load_settings(kms_key_uri=kms_key_uri)
    create_key_file(out_file, kms_key_uri=settings.kms_key_uri)
    wrapped = f", wrapped by {settings.kms_key_uri}" if settings.kms_key_uri else ""
    out.print(
        f"Wrote {out_file} (mode 0600{wrapped}). Point LOGIN_ETL_KEYSET_FILE at it and back it "
        "up: masked values cannot be revealed without it.",
        markup=False,
    )


def _where(keyset_file: Path | None, kms_key_uri: str | None) -> tuple[Path, str | None]:
    """The key file's path and the KMS key it must be wrapped by, from options or settings."""
    settings = load_settings(keyset_file=keyset_file, kms_key_uri=kms_key_uri)
    return settings.require_keyset_file(), settings.kms_key_uri


def _read(keyset_file: Path | None, kms_key_uri: str | None) -> tuple[Path, KeyFile]:
    path, required = _where(keyset_file, kms_key_uri)
    return path, read_key_file(path, required_kms_key_uri=required)


def _usage(database_url: str | None) -> list[KeyUse]:
    settings = load_settings(database_url=database_url)
    with connect(settings.database_url.get_secret_value()) as conn:
        return key_usage(conn)


@keys_app.command("list")
def keys_list(
    keyset_file: options.KeysetFile = None, kms_key_uri: options.KmsKeyUri = None
) -> None:
    """Show each keyset's keys: id, status, which is primary (never key material)."""
    path, key_file = _read(keyset_file, kms_key_uri)
    wrapped = f"wrapped by {key_file.kms_key_uri}" if key_file.kms_key_uri else "cleartext"
    table = Table("keyset", "key id", "status", "primary", title=f"{path} ({wrapped})")
    for name, handle in key_file.keysets.items():
        for key in describe(handle):
            table.add_row(name, str(key.key_id), key.status, "yes" if key.primary else "")
    out.print(table)


@keys_app.command("rotate")
def keys_rotate(
    keyset: Annotated[Which, typer.Option(help="Which keyset gets a new primary key.")] = Which.all,
    keyset_file: options.KeysetFile = None,
    kms_key_uri: options.KmsKeyUri = None,
) -> None:
    """Add a new primary key; old keys stay, so everything stored still decrypts.

    Then restart the workers with the rotated file and run `login-etl rekey`, so that new and
    old tokens of one value become equal again.
    """
    path, required = _where(keyset_file, kms_key_uri)
    with locked(path):  # another rotation's new key must not be lost to this one's write
        key_file = read_key_file(path, required_kms_key_uri=required)
        rotated_sets = {n: rotated(key_file.keysets[n], TEMPLATES[n]) for n in _names(keyset)}
        write_key_file(path, key_file.with_keysets(**rotated_sets), overwrite=True)
    for name, handle in rotated_sets.items():
        out.print(f"{name}: new primary key {handle.keyset_info().primary_key_id}")
    out.print(
        "Next: restart the workers with this key file, then run `login-etl rekey`.", markup=False
    )


@keys_app.command("wrap")
def keys_wrap(
    kms_key_uri: Annotated[
        str,
        typer.Option(help="The AWS KMS key to wrap the keysets with (aws-kms://arn:aws:kms:...)."),
    ],
    keyset_file: options.KeysetFile = None,
) -> None:
    """Wrap an existing cleartext key file with a KMS key, in place, keeping every key.

    (A new key file would change every token; wrapping changes only how the file is stored.)
    """
    settings = load_settings(keyset_file=keyset_file, kms_key_uri=kms_key_uri)
    path = settings.require_keyset_file()
    with locked(path):
        key_file = read_key_file(path)
        if key_file.kms_key_uri is not None:
            raise LoginEtlError(f"{path} is already wrapped by {key_file.kms_key_uri}")
        write_key_file(path, replace(key_file, kms_key_uri=settings.kms_key_uri), overwrite=True)
    out.print(
        f"{path} is now wrapped by {settings.kms_key_uri}. Copies of the cleartext file "
        "(backups, old Secrets) still hold the keys: destroy them.",
        markup=False,
    )


@keys_app.command("check")
def keys_check(
    keyset_file: options.KeysetFile = None,
    kms_key_uri: options.KmsKeyUri = None,
    database_url: options.DatabaseUrl = None,
) -> None:
    """Count stored values by the key they need; exit 1 if any needs a non-primary key."""
    _, key_file = _read(keyset_file, kms_key_uri)
    ring = key_file.ring()
    usage = _usage(database_url)
    table = Table("keyset", "stored in", "key id", "values", "", title="Stored values by key")
    for use in usage:
        note = ""
        if use.key_id is None:
            note = "no recognisable key (not a token, or its vault entry is missing)"
        elif use.key_id == -1:
            note = "token of a retired vault entry: run login-etl rekey"
        elif use.key_id != ring.primary(use.keyset):
            note = "needs an old key: run login-etl rekey"
        table.add_row(use.keyset, use.place, str(use.key_id or "-"), str(use.values), note)
    out.print(table)
    old = stale(usage, ring)
    if old:
        err.print(f"login-etl: {old} stored values still need a non-primary key", markup=False)
        raise typer.Exit(1)
    out.print("Every stored value is under its keyset's primary key.")


def _set_status(
    path: Path, key_file: KeyFile, key_ids: list[int], status: int
) -> dict[str, tink.KeysetHandle]:
    """The keysets holding `key_ids`, with those keys set to `status`."""
    owners = {key.key_id: name for name, h in key_file.keysets.items() for key in describe(h)}
    if unknown := [k for k in key_ids if k not in owners]:
        raise LoginEtlError(f"no key with id {', '.join(map(str, unknown))} in {path}")
    return {
        name: with_status(key_file.keysets[name], [k for k in key_ids if owners[k] == name], status)
        for name in {owners[k] for k in key_ids}
    }


@keys_app.command("disable")
def keys_disable(
    key_ids: Annotated[list[int], typer.Argument(help="Ids of keys to disable (see keys list).")],
    keyset_file: options.KeysetFile = None,
    kms_key_uri: options.KmsKeyUri = None,
    database_url: options.DatabaseUrl = None,
) -> None:
    """Stop a key from decrypting, after checking that nothing stored still needs it."""
    path, required = _where(keyset_file, kms_key_uri)
    with locked(path):
        key_file = read_key_file(path, required_kms_key_uri=required)
        changed = _set_status(path, key_file, key_ids, DISABLED)
        needing = [u for u in _usage(database_url) if u.key_id in key_ids]
        if needing:
            for use in needing:
                err.print(f"login-etl: {use.values} values in {use.place} need key {use.key_id}")
            raise LoginEtlError(
                "refusing to disable a key that stored values need; run rekey first"
            )
        write_key_file(path, key_file.with_keysets(**changed), overwrite=True)
    out.print(f"Disabled {', '.join(map(str, key_ids))} in {path}; nothing stored needs them.")


@keys_app.command("enable")
def keys_enable(
    key_ids: Annotated[list[int], typer.Argument(help="Ids of disabled keys to enable again.")],
    keyset_file: options.KeysetFile = None,
    kms_key_uri: options.KmsKeyUri = None,
) -> None:
    """Undo `keys disable`."""
    path, required = _where(keyset_file, kms_key_uri)
    with locked(path):
        key_file = read_key_file(path, required_kms_key_uri=required)
        changed = _set_status(path, key_file, key_ids, ENABLED)
        write_key_file(path, key_file.with_keysets(**changed), overwrite=True)
    out.print(f"Enabled {', '.join(map(str, key_ids))} in {path}.")
