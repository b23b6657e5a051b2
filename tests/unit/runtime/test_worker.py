"""The worker loop and its delivery guarantee, with in-memory doubles of SQS and PostgreSQL."""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any

import pytest

from login_etl.config import Settings, WorkerOptions
from login_etl.core.model import Message
from login_etl.core.transform import Transformer
from login_etl.keys import KeyRing
from login_etl.runtime.committer import Committer
from login_etl.runtime.worker import Worker
from login_etl.testing import MemoryQueue, MemorySink
from tests.support import body


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def queue(clock: Clock) -> MemoryQueue:
    return MemoryQueue(visibility_timeout=30, clock=clock)


def options(**changes: Any) -> WorkerOptions:
    """Settings' defaults (not the environment's), with `changes`."""
    return dataclasses.replace(Settings.model_construct().worker_options(), **changes)


def make_worker(
    queue: MemoryQueue,
    sink: MemorySink,
    keys: KeyRing,
    *,
    transformer: Transformer | None = None,
    backoff_max_s: float = 0.01,
    **changes: Any,
) -> Worker:
    transformer = transformer or Transformer(keys.masker, keys.sealer)
    committer = Committer(sink, transformer, backoff_max_s=backoff_max_s)
    return Worker(queue, committer, options(**{"batch_wait_s": 0, **changes}))


def fill(queue: MemoryQueue, valid: int, invalid: int = 0) -> None:
    for i in range(valid):
        queue.send(body(user_id=f"user-{i}"))
    for _ in range(invalid):
        queue.send('{"foo": "oops_wrong_msg_type", "bar": "123"}')


def test_drains_the_queue_loading_valid_and_rejecting_invalid(
    queue: MemoryQueue, keys: KeyRing
) -> None:
    fill(queue, 25, 2)
    sink = MemorySink()
    stats = make_worker(queue, sink, keys, batch_size=10).run(until_empty=True)
    assert (stats.received, stats.loaded, stats.rejected, stats.skipped) == (27, 25, 2, 0)
    assert len(queue) == 0
    assert sorted(r.user_id for r in sink.rows) == sorted(f"user-{i}" for i in range(25))


def test_a_second_run_finds_nothing_to_do(queue: MemoryQueue, keys: KeyRing) -> None:
    fill(queue, 5)
    sink = MemorySink()
    make_worker(queue, sink, keys).run(until_empty=True)
    stats = make_worker(queue, sink, keys).run(until_empty=True)
    assert (stats.received, stats.loaded) == (0, 0)
    assert len(sink.rows) == 5


def test_a_redelivery_after_a_failed_delete_is_skipped(
    queue: MemoryQueue, clock: Clock, keys: KeyRing
) -> None:
    fill(queue, 12)
    sink = MemorySink()
    queue.fail_deletes = True
    first = make_worker(queue, sink, keys)
    first.process(queue.receive(0) + queue.receive(0))
    assert first.stats.delete_failures == 12
    queue.fail_deletes = False
    clock.now += 31  # visibility timeout passes: SQS redelivers
    stats = make_worker(queue, sink, keys).run(until_empty=True)
    assert (stats.received, stats.loaded, stats.skipped) == (12, 0, 12)
    assert len(sink.rows) == 12
    assert len(queue) == 0


def test_nothing_is_deleted_while_the_database_is_down(queue: MemoryQueue, keys: KeyRing) -> None:
    fill(queue, 5)
    sink = MemorySink(down=True)
    worker = make_worker(queue, sink, keys)
    result: dict[str, object] = {}
    thread = threading.Thread(
        target=lambda: result.setdefault("stats", worker.run(until_empty=True)), daemon=True
    )
    thread.start()
    thread.join(0.3)
    assert thread.is_alive(), "the worker keeps retrying"
    assert queue.deleted == []
    sink.down = False
    thread.join(5)
    assert not thread.is_alive()
    assert len(sink.rows) == 5
    assert len(queue) == 0


def test_shutdown_while_the_database_is_down_releases_the_batch(
    queue: MemoryQueue, keys: KeyRing
) -> None:
    fill(queue, 5)
    sink = MemorySink(down=True)
    worker = make_worker(queue, sink, keys)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    thread.join(0.2)
    worker.stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert queue.deleted == []
    assert queue.backlog().visible == 5, "released at once, not after the visibility timeout"


def test_a_row_the_database_refuses_is_quarantined_alone(queue: MemoryQueue, keys: KeyRing) -> None:
    fill(queue, 6)
    sink = MemorySink(refuse=lambda row: row.user_id == "user-3")
    stats = make_worker(queue, sink, keys).run(until_empty=True)
    assert (stats.loaded, stats.rejected) == (5, 1)
    [rejection] = sink.rejections.values()
    assert rejection.reason == "database: refused the row (SQLSTATE 22001)"
    assert len(queue) == 0


