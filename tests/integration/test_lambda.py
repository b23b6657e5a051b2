"""The Lambda handler against a real PostgreSQL, with events shaped like the SQS event source's."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from login_etl import lambda_handler
from login_etl.demo.data import generate_bodies
from login_etl.demo.services import EmbeddedPostgres
from login_etl.errors import SinkError
from tests.support import EXERCISE_DDL, body, count

SENT_MS = 1_700_000_000_000  # 2023-11-14T22:13:20Z
SENT_DATE = dt.date(2023, 11, 14)
QUEUE_ARN = "arn:aws:sqs:us-east-1:000000000000:login-queue"
QUICKLY_S = 5.0  # "a few seconds": the handler's retry budget is 2 s


def sqs_record(
    body_text: str | None,
    *,
    message_id: str | None = None,
    sent_ms: int | None = SENT_MS,
    receive_count: int = 1,
) -> dict[str, Any]:
    """One record as the SQS event source mapping delivers it; None leaves the key out."""
    attributes = {
        "ApproximateReceiveCount": str(receive_count),
        "SentTimestamp": str(sent_ms),
        "SenderId": "AIDAIENQZJOLO23YVJ4VO",
        "ApproximateFirstReceiveTimestamp": str((sent_ms or SENT_MS) + 12),
    }
    if sent_ms is None:
        del attributes["SentTimestamp"]
    record: dict[str, Any] = {
        "messageId": message_id or str(uuid.uuid4()),
        "receiptHandle": f"AQEB{uuid.uuid4().hex}{uuid.uuid4().hex}",
        "body": body_text,
        "attributes": attributes,
        "messageAttributes": {},
        "md5OfBody": hashlib.md5((body_text or "").encode(), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": QUEUE_ARN,
        "awsRegion": "us-east-1",
    }
    if body_text is None:
        del record["body"]
        del record["md5OfBody"]
    return record


def sqs_event(*records: dict[str, Any]) -> dict[str, Any]:
    return {"Records": list(records)}


def redelivered(event: dict[str, Any]) -> dict[str, Any]:
    """The same messages handed out again: same ids, new receipts, one more receive."""
    records = []
    for record in event["Records"]:
        again = {**record, "receiptHandle": f"AQEB{uuid.uuid4().hex}"}
        attributes = dict(record["attributes"])
        attributes["ApproximateReceiveCount"] = str(int(attributes["ApproximateReceiveCount"]) + 1)
        again["attributes"] = attributes
        records.append(again)
    return {"Records": records}


class FakeContext:
    """The parts of Lambda's context object a handler may read."""

    function_name = "login-etl"
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"

    def __init__(self, timeout_s: float = 60.0) -> None:
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return int((self._deadline - time.monotonic()) * 1000)


def ids(event: dict[str, Any]) -> list[str]:
    return [record["messageId"] for record in event["Records"]]


def failures(response: dict[str, Any]) -> list[str]:
    return [item["itemIdentifier"] for item in response["batchItemFailures"]]


@pytest.fixture
def use_database(monkeypatch: pytest.MonkeyPatch, key_file: Path) -> Iterator[Any]:
    """Point the handler at a database, as a fresh execution environment (empty cache)."""
    for name in ("LOGIN_ETL_QUEUE_URL", "LOGIN_ETL_LOG_LEVEL", "LOGIN_ETL_LOG_FORMAT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOGIN_ETL_KEYSET_FILE", str(key_file))
    package_logger = logging.getLogger("login_etl")
    level = package_logger.level  # a cold start sets it from LOGIN_ETL_LOG_LEVEL

    def use(url: str) -> None:
        monkeypatch.setenv("LOGIN_ETL_DATABASE_URL", url)
        lambda_handler.reset()

    yield use
    lambda_handler.reset()
    package_logger.setLevel(level)


@pytest.fixture
def fresh(use_database: Any, database_url: str) -> str:
    """The handler on a fresh, not yet migrated database (it migrates at its cold start)."""
    use_database(database_url)
    return database_url


def test_a_batch_loads_valid_rows_and_quarantines_invalid_ones(fresh: str) -> None:
    bodies = generate_bodies(10, malformed=2)
    event = sqs_event(*(sqs_record(b) for b in bodies))

    response = lambda_handler.handler(event, FakeContext())

    assert response == {"batchItemFailures": []}
    malformed = [r["messageId"] for r in event["Records"] if "foo" in r["body"]]
    assert len(malformed) == 2
    with psycopg.connect(fresh) as conn:
        assert count(conn, "user_logins") == 8
        assert count(conn, "login_etl.processed_messages") == 10
        rejected = conn.execute(
            "SELECT message_id, reason, sent_at FROM login_etl.rejected_messages"
        ).fetchall()
        assert sorted(r[0] for r in rejected) == sorted(malformed)
        assert all(r[1].startswith("user_id: required") for r in rejected)
        assert {r[2] for r in rejected} == {dt.datetime.fromtimestamp(SENT_MS / 1000, dt.UTC)}
        assert conn.execute("SELECT DISTINCT create_date FROM user_logins").fetchall() == [
            (SENT_DATE,)
        ]


