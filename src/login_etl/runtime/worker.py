"""The worker loop: receive → commit (`Committer`) → delete. It owns the queue side of delivery.

    pollers (threads) ──▶ Inbox (bounded) ──▶ Committer.commit ──▶ Deleter (threads)

* A message leaves the queue only after the committer committed its outcome (row or rejection)
  together with its id in the ledger; a redelivered message finds its id and is only deleted.
* While a commit waits out a database outage nothing is deleted, and the heartbeat extends the
  visibility of held messages; on shutdown they are released back to the queue instead.
* A permanent error stops the worker and hands the batch in hand back at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

from login_etl.config import WorkerOptions
from login_etl.core.model import Message
from login_etl.errors import LoginEtlError, TransientError
from login_etl.logs import log_failure
from login_etl.ports import MAX_RECEIVE, CommitResult, MessageSource
from login_etl.runtime.committer import Committer
from login_etl.runtime.intake import Inbox, Pollers
from login_etl.runtime.metrics import Metrics

log = logging.getLogger(__name__)

# How long stopping waits for the heartbeat, and for a chore under way.
HEARTBEAT_JOIN_S = 30.0

# Long poll used by --until-empty: none (pollers pause briefly after an empty receive), so that
# the end of the queue is noticed, and the pollers are joined, within a fraction of a second.
DRAIN_POLL_S = 0
# How long the batcher waits for a first message before checking whether it should stop.
IDLE_CHECK_S = 0.2
# How often the queue-depth gauge is refreshed while the worker runs.
QUEUE_DEPTH_EVERY_S = 15.0


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


class Worker:
    """Drains a source through a committer, batch by batch; `stop` ends it."""

    def __init__(
        self,
        source: MessageSource,
        committer: Committer,
        options: WorkerOptions,
        *,
        stop: threading.Event | None = None,
        on_batch: Callable[[RunStats], None] | None = None,
        chores: Sequence[Callable[[], object]] = (),
    ) -> None:
        self.source = source
        # Periodic work beside the heartbeat (the ledger's maintenance); each decides when it
        # is due, and a failure is logged like the heartbeat's.
        self._chores = tuple(chores)
        self._chores_ran = False
        self.committer = committer
        self.metrics = committer.metrics
        self._options = options
        # Room for the batch being committed, the next one filling, and one receive per poller.
        self._max_in_flight = options.max_in_flight or (
            2 * options.batch_size + options.pollers * MAX_RECEIVE
        )
        self.stop = stop or threading.Event()
        self._on_batch = on_batch
        self._visibility_lock = threading.Lock()
        self.stats = RunStats()

    def commit(self, messages: Sequence[Message]) -> CommitResult | None:
        """Commit one batch (not delete it) and count it; None if shutdown came first, in which
        case the batch was released to the queue."""
        result = self.committer.commit(messages, self.stop)
        if result is None:
            self._release(messages)
            return None
        self.stats.add(len(messages), result, 0)
        if self._on_batch:
            self._on_batch(self.stats)
        return result

    def process(self, messages: Sequence[Message]) -> CommitResult | None:
        """Commit one batch, then delete it, in this thread (for callers with their own loop)."""
        result = self.commit(messages)
        if result is not None:
            self.stats.delete_failures += self.source.delete(messages)
        return result

    def run(self, *, until_empty: bool = False) -> RunStats:
        """Process batches until stopped, or (`until_empty`) until the queue has no visible,
        in-flight or delayed message."""
        self.stats = RunStats()
        options = self._options
        poll_wait_s = DRAIN_POLL_S if until_empty else options.poll_wait_s
        inbox = Inbox(self._max_in_flight)
        errors: list[BaseException] = []

        def fail(err: BaseException) -> None:
            errors.append(err)
            self.stop.set()

        pollers = Pollers(
            self.source,
            inbox,
            count=options.pollers,
            wait_s=poll_wait_s,
            stop=self.stop,
            on_error=fail,
            on_retry=self.committer.count_error,
        )
        deleter = Deleter(self.source, inbox, self.stats, options.pollers, self.metrics)
        drained = False
        pollers.start()
        background = self._start_background(inbox)
        try:
            while not self.stop.is_set():
                batch = inbox.take(options.batch_size, IDLE_CHECK_S, options.batch_wait_s)
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
                    drained = True
                    break
        except TransientError:
            # Retries end only when shutdown is asked for; anything else is a bug to surface.
            if not self.stop.is_set():
                raise
        finally:
            self.stop.set()
            pollers.join(poll_wait_s + 5)
            self._release_leftover(inbox)
            deleter.close()
            # A chore under way (the ledger's maintenance: a lock wait of at most 10 s) ends
            # before the process does, rather than being cut off mid-transaction.
            for thread in background:
                thread.join(HEARTBEAT_JOIN_S)
            self.stats.finished = time.monotonic()
        if errors:
            raise errors[0]
        if drained and not self._chores_ran:
            # A cron-style run is often done before the first beat: it would never maintain
            # the ledger. Once drained, and only then (a setting that stops the run has been
            # reported by the run itself).
            self._beat(self._run_chores)
        return self.stats

    def _release_leftover(self, inbox: Inbox) -> None:
        """Hand back what was received and not yet batched, at shutdown."""
        leftover = inbox.take_all()
        if leftover:
            log.info("releasing %d received messages not yet in a batch", len(leftover))
            self._release(leftover)
            inbox.done(leftover)

    def _release(self, messages: Sequence[Message]) -> None:
        """Visibility 0, after `stop` is set: the lock keeps the heartbeat from hiding them
        again right after (it checks `stop` under the same lock)."""
        with self._visibility_lock:
            self.source.release(messages)

    def _start_background(self, inbox: Inbox) -> tuple[threading.Thread, ...]:
        """The heartbeat, and the chores on a thread of their own: a maintenance waiting for a
        lock must not hold up the heartbeat's visibility extensions."""
        threads = (
            threading.Thread(
                target=self._housekeeping, args=(inbox,), name="heartbeat", daemon=True
            ),
            threading.Thread(target=self._chore_loop, name="chores", daemon=True),
        )
        for thread in threads:
            thread.start()
        return threads

    def _chore_loop(self) -> None:
        """The chores (the ledger's maintenance), tried at every beat; each decides when it is
        due."""
        beat = min(self._options.visibility_timeout_s / 4, QUEUE_DEPTH_EVERY_S)
        while not self.stop.wait(beat):
            self._beat(self._run_chores)

    def _housekeeping(self, inbox: Inbox) -> None:
        """The heartbeat and the queue-depth gauge.

        Messages held longer than half their visibility timeout (a batch whose commit waits
        out a database outage, an inbox slow to drain) get it extended, so that the queue does
        not hand them to another worker meanwhile. The beat is a quarter timeout, so a message
        is extended at the latest three quarters into its visibility.
        """
        timeout = self._options.visibility_timeout_s
        beat = min(timeout / 4, QUEUE_DEPTH_EVERY_S)
        last_depth = time.monotonic()
        while not self.stop.wait(beat):
            self._beat(self._extend_due, inbox, timeout)
            if time.monotonic() - last_depth >= QUEUE_DEPTH_EVERY_S:
                last_depth = time.monotonic()
                self._beat(lambda: self.metrics.backlog(self.source.backlog()))

    def _run_chores(self) -> None:
        self._chores_ran = True
        for chore in self._chores:
            chore()

    @staticmethod
    def _beat(work: Callable[..., object], *args: object) -> None:
        """One piece of the heartbeat; a failure is logged and tried again at the next beat."""
        try:
            work(*args)
        except LoginEtlError as err:  # ours: its message names what failed and holds no value
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
                self.source.extend(due, timeout)
                inbox.extended(due)

    def _drained(self) -> bool:
        backlog = self.committer.retrying("queue attributes", self.stop)(self.source.backlog)
        self.metrics.backlog(backlog)
        return bool(backlog.empty)
