"""The receiving side of a worker: several pollers feeding one bounded inbox.

SQS hands out at most 10 messages per call and each call is a network round trip, so one poller
caps a worker at a few hundred messages a second. Pollers are threads (the work is waiting on
sockets, which releases the GIL), each long-polling for 10 messages at a time.

Backpressure: a poller reserves room for 10 messages before it asks for them, and a message
keeps its room until it is deleted or released (`done`). So however deep the queue, a worker
holds at most `capacity` messages, and its memory stays flat.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from login_etl.core.model import Message
from login_etl.errors import LoginEtlError, TransientError
from login_etl.logs import log_failure
from login_etl.ports import MAX_RECEIVE, MessageSource
from login_etl.runtime.retry import until_stopped

log = logging.getLogger(__name__)

# How long a poller sleeps before polling again after an empty receive with a zero wait time.
_EMPTY_POLL_PAUSE_S = 0.05


class Inbox:
    """Received messages waiting for a batch, with a bound on messages held by the worker."""

    def __init__(self, capacity: int) -> None:
        self._cond = threading.Condition()
        self._ready: deque[Message] = deque()
        self._capacity = capacity
        self._reserved = 0  # room held by receives under way
        # Messages received and not yet deleted or released, by receipt, with the time their
        # visibility was last set: what the heartbeat extends.
        self._held: dict[str, tuple[Message, float]] = {}

    @property
    def held(self) -> int:
        with self._cond:
            return len(self._held)

    def reserve(self, wanted: int, stop: threading.Event) -> int:
        """Wait for room for `wanted` messages (or the whole capacity, if smaller); 0 once
        `stop` is set. Never less: a receive for fewer than 10 costs the queue a full call for
        a fraction of the messages."""
        wanted = min(wanted, self._capacity)
        with self._cond:
            while not stop.is_set():
                if self._capacity - len(self._held) - self._reserved >= wanted:
                    self._reserved += wanted
                    return wanted
                self._cond.wait(0.2)
            return 0

    def put(self, messages: list[Message], reserved: int) -> None:
        """Add what a receive returned; the unused part of its reservation is given back."""
        with self._cond:
            self._reserved -= reserved
            now = time.monotonic()
            for message in messages:
                self._held[message.receipt] = (message, now)
            self._ready.extend(messages)
            self._cond.notify_all()

    def take(self, limit: int, first_wait_s: float, fill_wait_s: float) -> list[Message]:
        """Up to `limit` messages: wait up to `first_wait_s` for the first, then up to
        `fill_wait_s` more for the batch to fill."""
        batch: list[Message] = []
        deadline = time.monotonic() + first_wait_s
        filling = False
        with self._cond:
            while True:
                while self._ready and len(batch) < limit:
                    batch.append(self._ready.popleft())
                if len(batch) >= limit:
                    return batch
                now = time.monotonic()
                if batch and not filling:
                    filling = True
                    deadline = now + fill_wait_s
                if now >= deadline:
                    return batch
                self._cond.wait(deadline - now)

    def take_all(self) -> list[Message]:
        """Everything waiting (at shutdown, to release it)."""
        with self._cond:
            batch = list(self._ready)
            self._ready.clear()
            return batch

    def done(self, messages: Sequence[Message]) -> None:
        """These held messages were deleted or released: their room is free again."""
        with self._cond:
            for message in messages:
                self._held.pop(message.receipt, None)
            self._cond.notify_all()

    def due(self, older_than_s: float) -> list[Message]:
        """Held messages whose visibility was set more than `older_than_s` ago."""
        now = time.monotonic()
        with self._cond:
            return [m for m, since in self._held.values() if now - since > older_than_s]

    def extended(self, messages: Sequence[Message]) -> None:
        """Their visibility was just extended: restart their clocks (those still held)."""
        now = time.monotonic()
        with self._cond:
            for message in messages:
                if message.receipt in self._held:
                    self._held[message.receipt] = (message, now)


class Pollers:
    """N threads receiving into an Inbox until stopped; the first permanent error stops all."""

    def __init__(
        self,
        source: MessageSource,
        inbox: Inbox,
        *,
        count: int,
        wait_s: int,
        stop: threading.Event,
        on_error: Callable[[BaseException], None],
        on_retry: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._source = source
        self._inbox = inbox
        self._wait_s = wait_s
        self._stop = stop
        self._on_error = on_error
        self._on_retry = on_retry
        self._threads = [
            threading.Thread(target=self._poll, name=f"poller-{i}", daemon=True)
            for i in range(count)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def join(self, timeout_s: float) -> None:
        """Wait for pollers to finish their current receive (at most one long poll)."""
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _poll(self) -> None:
        receive = until_stopped("receive", self._stop, on_error=self._on_retry)
        while not self._stop.is_set():
            reserved = self._inbox.reserve(MAX_RECEIVE, self._stop)
            if not reserved:
                return
            messages: list[Message] = []
            try:
                messages = receive(self._source.receive, self._wait_s, reserved)
            except TransientError:
                return  # retries end only at shutdown
            except LoginEtlError as err:
                self._on_error(err)
                return
            except Exception as err:  # a bug: stop the worker rather than spin
                log_failure(log, err, "poller failed")
                self._on_error(err)
                return
            finally:
                self._inbox.put(messages, reserved)
            if not messages and self._wait_s == 0:
                self._stop.wait(_EMPTY_POLL_PAUSE_S)
