"""`login-etl rekey`: after `keys rotate`, rewrite what is stored under the new primary keys
(`login_etl.ops.rekey`), and say what still needs an old key."""

from __future__ import annotations

from typing import Annotated

import typer

from login_etl.cli import options
from login_etl.cli.app import app, err, out
from login_etl.ops.rekey import BATCH_PAGES, RekeyStats, rekey_stored


@app.command("rekey")
def rekey_command(
    batch_pages: Annotated[
        int, typer.Option(min=1, help="user_logins pages per transaction (~40 rows a page).")
    ] = BATCH_PAGES,
    keyset_file: options.KeysetFile = None,
    keyset_secret: options.KeysetSecret = None,
    kms_key_uri: options.KmsKeyUri = None,
    database_url: options.DatabaseUrl = None,
    database_secret: options.DatabaseSecret = None,
) -> None:
    """Re-encrypt stored values and rejected bodies under the current primary keys.

    Online (short transactions; `run` keeps working) and resumable (rerun after an interruption:
    finished values are skipped). Run it after `keys rotate` once the workers use the new file.
    """
    settings = options.key_settings(
        keyset_file,
        kms_key_uri,
        database_url,
        keyset_secret=keyset_secret,
        database_secret=database_secret,
    )
    shown = [0]

    def progress(stats: RekeyStats) -> None:
        if stats.rows - shown[0] >= 50_000:
            shown[0] = stats.rows
            err.print(f"rekey: {stats.rows:,} rows rewritten so far", markup=False)

    stats = rekey_stored(settings, batch_pages=batch_pages, progress=progress)
    out.print(
        f"Rekeyed {stats.values:,} masked values in {stats.rows:,} rows and {stats.bodies:,} "
        f"rejected bodies ({stats.passes} pass{'es' if stats.passes > 1 else ''}); "
        f"retired {stats.vault_retired:,} old vault entries.",
        markup=False,
    )
    if stats.unreadable:
        err.print(
            f"login-etl: {stats.unreadable} stored values do not decrypt with any enabled key "
            "in this key file; they were left as they are",
            markup=False,
        )
    if stats.remaining:
        err.print(
            f"login-etl: {stats.remaining} values still need an old key; if a worker still runs "
            "with the old key file, restart it and run rekey again (see `keys check`)",
            markup=False,
        )
        raise typer.Exit(1)
    out.print("Every stored value is under the primary keys; old keys can now be disabled.")
