"""The pipeline: receive → transform → commit → delete. It owns the delivery guarantee.

    pollers (threads) ──▶ Inbox (bounded) ──▶ batch: transform + commit ──▶ deleters (threads)

* A message leaves the queue only after its outcome (row or rejection) is committed, together
  with its id in the ledger, in the batch's one transaction.
* A redelivered message finds its id in the ledger and is only deleted.
* A batch that cannot be committed (PostgreSQL down) is retried with capped, jittered backoff;
  nothing is deleted meanwhile. On shutdown it is released back to the queue instead.
* One bad message never fails its batch: validation rejects it, and a row the database refuses
  anyway is found by committing the batch's messages one by one.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

import tenacity

from login_etl.core.model import Message, Outcome, Rejected
from login_etl.core.reasons import Kind, row_refused, transform_failed
from login_etl.core.transform import Transformer
from login_etl.errors import RowRefused, TransientError
from login_etl.logs import log_failure
from login_etl.ports import MAX_RECEIVE, CommitResult, MessageSource, Sink
from login_etl.runtime.intake import Inbox, Pollers
from login_etl.runtime.metrics import Metrics, NoMetrics
from login_etl.runtime.retry import BACKOFF_MAX_S, until_stopped

log = logging.getLogger(__name__)

# Long poll used by --until-empty: none (pollers pause briefly after an empty receive), so that
# the end of the queue is noticed, and the pollers are joined, within a fraction of a second.
DRAIN_POLL_S = 0
# How long the batcher waits for a first message before checking whether it should stop.
IDLE_CHECK_S = 0.2
# How often the queue-depth gauge is refreshed while the worker runs.
QUEUE_DEPTH_EVERY_S = 15.0
# Pollers per worker: each spends most of its time waiting on the network, so several keep one
# core busy; past a dozen the emulator, not the worker, is the limit (docs/benchmarks.md).
DEFAULT_POLLERS = 8


@dataclass
class RunStats:
    """Counters of one run; `on_batch` observers see them after every batch."""

    received: int = 0
    loaded: int = 0
    rejected: int = 0
    skipped: int = 0  # redeliveries of messages committed before
    delete_failures: int = 0
    batches: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    @property
    def seconds(self) -> float:
        return (self.finished or time.monotonic()) - self.started

    @property
    def rate(self) -> float:
        """Messages received per second."""
        return self.received / self.seconds if self.seconds > 0 else 0.0

    def add(self, received: int, result: CommitResult, delete_failures: int) -> None:
        self.received += received
        self.loaded += result.loaded
        self.rejected += result.rejected
        self.skipped += result.skipped
        self.delete_failures += delete_failures
        self.batches += 1


class Deleter:
    """DeleteMessageBatch calls of 10 in parallel, off the batcher's thread.

    Each finished call frees its messages' room in the inbox, so slow deletes slow the pollers
    (backpressure) rather than letting received messages pile up.
    """

    def __init__(
        self, source: MessageSource, inbox: Inbox, stats: RunStats, workers: int, metrics: Metrics
    ) -> None:
        self._source = source
        self._inbox = inbox
        self._stats = stats
        self._metrics = metrics
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="deleter")

    def submit(self, messages: Sequence[Message]) -> None:
        for start in range(0, len(messages), MAX_RECEIVE):
            chunk = messages[start : start + MAX_RECEIVE]
            future = self._pool.submit(self._source.delete, chunk)
            future.add_done_callback(partial(self._done, chunk))

    def _done(self, chunk: Sequence[Message], future: Future[int]) -> None:
        count = len(chunk)
        error = future.exception()
        if error is not None:
            log.warning("delete of %d messages failed: %s", count, error)
        failed = count if error is not None else future.result()
        if failed:
            self._metrics.deletes_failed(failed)
            with self._lock:
                self._stats.delete_failures += failed
        self._inbox.done(chunk)

    def close(self) -> None:
        """Wait for the deletes under way."""
        self._pool.shutdown(wait=True)


class Pipeline:
    """Drains a source into a sink, batch by batch."""

    def __init__(
        self,
        source: MessageSource,
        sink: Sink,
        transformer: Transformer,
        *,
        batch_size: int = 1000,
        batch_wait_s: float = 0.25,
        poll_wait_s: int = 20,
        pollers: int = DEFAULT_POLLERS,
        max_in_flight: int | None = None,
        stop: threading.Event | None = None,
        on_batch: Callable[[RunStats], None] | None = None,
        backoff_max_s: float = BACKOFF_MAX_S,
        metrics: Metrics | None = None,
        visibility_timeout_s: int | None = None,
    ) -> None:
        self._source = source
        self._sink = sink
        self._transform = transformer
        self._batch_size = batch_size
        self._batch_wait_s = batch_wait_s
        self._poll_wait_s = poll_wait_s
        self._pollers = pollers
        # Room for the batch being committed, the next one filling, and one receive per poller.
        self._max_in_flight = max_in_flight or 2 * batch_size + pollers * MAX_RECEIVE
        self.stop = stop or threading.Event()
        self._on_batch = on_batch
        self._backoff_max_s = backoff_max_s
        self._batch_ids = itertools.count(1)
        self.metrics = metrics or NoMetrics()
        # Known: held messages get their visibility extended before it runs out (heartbeat).
        self._visibility_timeout_s = visibility_timeout_s
        self._visibility_lock = threading.Lock()
        self.stats = RunStats()

    @property
    def source(self) -> MessageSource:
        return self._source

    def _count_error(self, err: BaseException) -> None:
        self.metrics.error(type(err).__name__)

    def _retrying(self, what: str) -> tenacity.Retrying:
        return until_stopped(
            what, self.stop, max_wait_s=self._backoff_max_s, on_error=self._count_error
        )

    # -- committing --------------------------------------------------------------------------

    def _outcome(self, message: Message) -> Outcome:
        try:
            return self._transform(message)
        except Exception as err:
            # A bug must not lose the message or block the queue: quarantine it, replayable.
            log_failure(log, err, "transform of message %s failed", message.message_id)
            return self._transform.reject(message, transform_failed(err))

    def _commit(
        self, outcomes: Sequence[Outcome], messages: Sequence[Message], kinds: list[Kind]
    ) -> CommitResult:
        """Commit the outcomes; the kinds of rows refused one by one are added to `kinds`."""
        try:
            return self._retrying("commit")(self._sink.commit, outcomes)
        except RowRefused as err:
            log.warning("batch refused by the database (%s); committing one by one", err.sqlstate)
        results = [
            self._commit_alone(outcome, message, kinds)
            for outcome, message in zip(outcomes, messages, strict=True)
        ]
        return CommitResult(
            loaded=sum(r.loaded for r in results),
            rejected=sum(r.rejected for r in results),
            skipped=sum(r.skipped for r in results),
        )

    def _commit_alone(self, outcome: Outcome, message: Message, kinds: list[Kind]) -> CommitResult:
        try:
            return self._retrying("commit")(self._sink.commit, [outcome])
        except RowRefused as err:
            if isinstance(outcome, Rejected):
                raise  # even the quarantine refused it: a schema problem, not a data one
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
            result = self._retrying("commit")(self._sink.commit, [rejected])
            kinds.append(rejected.kind)
            return result

    def commit(self, messages: Sequence[Message]) -> CommitResult | None:
        """Transform and commit one batch (not delete it); None if shutdown came first, in
        which case the batch was released to the queue."""
        batch_id = next(self._batch_ids)
        started = time.monotonic()
        outcomes = [self._outcome(m) for m in messages]
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
            result = self._commit(outcomes, messages, kinds)
        except TransientError:
            if not self.stop.is_set():
                raise
            log.warning(
                "stopping before the commit (shutdown or deadline); releasing %d messages",
                len(messages),
                extra={"batch_id": batch_id, "released": len(messages)},
            )
            self._release(messages)
            return None
        seconds = time.monotonic() - started
        self.stats.add(len(messages), result, 0)
        self.metrics.batch(len(messages), result, seconds, kinds)
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
        if self._on_batch:
            self._on_batch(self.stats)
        return result

    def process(self, messages: Sequence[Message]) -> CommitResult | None:
        """Commit one batch, then delete it, in this thread (for callers with their own loop)."""
        result = self.commit(messages)
        if result is not None:
            self.stats.delete_failures += self._source.delete(messages)
        return result

    # -- the loop ----------------------------------------------------------------------------

    def run(self, *, until_empty: bool = False) -> RunStats:
        """Process batches until stopped, or (`until_empty`) until the queue has no visible,
        in-flight or delayed message."""
        self.stats = RunStats()
        poll_wait_s = DRAIN_POLL_S if until_empty else self._poll_wait_s
        inbox = Inbox(self._max_in_flight)
        errors: list[BaseException] = []

        def fail(err: BaseException) -> None:
            errors.append(err)
            self.stop.set()

        pollers = Pollers(
            self._source,
            inbox,
            count=self._pollers,
            wait_s=poll_wait_s,
            stop=self.stop,
            on_error=fail,
            on_retry=self._count_error,
        )
        deleter = Deleter(self._source, inbox, self.stats, self._pollers, self.metrics)
        heartbeat = threading.Thread(
            target=self._housekeeping, args=(inbox,), name="heartbeat", daemon=True
        )
        pollers.start()
        heartbeat.start()
        try:
            while not self.stop.is_set():
                batch = inbox.take(self._batch_size, IDLE_CHECK_S, self._batch_wait_s)
                if batch:
                    try:
                        result = self.commit(batch)
                    except BaseException:
                        # A permanent error stops the worker: hand the batch back at once.
                        self.stop.set()
                        self._release(batch)
                        inbox.done(batch)
                        raise
                    if result is None:
                        inbox.done(batch)
                    else:
                        deleter.submit(batch)
                elif until_empty and inbox.held == 0 and self._drained():
                    break
        except TransientError:
            # Retries end only when shutdown is asked for; anything else is a bug to surface.
            if not self.stop.is_set():
                raise
        finally:
            self.stop.set()
            pollers.join(poll_wait_s + 5)
            leftover = inbox.take_all()
            if leftover:
                log.info("releasing %d received messages not yet in a batch", len(leftover))
                self._release(leftover)
                inbox.done(leftover)
            deleter.close()
            self.stats.finished = time.monotonic()
        if errors:
            raise errors[0]
        return self.stats

    def _release(self, messages: Sequence[Message]) -> None:
        """Visibility 0, after `stop` is set: the lock keeps the heartbeat from hiding them
        again right after (it checks `stop` under the same lock)."""
        with self._visibility_lock:
            self._source.release(messages)

    def _housekeeping(self, inbox: Inbox) -> None:
        """The heartbeat, and the queue-depth gauge.

        Messages held longer than half their visibility timeout (a batch whose commit waits
        out a database outage, an inbox slow to drain) get it extended, so that the queue does
        not hand them to another worker meanwhile. The beat is a quarter timeout, so a message
        is extended at the latest three quarters into its visibility.
        """
        timeout = self._visibility_timeout_s
        beat = min(timeout / 4, QUEUE_DEPTH_EVERY_S) if timeout else QUEUE_DEPTH_EVERY_S
        last_depth = time.monotonic()
        while not self.stop.wait(beat):
            try:
                if timeout:
                    self._extend_due(inbox, timeout)
                if time.monotonic() - last_depth >= QUEUE_DEPTH_EVERY_S:
                    last_depth = time.monotonic()
                    self.metrics.backlog(self._source.backlog())
            except TransientError as err:
                log.warning("heartbeat: %s; trying again at the next beat", err)
            except Exception as err:
                log_failure(log, err, "heartbeat failed; trying again at the next beat")

    def _extend_due(self, inbox: Inbox, timeout: int) -> None:
        with self._visibility_lock:
            if self.stop.is_set():
                return
            due = inbox.due(timeout / 2)
            if due:
                log.info(
                    "extending the visibility of %d held messages",
                    len(due),
                    extra={"extended": len(due)},
                )
                self._source.extend(due, timeout)
                inbox.extended(due)

    def _drained(self) -> bool:
        backlog = self._retrying("queue attributes")(self._source.backlog)
        self.metrics.backlog(backlog)
        return bool(backlog.empty)
