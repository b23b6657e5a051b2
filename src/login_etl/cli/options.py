"""Options shared by several commands. Each overrides the LOGIN_ETL_* variable it names;
defaults and validation live in login_etl.config, the one place for configuration. Numbers are
taken as text here so that a bad one gets the same one-line error as a bad variable."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from login_etl.config import Settings

QueueUrl = Annotated[
    str | None,
    typer.Option(
        help="SQS queue URL. Env: LOGIN_ETL_QUEUE_URL",
        show_default="http://localhost:4566/000000000000/login-queue",
    ),
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        help="PostgreSQL URL. Env: LOGIN_ETL_DATABASE_URL",
        show_default="postgresql://postgres:postgres@localhost:5432/postgres",
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
        show_default="60",
    ),
]
WaitTimeSeconds = Annotated[
    str | None,
    typer.Option(
        help="Long-poll wait of a receive, 0–20 s. Env: LOGIN_ETL_WAIT_TIME_SECONDS",
        show_default="20",
    ),
]
BatchSize = Annotated[
    str | None,
    typer.Option(
        help="Messages per database transaction. Env: LOGIN_ETL_BATCH_SIZE",
        show_default="1000",
    ),
]
BatchWaitMs = Annotated[
    str | None,
    typer.Option(
        help="Longest wait to fill a batch after its first message. Env: LOGIN_ETL_BATCH_WAIT_MS",
        show_default="250",
    ),
]
Pollers = Annotated[
    str | None,
    typer.Option(
        help="Concurrent long-polls per worker process. Env: LOGIN_ETL_POLLERS", show_default="8"
    ),
]
MetricsPort = Annotated[
    str | None,
    typer.Option(
        help="Serve /metrics, /healthz, /readyz on this port. Env: LOGIN_ETL_METRICS_PORT",
        show_default="off",
    ),
]
LogFormat = Annotated[
    str | None,
    typer.Option(
        help="json, console or auto (console on a terminal). Env: LOGIN_ETL_LOG_FORMAT",
        show_default="auto",
    ),
]
LogLevel = Annotated[
    str | None,
    typer.Option(
        help="DEBUG, INFO, WARNING or ERROR. Env: LOGIN_ETL_LOG_LEVEL",
        show_default="INFO",
    ),
]
KmsKeyUri = Annotated[
    str | None,
    typer.Option(
        help="AWS KMS key that wraps the key file: aws-kms://arn:aws:kms:REGION:ACCOUNT:key/ID. "
        "Env: LOGIN_ETL_KMS_KEY_URI",
        show_default="none (cleartext key file)",
    ),
]
SqsProtocol = Annotated[
    str | None,
    typer.Option(
        help="SQS wire protocol: json, query (older emulators, e.g. LocalStack 1.x) or auto (json, "
        "switching to query at the first answer that shows the endpoint needs it). "
        "Env: LOGIN_ETL_SQS_PROTOCOL",
        show_default=Settings.model_fields["sqs_protocol"].default,
    ),
]
