"""`login-etl keys create|wrap|list|rotate|check|disable|enable` (see `login_etl.ops.keyadmin`)."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from login_etl.cli import options
from login_etl.cli.app import err, keys_app, out
from login_etl.config import load_settings
from login_etl.errors import KeyStillNeeded
from login_etl.ops import keyadmin
from login_etl.ops.keyadmin import Need


class Which(StrEnum):
    masking = "masking"
    quarantine = "quarantine"
    all = "all"


# What `keys check` says of each group of stored values that is not under its primary key.
_NOTES = {
    Need.PRIMARY: "",
    Need.OLD_KEY: "needs an old key: run login-etl rekey",
    Need.RETIRED_VAULT_ENTRY: "token of a retired vault entry: run login-etl rekey",
    Need.UNRECOGNISED: "no recognisable key (not a token, or its vault entry is missing)",
}


@keys_app.command("create")
def keys_create(
    out_file: Annotated[Path, typer.Option("--out", help="Where to write the new key file.")],
    kms_key_uri: options.KmsKeyUri = None,
) -> None:
    """Write a new key file (mode 0600; never overwrites, nor follows a symlink). Keep it out of
    the repository.

    With a KMS key the keysets are stored wrapped by it: the file alone reveals nothing, so it
    can then be put into a secret store as it is, for LOGIN_ETL_KEYSET_SECRET (e.g. `aws
    secretsmanager put-secret-value --secret-id NAME --secret-string file://keys.json`).
    """
    created = keyadmin.create_keys(load_settings(kms_key_uri=kms_key_uri), out_file)
    wrapped = f", wrapped by {created.kms_key_uri}" if created.kms_key_uri else ""
    out.print(
        f"Wrote {created.where} (mode 0600{wrapped}). Point LOGIN_ETL_KEYSET_FILE at it and back "
        "it up: masked values cannot be revealed without it."
        + (
            " Or keep it in a secret store: put the file's text into the secret and set "
            "LOGIN_ETL_KEYSET_SECRET (docs/operations.md)."
            if created.kms_key_uri
            else ""
        ),
        markup=False,
    )


@keys_app.command("list")
def keys_list(
    keyset_file: options.KeysetFile = None,
    kms_key_uri: options.KmsKeyUri = None,
    keyset_secret: options.KeysetSecret = None,
) -> None:
    """Show each keyset's keys: id, status, which is primary (never key material)."""
    listing = keyadmin.list_keys(
        options.key_settings(keyset_file, kms_key_uri, keyset_secret=keyset_secret)
    )
    uri = listing.file.kms_key_uri
    wrapped = f"wrapped by {uri}" if uri else "cleartext"
    table = Table(
        "keyset", "key id", "status", "primary", title=f"{listing.file.where} ({wrapped})"
    )
    for key in listing.keys:
        table.add_row(key.keyset, str(key.key_id), key.status, "yes" if key.primary else "")
    out.print(table)


@keys_app.command("rotate")
def keys_rotate(
    keyset: Annotated[Which, typer.Option(help="Which keyset gets a new primary key.")] = Which.all,
    keyset_file: options.KeysetFile = None,
    keyset_secret: options.KeysetSecret = None,
    kms_key_uri: options.KmsKeyUri = None,
) -> None:
    """Add a new primary key; old keys stay, so everything stored still decrypts.

    Then restart the workers with the rotated file and run `login-etl rekey`, so that new and
    old tokens of one value become equal again.
    """
    settings = options.key_settings(keyset_file, kms_key_uri, keyset_secret=keyset_secret)
    names = keyadmin.KEYSETS if keyset is Which.all else (keyset.value,)
    rotated = keyadmin.rotate_keys(settings, names)
    for name, primary in rotated.new_primaries.items():
        out.print(f"{name}: new primary key {primary}")
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
    keyset_secret: options.KeysetSecret = None,
) -> None:
    """Wrap an existing cleartext key file with a KMS key, in place, keeping every key.

    (A new key file would change every token; wrapping changes only how the file is stored.)
    """
    wrapped = keyadmin.wrap_keys(
        options.key_settings(keyset_file, kms_key_uri, keyset_secret=keyset_secret)
    )
    copies = (
        "The secret's earlier versions (Secrets Manager's AWSPREVIOUS, SSM's parameter history) "
        "and any other copies"
        if wrapped.in_secret
        else "Copies of the cleartext file (backups, old Secrets)"
    )
    out.print(
        f"{wrapped.where} is now wrapped by {wrapped.kms_key_uri}. {copies} still hold the keys: "
        "destroy them.",
        markup=False,
    )


@keys_app.command("check")
def keys_check(
    keyset_file: options.KeysetFile = None,
    keyset_secret: options.KeysetSecret = None,
    kms_key_uri: options.KmsKeyUri = None,
    database_url: options.DatabaseUrl = None,
    database_secret: options.DatabaseSecret = None,
) -> None:
    """Count stored values by the key they need; exit 1 if any needs a non-primary key."""
    settings = options.key_settings(
        keyset_file,
        kms_key_uri,
        database_url,
        keyset_secret=keyset_secret,
        database_secret=database_secret,
    )
    check = keyadmin.check_keys(settings)
    table = Table("keyset", "stored in", "key id", "values", "", title="Stored values by key")
    for use, need in check.uses:
        key_id = "-" if use.key_id is None else str(use.key_id)
        table.add_row(use.keyset, use.place, key_id, str(use.values), _NOTES[need])
    out.print(table)
    if check.stale:
        err.print(
            f"login-etl: {check.stale} stored values still need a non-primary key", markup=False
        )
        raise typer.Exit(1)
    out.print("Every stored value is under its keyset's primary key.")


@keys_app.command("disable")
def keys_disable(
    key_ids: Annotated[list[int], typer.Argument(help="Ids of keys to disable (see keys list).")],
    keyset_file: options.KeysetFile = None,
    keyset_secret: options.KeysetSecret = None,
    kms_key_uri: options.KmsKeyUri = None,
    database_url: options.DatabaseUrl = None,
    database_secret: options.DatabaseSecret = None,
) -> None:
    """Stop a key from decrypting, after checking that nothing stored still needs it."""
    settings = options.key_settings(
        keyset_file,
        kms_key_uri,
        database_url,
        keyset_secret=keyset_secret,
        database_secret=database_secret,
    )
    try:
        where = keyadmin.disable_keys(settings, key_ids)
    except KeyStillNeeded as refused:
        for line in refused.needs:
            err.print(f"login-etl: {line}", markup=False)
        raise
    out.print(f"Disabled {', '.join(map(str, key_ids))} in {where}; nothing stored needs them.")


@keys_app.command("enable")
def keys_enable(
    key_ids: Annotated[list[int], typer.Argument(help="Ids of disabled keys to enable again.")],
    keyset_file: options.KeysetFile = None,
    keyset_secret: options.KeysetSecret = None,
    kms_key_uri: options.KmsKeyUri = None,
) -> None:
    """Undo `keys disable`."""
    settings = options.key_settings(keyset_file, kms_key_uri, keyset_secret=keyset_secret)
    where = keyadmin.enable_keys(settings, key_ids)
    out.print(f"Enabled {', '.join(map(str, key_ids))} in {where}.")
