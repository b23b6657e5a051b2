"""The exercise's 100 messages: 99 correct rows, 1 rejection, an empty queue, then nothing."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import psycopg

from login_etl.config import Settings
from login_etl.core.app_version import encode_app_version
from login_etl.keys import KeyRing
from login_etl.ports import Backlog
from login_etl.runtime.wiring import open_worker
from tests.support import count, sample_bodies, user_logins


def drain(settings: Settings) -> Any:
    with open_worker(settings) as worker:
        return worker.run(until_empty=True)


def test_the_exercise_queue_loads_99_rows_and_rejects_1(
    make_settings: Callable[..., Settings],
    send: Callable[[list[str]], int],
    backlog: Callable[[], Backlog],
    db: psycopg.Connection[tuple[Any, ...]],
    keys: KeyRing,
) -> None:
    bodies = sample_bodies()
    before = dt.datetime.now(dt.UTC).date()
    send(bodies)
    stats = drain(make_settings())
    after = dt.datetime.now(dt.UTC).date()

    assert (stats.loaded, stats.rejected) == (99, 1)
    # At least once: a second delivery of a message (SQS may, moto under concurrency does) is
    # received again and skipped, never loaded again.
    assert stats.received - stats.skipped == 100
    assert backlog().empty
    assert count(db, "user_logins") == 99
    assert count(db, "login_etl.processed_messages") == 100

    # Every row is the documented mapping of its message.
    expected = Counter()
    for text in bodies:
        item = json.loads(text)
        if "user_id" not in item:
            continue
        expected[
            (
                item["user_id"],
                item["device_type"],
                keys.masker.mask("ip", str(ipaddress.ip_address(item["ip"]))).token,
                keys.masker.mask("device_id", item["device_id"].strip()).token,
                item["locale"],
                encode_app_version(item["app_version"]) if item.get("app_version") else None,
            )
        ] += 1
    rows = user_logins(db)
    assert Counter(row[:6] for row in rows) == expected
    assert all(before <= row[6] <= after for row in rows)

    [(reason,)] = db.execute("SELECT reason FROM login_etl.rejected_messages").fetchall()
    assert reason == "user_id: required; device_type: required; ip: required; device_id: required"

    # A second run finds nothing to do and changes nothing.
    again = drain(make_settings())
    assert (again.received, again.loaded, again.rejected) == (0, 0, 0)
    assert user_logins(db) == rows
    assert count(db, "login_etl.rejected_messages") == 1


def test_app_version_text_turns_the_integer_back(
    make_settings: Callable[..., Settings],
    send: Callable[[list[str]], int],
    db: psycopg.Connection[tuple[Any, ...]],
) -> None:
    send(sample_bodies())
    drain(make_settings())
    texts = {
        row[0]
        for row in db.execute(
            "SELECT login_etl.app_version_text(app_version) FROM user_logins"
        ).fetchall()
    }
    # "6.02" is stored as 6002000 and reads back as "6.2.0".
    normalised = {
        ".".join(str(int(p)) for p in [*json.loads(b)["app_version"].split("."), "0", "0"][:3])
        for b in sample_bodies()
        if "app_version" in json.loads(b)
    }
    assert texts == normalised
