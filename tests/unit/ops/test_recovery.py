"""ops.recovery: a recovery returns plaintext only once its audit record is written, and a
recovery that fails returns none and records nothing."""

from __future__ import annotations

import datetime as dt
import os
import pwd

import pytest

from login_etl.adapters.postgres import QuarantineEntry
from login_etl.adapters.postgres.audit import Recovery
from login_etl.errors import NotInQuarantine, SinkError
from login_etl.keys import KeyRing
from login_etl.ops.recovery import (
    RejectedMessage,
    Request,
    Revealed,
    Undecryptable,
    open_rejected,
    record_recovery,
    reveal_values,
)

ME = pwd.getpwuid(os.geteuid()).pw_name
IPS = ["203.0.113.7", "2001:db8::1"]
AT = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)


class Trail:
    """An in-memory audit trail; `refuse` makes `record` fail as a database would."""

    def __init__(self, *, refuse: bool = False) -> None:
        self.records: list[Recovery] = []
        self.refuse = refuse

    def record(self, recovery: Recovery) -> int:
        if self.refuse:
            raise SinkError("PostgreSQL record the audit entry: refused")
        self.records.append(recovery)
        return len(self.records)


class Quarantine:
    def __init__(self, *entries: QuarantineEntry) -> None:
        self.entries = {e.message_id: e for e in entries}

    def get(self, message_id: str) -> QuarantineEntry | None:
        return self.entries.get(message_id)


def no_vault(_token: str) -> bytes | None:
    return None


def test_a_reveal_returns_plaintexts_in_order_after_one_record(keys: KeyRing) -> None:
    trail = Trail()
    tokens = [keys.masker.mask("ip", ip).token for ip in IPS]
    revealed = reveal_values(
        keys.masker,
        no_vault,
        trail,
        field="ip",
        tokens=tokens,
        request=Request("  TICKET-1  "),
        one_per_line=True,
    )
    assert revealed == Revealed(plaintexts=tuple(IPS))
    assert trail.records == [
        Recovery(
            action="reveal",
            field="ip",
            value_count=2,
            reason="TICKET-1",
            requester=ME,
            os_user=ME,
            os_user_claimed=None,
        )
    ]


def test_a_value_that_does_not_decrypt_returns_nothing_and_records_nothing(
    keys: KeyRing,
) -> None:
    trail = Trail()
    good = keys.masker.mask("ip", IPS[0]).token
    other_field = keys.masker.mask("device_id", IPS[1]).token
    revealed = reveal_values(
        keys.masker,
        no_vault,
        trail,
        field="ip",
        tokens=[good, other_field, "not-a-token"],
        request=Request("r"),
        one_per_line=True,
    )
    assert revealed.plaintexts == ()
    assert [f.position for f in revealed.failures] == [2, 3]
    assert isinstance(revealed.failures[0], Undecryptable)
    assert "does not decrypt as a ip" in revealed.failures[0].error
    assert IPS[1] not in revealed.failures[0].error
    assert trail.records == []


@pytest.mark.parametrize("one_per_line", [True, False])
def test_a_line_break_is_refused_only_when_printed_one_per_line(
    keys: KeyRing, one_per_line: bool
) -> None:
    trail = Trail()
    token = keys.masker.mask("device_id", "two\nlines").token
    revealed = reveal_values(
        keys.masker,
        no_vault,
        trail,
        field="device_id",
        tokens=[token],
        request=Request("r"),
        one_per_line=one_per_line,
    )
    assert revealed.line_break == one_per_line
    assert revealed.plaintexts == (() if one_per_line else ("two\nlines",))
    assert len(trail.records) == (0 if one_per_line else 1)


def test_no_tokens_reveal_nothing_and_record_nothing(keys: KeyRing) -> None:
    trail = Trail()
    revealed = reveal_values(
        keys.masker,
        no_vault,
        trail,
        field="ip",
        tokens=[],
        request=Request("r"),
        one_per_line=True,
    )
    assert revealed == Revealed()
    assert trail.records == []


def test_if_the_record_fails_no_plaintext_is_returned(keys: KeyRing) -> None:
    token = keys.masker.mask("ip", IPS[0]).token
    with pytest.raises(SinkError):
        reveal_values(
            keys.masker,
            no_vault,
            Trail(refuse=True),
            field="ip",
            tokens=[token],
            request=Request("r"),
            one_per_line=True,
        )


def test_the_requester_is_kept_stripped_and_the_environment_only_as_a_claim() -> None:
    trail = Trail()
    record_recovery(
        trail,
        Request(" why ", " dana@example.com "),
        action="reveal",
        field="ip",
        value_count=1,
        environ={"USER": "mallory"},
    )
    [record] = trail.records
    assert (record.requester, record.reason) == ("dana@example.com", "why")
    assert (record.os_user, record.os_user_claimed) == (ME, "mallory")


def test_quarantine_show_decrypts_the_body_after_one_record(keys: KeyRing) -> None:
    sealed = keys.sealer.seal("m-1", '{"device_id": "dev-secret-1"}')
    entry = QuarantineEntry("m-1", AT, None, "app_version: not a version", sealed)
    trail = Trail()
    shown = open_rejected(Quarantine(entry), keys.sealer, trail, "m-1", Request("INC-7", "ops"))
    assert shown == RejectedMessage(
        "m-1", AT, "app_version: not a version", '{"device_id": "dev-secret-1"}'
    )
    [record] = trail.records
    assert (record.action, record.field, record.value_count) == (
        "quarantine show",
        "body",
        1,
    )
    assert record.requester == "ops"


def test_quarantine_show_of_an_unknown_id_raises_and_records_nothing(keys: KeyRing) -> None:
    trail = Trail()
    with pytest.raises(NotInQuarantine, match="no rejected message with id m-9"):
        open_rejected(Quarantine(), keys.sealer, trail, "m-9", Request("r"))
    assert trail.records == []
