"""`login-etl quarantine replay`: re-validate rejected messages under the current rules (after a
fix or a rule change) and load those that now pass.

Batches are read with a keyset cursor on message_id, so a message that still fails is read once
per replay, and each batch is one transaction (see `QuarantineStore.replay_batch`). A replayed
message is masked exactly as `run` would mask it, so its tokens match those of other rows.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from login_etl.adapters.postgres import QuarantineEntry, QuarantineStore, connect, credentials
from login_etl.config import Settings
from login_etl.core.masking import Masker, TinkSealer
from login_etl.core.model import Message, Outcome
from login_etl.core.timestamps import epoch_ms
from login_etl.core.transform import Transformer
from login_etl.keys import load_keys
from login_etl.runtime.committer import transform_or_quarantine

log = logging.getLogger(__name__)

# Messages per transaction: their rows stay locked until it commits, so a batch is kept short
# (well under a second of decrypting and masking), yet large enough to amortise round trips.
REPLAY_BATCH_SIZE = 500


@dataclass
class ReplayReport:
    """What a replay did: counts and the reasons of those still rejected (never a body)."""

    dry_run: bool
    replayed: int = 0
    loaded: int = 0
    still_rejected: Counter[str] = field(default_factory=Counter)
    # Ids asked for that were not in the quarantine (or were being replayed by another process).
    not_found: int = 0


def _sent_ms(entry: QuarantineEntry) -> int:
    # create_date is the UTC date the message was sent; rows quarantined without SentTimestamp
    # fall back to when they were rejected.
    return epoch_ms(entry.sent_at or entry.rejected_at)


def replay_quarantine(
    store: QuarantineStore,
    masker: Masker,
    sealer: TinkSealer,
    *,
    message_ids: Sequence[str] | None = None,
    batch_size: int = REPLAY_BATCH_SIZE,
    dry_run: bool = False,
) -> ReplayReport:
    """Replay the given rejected messages (every one if `message_ids` is None).

    RevealError if a stored body does not decrypt with this key file: the batch in hand is
    rolled back, batches before it stay committed (replaying again is harmless).
    """
    transformer = Transformer(masker, sealer)

    def transform(entry: QuarantineEntry) -> Outcome:
        message = Message(
            entry.message_id, sealer.open(entry.message_id, entry.body), _sent_ms(entry)
        )
        return transform_or_quarantine(transformer, message, log)  # a bug: stays rejected

    wanted = None if message_ids is None else sorted(set(message_ids))
    report = ReplayReport(dry_run=dry_run)
    seen: set[str] = set()
    after = ""
    while True:
        batch = store.replay_batch(
            transform, after=after, limit=batch_size, message_ids=wanted, dry_run=dry_run
        )
        if not batch.message_ids:
            break
        report.replayed += len(batch.message_ids)
        report.loaded += batch.loaded
        report.still_rejected.update(batch.still_rejected)
        seen.update(batch.message_ids)
        log.info(
            "replayed %d rejected messages: %d loaded",
            len(batch.message_ids),
            batch.loaded,
            extra={"replayed": len(batch.message_ids), "loaded": batch.loaded, "dry_run": dry_run},
        )
        after = batch.message_ids[-1]
    if wanted is not None:
        report.not_found = len(set(wanted) - seen)
    return report


def replay(
    settings: Settings,
    *,
    message_ids: Sequence[str] | None,
    batch_size: int = REPLAY_BATCH_SIZE,
    dry_run: bool = False,
) -> ReplayReport:
    """`login-etl quarantine replay`: `replay_quarantine` with the keys and database of
    `settings`."""
    keys = load_keys(settings)
    with connect(credentials(settings)) as conn:
        return replay_quarantine(
            QuarantineStore(conn),
            keys.masker,
            keys.sealer,
            message_ids=message_ids,
            batch_size=batch_size,
            dry_run=dry_run,
        )
