"""The interfaces the committer and the worker are written against (message source, sink), so
that adapters and the test doubles of `login_etl.testing` can stand in for each other."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from login_etl.core.model import Message, Outcome

# SQS hands out at most 10 messages per receive.
MAX_RECEIVE = 10


@dataclass(frozen=True, slots=True)
class Backlog:
    """The queue's approximate message counts."""

    visible: int
    in_flight: int
    delayed: int

    @property
    def empty(self) -> bool:
        return self.visible == 0 and self.in_flight == 0 and self.delayed == 0


@dataclass(frozen=True, slots=True)
class CommitResult:
    """What one committed batch changed."""

    loaded: int
    rejected: int
    skipped: int  # already in the ledger: redeliveries of committed messages


class MessageSource(Protocol):
    """A queue: receive, delete after commit, release what was not committed."""

    def receive(self, wait_seconds: int, max_messages: int = MAX_RECEIVE) -> list[Message]: ...

    def delete(self, messages: Sequence[Message]) -> int:
        """Delete; returns the number of deletes that failed (they will be redelivered)."""
        ...

    def release(self, messages: Sequence[Message]) -> None: ...

    def extend(self, messages: Sequence[Message], seconds: int) -> None: ...

    def backlog(self) -> Backlog: ...


class Sink(Protocol):
    """Commits a batch's outcomes in one transaction, skipping ids it committed before."""

    def commit(self, outcomes: Sequence[Outcome]) -> CommitResult: ...

    def close(self) -> None: ...
