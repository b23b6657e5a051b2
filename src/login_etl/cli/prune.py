"""`login-etl prune [--dry-run]`: drop the ledger's partitions older than the queue's retention
plus a margin, and create the ones ahead (`login_etl.ops.prune`)."""

from __future__ import annotations

from typing import Annotated

import typer

from login_etl.cli import options
from login_etl.cli.app import app, out
from login_etl.config import load_settings
from login_etl.ops.prune import prune_ledger

# action → (done, dry run)
_VERBS = {
    "drop": ("dropped", "would drop"),
    "delete": ("deleted old ids from", "would delete old ids from"),
    "truncate": ("emptied", "would empty"),
}


@app.command("prune")
def prune(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would be done; change nothing.")
    ] = False,
    queue_url: options.QueueUrl = None,
    database_url: options.DatabaseUrl = None,
    database_secret: options.DatabaseSecret = None,
    sqs_protocol: options.SqsProtocol = None,
) -> None:
    """Bound the ledger: drop what SQS can no longer redeliver (for cron; `run` does it too)."""
    settings = load_settings(
        queue_url=queue_url,
        database_url=database_url,
        database_secret=database_secret,
        sqs_protocol=sqs_protocol,
    )
    pruned = prune_ledger(settings, dry_run=dry_run)
    out.print(f"Queue retention: {pruned.retention_s} s.", markup=False)
    created = [a.relation for a in pruned.actions if a.action == "create"]
    if created:  # hourly partitions ahead: a count, not a line each
        out.print(
            f"{'would create' if dry_run else 'created'} {len(created)} hourly "
            f"partitions ({created[0]} to {created[-1]})",
            markup=False,
        )
    for act in pruned.actions:
        if act.action == "busy":
            out.print("Another worker or prune is maintaining the ledger: nothing done.")
        elif act.action != "create":
            verb = _VERBS[act.action][dry_run] if act.action in _VERBS else act.action
            detail = f" ({act.detail})" if act.detail else ""
            out.print(f"{verb} {act.relation}{detail}", markup=False)
    if not pruned.actions:
        out.print("Nothing to do.", markup=False)
