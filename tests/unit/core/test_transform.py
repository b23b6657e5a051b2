from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from login_etl.core.model import Loaded, Rejected
from login_etl.core.timestamps import utc_date
from login_etl.core.transform import Transformer
from login_etl.keys import KeyRing
from tests.support import body, message


def test_a_valid_message_becomes_a_masked_row(keys: KeyRing) -> None:
    outcome = Transformer(keys.masker, keys.sealer)(message(body(), sent_ms=1_700_000_000_000))
    assert isinstance(outcome, Loaded)
    row = outcome.row
    assert row.user_id == "424cdd21-063a-43a7-b91b-7ca1a833afae"
    assert row.device_type == "android"
    assert row.masked_ip == keys.masker.mask("ip", "199.172.111.135").token
    assert row.masked_device_id == keys.masker.mask("device_id", "593-47-5928").token
    assert row.locale == "RU"
    assert row.app_version == 2_003_000
    assert row.create_date == dt.date(2023, 11, 14)
    assert outcome.vault == ()


def test_equal_ips_in_other_spellings_give_one_token(keys: KeyRing) -> None:
    transform = Transformer(keys.masker, keys.sealer)
    a = transform(message(body(ip="2001:DB8::0:1")))
    b = transform(message(body(ip=" 2001:db8::1 ")))
    assert isinstance(a, Loaded) and isinstance(b, Loaded)
    assert a.row.masked_ip == b.row.masked_ip


def test_an_invalid_message_is_rejected_with_its_body_sealed(keys: KeyRing) -> None:
    outcome = Transformer(keys.masker, keys.sealer)(message(body(ip="nope"), message_id="m-9"))
    assert isinstance(outcome, Rejected)
    assert outcome.reason == "ip: must be an IPv4 or IPv6 address"
    assert b"593-47-5928" not in outcome.sealed_body
    assert keys.sealer.open("m-9", outcome.sealed_body) == body(ip="nope")


def test_a_long_device_id_carries_its_vault_entry(keys: KeyRing) -> None:
    outcome = Transformer(keys.masker, keys.sealer)(message(body(device_id="é" * 256)))
    assert isinstance(outcome, Loaded)
    assert [v.token for v in outcome.vault] == [outcome.row.masked_device_id]


@given(st.integers(min_value=0, max_value=4_102_444_800_000))
def test_create_date_is_the_utc_date_of_the_sent_timestamp(ms: int) -> None:
    expected = dt.datetime.fromtimestamp(ms // 1000, tz=dt.UTC).date()
    assert utc_date(ms) == expected


def test_create_date_edges() -> None:
    assert utc_date(0) == dt.date(1970, 1, 1)
    assert utc_date(86_399_999) == dt.date(1970, 1, 1)
    assert utc_date(86_400_000) == dt.date(1970, 1, 2)
