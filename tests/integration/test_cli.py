"""The command line as a user runs it: a real process against the real servers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from login_etl.demo.data import generate_bodies
from login_etl.ports import Backlog
from tests.integration.conftest import count


@pytest.fixture
def cli(
    queue_url: str, database_url: str, key_file: Path
) -> Callable[..., subprocess.CompletedProcess[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOGIN_ETL_", "AWS_"))} | {
        "LOGIN_ETL_QUEUE_URL": queue_url,
        "LOGIN_ETL_DATABASE_URL": database_url,
        "LOGIN_ETL_KEYSET_FILE": str(key_file),
        "LOGIN_ETL_WAIT_TIME_SECONDS": "1",
    }

    def run(
        *args: str, stdin: str | None = None, **env_overrides: str
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "login_etl", *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env | env_overrides,
            timeout=120,
            check=False,
        )

    run.env = env  # type: ignore[attr-defined]
    return run


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
    assert "Done: 50 received, 48 loaded, 2 rejected, 0 redeliveries skipped" in first.stdout
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

    revealed = cli("reveal", "--field", "ip", *tokens)
    assert revealed.returncode == 0, revealed.stderr
    ips = revealed.stdout.split()
    assert len(ips) == 3
    assert all(f'"ip": "{ip}"' in "".join(bodies) for ip in ips)

    from_stdin = cli("reveal", "--field", "ip", stdin="\n".join(tokens) + "\n")
    assert from_stdin.stdout.split() == ips

    listed = cli("quarantine", "list")
    assert listed.returncode == 0, listed.stderr
    assert "2 rejected messages" in listed.stdout
    assert "user_id: required" in listed.stdout

    shown = cli("quarantine", "show", str(message_id))
    assert shown.returncode == 0, shown.stderr
    assert '"foo": "oops_wrong_msg_type"' in shown.stdout


def test_reveal_of_a_value_that_is_not_a_token_is_a_clear_error(
    cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    result = cli("reveal", "--field", "device_id", "not-a-token", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
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
    assert "Applied migrations 1." in cli("migrate").stdout
    assert "Schema is up to date." in cli("migrate").stdout


def test_sigterm_finishes_the_batch_in_hand_and_exits_0(
    cli: Callable[..., subprocess.CompletedProcess[str]],
    send: Callable[[list[str]], int],
    backlog: Callable[[], Backlog],
    database_url: str,
) -> None:
    send(generate_bodies(30, malformed=0))
    env: dict[str, Any] = cli.env  # type: ignore[attr-defined]
    worker = subprocess.Popen(
        [sys.executable, "-m", "login_etl", "run"],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not backlog().empty:
        time.sleep(0.2)
    worker.send_signal(signal.SIGTERM)
    out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, err
    assert "Done: 30 received, 30 loaded" in out
    with psycopg.connect(database_url) as conn:
        assert count(conn, "user_logins") == 30
