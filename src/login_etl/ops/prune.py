"""`login-etl prune [--dry-run]`: the ledger's maintenance on demand (for cron), with the
queue's retention read from SQS. A running worker does the same at most once an hour
(`runtime.ledger`)."""

from __future__ import annotations

from dataclasses import dataclass

from login_etl.adapters.postgres import connect, credentials
from login_etl.adapters.postgres.ledger import LedgerAction, maintain_ledger
from login_etl.adapters.sqs import SqsSource
from login_etl.config import Settings


@dataclass(frozen=True, slots=True)
class Pruned:
    """The queue's retention, and what maintenance did (or, with dry_run, would do)."""

    retention_s: int
    dry_run: bool
    actions: tuple[LedgerAction, ...]


def prune_ledger(settings: Settings, *, dry_run: bool = False) -> Pruned:
    """Create the ledger's partitions ahead, drop those past retention + margin; whenever asked
    (no once-an-hour gate), but never while another caller is at it ('busy')."""
    retention_s = SqsSource.from_settings(settings).retention_seconds()
    with connect(credentials(settings)) as conn:
        actions = maintain_ledger(conn, retention_s, dry_run=dry_run)
    return Pruned(retention_s, dry_run, tuple(actions))


__all__ = ["LedgerAction", "Pruned", "prune_ledger"]
