"""The values that flow through the core.

NamedTuples rather than frozen dataclasses: they are immutable too, and several times cheaper to
build, which matters at 100,000 messages a second; a LoginRow is also exactly the tuple COPY
writes.
"""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

from login_etl.core.reasons import Kind


class Message(NamedTuple):
    """One queue message, transport-neutral.

    `receipt` is opaque to the core: the source that produced the message uses it to delete it.
    """

    message_id: str
    body: str
    sent_timestamp_ms: int
    receipt: str = ""


class LoginEvent(NamedTuple):
    """A message body that passed validation, normalised (ip canonical, device_id trimmed)."""

    user_id: str
    device_type: str
    ip: str
    device_id: str
    locale: str | None
    app_version: int | None


class LoginRow(NamedTuple):
    """One `user_logins` row, in the table's column order."""

    user_id: str
    device_type: str
    masked_ip: str
    masked_device_id: str
    locale: str | None
    app_version: int | None
    create_date: dt.date


class VaultEntry(NamedTuple):
    """Ciphertext of a value too long to store inline in a varchar(256) column (see masking)."""

    token: str
    field: str
    ciphertext: bytes


class Loaded(NamedTuple):
    """Outcome: the message becomes one row (plus vault entries for over-long values)."""

    message_id: str
    row: LoginRow
    # The message's SentTimestamp: the ledger's partition key (a redelivery carries the same).
    sent_timestamp_ms: int
    vault: tuple[VaultEntry, ...] = ()


class Rejected(NamedTuple):
    """Outcome: the message is quarantined with a reason and its body encrypted.

    `reason` names each field and rule broken and never quotes the value, so it is safe to log
    and store; `kind` (the first problem's `field:rule`, one of `reasons.KINDS`) is the metric
    label.
    """

    message_id: str
    reason: str
    sealed_body: bytes
    sent_timestamp_ms: int
    kind: Kind


Outcome = Loaded | Rejected
