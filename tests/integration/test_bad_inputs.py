"""Each class of bad input is quarantined with its reason; nothing else is lost."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import psycopg

from login_etl.adapters.postgres import QuarantineStore, vault_lookup
from login_etl.config import Settings
from login_etl.keys import KeyRing
from login_etl.ports import Backlog
from login_etl.service import open_pipeline
from tests.conftest import ABSENT, body
from tests.integration.conftest import count

# One message per input class of the mapping table, with the reason it must be recorded with.
BAD = {
    "not json": "body: not valid JSON (Expecting value at line 1 column 1)",
    "[1, 2]": "body: must be a JSON object, got array",
    '{"foo": "oops_wrong_msg_type", "bar": "123"}': "user_id: required; device_type: required; ip: required; device_id: required",
    body(user_id=""): "user_id: must be 1–128 characters, got 0",
    body(user_id="u" * 129): "user_id: must be 1–128 characters, got 129",
    body(user_id=123): "user_id: must be a string, got number",
    body(device_type=ABSENT): "device_type: required",
    body(device_type="d" * 33): "device_type: must be 1–32 characters, got 33",
    body(ip="10.0.0.256"): "ip: must be an IPv4 or IPv6 address",
    body(ip=None): "ip: must not be null",
    body(device_id=" "): "device_id: must be 1–256 characters after trimming whitespace, got 0",
    body(device_id=["x"]): "device_id: must be a string, got array",
    body(locale="x" * 33): "locale: must be 0–32 characters, got 33",
    body(app_version="2.3.x"): "app_version: must be MAJOR[.MINOR[.PATCH]] in decimal digits",
    body(app_version="3000.0.0"): "app_version: MAJOR must be at most 2146",
    body(app_version=230): "app_version: must be a string, got number",
    body(user_id="a\u0000b"): "user_id: must not contain NUL characters",
}

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


def test_every_bad_input_class_is_recorded_and_the_rest_is_loaded(
    make_settings: Callable[..., Settings],
    send: Callable[[list[str]], int],
    backlog: Callable[[], Backlog],
    db: psycopg.Connection[tuple[Any, ...]],
    keys: KeyRing,
) -> None:
    send(list(BAD) + GOOD)
    with open_pipeline(make_settings()) as pipeline:
        stats = pipeline.run(until_empty=True)

    assert (stats.loaded, stats.rejected) == (len(GOOD), len(BAD))
    assert backlog().empty
    assert count(db, "user_logins") == len(GOOD)

    # Each rejection: its reason, and its body recoverable with the key file.
    store = QuarantineStore(db)
    recorded = {keys.sealer.open(e.message_id, e.body): e.reason for e in store.list(limit=1000)}
    assert recorded == BAD

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
    with open_pipeline(make_settings()) as pipeline:
        pipeline.run(until_empty=True)
    [(reason,)] = db.execute("SELECT reason FROM login_etl.rejected_messages").fetchall()
    assert secret_ip not in reason
