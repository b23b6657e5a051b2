"""`quarantine replay`: rejected messages that pass today's rules are loaded once, masked as `run`
masks them; the others keep their place with today's reason."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from login_etl.adapters.postgres import QuarantineStore, connect
from login_etl.core.model import Message, Outcome
from login_etl.core.transform import Transformer
from login_etl.core.validate import Invalid, validate
from login_etl.keys import KeyRing, create_key_file, load_key_file
from login_etl.ops.replay import replay_quarantine
from tests.support import ABSENT, DB, VALID_EVENT, Cli, body, count, quarantine


def quarantined(db: DB) -> dict[str, str]:
    rows = db.execute("SELECT message_id, reason FROM login_etl.rejected_messages").fetchall()
    return {str(m): str(r) for m, r in rows}


def current_reason(text: str) -> str:
    result = validate(text)
    assert isinstance(result, Invalid)
    return result.reason


def test_a_message_valid_today_is_loaded_once_and_masked_as_run_masks_it(
    cli: Cli,
    db: DB,
    keys: KeyRing,
    send: Callable[[list[str]], int],
    sqs_client: Any,
    queue_url: str,
) -> None:
    text = body(user_id="u-replayed", device_id="é" * 200)  # over-long: a vault token too
    # The message as SQS holds it: its id is the one quarantined, so that it can come back.
    send([text])
    [received] = sqs_client.receive_message(
        QueueUrl=queue_url, AttributeNames=["SentTimestamp"], VisibilityTimeout=0
    )["Messages"]
    message_id = received["MessageId"]
    sent_ms = int(received["Attributes"]["SentTimestamp"])
    sent_at = dt.datetime.fromtimestamp(sent_ms / 1000, dt.UTC)
    quarantine(db, keys, message_id, text, sent_at=sent_at)

    first = cli("quarantine", "replay", "--all")
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == ["1 replayed: 1 loaded, 0 still rejected"]
    assert quarantined(db) == {}
    assert count(db, "login_etl.processed_messages") == 1, "the id stays in the ledger"
    [row] = db.execute("SELECT user_id, create_date FROM user_logins").fetchall()
    assert row == ("u-replayed", sent_at.date())
    assert count(db, "login_etl.masked_values") == 1

    second = cli("quarantine", "replay", "--all")
    assert second.stdout.splitlines() == ["0 replayed: 0 loaded, 0 still rejected"]
    assert count(db, "user_logins") == 1

    # SQS redelivers the same message, and another login sends the same body: `run` skips the
    # first (its id is in the ledger) and loads the second, with the very same tokens.
    send([text])
    run = cli("run", "--until-empty")
    assert run.returncode == 0, run.stderr
    assert " 1 loaded, 0 rejected" in run.stdout
    assert count(db, "user_logins") == 2
    rows = db.execute(
        "SELECT count(DISTINCT masked_ip), count(DISTINCT masked_device_id), count(*)"
        " FROM user_logins"
    ).fetchone()
    assert rows == (1, 1, 2), "one device, one ip: duplicates still group"
    assert count(db, "login_etl.masked_values") == 1


def test_a_message_still_invalid_stays_with_todays_reason(cli: Cli, db: DB, keys: KeyRing) -> None:
    missing_user = body(user_id=ABSENT, device_id="dev-secret-42")
    not_json = '{"ip": "203.0.113.9", oops'
    quarantine(db, keys, "m-missing-user", missing_user)
    quarantine(db, keys, "m-not-json", not_json, reason=current_reason(not_json))
    quarantine(db, keys, "m-valid", body(ip="203.0.113.10"))

    result = cli("quarantine", "replay", "--all")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "3 replayed: 1 loaded, 2 still rejected"
    assert sorted(lines[1:]) == sorted(
        [f"  1 × {current_reason(missing_user)}", f"  1 × {current_reason(not_json)}"]
    )
    for secret in ("dev-secret-42", "203.0.113.9", "203.0.113.10"):
        assert secret not in result.stdout + result.stderr
    assert quarantined(db) == {
        "m-missing-user": "user_id: required",
        "m-not-json": current_reason(not_json),
    }
    assert count(db, "user_logins") == 1
    assert count(db, "login_etl.processed_messages") == 3


def test_replay_by_id_touches_only_that_id(cli: Cli, db: DB, keys: KeyRing) -> None:
    quarantine(db, keys, "m-1", body(user_id="u-1"))
    quarantine(db, keys, "m-2", body(user_id="u-2"))
    quarantine(db, keys, "m-3", body(user_id=ABSENT))

    result = cli("quarantine", "replay", "m-2", "m-3", "m-unknown")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:2] == [
        "2 replayed: 1 loaded, 1 still rejected",
        "1 of the ids given are not in the quarantine",
    ]
    assert quarantined(db) == {"m-1": "old rule", "m-3": "user_id: required"}
    assert db.execute("SELECT user_id FROM user_logins").fetchall() == [("u-2",)]


def test_a_dry_run_changes_nothing(cli: Cli, db: DB, keys: KeyRing) -> None:
    quarantine(db, keys, "m-1", body())
    quarantine(db, keys, "m-2", body(device_type=ABSENT))
    before = db.execute("SELECT * FROM login_etl.rejected_messages ORDER BY 1").fetchall()

    result = cli("quarantine", "replay", "--all", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "Dry run, nothing changed. 2 replayed: 1 would load, 1 still rejected",
        "  1 × device_type: required",
    ]
    assert db.execute("SELECT * FROM login_etl.rejected_messages ORDER BY 1").fetchall() == before
    assert count(db, "user_logins") == 0
    assert count(db, "login_etl.masked_values") == 0


def test_create_date_is_the_sent_date_else_the_rejected_date(
    db: DB, keys: KeyRing, database_url: str
) -> None:
    quarantine(db, keys, "m-sent", body(user_id="u-sent"))
    quarantine(
        db,
        keys,
        "m-unsent",
        body(user_id="u-unsent"),
        sent_at=None,
        rejected_at=dt.datetime(2023, 3, 4, 0, 30, tzinfo=dt.UTC),
    )
    with connect(database_url) as conn:
        report = replay_quarantine(QuarantineStore(conn), keys.masker, keys.sealer)
    assert (report.replayed, report.loaded) == (2, 2)
    rows = db.execute("SELECT user_id, create_date FROM user_logins ORDER BY 1").fetchall()
    assert rows == [("u-sent", dt.date(2024, 5, 17)), ("u-unsent", dt.date(2023, 3, 4))]


def test_a_row_the_database_refuses_stays_with_its_sqlstate(
    db: DB, keys: KeyRing, database_url: str
) -> None:
    db.execute("ALTER TABLE user_logins ADD CONSTRAINT no_ios CHECK (device_type <> 'ios')")
    quarantine(db, keys, "m-android", body(device_type="android"))
    quarantine(db, keys, "m-ios", body(device_type="ios"))
    with connect(database_url) as conn:
        report = replay_quarantine(QuarantineStore(conn), keys.masker, keys.sealer)
    assert (report.replayed, report.loaded) == (2, 1)
    assert report.still_rejected == {"database: refused the row (SQLSTATE 23514)": 1}
    assert quarantined(db) == {"m-ios": "database: refused the row (SQLSTATE 23514)"}
    assert db.execute("SELECT device_type FROM user_logins").fetchall() == [("android",)]


def test_a_row_locked_by_another_replay_is_skipped_not_waited_for(
    db: DB, keys: KeyRing, database_url: str
) -> None:
    quarantine(db, keys, "m-1", body(user_id="u-1"))
    quarantine(db, keys, "m-2", body(user_id="u-2"))
    with connect(database_url) as other, connect(database_url) as conn:
        other.execute(
            "SELECT 1 FROM login_etl.rejected_messages WHERE message_id = 'm-1' FOR UPDATE"
        )
        report = replay_quarantine(QuarantineStore(conn), keys.masker, keys.sealer)
        assert (report.replayed, report.loaded) == (1, 1)
        other.rollback()
        report = replay_quarantine(QuarantineStore(conn), keys.masker, keys.sealer)
        assert (report.replayed, report.loaded) == (1, 1)
    assert db.execute("SELECT user_id FROM user_logins ORDER BY 1").fetchall() == [
        ("u-1",),
        ("u-2",),
    ]


def test_two_replays_at_once_load_each_message_once(
    db: DB, keys: KeyRing, database_url: str
) -> None:
    total = 300
    for i in range(total):
        quarantine(db, keys, f"m-{i:04}", body(user_id=f"u-{i:04}"))
    start = threading.Barrier(2)
    loaded: list[int] = []

    def replay() -> None:
        with connect(database_url) as conn:
            start.wait()
            report = replay_quarantine(
                QuarantineStore(conn), keys.masker, keys.sealer, batch_size=7
            )
        loaded.append(report.loaded)

    threads = [threading.Thread(target=replay, daemon=True) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(loaded) == 2, "a replay failed"
    assert sum(loaded) == total
    assert db.execute("SELECT count(*), count(DISTINCT user_id) FROM user_logins").fetchone() == (
        total,
        total,
    )
    assert quarantined(db) == {}


def test_a_body_sealed_with_another_key_file_stops_the_replay(
    cli: Cli, db: DB, keys: KeyRing, tmp_path: Path
) -> None:
    create_key_file(tmp_path / "other.json")
    quarantine(db, load_key_file(tmp_path / "other.json"), "m-1", body())
    result = cli("quarantine", "replay", "--all")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "does not decrypt with this key file" in result.stderr
    assert quarantined(db) == {"m-1": "old rule"}
    assert count(db, "user_logins") == 0


@pytest.mark.parametrize("args", [[], ["--all", "m-1"]], ids=["neither", "both"])
def test_ids_or_all_is_required(cli: Cli, db: DB, keys: KeyRing, args: list[str]) -> None:
    quarantine(db, keys, "m-1", body())
    result = cli("quarantine", "replay", *args)
    assert result.returncode == 2
    assert "give MessageIds or --all" in result.stderr
    assert quarantined(db) == {"m-1": "old rule"}


def test_a_transform_bug_is_logged_by_type_and_frames_never_by_its_text(
    db: DB,
    keys: KeyRing,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    marker = VALID_EVENT["ip"]  # an exception's text may quote the input it choked on

    def broken_transform(self: Transformer, message: Message) -> Outcome:
        raise ValueError(f"cannot mask ip {marker!r}")

    quarantine(db, keys, "m-1", body())
    monkeypatch.setattr(Transformer, "__call__", broken_transform)
    with caplog.at_level(logging.DEBUG), connect(database_url) as conn:
        report = replay_quarantine(QuarantineStore(conn), keys.masker, keys.sealer)
    [reason] = report.still_rejected  # the message keeps its place, with the type only
    assert "transform failed (ValueError)" in reason
    [failure] = [r for r in caplog.records if "transform of message m-1" in r.getMessage()]
    assert failure.exc_info is None
    assert "(ValueError)" in failure.getMessage()
    assert "in broken_transform" in failure.getMessage()  # the frames say where
    assert marker not in caplog.text
