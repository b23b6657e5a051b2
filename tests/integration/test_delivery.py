"""The delivery guarantee against real servers: redeliveries, outages, concurrent workers."""

from __future__ import annotations

import dataclasses
import random
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg

from login_etl.adapters.postgres import PostgresSink
from login_etl.adapters.sqs import SqsSource
from login_etl.config import Settings
from login_etl.core.model import Message
from login_etl.core.transform import Transformer
from login_etl.demo.data import generate_bodies
from login_etl.demo.services import EmbeddedPostgres
from login_etl.keys import KeyRing
from login_etl.ports import Backlog
from login_etl.runtime.committer import Committer
from login_etl.runtime.wiring import open_worker
from login_etl.runtime.worker import Worker
from tests.support import count


class DeleteFails(SqsSource):
    """An SQS source whose deletes are lost, as when the worker dies right after the commit."""

    def delete(self, messages: Sequence[Message]) -> int:
        return len(messages)


def test_a_redelivery_after_the_visibility_timeout_inserts_nothing_twice(
    make_settings: Callable[..., Settings],
    send: Callable[[list[str]], int],
    backlog: Callable[[], Backlog],
    db: psycopg.Connection[tuple[Any, ...]],
    keys: KeyRing,
) -> None:
    send(generate_bodies(30, malformed=2))
    settings = make_settings(visibility_timeout=1)
    sink = PostgresSink(settings.database_url.get_secret_value())
    source = DeleteFails(
        SqsSource.from_settings(settings)._client, settings.queue_url, visibility_timeout=1
    )
    first = Worker(
        source,
        Committer(sink, Transformer(keys.masker, keys.sealer)),
        dataclasses.replace(settings.worker_options(), batch_wait_s=0.2),
    )
    while first.stats.received < 30:
        first.process(source.receive(1))
    sink.close()
    assert count(db, "user_logins") == 28
    assert not backlog().empty, "nothing was deleted"

    time.sleep(1.5)  # the visibility timeout passes: SQS hands every message out again
    with open_worker(settings) as pipeline:
        stats = pipeline.run(until_empty=True)
    assert (stats.loaded, stats.rejected) == (0, 0)
    assert stats.skipped == stats.received >= 30
    assert count(db, "user_logins") == 28
    assert count(db, "login_etl.rejected_messages") == 2
    assert backlog().empty


def test_with_postgres_down_nothing_is_deleted_and_all_rows_arrive_once_it_is_back(
    make_settings: Callable[..., Settings],
    send: Callable[[list[str]], int],
    backlog: Callable[[], Backlog],
    tmp_path: Path,
) -> None:
    with EmbeddedPostgres(tmp_path) as server:
        send(generate_bodies(40, malformed=1))
        settings = make_settings(database_url=server.url, visibility_timeout=2)
        result: dict[str, Any] = {}
        with open_worker(settings) as pipeline:  # migrated while the server is up
            server.stop()
            worker = threading.Thread(
                target=lambda: result.setdefault("stats", pipeline.run(until_empty=True)),
                daemon=True,
            )
            worker.start()
            try:
                time.sleep(4)  # the worker holds a batch whose commit keeps failing
                waiting = backlog()
                assert waiting.visible + waiting.in_flight == 40, "nothing deleted while down"
                assert pipeline.stats.received == 0, "no batch counted as done"
                assert worker.is_alive()

                server.start()
                worker.join(60)
                assert not worker.is_alive()
            finally:
                pipeline.stop.set()  # a failed assertion must not leave the worker running
        stats = result["stats"]
        assert (stats.loaded, stats.rejected) == (39, 1)
        assert backlog().empty
        with psycopg.connect(server.url) as conn:
            assert count(conn, "user_logins") == 39
            assert count(conn, "login_etl.processed_messages") == 40