def test_the_invocation_logs_counts_and_no_body(
    fresh: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="login_etl")
    secret_ip, secret_device = "203.0.113.77", "777-77-7777"
    garbage = "garbage-body-5f3a9c"
    event = sqs_event(sqs_record(body(ip=secret_ip, device_id=secret_device)), sqs_record(garbage))

    lambda_handler.handler(event, FakeContext())

    summary = [r for r in caplog.records if r.getMessage().startswith("invocation:")]
    assert len(summary) == 1
    assert (
        summary[0]
        .getMessage()
        .startswith(
            "invocation: 2 records, 1 loaded, 1 rejected, 0 redeliveries skipped, 0 reported failed"
        )
    )
    fields = vars(summary[0])  # the `extra` fields a JSON formatter turns into keys
    assert (fields["loaded"], fields["rejected"], fields["failed"]) == (1, 1, 0)
    assert not any(secret in caplog.text for secret in (secret_ip, secret_device, garbage))


def test_the_same_event_delivered_twice_loads_nothing_twice(
    use_database: Any, database_url: str, db: psycopg.Connection[tuple[Any, ...]]
) -> None:
    use_database(database_url)
    event = sqs_event(*(sqs_record(b) for b in generate_bodies(10, malformed=1)))

    assert lambda_handler.handler(event, FakeContext()) == {"batchItemFailures": []}
    # Again in the same execution environment, then in a new one (another concurrent Lambda).
    assert lambda_handler.handler(redelivered(event), FakeContext()) == {"batchItemFailures": []}
    lambda_handler.reset()
    assert lambda_handler.handler(redelivered(event), FakeContext()) == {"batchItemFailures": []}

    assert count(db, "user_logins") == 9
    assert count(db, "login_etl.rejected_messages") == 1
    assert count(db, "login_etl.processed_messages") == 10


def test_an_unreachable_database_at_cold_start_hands_every_record_back_quickly(
    use_database: Any, tmp_path: Path
) -> None:
    use_database(f"postgresql://postgres@/postgres?host={tmp_path / 'no-server-here'}")
    event = sqs_event(*(sqs_record(b) for b in generate_bodies(10, malformed=1)))

    started = time.monotonic()
    response = lambda_handler.handler(event, FakeContext())

    assert time.monotonic() - started < QUICKLY_S
    assert failures(response) == ids(event)


def test_a_database_lost_after_a_warm_start_hands_the_batch_back_then_loads_it(
    use_database: Any, tmp_path: Path
) -> None:
    with EmbeddedPostgres(tmp_path) as server:
        use_database(server.url)
        first = sqs_event(*(sqs_record(b) for b in generate_bodies(5, malformed=0, seed=1)))
        assert lambda_handler.handler(first, FakeContext()) == {"batchItemFailures": []}

        server.stop()  # the cached sink holds a connection to the server that is now gone
        second = sqs_event(*(sqs_record(b) for b in generate_bodies(10, malformed=1, seed=2)))
        started = time.monotonic()
        response = lambda_handler.handler(second, FakeContext())
        assert time.monotonic() - started < QUICKLY_S
        assert failures(response) == ids(second)

        server.start()  # SQS redelivers the failed records; the same sink reconnects
        assert lambda_handler.handler(redelivered(second), FakeContext()) == {
            "batchItemFailures": []
        }
        with psycopg.connect(server.url) as conn:
            assert count(conn, "user_logins") == 5 + 9
            assert count(conn, "login_etl.rejected_messages") == 1
            assert count(conn, "login_etl.processed_messages") == 15


def test_a_deadline_near_its_end_leaves_no_time_for_retries(
    use_database: Any, tmp_path: Path
) -> None:
    use_database(f"postgresql://postgres@/postgres?host={tmp_path / 'no-server-here'}")
    event = sqs_event(sqs_record(body()))

    started = time.monotonic()
    response = lambda_handler.handler(event, FakeContext(timeout_s=3))

    assert time.monotonic() - started < 1.0, "a single attempt, no backoff"
    assert failures(response) == ids(event)


def test_a_record_without_a_body_is_the_only_failure(
    fresh: str, db: psycopg.Connection[tuple[Any, ...]]
) -> None:
    records = [sqs_record(b) for b in generate_bodies(4, malformed=0)]
    records.insert(2, sqs_record(None))
    event = sqs_event(*records)

    response = lambda_handler.handler(event, FakeContext())

    assert failures(response) == [records[2]["messageId"]]
    assert count(db, "user_logins") == 4
    assert count(db, "login_etl.rejected_messages") == 0
    assert count(db, "login_etl.processed_messages") == 4, "the failed record is not claimed"


