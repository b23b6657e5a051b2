"""AWS Lambda entry point: an SQS event source mapping (with ReportBatchItemFailures) → PostgreSQL.

Handler: `login_etl.lambda_handler.handler`. It runs the worker's own code path (key file →
`Transformer`, `PostgresSink`, `Pipeline.commit`); only the queue side differs, because Lambda
receives the messages and deletes, once the handler returns, every record that the response does
not list in `batchItemFailures`. So the response lists exactly the records whose outcome is not
committed, and the delivery guarantee is the worker's:

* Each record becomes a `Message`; the whole batch is committed in one transaction together with
  its ids in the ledger. Invalid bodies are outcomes, not failures: they are quarantined in
  `login_etl.rejected_messages`, and a row the database refuses is quarantined with its SQLSTATE.
* A redelivered record (same messageId) finds its id in the ledger and loads nothing.
* PostgreSQL unreachable: the commit is retried for at most `RETRY_BUDGET_S`, then every record
  is reported failed and SQS redelivers it after its visibility timeout. The queue waits out an
  outage for free; a Lambda would be billed for every second of backoff and could time out.
* A permanent error (schema mismatch, refused credentials, a bad key file) is raised: the
  invocation fails, every record returns to the queue, and the error shows in the function's
  logs and metrics instead of being retried in silence.

Settings are the worker's `LOGIN_ETL_*` variables (`LOGIN_ETL_DATABASE_URL`,
`LOGIN_ETL_KEYSET_FILE`, `LOGIN_ETL_LOG_LEVEL`); the queue settings are not used. The log level
is login_etl's: the runtime's handlers and root level (AWS_LAMBDA_LOG_LEVEL) are kept, and other
libraries log only from WARNING up even when that level is DEBUG (`logs.configure_logging`).
The key ring and the sink (with its connection) are built on the first invocation and kept for
the life of the execution environment; the schema is migrated once per cold start.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypedDict

from login_etl.adapters.postgres import PostgresSink
from login_etl.adapters.postgres.connection import CONNECT_TIMEOUT_S
from login_etl.config import load_settings
from login_etl.core.model import Message
from login_etl.core.transform import Transformer
from login_etl.errors import LoginEtlError, TransientError
from login_etl.keys import load_keys
from login_etl.logs import configure_logging
from login_etl.ports import MAX_RECEIVE, Backlog, CommitResult
from login_etl.runtime.pipeline import Pipeline
from login_etl.runtime.wiring import migrate_when_reachable

log = logging.getLogger(__name__)

# How long one invocation keeps retrying an unreachable database (cold-start migration and commit
# together) before it hands the batch back to SQS. Long enough for one retry on a fresh
# connection, which is what a connection dropped while the environment was frozen needs; short
# enough that an outage costs little Lambda time.
RETRY_BUDGET_S = 2.0
# Time kept back from the invocation's deadline: once the budget is spent, the attempt under way
# may still take a connect timeout, and the response must be returned before Lambda's timeout.
DEADLINE_RESERVE_S = CONNECT_TIMEOUT_S + 2.0
# The last millisecond Python's `date` (and so `create_date`) can hold: 9999-12-31T23:59:59.999Z.
_MAX_TIMESTAMP_MS = 253_402_300_799_999
_MAX_TIMESTAMP_DIGITS = len(str(_MAX_TIMESTAMP_MS))


class ItemFailure(TypedDict):
    """One record for SQS to redeliver, named by its messageId."""

    itemIdentifier: str


class BatchResponse(TypedDict):
    """The partial batch response Lambda reads when ReportBatchItemFailures is enabled."""

    batchItemFailures: list[ItemFailure]


class LambdaOwnsTheQueue:
    """The pipeline's source, inert: Lambda receives the records and deletes the successes.

    `release` does nothing either: a record reported failed becomes visible again after its
    visibility timeout, which is the backoff an outage should get.
    """

    def receive(self, wait_seconds: int, max_messages: int = MAX_RECEIVE) -> list[Message]:
        return []

    def delete(self, messages: Sequence[Message]) -> int:
        return 0

    def release(self, messages: Sequence[Message]) -> None:
        return None

    def extend(self, messages: Sequence[Message], seconds: int) -> None:
        # Lambda requires the queue's visibility timeout to be at least the function's timeout:
        # no record can become visible again while an invocation holds it.
        return None

    def backlog(self) -> Backlog:
        return Backlog(visible=0, in_flight=0, delayed=0)


@dataclass(frozen=True)
class _Runtime:
    """What outlives an invocation: built once per execution environment."""

    transformer: Transformer
    sink: PostgresSink


class _Cache:
    """The execution environment's runtime, built on the first invocation that needs it.

    Not built at import time: a cold start whose database is down must still answer with a
    partial batch response (an import error would fail the invocation), and the next invocation
    tries again.
    """

    def __init__(self) -> None:
        self._runtime: _Runtime | None = None
        self._lock = threading.Lock()  # Lambda runs one invocation at a time; this is cheap

    def get(self, stop: threading.Event) -> _Runtime:
        """The runtime; on a cold start, read settings and keys and migrate (retried until
        `stop`). Raises TransientError if the database stays unreachable; nothing is cached then."""
        with self._lock:
            if self._runtime is None:
                settings = load_settings()
                # Before the key file is unwrapped: botocore at DEBUG would log KMS's answers,
                # the data keys. The handlers and the root's level (AWS_LAMBDA_LOG_LEVEL) stay
                # Lambda's; login_etl gets LOGIN_ETL_LOG_LEVEL (the count line is INFO, and the
                # root passes WARNING and up unless told otherwise), other libraries WARNING.
                configure_logging(settings.log_level, keep_handlers=True)
                keys = load_keys(settings)
                database_url = settings.database_url.get_secret_value()
                migrate_when_reachable(database_url, stop)  # service.migrate_database, retried
                self._runtime = _Runtime(
                    transformer=Transformer(keys.masker, keys.sealer),
                    sink=PostgresSink(database_url),
                )
                log.info("cold start: key file loaded, schema migrated")
            return self._runtime

    def reset(self) -> None:
        with self._lock:
            if self._runtime is not None:
                self._runtime.sink.close()
            self._runtime = None


_cache = _Cache()


def reset() -> None:
    """Close the cached connection and forget the runtime, as a new execution environment would
    start: for tests, which change the settings between invocations."""
    _cache.reset()


# -- records → messages ------------------------------------------------------------------------


class _Unreadable(Exception):
    """A record that cannot become a Message; `message_id` is None when it has none to report."""

    def __init__(self, message_id: str | None, why: str) -> None:
        super().__init__(why)
        self.message_id = message_id
        self.why = why


def _timestamp_ms(value: object) -> int | None:
    """A millisecond Unix timestamp as SQS writes it (a string of digits), if it is one that
    `create_date` can hold; else None."""
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit() and len(value) <= _MAX_TIMESTAMP_DIGITS):
            return None
        ms = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        ms = value
    else:
        return None
    return ms if 0 <= ms <= _MAX_TIMESTAMP_MS else None


def _to_message(record: object, now_ms: int) -> Message:
    """The record as the pipeline's Message; `_Unreadable` if it has no id or no body.

    A missing or unusable SentTimestamp is not fatal: `create_date` then comes from when SQS
    first handed the message out, or failing that from now, either of which is at most the
    visibility timeouts of the retries away from the send. Losing the login over it would be
    worse.
    """
    if not isinstance(record, Mapping):
        raise _Unreadable(None, "record is not an object")
    message_id = record.get("messageId")
    if not isinstance(message_id, str) or not message_id:
        raise _Unreadable(None, "record has no messageId")
    body = record.get("body")
    if not isinstance(body, str):
        raise _Unreadable(message_id, "record has no body")
    attributes = record.get("attributes")
    if not isinstance(attributes, Mapping):
        attributes = {}
    sent_ms = _timestamp_ms(attributes.get("SentTimestamp"))
    if sent_ms is None:
        first_received_ms = _timestamp_ms(attributes.get("ApproximateFirstReceiveTimestamp"))
        sent_ms = now_ms if first_received_ms is None else first_received_ms
        log.warning(
            "message %s: no usable SentTimestamp; create_date taken from %s",
            message_id,
            "now" if first_received_ms is None else "ApproximateFirstReceiveTimestamp",
        )
    receipt = record.get("receiptHandle")
    return Message(message_id, body, sent_ms, receipt if isinstance(receipt, str) else "")


# -- committing --------------------------------------------------------------------------------


def _retry_budget_s(context: object) -> float:
    """RETRY_BUDGET_S, less if the invocation's deadline is near (then 0: a single attempt)."""
    remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(remaining_ms):
        return RETRY_BUDGET_S
    left_s = float(remaining_ms()) / 1000 - DEADLINE_RESERVE_S
    return max(0.0, min(RETRY_BUDGET_S, left_s))


@contextmanager
def _stop_after(seconds: float) -> Iterator[threading.Event]:
    """An event that sets itself after `seconds`.

    It is the pipeline's stop event: `retry.until_stopped` retries a TransientError until its
    event is set (then re-raises; with the event set from the start, after one attempt), and
    wakes from its backoff sleep at once when it is. So the retries last at most `seconds` plus
    the attempt under way, and `Pipeline.commit` then returns None instead of raising.
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
    """Commit the batch with the worker's pipeline; None if the database stayed unreachable."""
    with _stop_after(budget_s) as stop:
        try:
            runtime = _cache.get(stop)
        except TransientError as err:
            log.warning("cold start: database unreachable (%s)", err)
            return None
        # A Pipeline is cheap to build: a fresh one per invocation gets a fresh stop event and
        # per-invocation stats, while the sink (connection) and transformer (keys) are reused.
        pipeline = Pipeline(LambdaOwnsTheQueue(), runtime.sink, runtime.transformer, stop=stop)
        return pipeline.commit(messages)


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
            message = _to_message(record, now_ms)
        except _Unreadable as err:
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
    if nameless:
        raise ValueError(f"{nameless} of {len(records)} records have no messageId")
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failures]}
