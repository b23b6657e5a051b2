"""The batch committer alone: no queue, an in-memory sink."""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import pytest

from login_etl.core.isolation import commit_isolating
from login_etl.core.model import Message, Outcome
from login_etl.core.transform import Transformer
from login_etl.errors import RowRefused, SinkError
from login_etl.keys import KeyRing
from login_etl.ports import CommitResult
from login_etl.runtime.committer import Committer
from login_etl.runtime.metrics import Metrics, PrometheusMetrics
from login_etl.testing import MemorySink
from tests.support import VALID_EVENT, body


def committer(sink: MemorySink, keys: KeyRing, metrics: Metrics | None = None) -> Committer:
    transformer = Transformer(keys.masker, keys.sealer)
    return Committer(sink, transformer, metrics=metrics, backoff_max_s=0.01)


def messages(count: int) -> list[Message]:
    return [Message(f"m-{i}", body(user_id=f"user-{i}"), 0, f"r{i}") for i in range(count)]


def test_a_batch_commits_without_any_queue(keys: KeyRing) -> None:
    sink = MemorySink()
    batch = [*messages(3), Message("bad", '{"foo": "oops"}', 0)]
    result = committer(sink, keys).commit(batch, threading.Event())
    assert result == CommitResult(loaded=3, rejected=1, skipped=0)
    assert sink.commits == 1, "one transaction"
    assert sorted(r.user_id for r in sink.rows) == ["user-0", "user-1", "user-2"]
    assert list(sink.rejections) == ["bad"]


def test_a_row_the_database_refuses_is_quarantined_and_the_rest_load(keys: KeyRing) -> None:
    sink = MemorySink(refuse=lambda row: row.user_id == "user-3")
    metrics = PrometheusMetrics()
    result = committer(sink, keys, metrics=metrics).commit(messages(6), threading.Event())
    assert result == CommitResult(loaded=5, rejected=1, skipped=0)
    assert sink.rejections["m-3"].reason == "database: refused the row (SQLSTATE 22001)"
    assert sink.rejections["m-3"].kind == "database:refused"
    rejected = metrics.registry.get_sample_value(
        "login_etl_messages_rejected_total", {"reason": "database:refused"}
    )
    assert rejected == 1


def test_a_rejection_the_database_refuses_stops_the_commit(keys: KeyRing) -> None:
    class RefusesEverything(MemorySink):
        def commit(self, outcomes: Sequence[Outcome]) -> CommitResult:
            raise RowRefused("the quarantine refused it", "22001")

    with pytest.raises(RowRefused):
        committer(RefusesEverything(), keys).commit(
            [Message("bad", "not json", 0)], threading.Event()
        )


def test_a_database_down_after_stop_commits_nothing_and_returns_none(keys: KeyRing) -> None:
    sink = MemorySink(down=True)
    stop = threading.Event()
    stop.set()  # a deadline already passed: one attempt, no backoff
    assert committer(sink, keys).commit(messages(2), stop) is None
    assert (sink.rows, sink.rejections, sink.ledger) == ([], {}, set())


def test_a_permanent_error_propagates(keys: KeyRing) -> None:
    class Broken(MemorySink):
        def commit(self, outcomes: Sequence[Outcome]) -> CommitResult:
            raise SinkError("public.user_logins has no column user_id")

    stop = threading.Event()
    stop.set()
    with pytest.raises(SinkError, match="no column user_id"):
        committer(Broken(), keys).commit(messages(1), stop)


def test_the_same_message_twice_in_one_batch_loads_once(keys: KeyRing) -> None:
    sink = MemorySink()
    message = Message("m-1", body(), 0, "r1")
    result = committer(sink, keys).commit(
        [message, Message("m-1", body(), 0, "r2")], threading.Event()
    )
    assert result is not None
    assert (result.loaded, result.skipped) == (1, 1)


def test_a_transform_bug_is_logged_by_type_and_frames_never_by_its_text(
    keys: KeyRing, caplog: pytest.LogCaptureFixture
) -> None:
    marker = VALID_EVENT["ip"]  # an exception's text may quote the input it choked on

    class Broken(Transformer):
        def __call__(self, message: Message):  # type: ignore[no-untyped-def]
            raise ValueError(f"cannot mask ip {marker!r}")

    with caplog.at_level(logging.DEBUG):
        Committer(MemorySink(), Broken(keys.masker, keys.sealer)).commit(
            [Message("m-1", body(), 0)], threading.Event()
        )
    [failure] = [r for r in caplog.records if "transform of message" in r.getMessage()]
    assert failure.exc_info is None
    assert "(ValueError)" in failure.getMessage()
    assert "in __call__" in failure.getMessage()  # the frames say where
    assert marker not in caplog.text


# -- core.isolation: the one refused-row isolation (also quarantine replay's) -----------------


def test_isolation_commits_a_good_batch_once() -> None:
    calls: list[list[int]] = []

    def commit(items: Sequence[int]) -> int:
        calls.append(list(items))
        return len(items)

    assert commit_isolating([1, 2, 3], commit, lambda _i, _e: -1) == [3]
    assert calls == [[1, 2, 3]]


def test_isolation_finds_the_refused_items_one_by_one_in_order() -> None:
    split: list[str] = []

    def commit(items: Sequence[int]) -> str:
        if any(i % 2 == 0 for i in items):
            raise RowRefused("refused", f"2300{items[0]}" if len(items) == 1 else "23505")
        return f"ok {items[0]}"

    results = commit_isolating(
        [1, 2, 3, 4],
        commit,
        lambda item, err: f"refused {item} ({err.sqlstate})",
        on_split=lambda err: split.append(err.sqlstate),
    )
    assert results == ["ok 1", "refused 2 (23002)", "ok 3", "refused 4 (23004)"]
    assert split == ["23505"]


def test_isolation_lets_other_errors_through() -> None:
    def commit(items: Sequence[int]) -> None:
        raise SinkError("schema mismatch")

    with pytest.raises(SinkError):
        commit_isolating([1, 2], commit, lambda _i, _e: None)
