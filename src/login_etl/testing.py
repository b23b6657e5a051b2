"""In-memory test doubles for the ports (`login_etl.ports`), shipped so that users' tests can use
them too.

`MemoryQueue` keeps SQS's semantics that matter to delivery: a received message is hidden until
its visibility timeout passes, then redelivered with a new receipt; only the latest receipt
deletes it. `MemorySink` keeps the ledger semantics of the PostgreSQL sink.
"""

from __future__ import annotations

import functools
import itertools
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from login_etl.core.model import Loaded, LoginRow, Message, Outcome, Rejected
from login_etl.errors import RowRefused, SinkUnavailable, SourceUnavailable
from login_etl.ports import Backlog, CommitResult

T = TypeVar("T")


def _locked(method: Callable[..., T]) -> Callable[..., T]:
    @functools.wraps(method)
    def wrapper(self: MemoryQueue, *args: Any, **kwargs: Any) -> T:
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper


@dataclass
class _Entry:
    message_id: str
    body: str
    sent_ms: int
    receipt: str = ""
    visible_at: float = 0.0
    receive_count: int = 0


class MemoryQueue:
    """A queue with visibility timeouts, driven by a clock the test controls."""

    def __init__(
        self, visibility_timeout: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._entries: dict[str, _Entry] = {}
        self._receipts = itertools.count(1)
        self.visibility_timeout = visibility_timeout
        self.clock = clock
        self.fail_deletes = False
        self.unavailable = False
        self.deleted: list[str] = []
        self._lock = threading.Lock()  # pollers and deleters call in from several threads

    @_locked
    def send(self, body: str, sent_ms: int | None = None) -> str:
        message_id = str(uuid.uuid4())
        self._entries[message_id] = _Entry(
            message_id, body, sent_ms if sent_ms is not None else int(time.time() * 1000)
        )
        return message_id

    def receive(self, wait_seconds: int, max_messages: int = 10) -> list[Message]:
        with self._lock:
            messages = self._receive(max_messages)
        if not messages and wait_seconds:
            time.sleep(0.01)  # a token long poll, so that idle pollers do not spin
        return messages

    def _receive(self, max_messages: int) -> list[Message]:
        if self.unavailable:
            raise SourceUnavailable("queue unavailable (test double)")
        now = self.clock()
        out: list[Message] = []
        for entry in self._entries.values():
            if len(out) == max_messages:
                break
            if entry.visible_at <= now:
                entry.receipt = f"r{next(self._receipts)}"
                entry.visible_at = now + self.visibility_timeout
                entry.receive_count += 1
                out.append(Message(entry.message_id, entry.body, entry.sent_ms, entry.receipt))
        return out

    @_locked
    def delete(self, messages: Sequence[Message]) -> int:
        if self.fail_deletes:
            return len(messages)
        failed = 0
        for message in messages:
            entry = self._entries.get(message.message_id)
            if entry is not None and entry.receipt == message.receipt:
                del self._entries[message.message_id]
                self.deleted.append(message.message_id)
            elif entry is not None:
                failed += 1  # a stale receipt: SQS would not delete with it either
        return failed

    @_locked
    def release(self, messages: Sequence[Message]) -> None:
        for message in messages:
            entry = self._entries.get(message.message_id)
            if entry is not None and entry.receipt == message.receipt:
                entry.visible_at = 0.0

    @_locked
    def extend(self, messages: Sequence[Message], seconds: int) -> None:
        for message in messages:
            entry = self._entries.get(message.message_id)
            if entry is not None and entry.receipt == message.receipt:
                entry.visible_at = self.clock() + seconds

    @_locked
    def backlog(self) -> Backlog:
        now = self.clock()
        visible = sum(1 for e in self._entries.values() if e.visible_at <= now)
        return Backlog(visible=visible, in_flight=len(self._entries) - visible, delayed=0)

    def __len__(self) -> int:
        return len(self._entries)


@dataclass
class MemorySink:
    """The PostgreSQL sink's contract in memory: one ledger, all-or-nothing commits."""

    rows: list[LoginRow] = field(default_factory=list)
    rejections: dict[str, Rejected] = field(default_factory=dict)
    ledger: set[str] = field(default_factory=set)
    down: bool = False
    commits: int = 0
    refuse: Callable[[LoginRow], bool] = lambda _row: False

    def commit(self, outcomes: Sequence[Outcome]) -> CommitResult:
        if self.down:
            raise SinkUnavailable("database down (test double)")
        if any(isinstance(o, Loaded) and self.refuse(o.row) for o in outcomes):
            raise RowRefused("row refused (test double)", "22001")
        loaded = rejected = skipped = 0
        for outcome in outcomes:
            if outcome.message_id in self.ledger:
                skipped += 1
                continue
            self.ledger.add(outcome.message_id)
            if isinstance(outcome, Loaded):
                self.rows.append(outcome.row)
                loaded += 1
            else:
                self.rejections[outcome.message_id] = outcome
                rejected += 1
        self.commits += 1
        return CommitResult(loaded=loaded, rejected=rejected, skipped=skipped)

    def close(self) -> None:
        pass


__all__ = ["MemoryQueue", "MemorySink"]
