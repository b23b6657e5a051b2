"""The one SQS record parser, in both shapes a record comes in (boto3's and Lambda's)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from login_etl.core.model import Message
from login_etl.core.sqs_record import SentFrom, parse_record, timestamp_ms
from login_etl.core.timestamps import MAX_TIMESTAMP_MS
from login_etl.errors import UnreadableRecord

NOW_MS = 1_750_000_000_000
SENT_MS = 1_700_000_000_000
FIRST_RECEIVED_MS = SENT_MS + 12


def boto3_record(**attributes: Any) -> dict[str, Any]:
    """As `receive_message` returns it."""
    return {
        "MessageId": "m-1",
        "ReceiptHandle": "AQEBreceipt",
        "MD5OfBody": "ignored",
        "Body": '{"user_id": "u"}',
        "Attributes": attributes,
    }


def lambda_record(**attributes: Any) -> dict[str, Any]:
    """As the Lambda event source mapping delivers it."""
    return {
        "messageId": "m-1",
        "receiptHandle": "AQEBreceipt",
        "body": '{"user_id": "u"}',
        "attributes": attributes,
        "messageAttributes": {},
        "eventSource": "aws:sqs",
    }


SHAPES = pytest.mark.parametrize("shape", [boto3_record, lambda_record])


@SHAPES
def test_both_shapes_become_the_same_message(shape: Any) -> None:
    record = shape(SentTimestamp=str(SENT_MS), ApproximateFirstReceiveTimestamp="1")
    assert parse_record(record, now_ms=NOW_MS) == Message(
        "m-1", '{"user_id": "u"}', SENT_MS, "AQEBreceipt"
    )


@SHAPES
@pytest.mark.parametrize(
    ("attributes", "sent_ms", "sent_from"),
    [
        ({"SentTimestamp": str(SENT_MS)}, SENT_MS, None),
        ({"SentTimestamp": SENT_MS}, SENT_MS, None),  # an int, as a test double may send
        (
            {"ApproximateFirstReceiveTimestamp": str(FIRST_RECEIVED_MS)},
            FIRST_RECEIVED_MS,
            "ApproximateFirstReceiveTimestamp",
        ),
        (
            {"SentTimestamp": "yesterday", "ApproximateFirstReceiveTimestamp": "1700000000012"},
            FIRST_RECEIVED_MS,
            "ApproximateFirstReceiveTimestamp",
        ),
        ({}, NOW_MS, "now"),
        ({"SentTimestamp": "9" * 5000, "ApproximateFirstReceiveTimestamp": "-1"}, NOW_MS, "now"),
        ({"SentTimestamp": str(MAX_TIMESTAMP_MS + 1)}, NOW_MS, "now"),
        ({"SentTimestamp": str(MAX_TIMESTAMP_MS)}, MAX_TIMESTAMP_MS, None),
        ({"SentTimestamp": "0"}, 0, None),
        ({"SentTimestamp": True}, NOW_MS, "now"),
        ({"SentTimestamp": "１７００"}, NOW_MS, "now"),  # digits, but not ASCII ones
    ],
)
def test_the_send_time_falls_back_in_one_order(
    shape: Any, attributes: dict[str, Any], sent_ms: int, sent_from: SentFrom | None
) -> None:
    heard: list[tuple[str, SentFrom]] = []
    message = parse_record(
        shape(**attributes), now_ms=NOW_MS, on_fallback=lambda i, s: heard.append((i, s))
    )
    assert message.sent_timestamp_ms == sent_ms
    assert heard == ([] if sent_from is None else [("m-1", sent_from)])


@SHAPES
def test_attributes_that_are_not_an_object_fall_back_to_now(shape: Any) -> None:
    record = shape()
    record["Attributes" if "Attributes" in record else "attributes"] = ["SentTimestamp"]
    assert parse_record(record, now_ms=NOW_MS).sent_timestamp_ms == NOW_MS


@pytest.mark.parametrize(
    "record",
    [
        "not a record",
        None,
        {"Body": "{}"},
        {"body": "{}"},
        {"MessageId": "", "Body": "{}"},
        {"messageId": 42, "body": "{}"},
    ],
)
def test_a_record_without_a_message_id_raises_without_one(record: object) -> None:
    with pytest.raises(UnreadableRecord) as caught:
        parse_record(record, now_ms=NOW_MS)
    assert caught.value.message_id is None


@pytest.mark.parametrize(
    "record",
    [{"MessageId": "m-9"}, {"messageId": "m-9", "body": None}, {"MessageId": "m-9", "Body": b"{}"}],
)
def test_a_record_without_a_body_raises_with_its_id(record: object) -> None:
    with pytest.raises(UnreadableRecord, match="no body") as caught:
        parse_record(record, now_ms=NOW_MS)
    assert caught.value.message_id == "m-9"


def test_a_record_without_a_receipt_gets_an_empty_one() -> None:
    record = {"messageId": "m-1", "body": "{}", "receiptHandle": None}
    assert parse_record(record, now_ms=NOW_MS).receipt == ""


def test_an_empty_body_is_a_body() -> None:
    # Validation rejects it (and quarantines it); the parser must not drop it.
    assert parse_record({"MessageId": "m-1", "Body": ""}, now_ms=NOW_MS).body == ""


@given(st.integers(min_value=0, max_value=MAX_TIMESTAMP_MS))
def test_every_timestamp_a_date_can_hold_is_read_as_sqs_writes_it(ms: int) -> None:
    assert timestamp_ms(str(ms)) == ms
    assert timestamp_ms(ms) == ms


@given(st.one_of(st.integers(max_value=-1), st.integers(min_value=MAX_TIMESTAMP_MS + 1)))
def test_no_timestamp_out_of_range_is_read(ms: int) -> None:
    assert timestamp_ms(str(ms)) is None
    assert timestamp_ms(ms) is None


@given(st.text())
def test_any_string_gives_a_timestamp_in_range_or_none(text: str) -> None:
    ms = timestamp_ms(text)
    assert ms is None or (0 <= ms <= MAX_TIMESTAMP_MS and str(ms) == text.lstrip("0").rjust(1, "0"))


@given(
    message_id=st.text(min_size=1),
    body=st.text(),
    receipt=st.text(),
    sent=st.integers(min_value=0, max_value=MAX_TIMESTAMP_MS),
)
def test_the_two_shapes_always_agree(message_id: str, body: str, receipt: str, sent: int) -> None:
    boto3 = {
        "MessageId": message_id,
        "ReceiptHandle": receipt,
        "Body": body,
        "Attributes": {"SentTimestamp": str(sent)},
    }
    lam = {
        "messageId": message_id,
        "receiptHandle": receipt,
        "body": body,
        "attributes": {"SentTimestamp": str(sent)},
    }
    expected = Message(message_id, body, sent, receipt)
    assert parse_record(boto3, now_ms=NOW_MS) == parse_record(lam, now_ms=NOW_MS) == expected