def test_a_missing_or_unusable_sent_timestamp_falls_back_instead_of_failing(
    fresh: str, db: psycopg.Connection[tuple[Any, ...]]
) -> None:
    no_timestamp = sqs_record(body(user_id="no-timestamp"), sent_ms=None)
    garbage = sqs_record(body(user_id="garbage"))
    garbage["attributes"]["SentTimestamp"] = "yesterday"
    nothing = sqs_record(body(user_id="nothing"))
    nothing["attributes"] = {}
    overflow = sqs_record(body(user_id="overflow"))
    overflow["attributes"]["SentTimestamp"] = "9" * 5000  # past int()'s digit limit as well
    overflow["attributes"]["ApproximateFirstReceiveTimestamp"] = "-1"

    before = dt.datetime.now(dt.UTC).date()
    response = lambda_handler.handler(
        sqs_event(no_timestamp, garbage, nothing, overflow), FakeContext()
    )
    after = dt.datetime.now(dt.UTC).date()

    assert response == {"batchItemFailures": []}
    dates = dict(db.execute("SELECT user_id, create_date FROM user_logins").fetchall())
    first_received = dt.date(2023, 11, 14)  # ApproximateFirstReceiveTimestamp, 12 ms later
    assert dates["no-timestamp"] == dates["garbage"] == first_received
    assert before <= dates["nothing"] <= after
    assert before <= dates["overflow"] <= after


def test_a_record_without_a_message_id_fails_the_invocation_after_the_rest_commit(
    fresh: str, db: psycopg.Connection[tuple[Any, ...]]
) -> None:
    records = [sqs_record(b) for b in generate_bodies(3, malformed=0)]
    nameless = sqs_record(body())
    del nameless["messageId"]
    event = sqs_event(*records, nameless)

    with pytest.raises(ValueError, match="1 of 4 records have no messageId"):
        lambda_handler.handler(event, FakeContext())
    assert count(db, "user_logins") == 3

    # Lambda redelivers the whole batch; the three committed records are only skipped.
    with pytest.raises(ValueError, match="no messageId"):
        lambda_handler.handler(redelivered(event), FakeContext())
    assert count(db, "user_logins") == 3


def test_an_event_that_is_not_from_sqs_is_refused(fresh: str) -> None:
    with pytest.raises(ValueError, match="not an SQS event"):
        lambda_handler.handler({"detail-type": "Scheduled Event"}, FakeContext())


def test_a_schema_mismatch_fails_the_invocation(fresh: str) -> None:
    with psycopg.connect(fresh) as conn:
        conn.execute(EXERCISE_DDL.replace("masked_ip           varchar(256)", "masked_ip text"))
    event = sqs_event(sqs_record(body()))

    with pytest.raises(SinkError, match="masked_ip"):
        lambda_handler.handler(event, FakeContext())


def test_a_table_dropped_under_a_warm_handler_fails_the_invocation(
    fresh: str, db: psycopg.Connection[tuple[Any, ...]]
) -> None:
    assert lambda_handler.handler(sqs_event(sqs_record(body())), FakeContext()) == {
        "batchItemFailures": []
    }
    db.execute("DROP TABLE login_etl.rejected_messages")

    with pytest.raises(SinkError, match="rejected_messages"):
        lambda_handler.handler(sqs_event(sqs_record(body())), FakeContext())
    assert count(db, "user_logins") == 1, "nothing of the failed invocation committed"


def test_a_warm_lambda_maintains_the_ledger_so_no_cron_is_needed(fresh: str) -> None:
    """After a committed batch the handler runs the worker's hourly housekeeping: a ledger
    partition past 14 days + the margin is dropped (the Lambda keeps the longest retention)."""
    lambda_handler.handler(sqs_event(sqs_record(body())), FakeContext())  # cold start: migrate
    with psycopg.connect(fresh, autocommit=True) as conn:
        start = conn.execute("SELECT date_trunc('hour', now()) - interval '16 days'").fetchone()
        assert start
        conn.execute("SELECT login_etl.create_ledger_partition(%s)", (start[0],))
        kept = conn.execute("SELECT date_trunc('hour', now()) - interval '14 days'").fetchone()
        assert kept
        conn.execute("SELECT login_etl.create_ledger_partition(%s)", (kept[0],))
        conn.execute("UPDATE login_etl.ledger_state SET maintained_at = NULL")
    lambda_handler.reset()  # a new execution environment: its keeper is due at once
    old = f"processed_messages_p{start[0].astimezone(dt.UTC):%Y%m%dT%H}"

    # Too little of the invocation left to wait for a lock: the batch only.
    short = lambda_handler.handler(sqs_event(sqs_record(body())), FakeContext(timeout_s=10))
    assert short == {"batchItemFailures": []}
    with psycopg.connect(fresh) as conn:
        found = conn.execute("SELECT to_regclass(format('login_etl.%%I', %s::text))", (old,))
        assert found.fetchone() != (None,)

    response = lambda_handler.handler(sqs_event(sqs_record(body())), FakeContext())

    assert response == {"batchItemFailures": []}
    with psycopg.connect(fresh) as conn:
        names = {
            str(row[0])
            for row in conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " WHERE i.inhparent = 'login_etl.processed_messages'::regclass"
            )
        }
        young = f"processed_messages_p{kept[0].astimezone(dt.UTC):%Y%m%dT%H}"
        assert old not in names
        assert young in names
        maintained = conn.execute("SELECT maintained_at FROM login_etl.ledger_state").fetchone()
        assert maintained and maintained[0] is not None
        assert count(conn, "user_logins") == 3
