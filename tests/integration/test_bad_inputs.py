"""Each class of bad input is quarantined with its reason; nothing else is lost."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from login_etl import lambda_handler
from login_etl.adapters.postgres import QuarantineStore, vault_lookup
from login_etl.config import Settings
from login_etl.core.reasons import KINDS
from login_etl.keys import KeyRing
from login_etl.ports import Backlog
from login_etl.runtime.metrics import PrometheusMetrics
from login_etl.runtime.wiring import open_worker
from tests.support import ABSENT, BAD_BODIES, body, count, event

# Edge cases that must load, each in its own way.
GOOD = [
    body(user_id="edge-ipv6", ip="2001:DB8::0:1"),
    body(user_id="edge-ipv6-again", ip="2001:db8::1"),
    body(user_id="edge-trim", ip=" 10.1.1.1 ", device_id="  dev-1  "),
    body(user_id="edge-nulls", locale=None, app_version=None),
    body(user_id="edge-absent", locale=ABSENT, app_version=ABSENT),
    body(user_id="edge-long-device", device_id="é" * 256),
    body(user_id="u" * 128, device_type="d" * 32, locale="l" * 32, app_version="2146.999.999"),
]


def holding(field: str, raw_json: str, **fields: Any) -> str:
    """A valid body (with `fields` replaced) whose `field` holds `raw_json` as written; a field
    other than the known ones is an ignored key."""
    return json.dumps(event(**fields, **{field: "@"})).replace('"@"', raw_json)


DEEP = "[" * 100_000 + "]" * 100_000
RAW_TAB = body(user_id="@").replace("@", "a\tb")  # unescaped, inside a JSON string
RAW_NUL = body(user_id="@").replace("@", "a\x00b")
NOT_JSON = "body: not valid JSON"

# Bad input that held when reviewed (issue 9, item 3), and must keep holding: each is rejected
# with this reason, or (HELD_LOADED) loads, and never costs the rest of its batch.
HELD_REJECTED = {
    # NaN and ±Infinity are not JSON (RFC 8259), wherever they are.
    holding("locale", "NaN"): f"{NOT_JSON} (NaN is not valid JSON)",
    holding("meta", "NaN"): f"{NOT_JSON} (NaN is not valid JSON)",
    holding("ip", "Infinity"): f"{NOT_JSON} (Infinity is not valid JSON)",
    holding("meta", "Infinity"): f"{NOT_JSON} (Infinity is not valid JSON)",
    holding("device_id", "-Infinity"): f"{NOT_JSON} (-Infinity is not valid JSON)",
    holding("meta", "-Infinity"): f"{NOT_JSON} (-Infinity is not valid JSON)",
    # Numbers too large for a double or for int(): JSON numbers, so a wrong type where a string
    # belongs.
    holding("user_id", "1e999"): "user_id: must be a string, got number",
    holding("locale", "9" * 4301): "locale: must be a string, got number",
    # Nesting: rejected before parsing (no RecursionError), however deep.
    holding("meta", DEEP): "body: nested more than 256 levels deep",
    "[" * 100_000: "body: nested more than 256 levels deep",
    # PostgreSQL text holds neither unpaired surrogates nor NUL.
    body(user_id="a\ud800"): "user_id: must be valid Unicode (it has an unpaired surrogate)",
    body(device_type="\udc00"): (
        "device_type: must be valid Unicode (it has an unpaired surrogate)"
    ),
    body(device_id="a\x00b"): "device_id: must not contain NUL characters",
    body(locale="\x00"): "locale: must not contain NUL characters",
    "\ufeff" + body(): f"{NOT_JSON} (it starts with a byte order mark, U+FEFF)",
    body(device_id="d" * 250_000): (
        "device_id: must be 1–256 characters after trimming whitespace, got 250000"
    ),
    body(ip="fe80::1%eth0"): "ip: must be an IPv4 or IPv6 address without a zone index",
    # Control characters: raw ones inside a JSON string are not JSON (escaped ones load).
    RAW_TAB: f"{NOT_JSON} (Invalid control character at line 1 column 15)",
    RAW_NUL: f"{NOT_JSON} (Invalid control character at line 1 column 15)",
    "\x00": f"{NOT_JSON} (Expecting value at line 1 column 1)",
    "": f"{NOT_JSON} (empty)",
    # A known field given twice at the top level.
    '{"ip": "1.2.3.4", ' + body()[1:]: "ip: given more than once",
}
HELD_LOADED = {
    # user_id → body
    "held-1e999": holding("meta", "1e999", user_id="held-1e999"),
    "held-minus-1e999": holding("meta", "-1e999", user_id="held-minus-1e999"),
    "held-4300-digits": holding("meta", "9" * 4300, user_id="held-4300-digits"),
    "held-5000-digits": holding("meta", "-" + "9" * 5000, user_id="held-5000-digits"),
    "held-surrogate": holding("meta", '"\\ud800"', user_id="held-surrogate"),
    "held-surrogate-key": body(user_id="held-surrogate-key")[:-1] + ', "\\udc00": 1}',
    "held-nul": holding("meta", '"a\\u0000b"', user_id="held-nul"),
    "held-250kb": holding("meta", '"' + "x" * 250_000 + '"', user_id="held-250kb"),
    "held-mapped": body(user_id="held-mapped", ip="::ffff:1.2.3.4"),
    "held-mapped-hex": body(user_id="held-mapped-hex", ip="::FFFF:102:304"),
    "held-ctl-\x01\x1f\x7f": body(user_id="held-ctl-\x01\x1f\x7f", device_type="\x85"),
    # Keys repeated below the top level, or unknown ones at it (issue 9, 2d).
    "held-dupe-depth-1": holding("meta", '{"ip": "1", "ip": "2"}', user_id="held-dupe-depth-1"),
    "held-dupe-depth-2": holding(
        "meta", '{"a": {"user_id": "1", "user_id": "2"}}', user_id="held-dupe-depth-2"
    ),
    "held-dupe-in-array": holding("meta", '[{"ip": "1", "ip": "2"}]', user_id="held-dupe-in-array"),
    "held-dupe-unknown": '{"x": 1, "x": 2, ' + body(user_id="held-dupe-unknown")[1:],
}
# Bodies SQS takes only one per SendMessageBatch (whose total is limited to 256 KiB).
LARGE = 64 * 1024


def send_all(
    bodies: list[str], send: Callable[[list[str]], int], sqs_client: Any, url: str
) -> None:
    send([b for b in bodies if len(b.encode()) < LARGE])
    for large in (b for b in bodies if len(b.encode()) >= LARGE):
        sqs_client.send_message(QueueUrl=url, MessageBody=large)


def recorded_reasons(db: psycopg.Connection[tuple[Any, ...]], keys: KeyRing) -> dict[str, str]:
    """Each rejection's body (decrypted with the key file) → its stored reason."""
    store = QuarantineStore(db)
    return {keys.sealer.open(e.message_id, e.body): e.reason for e in store.list(limit=1000)}


