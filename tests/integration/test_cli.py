"""The command line as a user runs it: a real process against the real servers."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from login_etl.adapters.postgres import SCHEMA_VERSION
from login_etl.demo.data import generate_bodies
from login_etl.ports import Backlog
from tests.support import count, start_worker, wait_for_log, with_database


def test_run_until_empty_then_reveal_and_quarantine(
    cli: Callable[..., subprocess.CompletedProcess[str]],
    send: Callable[[list[str]], int],
    backlog: Callable[[], Backlog],
    database_url: str,
) -> None:
    bodies = generate_bodies(50, malformed=2)
    send(bodies)
    first = cli("run", "--until-empty")
    assert first.returncode == 0, first.stderr
    # SQS delivers at least once (and moto, under concurrent receives, sometimes twice): what
    # must be exact is what was loaded and rejected.
    assert " 48 loaded, 2 rejected, " in first.stdout
    assert backlog().empty

    second = cli("run", "--until-empty")
    assert second.returncode == 0, second.stderr
    assert "Done: 0 received, 0 loaded, 0 rejected" in second.stdout

    with psycopg.connect(database_url) as conn:
        assert count(conn, "user_logins") == 48
        tokens = [
            r[0] for r in conn.execute("SELECT masked_ip FROM user_logins ORDER BY user_id LIMIT 3")
        ]
        [message_id] = conn.execute(
            "SELECT message_id FROM login_etl.rejected_messages LIMIT 1"
        ).fetchone() or [None]

    revealed = cli("reveal", "--field", "ip", "--reason", "test", *tokens)
    assert revealed.returncode == 0, revealed.stderr
    ips = revealed.stdout.split()
    assert len(ips) == 3
    assert all(f'"ip": "{ip}"' in "".join(bodies) for ip in ips)

    from_stdin = cli("reveal", "--field", "ip", "--reason", "test", stdin="\n".join(tokens) + "\n")
    assert from_stdin.stdout.split() == ips

    listed = cli("quarantine", "list")
    assert listed.returncode == 0, listed.stderr
    assert "2 rejected messages" in listed.stdout
    assert "user_id: required" in listed.stdout

    shown = cli("quarantine", "show", str(message_id), "--reason", "test")
    assert shown.returncode == 0, shown.stderr
    assert '"foo": "oops_wrong_msg_type"' in shown.stdout
    with psycopg.connect(database_url) as conn:
        assert count(conn, "login_etl.reveal_audit") == 3, "two reveals and one show, audited"


def test_reveal_of_a_value_that_is_not_a_token_is_a_clear_error(
    cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    result = cli(
        "reveal",
        "--field",
        "device_id",
        "--reason",
        "test",
        "not-a-token",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert "value 1: does not decrypt as a device_id" in result.stderr
    assert "value 2: does not decrypt" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_setting_exits_2_with_one_line(
    cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    result = cli("run", LOGIN_ETL_VISIBILITY_TIMEOUT="soon")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "login-etl: LOGIN_ETL_VISIBILITY_TIMEOUT (--visibility-timeout): "
        "Input should be a valid integer, unable to parse string as an integer"
    ]


def test_run_without_a_key_file_says_how_to_create_one(
    cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    result = cli("run", LOGIN_ETL_KEYSET_FILE="")
    assert result.returncode == 2, result.stderr
    assert "login-etl keys create --out" in result.stderr


def test_keys_create_writes_a_private_file_and_never_overwrites(
    cli: Callable[..., subprocess.CompletedProcess[str]], tmp_path: Path
) -> None:
    path = tmp_path / "new-keys.json"
    assert cli("keys", "create", "--out", str(path)).returncode == 0
    assert path.stat().st_mode & 0o777 == 0o600
    again = cli("keys", "create", "--out", str(path))
    assert again.returncode == 1
    assert "already exists" in again.stderr


def test_migrate_twice(cli: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    every = ", ".join(str(v) for v in range(1, SCHEMA_VERSION + 1))
    assert (
        f"Applied migrations {every}; schema at version {SCHEMA_VERSION}." in cli("migrate").stdout
    )
    assert f"Schema is up to date (version {SCHEMA_VERSION})." in cli("migrate").stdout


def test_sigterm_finishes_the_batch_in_hand_and_exits_0(
    cli: Callable[..., subprocess.CompletedProcess[str]],
    send: Callable[[list[str]], int],
    backlog: Callable[[], Backlog],
    database_url: str,
) -> None:
    total = 400
    send(generate_bodies(total, malformed=8))
    env: dict[str, Any] = cli.env | {"LOGIN_ETL_BATCH_SIZE": "20", "LOGIN_ETL_BATCH_WAIT_MS": "50"}  # type: ignore[attr-defined]
    worker = start_worker(env)
    wait_for_log(worker, "batch 2:")
    worker.send_signal(signal.SIGTERM)
    _out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    assert "SIGTERM received: finishing the batch in hand" in err
    with psycopg.connect(database_url) as conn:
        committed = count(conn, "login_etl.processed_messages")
    assert 0 < committed < total, "stopped mid-stream, after the batches in hand"
    left = backlog()
    assert left.in_flight == 0, "nothing is held back: what was not committed was released"
    assert left.visible == total - committed

    # A restarted worker finishes the rest: every message loaded exactly once, queue empty.
    again = cli("run", "--until-empty")
    assert again.returncode == 0, again.stderr
    assert backlog().empty
    with psycopg.connect(database_url) as conn:
        assert count(conn, "user_logins") == total - 8
        assert count(conn, "login_etl.rejected_messages") == 8
        assert count(conn, "login_etl.processed_messages") == total


def test_usage_errors_exit_2_without_a_traceback(
    cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    for args in (
        ["run", "--bogus"],
        ["keys", "create"],
        ["reveal", "x"],
        ["reveal", "--field", "ip", "x"],
        ["quarantine", "show", "x"],
        ["quarantine", "replay"],
        ["nonsense"],
    ):
        result = cli(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert cli().returncode == 2
    assert "Usage" in cli().stdout + cli().stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"LOGIN_ETL_KEYSET_FILE": "/nonexistent/keys.json"},
            "key file /nonexistent/keys.json not found",
        ),
        (
            {"LOGIN_ETL_DATABASE_URL": "postgresql://u:hunter2%zz@localhost/db"},
            "LOGIN_ETL_DATABASE_URL (--database-url): is not a valid PostgreSQL URL",
        ),
        (
            {"LOGIN_ETL_QUEUE_URL": "localhost:4566"},
            "LOGIN_ETL_QUEUE_URL (--queue-url): must be an http(s) URL",
        ),
    ],
)
def test_bad_configuration_exits_2_with_one_line(
    cli: Callable[..., subprocess.CompletedProcess[str]], env: dict[str, str], message: str
) -> None:
    result = cli("run", "--until-empty", **env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1
    assert message in result.stderr
    assert "hunter2" not in result.stderr


def test_a_database_that_refuses_us_stops_the_worker_at_once(
    cli: Callable[..., subprocess.CompletedProcess[str]], database_url: str
) -> None:
    wrong = with_database(database_url, "no_such_database")
    result = cli("run", "--until-empty", LOGIN_ETL_DATABASE_URL=wrong)
    assert result.returncode == 1
    assert "PostgreSQL refused the connection" in result.stderr
    assert "retry" not in result.stderr


def test_reveal_prints_plaintexts_exactly(
    cli: Callable[..., subprocess.CompletedProcess[str]],
    key_file: Path,
    db: psycopg.Connection[tuple[Any, ...]],
) -> None:
    from login_etl.keys import load_key_file

    masker = load_key_file(key_file).masker
    values = ["dev:thumbs_up:42", "a\tb", "[bold]x[/bold]", "é" * 256]
    tokens = [masker.mask("device_id", v).token for v in values[:3]]
    result = cli("reveal", "--field", "device_id", "--reason", "test", *tokens)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "".join(v + "\n" for v in values[:3])

    two_lines = masker.mask("device_id", "line1\nline2").token
    assert cli("reveal", "--field", "device_id", "--reason", "t", two_lines).returncode == 1
    as_json = cli("reveal", "--field", "device_id", "--reason", "t", "--json", two_lines)
    assert as_json.stdout == '["line1\\nline2"]\n'


def test_run_with_several_processes_loads_every_message_once(
    cli: Callable[..., subprocess.CompletedProcess[str]],
    send: Callable[[list[str]], int],
    backlog: Callable[[], Backlog],
    database_url: str,
) -> None:
    send(generate_bodies(300, malformed=6))
    result = cli("run", "--until-empty", "--processes", "3", LOGIN_ETL_BATCH_SIZE="25")
    assert result.returncode == 0, result.stderr
    # "received" may exceed 300: moto's SQS, under concurrent receives, now and then hands one
    # message to two workers; the ledger turns the second into a skipped redelivery.
    assert "Done (3 processes): " in result.stdout
    assert " 294 loaded, 6 rejected" in result.stdout
    assert backlog().empty
    with psycopg.connect(database_url) as conn:
        assert count(conn, "user_logins") == 294
        assert count(conn, "login_etl.processed_messages") == 300
        dupes = conn.execute(
            "SELECT count(*) FROM (SELECT user_id FROM user_logins GROUP BY 1 HAVING count(*) > 1) d"
        ).fetchone()
        assert dupes == (0,)


def test_queue_create_dlq_sets_the_redrive_policy_idempotently(
    cli: Callable[..., subprocess.CompletedProcess[str]], sqs_client: Any, queue_url: str
) -> None:
    import json

    for _ in range(2):
        result = cli("queue", "create-dlq", "--max-receive-count", "3")
        assert result.returncode == 0, result.stderr
    name = queue_url.rsplit("/", 1)[-1]
    assert f"{name}-dlq" in result.stdout
    attributes = sqs_client.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["RedrivePolicy"]
    )
    policy = json.loads(attributes["Attributes"]["RedrivePolicy"])
    assert int(policy["maxReceiveCount"]) == 3
    assert policy["deadLetterTargetArn"].endswith(f":{name}-dlq")
