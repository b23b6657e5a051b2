"""The bounded ledger (migration 0005): partitioned by SentTimestamp, hourly; converted from the
unpartitioned ledger of earlier releases without losing an id; pruned past the queue's
retention plus a margin by the worker (at most once an hour, one at a time) and `prune`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from login_etl.adapters.postgres import PostgresSink, connect, migrate
from login_etl.adapters.postgres import schema as schema_module
from login_etl.adapters.postgres.ledger import maintain_ledger
from login_etl.core.model import Message
from login_etl.core.timestamps import epoch_ms
from login_etl.core.transform import Transformer
from login_etl.errors import LoginEtlError
from login_etl.keys import KeyRing
from login_etl.runtime.ledger import LedgerKeeper
from tests.support import DB, Cli, body, count

FOUR_DAYS_S = 4 * 24 * 3600
_LOCK_KEY = 4994113284425355620  # maintain_ledger's advisory lock (migration 0005)


def partitions(conn: DB) -> set[str]:
    rows = conn.execute(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'login_etl.processed_messages'::regclass"
    ).fetchall()
    return {str(name) for (name,) in rows}


def hour_ago(conn: DB, hours: int) -> dt.datetime:
    row = conn.execute(
        "SELECT date_trunc('hour', now()) - make_interval(hours => %s)", (hours,)
    ).fetchone()
    assert row
    return row[0]  # type: ignore[no-any-return]


def old_partition(conn: DB, hours_back: int, ids: int) -> str:
    """An hourly partition `hours_back` hours ago, holding `ids` ids: time faked by placing it."""
    start = hour_ago(conn, hours_back)
    conn.execute("SELECT login_etl.create_ledger_partition(%s)", (start,))
    conn.execute(
        "INSERT INTO login_etl.processed_messages (message_id, sent_at)"
        " SELECT %s || g, %s FROM generate_series(1, %s) g",
        (f"old-{hours_back}-", start, ids),
    )
    return f"processed_messages_p{start.astimezone(dt.UTC):%Y%m%dT%H}"


@pytest.fixture
def sink(database_url: str, db: DB) -> Iterator[PostgresSink]:
    made = PostgresSink(database_url)
    yield made
    made.close()


def messages(ids_and_sent: list[tuple[str, int]]) -> list[Message]:
    return [Message(mid, body(), sent, "r") for mid, sent in ids_and_sent]


def test_migrate_makes_hourly_partitions_from_a_day_behind_to_48_hours_ahead(db: DB) -> None:
    made = partitions(db)
    assert "processed_messages_default" in made
    for hours in (-47, 0, 24):
        start = hour_ago(db, hours).astimezone(dt.UTC)
        assert f"processed_messages_p{start:%Y%m%dT%H}" in made, hours
    # The hours further back are the first maintenance's (a worker's first beat, prune).
    assert 24 + 48 <= len(made) - 1 <= 24 + 48 + 2


def test_maintenance_makes_every_hour_back_to_retention_plus_margin(db: DB) -> None:
    """A backlog older than a day (a first deploy, an outage) gets its own partitions, not the
    default one: from retention + margin behind."""
    maintain_ledger(db, FOUR_DAYS_S)
    made = partitions(db)
    for hours in (-47, 0, 26, 5 * 24 - 1):
        start = hour_ago(db, hours).astimezone(dt.UTC)
        assert f"processed_messages_p{start:%Y%m%dT%H}" in made, hours
    assert len(made) - 1 >= 5 * 24 + 48


def test_maintenance_reports_only_the_partitions_it_made(db: DB) -> None:
    """Partitions that exist are not reported as created again (their names hold a capital T,
    which an unquoted lookup would miss); at most the hour that has just come into reach."""
    first = maintain_ledger(db, FOUR_DAYS_S)
    assert len([a for a in first if a.action == "create"]) >= 4 * 24
    again = maintain_ledger(db, FOUR_DAYS_S)
    assert len([a for a in again if a.action == "create"]) <= 1, again


def test_the_ledger_key_leads_with_the_sent_timestamp(db: DB) -> None:
    """New claims land at the right edge of the index (docs/scaling.md), in every partition."""
    rows = db.execute(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i"
        " JOIN pg_class c ON c.oid = i.indrelid JOIN pg_inherits h ON h.inhrelid = c.oid"
        " WHERE h.inhparent = 'login_etl.processed_messages'::regclass AND i.indisprimary"
    ).fetchall()
    assert len(rows) == len(partitions(db))
    assert all(definition.endswith("(sent_at, message_id)") for _, definition in rows), rows


def test_partitions_older_than_retention_plus_margin_are_dropped(db: DB) -> None:
    gone = old_partition(db, 20 * 24, 10)  # 20 days back: past 4 days + 1 day margin
    kept = old_partition(db, 3 * 24, 10)  # within retention
    # A SentTimestamp far outside (clamped): the default partition, aged by its claim time.
    db.execute(
        "INSERT INTO login_etl.processed_messages (message_id, sent_at, processed_at) VALUES"
        " ('ancient-old', '0001-01-01Z', now() - interval '6 days'),"
        " ('ancient-new', '0001-01-01Z', now())"
    )
    before = count(db, "login_etl.processed_messages")

    actions = maintain_ledger(db, FOUR_DAYS_S)

    dropped = {a.relation for a in actions if a.action == "drop"}
    assert gone in dropped and kept not in dropped
    made = partitions(db)
    assert gone not in made and kept in made
    assert not any(
        name < f"processed_messages_p{hour_ago(db, 5 * 24 + 1).astimezone(dt.UTC):%Y%m%dT%H}"
        for name in made
        if name.startswith("processed_messages_p2")
    ), "nothing entirely older than retention + margin is left"
    assert count(db, "login_etl.processed_messages") == before - 11
    ids = {r[0] for r in db.execute("SELECT message_id FROM login_etl.processed_messages_default")}
    assert ids == {"ancient-new"}


def test_a_redelivery_within_retention_loads_nothing_across_an_hour_boundary(
    db: DB, sink: PostgresSink, keys: KeyRing
) -> None:
    transform = Transformer(keys.masker, keys.sealer)
    boundary = epoch_ms(hour_ago(db, 0))
    first = messages([("a", boundary - 1), ("b", boundary - 3_600_000 + 5)])
    assert sink.commit([transform(m) for m in first]).loaded == 2

    # The hour turns and the partitions move on (maintenance runs); SQS redelivers both, with
    # the SentTimestamps they were sent with, beside a new message in the next hour.
    maintain_ledger(db, FOUR_DAYS_S)
    again = [*first, *messages([("c", boundary)])]
    result = sink.commit([transform(m) for m in again])

    assert (result.loaded, result.skipped) == (1, 2)
    assert count(db, "user_logins") == 3
    assert count(db, "login_etl.processed_messages") == 3


def test_a_message_committed_before_the_conversion_is_not_loaded_again(
    database_url: str, keys: KeyRing, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An installation of an earlier release (schema version 4, unpartitioned ledger) upgrades:
    every id survives, and a redelivery of a message it committed still loads nothing."""
    with connect(database_url) as conn:
        monkeypatch.setattr(schema_module, "_MIGRATIONS", schema_module._MIGRATIONS[:4])
        monkeypatch.setattr(schema_module, "SCHEMA_VERSION", 4)
        assert migrate(conn) == [1, 2, 3, 4]
        monkeypatch.undo()
        # What the old sink left: ids claimed (no SentTimestamp) and their rows.
        conn.execute(
            "INSERT INTO login_etl.processed_messages (message_id)"
            " SELECT 'old-' || g FROM generate_series(1, 5000) g"
        )
        conn.commit()

        assert migrate(conn) == list(range(5, schema_module.SCHEMA_VERSION + 1))
        conn.commit()
        conn.autocommit = True
        assert count(conn, "login_etl.processed_messages_legacy") == 5000
        assert count(conn, "login_etl.processed_messages") == 0

        transform = Transformer(keys.masker, keys.sealer)
        now_ms = epoch_ms(dt.datetime.now(dt.UTC))
        redelivered = messages(
            [("old-1", now_ms - 3_600_000), ("old-5000", now_ms), ("new", now_ms)]
        )
        sink = PostgresSink(database_url)
        try:
            result = sink.commit([transform(m) for m in redelivered])
        finally:
            sink.close()
        assert (result.loaded, result.skipped) == (1, 2)

        # The legacy ids stay while SQS could still redeliver them, then go.
        maintain_ledger(conn, FOUR_DAYS_S)
        assert count(conn, "login_etl.processed_messages_legacy") == 5000
        conn.execute(
            "UPDATE login_etl.ledger_state"
            " SET legacy_converted_at = now() - interval '5 days 1 minute', maintained_at = NULL"
        )
        actions = maintain_ledger(conn, FOUR_DAYS_S)
        assert [a.relation for a in actions if a.action == "truncate"] == [
            "processed_messages_legacy"
        ]
        assert count(conn, "login_etl.processed_messages_legacy") == 0


