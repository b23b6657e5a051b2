"""The values that flow through the core. Frozen and slotted: millions are made per hour."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Message:
    """One queue message, transport-neutral.

    `receipt` is opaque to the core: the source that produced the message uses it to delete it.
    """

    message_id: str
    body: str
    sent_timestamp_ms: int
    receipt: str = ""


@dataclass(frozen=True, slots=True)
class LoginEvent:
    """A message body that passed validation, normalised (ip canonical, device_id trimmed)."""

    user_id: str
    device_type: str
    ip: str
    device_id: str
    locale: str | None
    app_version: int | None


@dataclass(frozen=True, slots=True)
class LoginRow:
    """One `user_logins` row, in the table's column order."""

    user_id: str
    device_type: str
    masked_ip: str
    masked_device_id: str
    locale: str | None
    app_version: int | None
    create_date: dt.date


@dataclass(frozen=True, slots=True)
class VaultEntry:
    """Ciphertext of a value too long to store inline in a varchar(256) column (see masking)."""

    token: str
    field: str
    ciphertext: bytes


@dataclass(frozen=True, slots=True)
class Loaded:
    """Outcome: the message becomes one row (plus vault entries for over-long values)."""

    message_id: str
    row: LoginRow
    vault: tuple[VaultEntry, ...] = ()


@dataclass(frozen=True, slots=True)
class Rejected:
    """Outcome: the message is quarantined with a reason and its body encrypted.

    `reason` names the field and the rule and never quotes the value, so it is safe to log.
    """

    message_id: str
    reason: str
    sealed_body: bytes
    sent_timestamp_ms: int


Outcome = Loaded | Rejected
