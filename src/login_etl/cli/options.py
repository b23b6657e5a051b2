"""Options shared by several commands. Each overrides the LOGIN_ETL_* variable it names;
defaults and validation live in login_etl.config, the one place for configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

QueueUrl = Annotated[
    str | None,
    typer.Option(
        help="SQS queue URL. Env: LOGIN_ETL_QUEUE_URL "
        "[default: http://localhost:4566/000000000000/login-queue]",
        show_default=False,
    ),
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        help="PostgreSQL URL. Env: LOGIN_ETL_DATABASE_URL "
        "[default: postgresql://postgres:postgres@localhost:5432/postgres]",
        show_default=False,
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
    int | None,
    typer.Option(
        help="Seconds a received message stays hidden from other consumers. "
        "Env: LOGIN_ETL_VISIBILITY_TIMEOUT [default: 60]",
        show_default=False,
    ),
]
WaitTimeSeconds = Annotated[
    int | None,
    typer.Option(
        help="Long-poll wait of a receive, 0–20 s. Env: LOGIN_ETL_WAIT_TIME_SECONDS [default: 20]",
        show_default=False,
    ),
]
BatchSize = Annotated[
    int | None,
    typer.Option(
        help="Messages per database transaction. Env: LOGIN_ETL_BATCH_SIZE [default: 500]",
        show_default=False,
    ),
]
BatchWaitMs = Annotated[
    int | None,
    typer.Option(
        help="Longest wait to fill a batch after its first message. "
        "Env: LOGIN_ETL_BATCH_WAIT_MS [default: 500]",
        show_default=False,
    ),
]
LogLevel = Annotated[
    str | None,
    typer.Option(
        help="DEBUG, INFO, WARNING or ERROR. Env: LOGIN_ETL_LOG_LEVEL [default: INFO]",
        show_default=False,
    ),
]