def test_rekeying_a_version_6_ledger_keeps_every_id(
    database_url: str, keys: KeyRing, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migration 0007 re-keys the ledger of version 6 ((message_id, sent_at)): every id stays and
    a redelivery of a message claimed before still loads nothing."""
    transform = Transformer(keys.masker, keys.sealer)
    now_ms = epoch_ms(dt.datetime.now(dt.UTC))
    first = messages([("m-1", now_ms - 3_600_000), ("m-2", now_ms)])
    with connect(database_url) as conn:
        monkeypatch.setattr(schema_module, "_MIGRATIONS", schema_module._MIGRATIONS[:6])
        monkeypatch.setattr(schema_module, "SCHEMA_VERSION", 6)
        assert migrate(conn) == [1, 2, 3, 4, 5, 6]
        # What version 6's migrate left: ~400 hourly partitions keyed (message_id, sent_at).
        conn.execute("SELECT count(*) FROM login_etl.maintain_ledger('14 days', false, '0')")
        conn.commit()
        assert len(partitions(conn)) > 14 * 24
        monkeypatch.undo()
        sink = PostgresSink(database_url)
        try:
            assert sink.commit([transform(m) for m in first]).loaded == 2
            assert migrate(conn) == list(range(7, schema_module.SCHEMA_VERSION + 1))
            conn.commit()
            assert count(conn, "login_etl.processed_messages") == 2
            keys = conn.execute(
                "SELECT DISTINCT pg_get_indexdef(i.indexrelid) LIKE '%%(sent_at, message_id)'"
                " FROM pg_index i JOIN pg_inherits h ON h.inhrelid = i.indrelid"
                " WHERE h.inhparent = 'login_etl.processed_messages'::regclass"
                " AND i.indisprimary"
            ).fetchall()
            assert keys == [(True,)], "every partition re-keyed"
            result = sink.commit([transform(m) for m in [*first, *messages([("m-3", now_ms)])]])
        finally:
            sink.close()
        assert (result.loaded, result.skipped) == (1, 2)
        assert count(conn, "user_logins") == 3


def test_prune_dry_run_changes_nothing_and_prune_drops(
    cli: Cli, db: DB, sqs_client: Any, queue_url: str
) -> None:
    sqs_client.set_queue_attributes(
        QueueUrl=queue_url, Attributes={"MessageRetentionPeriod": str(FOUR_DAYS_S)}
    )
    gone = old_partition(db, 10 * 24, 3)
    before = partitions(db)

    dry = cli("prune", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would drop {gone}" in dry.stdout
    assert partitions(db) == before
    assert count(db, "login_etl.processed_messages") == 3

    done = cli("prune")
    assert done.returncode == 0, done.stderr
    assert f"dropped {gone}" in done.stdout
    assert gone not in partitions(db)
    assert count(db, "login_etl.processed_messages") == 0


def test_a_timeout_bounds_the_whole_maintenance(database_url: str, db: DB) -> None:
    """The Lambda's deadline: a maintenance that must wait for a lock is cancelled by its own
    statement timeout (SQLSTATE 57014), before the function's 10 s lock_timeout (55P03)."""
    gone = old_partition(db, 20 * 24, 1)
    with connect(database_url) as holder:
        holder.execute("LOCK TABLE login_etl.processed_messages IN ACCESS SHARE MODE")
        with connect(database_url) as conn, pytest.raises(LoginEtlError, match="57014"):
            maintain_ledger(conn, FOUR_DAYS_S, timeout=dt.timedelta(milliseconds=300))
        holder.rollback()
    assert gone in partitions(db), "cancelled: nothing dropped"


def test_a_cron_style_run_maintains_the_ledger_once_drained(
    cli: Cli, db: DB, sqs_client: Any, queue_url: str
) -> None:
    """`run --until-empty` is often done before its first heartbeat: it maintains once drained."""
    sqs_client.set_queue_attributes(
        QueueUrl=queue_url, Attributes={"MessageRetentionPeriod": str(FOUR_DAYS_S)}
    )
    gone = old_partition(db, 10 * 24, 3)
    db.execute("UPDATE login_etl.ledger_state SET maintained_at = NULL")

    done = cli("run", "--until-empty")

    assert done.returncode == 0, done.stderr
    assert gone not in partitions(db)


def test_the_worker_maintains_at_most_once_an_hour(database_url: str, db: DB) -> None:
    clock = [0.0]
    keeper = LedgerKeeper(database_url, lambda: FOUR_DAYS_S, clock=lambda: clock[0])
    gone = old_partition(db, 10 * 24, 1)
    db.execute("UPDATE login_etl.ledger_state SET maintained_at = NULL")  # migrated long ago

    first = keeper()
    assert first is not None and gone in {a.relation for a in first if a.action == "drop"}

    old_partition(db, 10 * 24, 1)
    clock[0] = 3599.0
    assert keeper() is None, "not due in this process"
    # Due here, but another worker (or this one) maintained less than an hour ago.
    clock[0] = 3601.0
    assert [a.action for a in keeper() or []] == ["skipped"]
    assert gone in partitions(db)

    db.execute("UPDATE login_etl.ledger_state SET maintained_at = now() - interval '61 minutes'")
    clock[0] = 7300.0
    later = keeper()
    assert later is not None and gone in {a.relation for a in later if a.action == "drop"}


def test_two_workers_do_not_maintain_at_once(database_url: str, db: DB) -> None:
    gone = old_partition(db, 10 * 24, 1)
    with psycopg.connect(database_url, autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        keeper = LedgerKeeper(database_url, lambda: FOUR_DAYS_S)
        assert [a.action for a in keeper() or []] == ["busy"]
        assert gone in partitions(db)
        other.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    assert any(a.action == "drop" for a in maintain_ledger(db, FOUR_DAYS_S))


@pytest.mark.parametrize("retention_s", [0, 15 * 24 * 3600])
def test_a_retention_outside_sqs_range_is_refused(db: DB, retention_s: int) -> None:
    with pytest.raises(LoginEtlError, match="outside SQS's range"):
        maintain_ledger(db, retention_s)
