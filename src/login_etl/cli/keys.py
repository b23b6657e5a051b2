"""`login-etl keys create` and `login-etl reveal`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from login_etl.cli.app import keys_app, out
from login_etl.keys import create_key_file


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
