"""`login-etl keys create` and `login-etl reveal`."""

from __future__ import annotations

import json
import sys
from contextlib import ExitStack
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from login_etl.adapters.postgres import connect, vault_lookup
from login_etl.cli import options
from login_etl.cli.app import app, err, keys_app, out
from login_etl.config import load_settings
from login_etl.core.masking import VAULT_PREFIX, VaultLookup
from login_etl.errors import RevealError
from login_etl.keys import create_key_file, load_key_file


class FieldName(StrEnum):
    ip = "ip"
    device_id = "device_id"


@keys_app.command("create")
def keys_create(
    out_file: Annotated[Path, typer.Option("--out", help="Where to write the new key file.")],
) -> None:
    """Write a new key file (mode 0600; never overwrites). Keep it out of the repository."""
    create_key_file(out_file)
    out.print(
        f"Wrote {out_file} (mode 0600). Point LOGIN_ETL_KEYSET_FILE at it and back it up: "
        "masked values cannot be revealed without it.",
        markup=False,
    )


@app.command()
def reveal(
    field: Annotated[FieldName, typer.Option(help="Which column the values come from.")],
    values: Annotated[
        list[str] | None,
        typer.Argument(help="Masked values; read from stdin, one per line, if none are given."),
    ] = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print a JSON array (for values holding line breaks)."),
    ] = False,
    keyset_file: options.KeysetFile = None,
    database_url: options.DatabaseUrl = None,
) -> None:
    """Print the plaintexts of masked values, one per line, in input order.

    If any value does not decrypt, nothing is printed and each failure is reported (exit 1).
    """
    settings = load_settings(keyset_file=keyset_file, database_url=database_url)
    masker = load_key_file(settings.require_keyset_file()).masker
    tokens = values or [line.strip() for line in sys.stdin if line.strip()]
    plaintexts: list[str] = []
    failures = 0
    with ExitStack() as stack:
        vault: VaultLookup | None = None
        if any(t.startswith(VAULT_PREFIX) for t in tokens):
            # Over-long values keep their ciphertext in the database (see core.masking).
            conn = stack.enter_context(connect(settings.database_url.get_secret_value()))
            vault = vault_lookup(conn)
        for position, token in enumerate(tokens, start=1):
            try:
                plaintexts.append(masker.reveal(field.value, token, vault))
            except RevealError as error:
                failures += 1
                err.print(f"login-etl: value {position}: {error}", markup=False)
    if failures:
        raise typer.Exit(1)
    if as_json:
        sys.stdout.write(json.dumps(plaintexts, ensure_ascii=False) + "\n")
        return
    if any("\n" in p or "\r" in p for p in plaintexts):
        err.print("login-etl: a plaintext holds a line break; use --json to print it")
        raise typer.Exit(1)
    # Written as is: a rich console would turn ":name:" into emoji and expand tabs.
    sys.stdout.write("".join(p + "\n" for p in plaintexts))
