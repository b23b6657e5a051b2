"""The receiving side of a worker (runtime.intake): the bounded Inbox and the Pollers that feed
it, against the in-memory queue."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from login_etl.core.model import Message
from login_etl.errors import SourceError, SourceUnavailable
from login_etl.ports import MAX_RECEIVE
from login_etl.runtime.intake import Inbox, Pollers
from login_etl.testing import MemoryQueue
from tests.support import body

PATIENCE_S = 10.0  # how long to wait for the pollers' threads to get somewhere (never a bound)


def wait_until(condition: Callable[[], bool]) -> None:
    """Wait for the pollers to reach a state; fail (not hang) if they never do."""
    deadline = time.monotonic() + PATIENCE_S
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("the pollers never got there")
        time.sleep(0.005)


class StopAfter(threading.Event):
    """A stop event that sets itself after `checks` looks: ends a wait for room without a clock."""

    def __init__(self, checks: int) -> None:
        super().__init__()
        self.checks = checks

    def is_set(self) -> bool:
        self.checks -= 1
        if self.checks < 0:
            self.set()
        return super().is_set()


def messages(n: int, prefix: str = "m") -> list[Message]:
    return [
        Message(
            message_id=f"{prefix}-{i}", body=body(), sent_timestamp_ms=0, receipt=f"{prefix}{i}"
        )
        for i in range(n)
    ]


def filled_queue(n: int) -> MemoryQueue:
    queue = MemoryQueue(visibility_timeout=3600)
    for _ in range(n):
        queue.send(body())
    return queue


# --- Inbox --------------------------------------------------------------------------------------


def test_room_is_reserved_whole_and_never_beyond_the_capacity() -> None:
    inbox = Inbox(25)
    assert inbox.reserve(10, threading.Event()) == 10
    assert inbox.reserve(10, threading.Event()) == 10
    # 5 left: not enough for 10, and never less than asked; the wait ends with stop.
    assert inbox.reserve(10, StopAfter(2)) == 0
    assert inbox.reserve(5, threading.Event()) == 5
    assert inbox.reserve(1, StopAfter(2)) == 0


def test_a_reservation_bigger_than_the_inbox_is_cut_to_its_capacity() -> None:
    assert Inbox(4).reserve(MAX_RECEIVE, threading.Event()) == 4


def test_held_messages_keep_their_room_until_done() -> None:
    inbox = Inbox(10)
    reserved = inbox.reserve(10, threading.Event())
    received = messages(6)
    inbox.put(received, reserved)  # the 4 not received are given back at once
    assert inbox.held == 6
    assert inbox.reserve(4, threading.Event()) == 4
    inbox.put([], 4)
    assert inbox.reserve(5, StopAfter(2)) == 0, "6 held, 4 free"
    taken = inbox.take(10, first_wait_s=0, fill_wait_s=0)
    assert taken == received
    assert inbox.held == 6, "taken is not done: a batch keeps its room until deleted or released"
    inbox.done(taken[:3])
    assert inbox.held == 3
    assert inbox.reserve(7, threading.Event()) == 7


def test_done_frees_room_for_a_waiting_reservation() -> None:
    inbox = Inbox(10)
    received = messages(10)
    inbox.put(received, inbox.reserve(10, threading.Event()))
    got: list[int] = []
    waiter = threading.Thread(target=lambda: got.append(inbox.reserve(10, threading.Event())))
    waiter.start()
    inbox.done(received)
    waiter.join(PATIENCE_S)
    assert got == [10]


def test_take_returns_at_most_the_limit_in_the_order_received() -> None:
    inbox = Inbox(30)
    received = messages(25)
    inbox.put(received[:10], inbox.reserve(10, threading.Event()))
    inbox.put(received[10:], inbox.reserve(15, threading.Event()))
    assert inbox.take(20, first_wait_s=0, fill_wait_s=0) == received[:20]
    assert inbox.take(20, first_wait_s=0, fill_wait_s=0) == received[20:]
    assert inbox.take(20, first_wait_s=0, fill_wait_s=0) == []


def test_take_all_empties_what_waits_and_leaves_it_held() -> None:
    inbox = Inbox(10)
    received = messages(7)
    inbox.put(received, inbox.reserve(10, threading.Event()))
    assert inbox.take_all() == received
    assert inbox.take_all() == []
    assert inbox.held == 7


def test_due_lists_held_messages_and_extended_keeps_only_held_ones() -> None:
    inbox = Inbox(10)
    received = messages(3)
    inbox.put(received, inbox.reserve(10, threading.Event()))
    assert inbox.due(older_than_s=3600) == []
    assert sorted(m.message_id for m in inbox.due(older_than_s=-1)) == ["m-0", "m-1", "m-2"]
    inbox.done(received[:1])
    inbox.extended(received)  # the one done is not held again
    assert inbox.held == 2
    assert sorted(m.message_id for m in inbox.due(older_than_s=-1)) == ["m-1", "m-2"]


# --- Pollers ------------------------------------------------------------------------------------


def start_pollers(
    source: MemoryQueue,
    inbox: Inbox,
    *,
    count: int = 3,
    on_retry: Callable[[BaseException], None] | None = None,
    stop: threading.Event | None = None,
) -> tuple[Pollers, threading.Event, list[BaseException]]:
    stop = stop or threading.Event()
    errors: list[BaseException] = []

    def fail(err: BaseException) -> None:
        errors.append(err)
        stop.set()

    pollers = Pollers(
        source, inbox, count=count, wait_s=0, stop=stop, on_error=fail, on_retry=on_retry
    )
    pollers.start()
    return pollers, stop, errors


def stop_and_join(pollers: Pollers, stop: threading.Event) -> None:
    stop.set()
    pollers.join(PATIENCE_S)
    assert not any(thread.is_alive() for thread in pollers._threads)


def test_pollers_receive_no_more_than_the_inbox_holds() -> None:
    queue = filled_queue(100)
    inbox = Inbox(25)
    pollers, stop, errors = start_pollers(queue, inbox)
    wait_until(lambda: inbox.held >= 20)
    # The pollers now wait for room: 5 is not enough for a receive of 10.
    taken = inbox.take(100, first_wait_s=0, fill_wait_s=0)
    stop_and_join(pollers, stop)
    assert errors == []
    assert len(taken) == inbox.held == 20
    assert queue.backlog().in_flight == 20, "nothing received beyond the bound"


def test_pollers_drain_the_queue_as_room_is_freed() -> None:
    queue = filled_queue(55)
    inbox = Inbox(20)
    pollers, stop, errors = start_pollers(queue, inbox)
    got: list[Message] = []
    while len(got) < 55:
        batch = inbox.take(10, first_wait_s=PATIENCE_S, fill_wait_s=0)
        assert batch, "the pollers stopped receiving"
        got += batch
        assert queue.delete(batch) == 0
        inbox.done(batch)
    stop_and_join(pollers, stop)
    assert errors == []
    assert len({m.message_id for m in got}) == 55
    assert len(queue) == 0


def test_a_pollers_transient_error_is_retried_and_nothing_is_lost() -> None:
    queue = filled_queue(30)
    queue.unavailable = True
    retried: list[BaseException] = []

    def on_retry(err: BaseException) -> None:
        retried.append(err)
        queue.unavailable = False  # the queue comes back

    inbox = Inbox(100)
    pollers, stop, errors = start_pollers(queue, inbox, count=1, on_retry=on_retry)
    wait_until(lambda: inbox.held == 30)
    stop_and_join(pollers, stop)
    assert errors == [], "a transient error does not stop the worker"
    assert retried
    assert all(isinstance(err, SourceUnavailable) for err in retried)
    assert len({m.message_id for m in inbox.take_all()}) == 30


def test_a_permanent_error_stops_the_pollers_and_gives_back_the_room() -> None:
    class Missing(MemoryQueue):
        def receive(self, wait_seconds: int, max_messages: int = MAX_RECEIVE) -> list[Message]:
            raise SourceError("queue does not exist")

    inbox = Inbox(20)
    pollers, stop, errors = start_pollers(Missing(), inbox, count=2)
    wait_until(stop.is_set)
    pollers.join(PATIENCE_S)
    assert all(isinstance(err, SourceError) for err in errors)
    assert 1 <= len(errors) <= 2
    assert inbox.reserve(20, threading.Event()) == 20, "every reservation was given back"


def test_a_bug_in_a_receive_stops_the_pollers() -> None:
    class Buggy(MemoryQueue):
        def receive(self, wait_seconds: int, max_messages: int = MAX_RECEIVE) -> list[Message]:
            raise KeyError("a bug")

    pollers, stop, errors = start_pollers(Buggy(), Inbox(10), count=1)
    wait_until(stop.is_set)
    pollers.join(PATIENCE_S)
    assert [type(err) for err in errors] == [KeyError]


def test_messages_received_during_shutdown_land_in_the_inbox_for_release() -> None:
    """A long poll under way when shutdown starts still returns its messages: they must reach
    the inbox (which the worker releases), not vanish with the poller's thread."""
    queue = filled_queue(10)
    in_receive = threading.Event()

    stop = threading.Event()

    class SlowQueue(MemoryQueue):
        def receive(self, wait_seconds: int, max_messages: int = MAX_RECEIVE) -> list[Message]:
            in_receive.set()
            stop.wait(PATIENCE_S)  # a long poll, answered as shutdown begins
            return queue.receive(wait_seconds, max_messages)

    inbox = Inbox(10)
    pollers, stop, errors = start_pollers(SlowQueue(), inbox, count=1, stop=stop)
    assert in_receive.wait(PATIENCE_S)
    stop_and_join(pollers, stop)
    assert errors == []
    leftover = inbox.take_all()
    assert len(leftover) == inbox.held == 10
    queue.release(leftover)
    assert queue.backlog().visible == 10, "released: back on the queue for another worker"


def test_stop_ends_pollers_waiting_for_room() -> None:
    queue = filled_queue(50)
    inbox = Inbox(10)
    pollers, stop, _ = start_pollers(queue, inbox)
    wait_until(lambda: inbox.held == 10)
    stop_and_join(pollers, stop)  # they were waiting in reserve(); stop ends that wait
    assert queue.backlog().in_flight == 10
