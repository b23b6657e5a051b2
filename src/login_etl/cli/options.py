"""Options shared by several commands. Each overrides the LOGIN_ETL_* variable it names;
defaults and validation live in login_etl.config, the one place for configuration, and the help
shows Settings' defaults (`shown_default`), never a copy. Numbers are taken as text here so that
a bad one gets the same one-line error as a bad variable."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

import typer
from pydantic import SecretStr

from login_etl.config import default_of

MASK = "***"


def shown_default(field: str, *, unset: str = "none") -> str:
    """Settings' default of `field` as the help shows it: `unset` says what no value means, and
    a secret is shown with the password of its URL masked (the default database URL's password
    is the well-known `postgres`, but help text must never print one)."""
    value = default_of(field)
    if value is None:
        return unset
    if isinstance(value, SecretStr):
        return _password_masked(value.get_secret_value())
    return str(value)


def _password_masked(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user_info, _, host = parts.netloc.rpartition("@")
    user = user_info.partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}"))


QueueUrl = Annotated[
    str | None,
    typer.Option(
        help="SQS queue URL. Env: LOGIN_ETL_QUEUE_URL",
        show_default=shown_default("queue_url"),
    ),
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        help="PostgreSQL URL. Env: LOGIN_ETL_DATABASE_URL",
        show_default=shown_default("database_url"),
    ),
]
KeysetFile = Annotated[
    Path | None,
    typer.Option(
        help="Key file made by `login-etl keys create`. Env: LOGIN_ETL_KEYSET_FILE",
        show_default=False,
    ),
]
VisibilityTimeout = Annotated[
    str | None,
    typer.Option(
        help="Seconds a received message stays hidden from other consumers. "
        "Env: LOGIN_ETL_VISIBILITY_TIMEOUT",
        show_default=shown_default("visibility_timeout"),
    ),
]
WaitTimeSeconds = Annotated[
    str | None,
    typer.Option(
        help="Long-poll wait of a receive, 0–20 s. Env: LOGIN_ETL_WAIT_TIME_SECONDS",
        show_default=shown_default("wait_time_seconds"),
    ),
]
BatchSize = Annotated[
    str | None,
    typer.Option(
        help="Messages per database transaction. Env: LOGIN_ETL_BATCH_SIZE",
        show_default=shown_default("batch_size"),
    ),
]
BatchWaitMs = Annotated[
    str | None,
    typer.Option(
        help="Longest wait to fill a batch after its first message. Env: LOGIN_ETL_BATCH_WAIT_MS",
        show_default=shown_default("batch_wait_ms"),
    ),
]
Pollers = Annotated[
    str | None,
    typer.Option(
        help="Concurrent long-polls per worker process. Env: LOGIN_ETL_POLLERS",
        show_default=shown_default("pollers"),
    ),
]
MetricsPort = Annotated[
    str | None,
    typer.Option(
        help="Serve /metrics, /healthz, /readyz on this port. Env: LOGIN_ETL_METRICS_PORT",
        show_default=shown_default("metrics_port", unset="off"),
    ),
]
LogFormat = Annotated[
    str | None,
    typer.Option(
        help="json, console or auto (console on a terminal). Env: LOGIN_ETL_LOG_FORMAT",
        show_default=shown_default("log_format"),
    ),
]
LogLevel = Annotated[
    str | None,
    typer.Option(
        help="DEBUG, INFO, WARNING or ERROR. Env: LOGIN_ETL_LOG_LEVEL",
        show_default=shown_default("log_level"),
    ),
]
KmsKeyUri = Annotated[
    str | None,
    typer.Option(
        help="AWS KMS key that wraps the key file: aws-kms://arn:aws:kms:REGION:ACCOUNT:key/ID. "
        "Env: LOGIN_ETL_KMS_KEY_URI",
        show_default=shown_default("kms_key_uri", unset="none (cleartext key file)"),
    ),
]
SqsProtocol = Annotated[
    str | None,
    typer.Option(
        help="SQS wire protocol: json, query (older emulators, e.g. LocalStack 1.x) or auto (json, "
        "switching to query at the first answer that shows the endpoint needs it). "
        "Env: LOGIN_ETL_SQS_PROTOCOL",
        show_default=shown_default("sqs_protocol"),
    ),
]
