"""`login-etl quarantine list|show`."""

from __future__ import annotations

import datetime as dt
import sys
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from login_etl.adapters.postgres import QuarantineStore, connect
from login_etl.cli import options
from login_etl.cli.app import out, quarantine_app
from login_etl.cli.audit import Reason, Requester, record_recovery
from login_etl.config import load_settings
from login_etl.errors import LoginEtlError
from login_etl.keys import load_key_file


@quarantine_app.command("list")
def quarantine_list(
    limit: Annotated[int, typer.Option(help="Show at most this many, newest first.")] = 100,
    database_url: options.DatabaseUrl = None,
) -> None:
    """Show rejected messages: id, time and reason (never the body)."""
    settings = load_settings(database_url=database_url)
    with connect(settings.database_url.get_secret_value()) as conn:
        store = QuarantineStore(conn)
        entries, total = store.list(limit), store.count()
    noun = "message" if total == 1 else "messages"
    table = Table("message id", "rejected at (UTC)", "reason", title=f"{total} rejected {noun}")
    for entry in entries:
        when = entry.rejected_at.astimezone(dt.UTC)
        table.add_row(escape(entry.message_id), f"{when:%Y-%m-%d %H:%M:%S}", escape(entry.reason))
    out.print(table)


@quarantine_app.command("show")
def quarantine_show(
    message_id: Annotated[str, typer.Argument(help="The SQS MessageId of a rejected message.")],
    reason: Reason,
    requester: Requester = None,
    keyset_file: options.KeysetFile = None,
    database_url: options.DatabaseUrl = None,
) -> None:
    """Decrypt and print one rejected message's body (recorded in the audit trail first)."""
    settings = load_settings(keyset_file=keyset_file, database_url=database_url)
    sealer = load_key_file(settings.require_keyset_file()).sealer
    with connect(settings.database_url.get_secret_value()) as conn:
        entry = QuarantineStore(conn).get(message_id)
        if entry is None:
            raise LoginEtlError(f"no rejected message with id {message_id}")
        body = sealer.open(entry.message_id, entry.body)
        record_recovery(
            conn,
            action="quarantine show",
            field="body",
            value_count=1,
            reason=reason,
            requester=requester,
        )
    # Written as is: a rich console would alter the body (emoji codes, tabs).
    sys.stdout.write(
        f"message id:  {entry.message_id}\n"
        f"rejected at: {entry.rejected_at.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC\n"
        f"reason:      {entry.reason}\n"
        f"body:\n{body}\n"
    )
