"""`login-etl reveal`: the plaintexts behind masked values, for key holders, audited."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from typing import Annotated

import typer

from login_etl.adapters.postgres import connect, vault_lookup
from login_etl.cli import options
from login_etl.cli.app import app, err
from login_etl.cli.audit import Reason, Requester, record_recovery
from login_etl.config import load_settings
from login_etl.errors import RevealError
from login_etl.keys import load_keys


class FieldName(StrEnum):
    ip = "ip"
    device_id = "device_id"


@app.command()
def reveal(
    field: Annotated[FieldName, typer.Option(help="Which column the values come from.")],
    reason: Reason,
    values: Annotated[
        list[str] | None,
        typer.Argument(help="Masked values; read from stdin, one per line, if none are given."),
    ] = None,
    requester: Requester = None,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print a JSON array (for values holding line breaks)."),
    ] = False,
    keyset_file: options.KeysetFile = None,
    kms_key_uri: options.KmsKeyUri = None,
    database_url: options.DatabaseUrl = None,
) -> None:
    """Print the plaintexts of masked values, one per line, in input order.

    Each reveal is recorded in the audit trail (who, why, how many values; never a value)
    before anything is printed. If any value does not decrypt, nothing is printed and each
    failure is reported (exit 1).
    """
    settings = load_settings(
        keyset_file=keyset_file, kms_key_uri=kms_key_uri, database_url=database_url
    )
    masker = load_keys(settings).masker
    tokens = values or [line.strip() for line in sys.stdin if line.strip()]
    plaintexts: list[str] = []
    failures = 0
    with connect(settings.database_url.get_secret_value()) as conn:
        vault = vault_lookup(conn)  # over-long values keep their ciphertext in the database
        for position, token in enumerate(tokens, start=1):
            try:
                plaintexts.append(masker.reveal(field.value, token, vault))
            except RevealError as error:
                failures += 1
                err.print(f"login-etl: value {position}: {error}", markup=False)
        if failures:
            raise typer.Exit(1)
        if not as_json and any("\n" in p or "\r" in p for p in plaintexts):
            err.print("login-etl: a plaintext holds a line break; use --json to print it")
            raise typer.Exit(1)
        if not plaintexts:
            return  # nothing to show, nothing to record
        record_recovery(
            conn,
            action="reveal",
            field=field.value,
            value_count=len(plaintexts),
            reason=reason,
            requester=requester,
        )
    if as_json:
        sys.stdout.write(json.dumps(plaintexts, ensure_ascii=False) + "\n")
        return
    # Written as is: a rich console would turn ":name:" into emoji and expand tabs.
    sys.stdout.write("".join(p + "\n" for p in plaintexts))