def assert_held_rows(db: psycopg.Connection[tuple[Any, ...]], keys: KeyRing) -> None:
    rows = {
        r[0]: r
        for r in db.execute("SELECT user_id, device_type, masked_ip FROM user_logins").fetchall()
    }
    assert set(HELD_LOADED) <= set(rows)
    assert keys.masker.reveal("ip", rows["held-mapped"][2]) == "::ffff:1.2.3.4"
    assert rows["held-mapped-hex"][2] == rows["held-mapped"][2]
    assert rows["held-ctl-\x01\x1f\x7f"][1] == "\x85"


def test_every_bad_input_class_is_recorded_and_the_rest_is_loaded(
    make_settings: Callable[..., Settings],
    send: Callable[[list[str]], int],
    backlog: Callable[[], Backlog],
    db: psycopg.Connection[tuple[Any, ...]],
    keys: KeyRing,
) -> None:
    send(list(BAD_BODIES) + GOOD)
    with open_worker(make_settings()) as worker:
        stats = worker.run(until_empty=True)

    assert (stats.loaded, stats.rejected) == (len(GOOD), len(BAD_BODIES))
    assert backlog().empty
    assert count(db, "user_logins") == len(GOOD)

    # Each rejection: its reason, and its body recoverable with the key file.
    store = QuarantineStore(db)
    recorded = {keys.sealer.open(e.message_id, e.body): e.reason for e in store.list(limit=1000)}
    assert recorded == BAD_BODIES

    rows = {
        r[0]: r
        for r in db.execute(
            "SELECT user_id, masked_ip, masked_device_id, locale, app_version FROM user_logins"
        ).fetchall()
    }
    assert rows["edge-ipv6"][1] == rows["edge-ipv6-again"][1]
    assert keys.masker.reveal("ip", rows["edge-trim"][1]) == "10.1.1.1"
    assert keys.masker.reveal("device_id", rows["edge-trim"][2]) == "dev-1"
    assert rows["edge-nulls"][3:] == (None, None)
    assert rows["edge-absent"][3:] == (None, None)
    long_token = rows["edge-long-device"][2]
    assert len(long_token) <= 256
    assert keys.masker.reveal("device_id", long_token, vault_lookup(db)) == "é" * 256
    assert rows["u" * 128][4] == 2_146_999_999


