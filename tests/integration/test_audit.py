"""Every recovery of plaintext (`reveal`, `quarantine show`) leaves one audit record first, with
who, why and how many, and never a value, a token or a message id."""

from __future__ import annotations

import datetime as dt
import json
import os
import pwd
from typing import Any

import pytest

from login_etl.keys import KeyRing
from tests.support import DB, Cli, body, count, quarantine

# The name of the uid the CLI runs as (the tests' own); what the audit must record as OS user.
ME = pwd.getpwuid(os.geteuid()).pw_name
IPS = ["203.0.113.7", "198.51.100.23", "2001:db8::1"]
LONG_DEVICE_ID = "device-" + "é" * 200  # over 171 bytes: a vault token


def audit_rows(db: DB) -> list[tuple[Any, ...]]:
    return db.execute(
        "SELECT requester, os_user, db_user, action, field, value_count, reason"
        " FROM login_etl.reveal_audit ORDER BY id"
    ).fetchall()


def audit_text(db: DB) -> str:
    return "\n".join(str(row) for row in db.execute("SELECT * FROM login_etl.reveal_audit"))


def vault_token(db: DB, keys: KeyRing, value: str) -> str:
    masked = keys.masker.mask("device_id", value)
    assert masked.vault is not None
    db.execute(
        "INSERT INTO login_etl.masked_values (token, field, ciphertext) VALUES (%s, %s, %s)",
        masked.vault,
    )
    return masked.token


def test_each_reveal_leaves_one_record_with_its_count_and_reason_and_no_value(
    cli: Cli, db: DB, keys: KeyRing
) -> None:
    tokens = [keys.masker.mask("ip", ip).token for ip in IPS]
    long_token = vault_token(db, keys, LONG_DEVICE_ID)
    me = ME
    (db_user,) = db.execute("SELECT current_user").fetchone() or ("?",)

    first = cli("reveal", "--field", "ip", "--reason", "TICKET-1 fraud check", *tokens)
    assert first.returncode == 0, first.stderr
    assert first.stdout.split() == IPS
    assert audit_rows(db) == [(me, me, db_user, "reveal", "ip", 3, "TICKET-1 fraud check")]

    second = cli(
        "reveal",
        "--field",
        "device_id",
        "--reason",
        "TICKET-2",
        "--requester",
        "dana@example.com",
        stdin=long_token + "\n",
    )
    assert second.returncode == 0, second.stderr
    assert second.stdout == LONG_DEVICE_ID + "\n"
    assert audit_rows(db)[1:] == [
        ("dana@example.com", me, db_user, "reveal", "device_id", 1, "TICKET-2")
    ]

    stored = audit_text(db)
    for secret in [*IPS, *tokens, LONG_DEVICE_ID, long_token]:
        assert secret not in stored, "a value or token in the audit trail"
        assert secret not in first.stderr + second.stderr


@pytest.mark.parametrize(
    "reason_args", [[], ["--reason", ""], ["--reason", "   "]], ids=["none", "empty", "blank"]
)
def test_a_reveal_without_a_reason_exits_2_prints_and_records_nothing(
    cli: Cli, db: DB, keys: KeyRing, reason_args: list[str]
) -> None:
    token = keys.masker.mask("ip", IPS[0]).token
    result = cli("reveal", "--field", "ip", *reason_args, token)
    assert result.returncode == 2, result.stderr
    assert "--reason" in result.stderr
    assert result.stdout == ""
    assert IPS[0] not in result.stderr
    assert count(db, "login_etl.reveal_audit") == 0


def test_a_reveal_that_does_not_decrypt_prints_and_records_nothing(
    cli: Cli, db: DB, keys: KeyRing
) -> None:
    good = keys.masker.mask("ip", IPS[0]).token
    other_field = keys.masker.mask("device_id", IPS[1]).token
    result = cli("reveal", "--field", "ip", "--reason", "r", good, other_field)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "value 2: does not decrypt as a ip" in result.stderr
    for secret in (IPS[0], IPS[1], good, other_field):
        assert secret not in result.stderr
    assert count(db, "login_etl.reveal_audit") == 0


