"""AWS Lambda entry point: an SQS event source mapping (with ReportBatchItemFailures) → PostgreSQL.

Handler: `login_etl.lambda_handler.handler`. It calls the worker's own batch committer, built by
the same wiring (`runtime.wiring.build_committer`: key file, `PostgresSink`, `Committer`); it
has no queue side, because Lambda receives the messages and deletes, once the handler returns,
every record that the response does not list in `batchItemFailures`. So the response lists
exactly the records whose outcome is not committed, and the delivery guarantee is the worker's:

* Each record becomes a `Message` (`core.sqs_record`, as in the worker); the whole batch is
  committed in one transaction together with its ids in the ledger. Invalid bodies are outcomes,
  not failures: they are quarantined in `login_etl.rejected_messages`, and a row the database
  refuses is quarantined with its SQLSTATE.
* A redelivered record (same messageId) finds its id in the ledger and loads nothing.
* PostgreSQL unreachable: the commit is retried for at most `RETRY_BUDGET_S`, then every record
  is reported failed and SQS redelivers it after its visibility timeout. The queue waits out an
  outage for free; a Lambda would be billed for every second of backoff and could time out.
* A permanent error (schema mismatch, refused credentials, a bad key file) is raised: the
  invocation fails, every record returns to the queue, and the error shows in the function's
  logs and metrics instead of being retried in silence.

Settings are the worker's `LOGIN_ETL_*` variables (`LOGIN_ETL_DATABASE_URL` or
`LOGIN_ETL_DATABASE_SECRET`, `LOGIN_ETL_KEYSET_FILE` or `LOGIN_ETL_KEYSET_SECRET`,
`LOGIN_ETL_LOG_LEVEL`); the queue settings are not used. The log level is login_etl's: the
runtime's handlers and root level (AWS_LAMBDA_LOG_LEVEL) are kept, and other libraries log only
from WARNING up even when that level is DEBUG (`logs.configure_logging`). The key ring and the
sink (with its connection) are built on the first invocation and kept for the life of the
execution environment; the schema is migrated once per cold start.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypedDict

from login_etl.adapters.postgres.connection import CONNECT_TIMEOUT_S
from login_etl.adapters.postgres.ledger import MAX_RETENTION_S
from login_etl.config import load_settings
from login_etl.core.model import Message
from login_etl.core.sqs_record import FALLBACK_WARNING, parse_record
from login_etl.errors import LoginEtlError, TransientError, UnreadableRecord
from login_etl.logs import configure_logging, log_failure
from login_etl.ports import CommitResult
from login_etl.runtime.committer import Committer
from login_etl.runtime.ledger import LedgerKeeper
from login_etl.runtime.wiring import build_committer, database

log = logging.getLogger(__name__)

# How long one invocation keeps retrying an unreachable database (cold-start migration and commit
# together) before it hands the batch back to SQS. Long enough for one retry on a fresh
# connection, which is what a connection dropped while the environment was frozen needs; short
# enough that an outage costs little Lambda time.
RETRY_BUDGET_S = 2.0
# Time kept back from the invocation's deadline: once the budget is spent, the attempt under way
# may still take a connect timeout, and the response must be returned before Lambda's timeout.
DEADLINE_RESERVE_S = CONNECT_TIMEOUT_S + 2.0
# Time the ledger's maintenance needs left in the invocation: a connect, the function's
# lock_timeout (10 s, migration 0005) and its work.
MAINTENANCE_RESERVE_S = CONNECT_TIMEOUT_S + 10.0 + 5.0


class ItemFailure(TypedDict):
    """One record for SQS to redeliver, named by its messageId."""

    itemIdentifier: str


class BatchResponse(TypedDict):
    """The partial batch response Lambda reads when ReportBatchItemFailures is enabled."""

    batchItemFailures: list[ItemFailure]


class _Cache:
    """The execution environment's committer, built on the first invocation that needs it.

    Not built at import time: a cold start whose database is down must still answer with a
    partial batch response (an import error would fail the invocation), and the next invocation
    tries again.
    """

    def __init__(self) -> None:
        self._committer: Committer | None = None
        self._keeper: LedgerKeeper | None = None
        self._lock = threading.Lock()  # Lambda runs one invocation at a time; this is cheap

    def get(self, stop: threading.Event) -> Committer:
        """The committer; on a cold start, read settings and keys and migrate (retried until
        `stop`). Raises TransientError if the database stays unreachable; nothing is cached then."""
        with self._lock:
            if self._committer is None:
                settings = load_settings()
                # Before the key file is unwrapped: botocore at DEBUG would log KMS's answers,
                # the data keys. The handlers and the root's level (AWS_LAMBDA_LOG_LEVEL) stay
                # Lambda's; login_etl gets LOGIN_ETL_LOG_LEVEL (the count line is INFO, and the
                # root passes WARNING and up unless told otherwise), other libraries WARNING.
                configure_logging(settings.log_level, keep_handlers=True)
                self._committer = build_committer(settings, stop)
                # The Lambda does not know its queue, so the ledger keeps ids for the longest
                # retention SQS allows: always safe, at the cost of a few more days of ids.
                self._keeper = LedgerKeeper(database(settings), lambda: MAX_RETENTION_S)
                log.info("cold start: key file loaded, schema migrated")
            return self._committer

    def maintain_ledger(self, context: object) -> None:
        """The worker's hourly ledger housekeeping (`runtime/ledger.py`), from a warm Lambda: a
        Lambda-only deployment needs no `prune` from cron. Only with MAINTENANCE_RESERVE_S of
        the invocation left (it may wait that long for a lock); a failure is logged, not
        raised: the batch is committed, and partitions are made 48 hours ahead."""
        keeper = self._keeper
        left_s = _remaining_s(context)
        if keeper is None or left_s < MAINTENANCE_RESERVE_S:
            return
        try:
            # Cancelled (statement_timeout) in time to return the batch's response.
            budget_s = left_s - DEADLINE_RESERVE_S - CONNECT_TIMEOUT_S
            keeper(budget_s=budget_s if math.isfinite(budget_s) else None)
        except Exception as err:  # housekeeping never fails a committed batch
            log_failure(
                log,
                err,
                "ledger maintenance failed; tried again in an hour",
                level=logging.WARNING,
            )

    def reset(self) -> None:
        with self._lock:
            if self._committer is not None:
                self._committer.close()
            self._committer = None
            self._keeper = None


_cache = _Cache()


def reset() -> None:
    """Close the cached connection and forget the committer, as a new execution environment would
    start: for tests, which change the settings between invocations."""
    _cache.reset()


# -- committing --------------------------------------------------------------------------------


def _remaining_s(context: object) -> float:
    """Seconds left in the invocation (unbounded for a caller without Lambda's context)."""
    remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
    return float(remaining_ms()) / 1000 if callable(remaining_ms) else float("inf")


def _retry_budget_s(context: object) -> float:
    """RETRY_BUDGET_S, less if the invocation's deadline is near (then 0: a single attempt)."""
    left_s = _remaining_s(context) - DEADLINE_RESERVE_S
    return max(0.0, min(RETRY_BUDGET_S, left_s))


@contextmanager
def _stop_after(seconds: float) -> Iterator[threading.Event]:
    """An event that sets itself after `seconds`.

    It is the commit's stop event: `retry.until_stopped` retries a TransientError until its
    event is set (then re-raises; with the event set from the start, after one attempt), and
    wakes from its backoff sleep at once when it is. So the retries last at most `seconds` plus
    the attempt under way, and `Committer.commit` then returns None instead of raising.
    """
    stop = threading.Event()
    if seconds <= 0:
        stop.set()
        yield stop
        return
    timer = threading.Timer(seconds, stop.set)
    timer.daemon = True
    timer.start()
    try:
        yield stop
    finally:
        timer.cancel()


def _commit(messages: Sequence[Message], budget_s: float) -> CommitResult | None:
    """Commit the batch with the worker's committer; None if the database stayed unreachable.
    The committer (connection, keys) outlives the invocation; the stop event is this one's."""
    with _stop_after(budget_s) as stop:
        try:
            committer = _cache.get(stop)
        except TransientError as err:
            log.warning("cold start: database unreachable (%s)", err)
            return None
        return committer.commit(messages, stop)


def _warn_fallback(message_id: str, source: str) -> None:
    log.warning(FALLBACK_WARNING, message_id, source)


def handler(event: Mapping[str, Any], context: object) -> BatchResponse:
    """Load one SQS batch; report the records whose outcome was not committed.

    Raises for a PermanentError (every record returns to the queue), for an event that is not an
    SQS event, and, after committing the rest, for a record without a messageId: such a record
    cannot be named in the response, and only failing the invocation keeps it from being
    deleted unprocessed (the records already committed are only skipped when they come back).
    """
    started = time.monotonic()
    records = event.get("Records") if isinstance(event, Mapping) else None
    if not isinstance(records, list):
        raise ValueError("not an SQS event: it has no Records list")

    now_ms = int(time.time() * 1000)
    messages: list[Message] = []
    ids: list[str] = []  # every record's messageId, in record order
    failed: set[str] = set()
    nameless = 0
    for index, record in enumerate(records):
        try:
            message = parse_record(record, now_ms=now_ms, on_fallback=_warn_fallback)
        except UnreadableRecord as err:
            if err.message_id is None:
                nameless += 1
                log.warning("record %d: %s; failing the invocation", index, err.why)
            else:
                ids.append(err.message_id)
                failed.add(err.message_id)
                log.warning("message %s: %s; reported as failed", err.message_id, err.why)
        else:
            ids.append(message.message_id)
            messages.append(message)

    try:
        result = _commit(messages, _retry_budget_s(context)) if messages else None
    except Exception as err:
        # Lambda logs the traceback; this keeps the one count line per invocation. Our errors'
        # messages name settings, tables and SQLSTATEs, never values; others get their type only.
        detail = str(err) if isinstance(err, LoginEtlError) else type(err).__name__
        log.error(
            "invocation: %d records, failed: %s",
            len(records),
            detail,
            extra={"records": len(records), "error": type(err).__name__},
        )
        raise
    if messages and result is None:
        log.warning("database unavailable: %d messages handed back to SQS", len(messages))
        failed.update(m.message_id for m in messages)
    # In record order (what FIFO queues expect); a messageId listed twice is one record.
    failures = [message_id for message_id in dict.fromkeys(ids) if message_id in failed]

    counts = {
        "records": len(records),
        "loaded": result.loaded if result else 0,
        "rejected": result.rejected if result else 0,
        "skipped": result.skipped if result else 0,
        "failed": len(failures),
        "duration_ms": round((time.monotonic() - started) * 1000, 1),
    }
    log.info(
        "invocation: %(records)d records, %(loaded)d loaded, %(rejected)d rejected, "
        "%(skipped)d redeliveries skipped, %(failed)d reported failed in %(duration_ms).0f ms",
        counts,
        extra=counts,
    )
    if result is not None:
        _cache.maintain_ledger(context)
    if nameless:
        raise ValueError(f"{nameless} of {len(records)} records have no messageId")
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failures]}