def test_a_body_with_every_rule_broken_keeps_its_json_out_of_the_reason(
    make_settings: Callable[..., Settings],
    send: Callable[[list[str]], int],
    db: psycopg.Connection[tuple[Any, ...]],
) -> None:
    secret_ip = "203.0.113.77"
    send([json.dumps({"ip": secret_ip + "x", "device_id": 5, "user_id": None})])
    with open_worker(make_settings()) as worker:
        worker.run(until_empty=True)
    [(reason,)] = db.execute("SELECT reason FROM login_etl.rejected_messages").fetchall()
    assert secret_ip not in reason


def test_bad_input_that_held_is_recorded_as_decided_and_the_rest_is_loaded(
    make_settings: Callable[..., Settings],
    send: Callable[[list[str]], int],
    sqs_client: Any,
    queue_url: str,
    backlog: Callable[[], Backlog],
    db: psycopg.Connection[tuple[Any, ...]],
    keys: KeyRing,
) -> None:
    send_all([*HELD_REJECTED, *HELD_LOADED.values(), *GOOD], send, sqs_client, queue_url)
    metrics = PrometheusMetrics()
    with open_worker(make_settings(), metrics=metrics) as worker:
        stats = worker.run(until_empty=True)

    loaded = len(HELD_LOADED) + len(GOOD)
    assert (stats.loaded, stats.rejected) == (loaded, len(HELD_REJECTED))
    assert backlog().empty
    assert count(db, "user_logins") == loaded
    assert recorded_reasons(db, keys) == HELD_REJECTED
    assert_held_rows(db, keys)
    labels = {
        sample.labels["reason"]
        for metric in metrics.registry.collect()
        for sample in metric.samples
        if sample.name == "login_etl_messages_rejected_total"
    }
    assert labels <= KINDS


@pytest.fixture
def lambda_env(
    monkeypatch: pytest.MonkeyPatch, key_file: Path, database_url: str
) -> Iterator[None]:
    """The Lambda handler pointed at the test's database, as a fresh execution environment."""
    for name in ("LOGIN_ETL_QUEUE_URL", "LOGIN_ETL_LOG_LEVEL", "LOGIN_ETL_LOG_FORMAT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LOGIN_ETL_KEYSET_FILE", str(key_file))
    monkeypatch.setenv("LOGIN_ETL_DATABASE_URL", database_url)
    package_logger = logging.getLogger("login_etl")
    level = package_logger.level  # a cold start sets it
    lambda_handler.reset()
    yield
    lambda_handler.reset()
    package_logger.setLevel(level)


def test_the_lambda_records_the_same_outcomes_in_one_batch(
    lambda_env: None, db: psycopg.Connection[tuple[Any, ...]], keys: KeyRing
) -> None:
    # One invocation is one batch: none of these may cost the others, or fail the invocation.
    bodies = [*HELD_REJECTED, *HELD_LOADED.values(), *GOOD]
    records = [
        {
            "messageId": str(uuid.uuid4()),
            "receiptHandle": "AQEB" + uuid.uuid4().hex,
            "body": text,
            "attributes": {"SentTimestamp": "1700000000000"},
        }
        for text in bodies
    ]

    assert lambda_handler.handler({"Records": records}, None) == {"batchItemFailures": []}

    assert count(db, "user_logins") == len(HELD_LOADED) + len(GOOD)
    assert recorded_reasons(db, keys) == HELD_REJECTED
    assert_held_rows(db, keys)