def test_if_the_audit_record_cannot_be_written_nothing_is_printed(
    cli: Cli, db: DB, keys: KeyRing
) -> None:
    db.execute(
        "CREATE FUNCTION login_etl.refuse() RETURNS trigger LANGUAGE plpgsql"
        " AS $$ BEGIN RAISE EXCEPTION 'audit refused'; END $$"
    )
    db.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON login_etl.reveal_audit"
        " FOR EACH ROW EXECUTE FUNCTION login_etl.refuse()"
    )
    token = keys.masker.mask("ip", IPS[0]).token
    result = cli("reveal", "--field", "ip", "--reason", "r", token)
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("login-etl: error: PostgreSQL record the audit entry: ")
    assert result.stderr.count("\n") == 1
    assert IPS[0] not in result.stderr
    assert token not in result.stderr

    quarantine(db, keys, "m-1", body(device_id="dev-secret-1"))
    shown = cli("quarantine", "show", "m-1", "--reason", "r")
    assert shown.returncode == 1
    assert shown.stdout == ""
    assert "dev-secret-1" not in shown.stderr


def test_quarantine_show_needs_a_reason_and_leaves_one_record(
    cli: Cli, db: DB, keys: KeyRing
) -> None:
    quarantine(db, keys, "m-1", body(app_version="x", device_id="dev-secret-1"))

    without = cli("quarantine", "show", "m-1")
    assert without.returncode == 2
    assert "dev-secret-1" not in without.stdout + without.stderr
    assert count(db, "login_etl.reveal_audit") == 0

    shown = cli("quarantine", "show", "m-1", "--reason", "INC-7 app bug", "--requester", "ops")
    assert shown.returncode == 0, shown.stderr
    assert '"device_id": "dev-secret-1"' in shown.stdout
    me = ME
    [(requester, os_user, _db_user, action, field, values, reason)] = audit_rows(db)
    assert (requester, os_user, action, field, values, reason) == (
        "ops",
        me,
        "quarantine show",
        "body",
        1,
        "INC-7 app bug",
    )
    assert "m-1" not in audit_text(db), "a message id points at PII: not in the audit trail"
    assert "dev-secret-1" not in audit_text(db)


def test_audit_lists_the_records_newest_first(cli: Cli, db: DB, keys: KeyRing) -> None:
    token = keys.masker.mask("ip", IPS[0]).token
    for reason in ("first-reason", "second-reason"):
        assert cli("reveal", "--field", "ip", "--reason", reason, token).returncode == 0

    table = cli("audit", COLUMNS="200")
    assert table.returncode == 0, table.stderr
    assert "2 audit records, newest first" in table.stdout
    assert table.stdout.index("second-reason") < table.stdout.index("first-reason")
    assert token not in table.stdout
    assert IPS[0] not in table.stdout

    lines = cli("audit", "--json").stdout.splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["reason"] for r in records] == ["second-reason", "first-reason"]
    assert records[0]["action"] == "reveal"
    assert records[0]["field"] == "ip"
    assert records[0]["value_count"] == 1
    assert records[0]["requester"] == ME
    assert records[0]["os_user"] == ME
    assert dt.datetime.fromisoformat(records[0]["at"]).tzinfo is not None

    newest = [
        json.loads(line) for line in cli("audit", "--json", "--limit", "1").stdout.splitlines()
    ]
    assert [r["reason"] for r in newest] == ["second-reason"]
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).date().isoformat()
    assert cli("audit", "--json", "--since", tomorrow).stdout == ""
    yesterday = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).date().isoformat()
    assert len(cli("audit", "--json", "--since", yesterday).stdout.splitlines()) == 2
    assert cli("audit", "--since", "17/05/2024").returncode == 2


@pytest.mark.parametrize(
    ("claim", "recorded"),
    [("mallory", "mallory"), (ME, None), ("", None)],
    ids=["someone else", "the uid's own name", "nothing"],
)
def test_the_os_user_is_the_uids_name_and_the_environment_only_a_claim(
    cli: Cli, db: DB, keys: KeyRing, claim: str, recorded: str | None
) -> None:
    token = keys.masker.mask("ip", IPS[0]).token
    env = {"USER": claim, "LOGNAME": claim}
    assert cli("reveal", "--field", "ip", "--reason", "r", token, **env).returncode == 0
    quarantine(db, keys, "m-1", body())
    assert cli("quarantine", "show", "m-1", "--reason", "r", **env).returncode == 0

    rows = db.execute(
        "SELECT requester, os_user, os_user_claimed FROM login_etl.reveal_audit ORDER BY id"
    ).fetchall()
    # The default requester is the uid's name too: an environment variable names no one.
    assert rows == [(ME, ME, recorded), (ME, ME, recorded)]

    [record, _] = [json.loads(line) for line in cli("audit", "--json").stdout.splitlines()]
    assert (record["os_user"], record["os_user_claimed"]) == (ME, recorded)
    table = cli("audit", COLUMNS="250").stdout
    assert (f"{ME} (env says mallory)" in table) == (recorded is not None)