def test_a_worker_started_before_postgres_waits_for_it(
    make_settings: Callable[..., Settings],
    send: Callable[[list[str]], int],
    backlog: Callable[[], Backlog],
    tmp_path: Path,
) -> None:
    with EmbeddedPostgres(tmp_path) as server:
        server.stop()
        send(generate_bodies(10, malformed=0))
        settings = make_settings(database_url=server.url)
        result: dict[str, Any] = {}

        def work() -> None:
            with open_worker(settings) as pipeline:
                result["stats"] = pipeline.run(until_empty=True)

        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        time.sleep(2)
        assert worker.is_alive()
        server.start()
        worker.join(60)
        assert result["stats"].loaded == 10
        assert backlog().empty


def test_postgres_lost_mid_drain_is_retried_without_loss(
    make_settings: Callable[..., Settings],
    send: Callable[[list[str]], int],
    backlog: Callable[[], Backlog],
    tmp_path: Path,
) -> None:
    with EmbeddedPostgres(tmp_path) as server:
        send(generate_bodies(60, malformed=4))
        settings = make_settings(database_url=server.url, visibility_timeout=3, batch_size=10)
        stopped = threading.Event()

        def stop_after_first_batch(stats: Any) -> None:
            if stats.batches == 1 and not stopped.is_set():
                stopped.set()
                server.stop()
                threading.Timer(2.0, server.start).start()

        with open_worker(settings, on_batch=stop_after_first_batch) as pipeline:
            stats = pipeline.run(until_empty=True)
        assert stopped.is_set()
        assert stats.loaded + stats.rejected + stats.skipped >= 60
        assert backlog().empty
        with psycopg.connect(server.url) as conn:
            assert count(conn, "user_logins") == 56
            assert count(conn, "login_etl.rejected_messages") == 4
            assert count(conn, "login_etl.processed_messages") == 60


def test_concurrent_workers_load_every_message_exactly_once(
    make_settings: Callable[..., Settings],
    send: Callable[[list[str]], int],
    backlog: Callable[[], Backlog],
    db: psycopg.Connection[tuple[Any, ...]],
) -> None:
    send(generate_bodies(150, malformed=3))
    settings = make_settings(batch_size=20, visibility_timeout=30)
    results: list[Any] = []

    def work() -> None:
        with open_worker(settings) as pipeline:
            results.append(pipeline.run(until_empty=True))

    workers = [threading.Thread(target=work, daemon=True) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(120)
    assert sum(r.loaded for r in results) == 147
    assert sum(r.rejected for r in results) == 3
    assert count(db, "user_logins") == 147
    assert db.execute(
        "SELECT count(*) FROM (SELECT user_id FROM user_logins GROUP BY 1 HAVING count(*) > 1) d"
    ).fetchone() == (0,)
    assert backlog().empty


def test_concurrent_batches_sharing_messages_load_each_once_without_deadlock(
    database_url: str, db: psycopg.Connection[tuple[Any, ...]], keys: KeyRing
) -> None:
    """Three sinks commit overlapping, shuffled batches at once, as workers do when a visibility
    timeout hands one message to two of them."""
    transform = Transformer(keys.masker, keys.sealer)
    pool = [
        Message(f"m-{i:04d}", body_text, 1_700_000_000_000, "r")
        for i, body_text in enumerate(generate_bodies(200, malformed=10))
    ]
    outcomes = [transform(m) for m in pool]
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        rng = random.Random(seed)
        sink = PostgresSink(database_url)
        try:
            for _ in range(15):
                sink.commit(rng.sample(outcomes, 60))
            sink.commit(outcomes)  # finally everything, so every id is claimed once
        except BaseException as err:
            errors.append(err)
        finally:
            sink.close()

    threads = [threading.Thread(target=work, args=(seed,), daemon=True) for seed in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    assert count(db, "login_etl.processed_messages") == 200
    assert count(db, "user_logins") == 190
    assert count(db, "login_etl.rejected_messages") == 10
