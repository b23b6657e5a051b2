"""`login-etl quarantine list|show|replay`: look at rejected messages, and load them again once
the rules or the code are fixed (`login_etl.ops.recovery`, `login_etl.ops.replay`)."""

from __future__ import annotations

import datetime as dt
import sys
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from login_etl.cli import options
from login_etl.cli.app import out, quarantine_app
from login_etl.cli.audit import Reason, Requester
from login_etl.config import load_settings
from login_etl.ops.recovery import Request, list_rejected, show_rejected
from login_etl.ops.replay import REPLAY_BATCH_SIZE, ReplayReport, replay


@quarantine_app.command("list")
def quarantine_list(
    limit: Annotated[int, typer.Option(help="Show at most this many, newest first.")] = 100,
    database_url: options.DatabaseUrl = None,
    database_secret: options.DatabaseSecret = None,
) -> None:
    """Show rejected messages: id, time and reason (never the body)."""
    settings = load_settings(database_url=database_url, database_secret=database_secret)
    listed = list_rejected(settings, limit)
    noun = "message" if listed.total == 1 else "messages"
    title = f"{listed.total} rejected {noun}"
    table = Table("message id", "rejected at (UTC)", "reason", title=title)
    for entry in listed.entries:
        when = entry.rejected_at.astimezone(dt.UTC)
        table.add_row(escape(entry.message_id), f"{when:%Y-%m-%d %H:%M:%S}", escape(entry.reason))
    out.print(table)


@quarantine_app.command("show")
def quarantine_show(
    message_id: Annotated[str, typer.Argument(help="The SQS MessageId of a rejected message.")],
    reason: Reason,
    requester: Requester = None,
    keyset_file: options.KeysetFile = None,
    keyset_secret: options.KeysetSecret = None,
    kms_key_uri: options.KmsKeyUri = None,
    database_url: options.DatabaseUrl = None,
    database_secret: options.DatabaseSecret = None,
) -> None:
    """Decrypt and print one rejected message's body (recorded in the audit trail first)."""
    settings = options.key_settings(
        keyset_file,
        kms_key_uri,
        database_url,
        keyset_secret=keyset_secret,
        database_secret=database_secret,
    )
    shown = show_rejected(settings, message_id, Request(reason, requester))
    # Written as is: a rich console would alter the body (emoji codes, tabs).
    sys.stdout.write(
        f"message id:  {shown.message_id}\n"
        f"rejected at: {shown.rejected_at.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S} UTC\n"
        f"reason:      {shown.reason}\n"
        f"body:\n{shown.body}\n"
    )


@quarantine_app.command("replay")
def quarantine_replay(
    message_ids: Annotated[
        list[str] | None,
        typer.Argument(help="MessageIds of rejected messages to replay.", show_default=False),
    ] = None,
    replay_all: Annotated[
        bool, typer.Option("--all", help="Replay every rejected message.")
    ] = False,
    batch_size: Annotated[
        int, typer.Option(min=1, max=10_000, help="Messages per transaction.")
    ] = REPLAY_BATCH_SIZE,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Report what would load; change nothing.")
    ] = False,
    keyset_file: options.KeysetFile = None,
    keyset_secret: options.KeysetSecret = None,
    kms_key_uri: options.KmsKeyUri = None,
    database_url: options.DatabaseUrl = None,
    database_secret: options.DatabaseSecret = None,
) -> None:
    """Re-validate rejected messages with the current rules and load those that now pass.

    A loaded message leaves the quarantine; one still failing keeps its place, with the reason
    the current rules give. Its MessageId stays in the ledger, so a redelivery loads nothing.
    """
    if bool(message_ids) == replay_all:
        raise typer.BadParameter(
            "give MessageIds or --all (not both)", param_hint="'MESSAGE_IDS' / '--all'"
        )
    settings = options.key_settings(
        keyset_file,
        kms_key_uri,
        database_url,
        keyset_secret=keyset_secret,
        database_secret=database_secret,
    )
    report = replay(
        settings,
        message_ids=None if replay_all else message_ids,
        batch_size=batch_size,
        dry_run=dry_run,
    )
    out.print(replay_summary(report), markup=False)


def replay_summary(report: ReplayReport) -> str:
    """ "N replayed: X loaded, Y still rejected", then the reasons counted (never a body)."""
    still = sum(report.still_rejected.values())
    verb = "would load" if report.dry_run else "loaded"
    lines = [f"{report.replayed} replayed: {report.loaded} {verb}, {still} still rejected"]
    if report.dry_run:
        lines[0] = f"Dry run, nothing changed. {lines[0]}"
    if report.not_found:
        lines.append(f"{report.not_found} of the ids given are not in the quarantine")
    lines.extend(f"  {n} × {reason}" for reason, n in report.still_rejected.most_common())
    return "\n".join(lines)
