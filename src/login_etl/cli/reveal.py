"""`login-etl reveal`: the plaintexts behind masked values, for key holders, audited."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from typing import Annotated

import typer

from login_etl.cli import options
from login_etl.cli.app import app, err
from login_etl.cli.audit import Reason, Requester
from login_etl.ops.recovery import Request
from login_etl.ops.recovery import reveal as reveal_values


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
    keyset_secret: options.KeysetSecret = None,
    kms_key_uri: options.KmsKeyUri = None,
    database_url: options.DatabaseUrl = None,
    database_secret: options.DatabaseSecret = None,
) -> None:
    """Print the plaintexts of masked values, one per line, in input order.

    Each reveal is recorded in the audit trail (who, why, how many values; never a value)
    before anything is printed. If any value does not decrypt, nothing is printed and each
    failure is reported (exit 1).
    """
    settings = options.key_settings(
        keyset_file,
        kms_key_uri,
        database_url,
        keyset_secret=keyset_secret,
        database_secret=database_secret,
    )
    tokens = values or [line.strip() for line in sys.stdin if line.strip()]
    revealed = reveal_values(
        settings, field.value, tokens, Request(reason, requester), one_per_line=not as_json
    )
    for failure in revealed.failures:
        err.print(f"login-etl: value {failure.position}: {failure.error}", markup=False)
    if revealed.line_break:
        err.print("login-etl: a plaintext holds a line break; use --json to print it")
    if revealed.failures or revealed.line_break:
        raise typer.Exit(1)
    plaintexts = revealed.plaintexts
    if not plaintexts:
        return  # nothing to show, nothing recorded
    if as_json:
        sys.stdout.write(json.dumps(list(plaintexts), ensure_ascii=False) + "\n")
        return
    # Written as is: a rich console would turn ":name:" into emoji and expand tabs.
    sys.stdout.write("".join(p + "\n" for p in plaintexts))