def test_a_transform_bug_quarantines_the_message_instead_of_stopping(
    queue: MemoryQueue, keys: KeyRing
) -> None:
    fill(queue, 3)

    class Broken(Transformer):
        def __call__(self, message: Message):  # type: ignore[no-untyped-def]
            if "user-1" in message.body:
                raise RuntimeError("bug")
            return super().__call__(message)

    sink = MemorySink()
    stats = make_worker(queue, sink, keys, transformer=Broken(keys.masker, keys.sealer)).run(
        until_empty=True
    )
    assert (stats.loaded, stats.rejected) == (2, 1)
    assert (
        next(iter(sink.rejections.values())).reason == "internal: transform failed (RuntimeError)"
    )


def test_batches_respect_the_batch_size(queue: MemoryQueue, keys: KeyRing) -> None:
    fill(queue, 45)
    sink = MemorySink()
    worker = make_worker(queue, sink, keys, batch_size=15, batch_wait_s=60)
    stats = worker.run(until_empty=True)
    assert stats.batches == 3
    assert sink.commits == 3


def test_messages_held_by_a_worker_stay_bounded_however_deep_the_queue(keys: KeyRing) -> None:
    queue = MemoryQueue(visibility_timeout=300)
    fill(queue, 600)
    held: list[int] = []

    class SlowSink(MemorySink):
        def commit(self, outcomes):  # type: ignore[no-untyped-def]
            held.append(queue.backlog().in_flight)
            time.sleep(0.01)
            return super().commit(outcomes)

    sink = SlowSink()
    worker = make_worker(
        queue,
        sink,
        keys,
        batch_size=20,
        batch_wait_s=0.01,
        pollers=4,
        max_in_flight=60,
    )
    stats = worker.run(until_empty=True)
    assert stats.loaded == 600
    assert max(held) <= 60
    assert len(queue) == 0


def test_several_pollers_and_deleters_lose_and_double_nothing(keys: KeyRing) -> None:
    queue = MemoryQueue(visibility_timeout=300)
    fill(queue, 1000, 17)
    sink = MemorySink()
    worker = make_worker(
        queue,
        sink,
        keys,
        batch_size=100,
        batch_wait_s=0.01,
        pollers=8,
    )
    stats = worker.run(until_empty=True)
    assert (stats.loaded, stats.rejected, stats.skipped) == (1000, 17, 0)
    assert sorted(r.user_id for r in sink.rows) == sorted(f"user-{i}" for i in range(1000))
    assert len(queue) == 0
    assert len(queue.deleted) == 1017


def test_a_permanent_source_error_stops_the_worker_with_that_error(keys: KeyRing) -> None:
    from login_etl.errors import SourceError

    class Missing(MemoryQueue):
        def receive(self, wait_seconds: int, max_messages: int = 10) -> list[Message]:
            raise SourceError("SQS receive: AWS.SimpleQueueService.NonExistentQueue")

    worker = make_worker(Missing(), MemorySink(), keys)
    with pytest.raises(SourceError, match="NonExistentQueue"):
        worker.run()


def test_the_heartbeat_keeps_a_slow_batch_hidden_so_it_is_not_delivered_twice(
    keys: KeyRing,
) -> None:
    queue = MemoryQueue(visibility_timeout=1)
    fill(queue, 30)

    class SlowSink(MemorySink):
        def commit(self, outcomes):  # type: ignore[no-untyped-def]
            time.sleep(2.5)  # a commit that outlives the 1 s visibility timeout twice over
            return super().commit(outcomes)

    worker = make_worker(
        queue,
        SlowSink(),
        keys,
        batch_size=30,
        batch_wait_s=0.2,
        pollers=1,
        visibility_timeout_s=1,
    )
    stats = worker.run(until_empty=True)
    assert (stats.received, stats.loaded, stats.skipped, stats.delete_failures) == (30, 30, 0, 0)
    assert len(queue) == 0


def test_a_permanent_error_hands_the_batch_in_hand_back_at_once(
    queue: MemoryQueue, keys: KeyRing
) -> None:
    from login_etl.errors import SinkError

    fill(queue, 12)

    class Broken(MemorySink):
        def commit(self, outcomes):  # type: ignore[no-untyped-def]
            raise SinkError("public.user_logins has no column user_id")

    with pytest.raises(SinkError):
        make_worker(queue, Broken(), keys).run()
    assert queue.backlog().visible == 12, "released, not left hidden until the timeout"
    assert queue.deleted == []


def test_a_run_that_drains_before_the_first_beat_still_does_its_chores(
    queue: MemoryQueue, keys: KeyRing
) -> None:
    """A cron-style `run --until-empty` is often done in less than a heartbeat: its chores (the
    ledger's maintenance) run once when it has drained the queue."""
    fill(queue, 3)
    done: list[str] = []

    def chore() -> None:
        done.append("maintained")

    transformer = Transformer(keys.masker, keys.sealer)
    worker = Worker(
        queue,
        Committer(MemorySink(), transformer, backoff_max_s=0.01),
        options(batch_wait_s=0, visibility_timeout_s=600),
        chores=(chore,),
    )
    stats = worker.run(until_empty=True)
    assert stats.loaded == 3
    assert done == ["maintained"]
