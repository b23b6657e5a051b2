"""Database credentials from Secrets Manager (moto's server, over HTTP) against a PostgreSQL that
asks for passwords: a worker survives a password rotation with no restart and no loss, a secret
that cannot be reached makes it wait, and a bad secret stops `run` and `migrate` with exit 2.

The module starts a PostgreSQL of its own with scram-sha-256 password authentication for every
role but the admin, so that the shared test server's authentication stays as it is.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import make_conninfo

from login_etl.adapters.postgres import Credentials, PostgresSink
from login_etl.adapters.secrets import SecretStore
from login_etl.config import DATABASE_SECRET, Settings
from login_etl.config.secretref import parse_secret_ref
from login_etl.core.transform import Transformer
from login_etl.demo.data import publish
from login_etl.demo.services import EmbeddedPostgres, MotoSqs
from login_etl.errors import SecretUnavailable
from login_etl.keys import KeyRing
from login_etl.runtime.committer import Committer
from login_etl.runtime.wiring import migrate_database, open_worker
from login_etl.runtime.worker import RunStats, Worker
from login_etl.testing import MemoryQueue
from tests.support import body, count

REGION = "us-east-1"
MESSAGES = 300
BATCH = 20
ROTATE_AFTER = 100  # loaded rows: well inside the drain
# Passwords with characters a hand-made connection string would have to quote.
FIRST_PASSWORD = "first pw 'quoted' \\ #1"
SECOND_PASSWORD = "second=pw @rotated"


@dataclass(frozen=True)
class PasswordServer:
    """A PostgreSQL server on a Unix socket that trusts only its admin; others give a password."""

    admin_url: str
    socket_dir: str
    port: int

    def admin(self) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(self.admin_url, autocommit=True)

    def url(self, user: str, password: str, dbname: str) -> str:
        return make_conninfo(
            "", host=self.socket_dir, port=self.port, user=user, password=password, dbname=dbname
        )


def refused(server: PasswordServer, user: str, password: str, dbname: str) -> bool:
    try:
        psycopg.connect(server.url(user, password, dbname), connect_timeout=5).close()
    except psycopg.OperationalError as err:
        return "password authentication failed" in str(err)
    return False


@pytest.fixture(scope="module")
def password_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PasswordServer]:
    with EmbeddedPostgres(tmp_path_factory.mktemp("pg_scram")) as embedded:
        with psycopg.connect(embedded.url, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET password_encryption = 'scram-sha-256'")
            hba_file = Path(str(conn.execute("SHOW hba_file").fetchone()[0]))  # type: ignore[index]
            socket_dir = str(conn.execute("SHOW unix_socket_directories").fetchone()[0])  # type: ignore[index]
            port = int(conn.execute("SHOW port").fetchone()[0])  # type: ignore[index]
            hba_file.write_text(
                "local all postgres trust\nlocal all all scram-sha-256\n", encoding="utf-8"
            )
            conn.execute("SELECT pg_reload_conf()")
        yield PasswordServer(embedded.url, socket_dir.split(",", maxsplit=1)[0].strip(), port)


@dataclass(frozen=True)
class Login:
    user: str
    dbname: str


@pytest.fixture
def login(password_server: PasswordServer) -> Iterator[Login]:
    """A role that must give FIRST_PASSWORD, owning a fresh database."""
    suffix = uuid.uuid4().hex[:10]
    user, dbname = f"etl_{suffix}", f"logins_{suffix}"
    with password_server.admin() as conn:
        conn.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(user), sql.Literal(FIRST_PASSWORD)
            )
        )
        conn.execute(
            sql.SQL("CREATE DATABASE {} OWNER {}").format(
                sql.Identifier(dbname), sql.Identifier(user)
            )
        )
    assert refused(password_server, user, "not the password", dbname), "auth must be on"
    yield Login(user, dbname)
    with password_server.admin() as conn:
        conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(dbname)))
        conn.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(user)))


@pytest.fixture
def aws_env(moto: MotoSqs, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """boto3's own variables, pointing at moto, for this process and for child processes."""
    env = {"AWS_ENDPOINT_URL": moto.endpoint, "AWS_DEFAULT_REGION": REGION}
    for name in list(os.environ):
        if name.startswith(("AWS_", "LOGIN_ETL_")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    return env


@pytest.fixture
def secretsmanager(moto: MotoSqs) -> Any:
    return boto3.client(
        "secretsmanager",
        endpoint_url=moto.endpoint,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def rds_secret(server: PasswordServer, login: Login, password: str) -> str:
    return json.dumps(
        {
            "engine": "postgres",
            "host": server.socket_dir,
            "port": server.port,
            "username": login.user,
            "password": password,
            "dbname": login.dbname,
        }
    )


@pytest.fixture
def secret_name(
    secretsmanager: Any, password_server: PasswordServer, login: Login, aws_env: dict[str, str]
) -> str:
    name = f"login-etl/db-{uuid.uuid4().hex[:8]}"
    secretsmanager.create_secret(
        Name=name, SecretString=rds_secret(password_server, login, FIRST_PASSWORD)
    )
    return name


@pytest.fixture
def secret_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The references SecretStore.read was called for, in order."""
    reads: list[str] = []
    real = SecretStore.read

    def read(self: SecretStore) -> str:
        reads.append(str(self.ref))
        return real(self)

    monkeypatch.setattr(SecretStore, "read", read)
    return reads


def loaded(server: PasswordServer, login: Login) -> tuple[int, int, int]:
    """Rows, ledger entries, and distinct message ids in the ledger."""
    with psycopg.connect(server.url(login.user, SECOND_PASSWORD, login.dbname)) as conn:
        rows = count(conn, "user_logins")
        ledger = count(conn, "login_etl.processed_messages")
        distinct = conn.execute(
            "SELECT count(DISTINCT message_id) FROM login_etl.processed_messages"
        ).fetchone()
    assert distinct is not None
    return rows, ledger, int(distinct[0])


SECRET_LAG_S = 3.0  # a rotation by hand: the secret changes this long after the database


@pytest.mark.parametrize("stage", ["finished", "pending", "by hand"])
def test_a_worker_survives_a_password_rotation_through_secrets_manager(
    stage: str,
    password_server: PasswordServer,
    login: Login,
    secret_name: str,
    secretsmanager: Any,
    secret_reads: list[str],
    sqs_client: Any,
    queue_url: str,
    key_file: Path,
    moto: MotoSqs,
) -> None:
    publish(sqs_client, queue_url, [body(user_id=f"user-{i}") for i in range(MESSAGES)])
    settings = Settings(
        queue_url=queue_url,
        database_secret=secret_name,
        keyset_file=key_file,
        aws_endpoint_url=moto.endpoint,
        wait_time_seconds=1,
        batch_wait_ms=50,
        batch_size=BATCH,
        pollers=2,
    )
    terminated: list[int] = []

    def rotate(stats: RunStats) -> None:
        # In the worker's own loop, between two batches: as Secrets Manager's RDS rotation
        # does, the password changes in PostgreSQL and then in the secret; then the worker's
        # connections are cut, so that it must log in again. "pending": cut between the
        # rotation's setSecret and finishSecret, when only AWSPENDING holds the new password.
        # "by hand": the secret follows the database seconds after the cut (the worker waits).
        if stats.loaded < ROTATE_AFTER or terminated:
            return
        with password_server.admin() as conn:
            conn.execute(
                sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                    sql.Identifier(login.user), sql.Literal(SECOND_PASSWORD)
                )
            )
            update = functools.partial(
                secretsmanager.put_secret_value,
                SecretId=secret_name,
                SecretString=rds_secret(password_server, login, SECOND_PASSWORD),
                **({"VersionStages": ["AWSPENDING"]} if stage == "pending" else {}),
            )
            if stage != "by hand":
                update()
            cut = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                (login.user,),
            ).fetchall()
        terminated.append(len(cut))
        if stage == "by hand":
            late = threading.Timer(SECRET_LAG_S, update)
            late.daemon = True
            late.start()

    with open_worker(settings, on_batch=rotate) as worker:
        stats = worker.run(until_empty=True)

    assert terminated and terminated[0] >= 1, "the worker's connection was cut mid-drain"
    assert refused(password_server, login.user, FIRST_PASSWORD, login.dbname)
    if stage == "by hand":  # read again at each retry until the secret followed
        assert len(secret_reads) >= 3 and set(secret_reads) == {secret_name}
    else:
        assert secret_reads == [secret_name, secret_name], "read once, and again after refusal"
    assert (stats.loaded, stats.rejected) == (MESSAGES, 0)
    assert loaded(password_server, login) == (MESSAGES, MESSAGES, MESSAGES)
    attributes = sqs_client.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    assert attributes == {
        "ApproximateNumberOfMessages": "0",
        "ApproximateNumberOfMessagesNotVisible": "0",
    }


class FlakySecret:
    """A SecretStore that cannot reach Secrets Manager until `down` is cleared."""

    def __init__(self, store: SecretStore) -> None:
        self.ref = store.ref
        self._store = store
        self.down = threading.Event()
        self.down.set()
        self.failed = 0

    def read(self) -> str:
        if self.down.is_set():
            self.failed += 1
            raise SecretUnavailable(f"{self.ref.setting}: secret {self.ref}: could not be reached")
        return self._store.read()


def test_a_secret_that_cannot_be_reached_makes_the_worker_wait_and_delete_nothing(
    password_server: PasswordServer, login: Login, secret_name: str, keys: KeyRing
) -> None:
    real = SecretStore(parse_secret_ref(secret_name, DATABASE_SECRET))
    migrate_database(Credentials(secret=real))
    store = FlakySecret(real)
    creds = Credentials(secret=store)  # type: ignore[arg-type]  # a SecretStore double
    queue = MemoryQueue(visibility_timeout=30)
    for i in range(25):
        queue.send(body(user_id=f"user-{i}"))
    committer = Committer(
        PostgresSink(creds), Transformer(keys.masker, keys.sealer), backoff_max_s=0.05
    )
    worker = Worker(queue, committer, Settings.model_construct().worker_options())
    result: dict[str, RunStats] = {}
    thread = threading.Thread(
        target=lambda: result.setdefault("stats", worker.run(until_empty=True)), daemon=True
    )
    thread.start()
    thread.join(1.0)
    assert thread.is_alive(), "the worker waits for the secret"
    assert store.failed >= 2, "and keeps trying"
    assert queue.deleted == []
    store.down.clear()
    thread.join(60)
    assert not thread.is_alive()
    committer.close()
    assert result["stats"].loaded == 25
    assert len(queue) == 0
    with psycopg.connect(password_server.url(login.user, FIRST_PASSWORD, login.dbname)) as conn:
        assert count(conn, "user_logins") == 25


# --- bad secrets at start-up ----------------------------------------------------------------------

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def login_etl(aws_env: dict[str, str], queue_url: str, key_file: Path) -> Run:
    """`login-etl ARGS` with the database given only by LOGIN_ETL_DATABASE_SECRET."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOGIN_ETL_", "PG"))} | {
        **aws_env,
        "LOGIN_ETL_QUEUE_URL": queue_url,
        "LOGIN_ETL_KEYSET_FILE": str(key_file),
        "LOGIN_ETL_WAIT_TIME_SECONDS": "1",
    }

    def run(secret: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "login_etl", *args],
            capture_output=True,
            text=True,
            env=env | {"LOGIN_ETL_DATABASE_SECRET": secret},
            timeout=120,
            check=False,
        )

    return run


