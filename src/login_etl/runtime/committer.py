"""The one batch committer: messages in, outcomes committed, counts out. No queue.

The worker loop (`runtime.worker`) and the Lambda handler both commit through it:

* Each message is transformed into an outcome: a row, or a rejection to quarantine. A transform
  that raises (a bug) quarantines its message instead of failing the batch.
* The outcomes are committed in one transaction (the sink records their ids in the ledger, so a
  redelivered message loads nothing), retried with capped, jittered backoff while the database
  is unreachable, until the caller's stop event is set.
* A row the database refuses anyway is found by committing the batch message by message, and
  quarantined with its SQLSTATE (`core.isolation`).

What happens to the messages afterwards (delete, release, report to Lambda) is the caller's.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Sequence

import tenacity

from login_etl.core.isolation import commit_isolating
from login_etl.core.model import Message, Outcome, Rejected
from login_etl.core.reasons import Kind, row_refused, transform_failed
from login_etl.core.transform import Transformer
from login_etl.errors import RowRefused, TransientError
from login_etl.logs import log_failure
from login_etl.ports import CommitResult, Sink
from login_etl.runtime.metrics import Metrics, NoMetrics
from login_etl.runtime.retry import BACKOFF_MAX_S, until_stopped

log = logging.getLogger(__name__)

_Pair = tuple[Outcome, Message]


def transform_or_quarantine(
    transform: Transformer, message: Message, logger: logging.Logger
) -> Outcome:
    """`transform(message)`; if it raises (a bug), the rejection that quarantines the message,
    replayable: a bug must neither lose a message nor block its batch (or a quarantine replay).
    The failure goes to `logger` by type and frames only, since its text may quote the input."""
    try:
        return transform(message)
    except Exception as err:
        log_failure(logger, err, "transform of message %s failed", message.message_id)
        return transform.reject(message, transform_failed(err))


class Committer:
    """Transforms and commits batches into a sink; counts them in `metrics`."""

    def __init__(
        self,
        sink: Sink,
        transformer: Transformer,
        *,
        metrics: Metrics | None = None,
        backoff_max_s: float = BACKOFF_MAX_S,
    ) -> None:
        self._sink = sink
        self._transform = transformer
        self.metrics = metrics or NoMetrics()
        self._backoff_max_s = backoff_max_s
        self._batch_ids = itertools.count(1)

    def close(self) -> None:
        """Close the sink (its connection)."""
        self._sink.close()

    def retrying(self, what: str, stop: threading.Event) -> tenacity.Retrying:
        """The retry policy: TransientError is retried, with backoff, until `stop` is set."""
        return until_stopped(what, stop, max_wait_s=self._backoff_max_s, on_error=self.count_error)

    def count_error(self, err: BaseException) -> None:
        self.metrics.error(type(err).__name__)

    def commit(self, messages: Sequence[Message], stop: threading.Event) -> CommitResult | None:
        """Transform and commit one batch; None if `stop` was set while the database stayed
        unreachable (nothing of the batch is committed then). Permanent errors propagate."""
        batch_id = next(self._batch_ids)
        started = time.monotonic()
        outcomes = [transform_or_quarantine(self._transform, m, log) for m in messages]
        kinds: list[Kind] = []  # of the rejections, in order: the metric's labels
        for outcome in outcomes:
            if isinstance(outcome, Rejected):
                kinds.append(outcome.kind)
                log.info(
                    "message rejected: %s",
                    outcome.reason,
                    extra={
                        "batch_id": batch_id,
                        "message_id": outcome.message_id,
                        "reason": outcome.reason,
                        "kind": outcome.kind,
                    },
                )
        try:
            result = self._commit(list(zip(outcomes, messages, strict=True)), kinds, stop)
        except TransientError:
            if not stop.is_set():
                raise
            log.warning(
                "stopping before the commit (shutdown or deadline); %d messages not committed",
                len(messages),
                extra={"batch_id": batch_id, "released": len(messages)},
            )
            return None
        seconds = time.monotonic() - started
        self.metrics.batch(len(messages), result, seconds, kinds)
        if messages:
            # Wall clock against SQS's SentTimestamp; a clock behind SQS's would read negative.
            oldest_ms = min(m.sent_timestamp_ms for m in messages)
            self.metrics.oldest_age(max(0.0, time.time() - oldest_ms / 1000))
        log.info(
            "batch %d: %d received, %d loaded, %d rejected, %d redeliveries skipped in %.0f ms",
            batch_id,
            len(messages),
            result.loaded,
            result.rejected,
            result.skipped,
            seconds * 1000,
            extra={
                "batch_id": batch_id,
                "received": len(messages),
                "loaded": result.loaded,
                "rejected": result.rejected,
                "skipped": result.skipped,
                "duration_ms": round(seconds * 1000, 1),
            },
        )
        return result

    def _commit(
        self, pairs: Sequence[_Pair], kinds: list[Kind], stop: threading.Event
    ) -> CommitResult:
        """Commit the outcomes; the kinds of rows refused one by one are added to `kinds`."""

        def commit(some: Sequence[_Pair]) -> CommitResult:
            return self.retrying("commit", stop)(self._sink.commit, [o for o, _ in some])

        def refused(pair: _Pair, err: RowRefused) -> CommitResult:
            outcome, message = pair
            if isinstance(outcome, Rejected):
                raise err  # even the quarantine refused it: a schema problem, not a data one
            rejected = self._transform.reject(message, row_refused(err.sqlstate))
            log.warning(
                "message %s rejected: %s",
                message.message_id,
                rejected.reason,
                extra={
                    "message_id": message.message_id,
                    "reason": rejected.reason,
                    "kind": rejected.kind,
                },
            )
            result = commit([(rejected, message)])
            kinds.append(rejected.kind)
            return result

        def split(err: RowRefused) -> None:
            log.warning("batch refused by the database (%s); committing one by one", err.sqlstate)

        results = commit_isolating(pairs, commit, refused, on_split=split)
        return CommitResult(
            loaded=sum(r.loaded for r in results),
            rejected=sum(r.rejected for r in results),
            skipped=sum(r.skipped for r in results),
        )
