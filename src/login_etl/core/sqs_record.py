"""One SQS record → one `Message`: the only parser of SQS records, for the worker and the Lambda.

It reads both shapes a record comes in: boto3's `receive_message` (MessageId, ReceiptHandle,
Body, Attributes) and the Lambda event source's (messageId, receiptHandle, body, attributes).
`create_date` comes from the send time; when SentTimestamp is missing or unusable it falls back
to ApproximateFirstReceiveTimestamp, then to now. Either is at most the visibility timeouts of
the retries away from the send, and losing the login over it would be worse.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal

from login_etl.core.model import Message
from login_etl.core.timestamps import MAX_TIMESTAMP_MS
from login_etl.errors import UnreadableRecord

_MAX_TIMESTAMP_DIGITS = len(str(MAX_TIMESTAMP_MS))

# Where `sent_timestamp_ms` came from, first usable wins.
SentFrom = Literal["SentTimestamp", "ApproximateFirstReceiveTimestamp", "now"]
# What callers log from `on_fallback` (message id, source): one wording for worker and Lambda.
FALLBACK_WARNING = "message %s: no usable SentTimestamp; create_date taken from %s"


def timestamp_ms(value: object) -> int | None:
    """A millisecond Unix timestamp as SQS writes it (a string of digits, or an int), if it is
    one that `create_date` can hold; else None. Long strings are refused before `int()`, whose
    digit limit would raise."""
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit() and len(value) <= _MAX_TIMESTAMP_DIGITS):
            return None
        ms = int(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        ms = value
    else:
        return None
    return ms if 0 <= ms <= MAX_TIMESTAMP_MS else None


def _get(raw: Mapping[object, object], boto3_key: str, lambda_key: str) -> object:
    return raw[boto3_key] if boto3_key in raw else raw.get(lambda_key)


def parse_record(
    raw: object,
    *,
    now_ms: int,
    on_fallback: Callable[[str, SentFrom], None] | None = None,
) -> Message:
    """The record as a Message.

    Raises UnreadableRecord if it is not a mapping or has no message id (`message_id` None), or
    has no string body (`message_id` set, so the caller can report it). A record without a
    receipt handle gets an empty one. `on_fallback(message_id, source)` is called when the send
    time had to come from elsewhere than SentTimestamp, so that the caller can log it.
    """
    if not isinstance(raw, Mapping):
        raise UnreadableRecord(None, "record is not an object")
    message_id = _get(raw, "MessageId", "messageId")
    if not isinstance(message_id, str) or not message_id:
        raise UnreadableRecord(None, "record has no messageId")
    body = _get(raw, "Body", "body")
    if not isinstance(body, str):
        raise UnreadableRecord(message_id, "record has no body")
    attributes = _get(raw, "Attributes", "attributes")
    if not isinstance(attributes, Mapping):
        attributes = {}
    sent_from: SentFrom = "SentTimestamp"
    sent_ms = timestamp_ms(attributes.get("SentTimestamp"))
    if sent_ms is None:
        sent_from = "ApproximateFirstReceiveTimestamp"
        sent_ms = timestamp_ms(attributes.get(sent_from))
    if sent_ms is None:
        sent_from, sent_ms = "now", now_ms
    if sent_from != "SentTimestamp" and on_fallback is not None:
        on_fallback(message_id, sent_from)
    receipt = _get(raw, "ReceiptHandle", "receiptHandle")
    return Message(message_id, body, sent_ms, receipt if isinstance(receipt, str) else "")