LEAKED = "hunter2-leaked"


@pytest.mark.parametrize(
    ("kind", "says"),
    [
        ("missing", "does not exist (or is not visible to us)"),
        ("denied", "read refused (InvalidRequestException)"),
        ("not JSON", "is not JSON"),
        ("no host", "has no 'host'"),
        ("wrong type", "'port' must be a number from 1 to 65535"),
    ],
)
@pytest.mark.parametrize("command", [("migrate",), ("run", "--until-empty")])
def test_a_bad_secret_stops_run_and_migrate_with_one_line_naming_it(
    login_etl: Run, secretsmanager: Any, kind: str, says: str, command: tuple[str, ...]
) -> None:
    name = f"login-etl/bad-{uuid.uuid4().hex[:8]}"
    values = {
        "not JSON": f"postgresql://etl:{LEAKED}@db/logins",
        "no host": json.dumps({"username": "etl", "password": LEAKED, "dbname": "x"}),
        "wrong type": json.dumps(
            {"host": "db", "port": LEAKED, "username": "etl", "password": LEAKED}
        ),
    }
    if kind != "missing":
        secretsmanager.create_secret(Name=name, SecretString=values.get(kind, LEAKED))
    if kind == "denied":  # a secret scheduled for deletion refuses every read
        secretsmanager.delete_secret(SecretId=name)
    done = login_etl(name, *command)
    assert done.returncode == 2, done.stderr
    assert LEAKED not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    [line] = [line for line in done.stderr.splitlines() if line.startswith("login-etl:")]
    assert line.startswith(f"login-etl: {DATABASE_SECRET}: secret {name}: ")
    assert says in line
