"""Options shared by several commands. Each overrides the LOGIN_ETL_* variable it names;
defaults and validation live in login_etl.config, the one place for configuration, and the help
shows Settings' defaults (`shown_default`), never a copy: `setting_option` derives both the
variable's name and the default from the Settings field. Numbers are taken as text here so that
a bad one gets the same one-line error as a bad variable."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit, urlunsplit

import typer
from pydantic import SecretStr

from login_etl.config import ENV_PREFIX, Settings, default_of, load_settings

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


def setting_option(field: str, text: str, *, unset: str = "none", shown: bool = True) -> Any:
    """The option that overrides setting `field`: its help is `text` and the variable's name,
    and shows Settings' default (`shown_default`; `shown=False`: no default at all)."""
    return typer.Option(
        help=f"{text} Env: {ENV_PREFIX}{field.upper()}",
        show_default=shown_default(field, unset=unset) if shown else False,
    )


# Taken as text (see above), but for the key file: a path, which Settings takes as given.
QueueUrl = Annotated[str | None, setting_option("queue_url", "SQS queue URL.")]
DatabaseUrl = Annotated[str | None, setting_option("database_url", "PostgreSQL URL.")]
DatabaseSecret = Annotated[
    str | None,
    setting_option(
        "database_secret",
        "Secrets Manager secret (ARN or name) in RDS's JSON form with the server and login; "
        "the URL may then add only options (postgresql://?sslmode=verify-full).",
    ),
]
KeysetFile = Annotated[
    Path | None,
    setting_option("keyset_file", "Key file made by `login-etl keys create`.", shown=False),
]
KeysetSecret = Annotated[
    str | None,
    setting_option(
        "keyset_secret",
        "The key file kept in a secret store instead: a Secrets Manager secret's ARN or name, "
        "or ssm://NAME for an SSM SecureString.",
        shown=False,
    ),
]
VisibilityTimeout = Annotated[
    str | None,
    setting_option(
        "visibility_timeout", "Seconds a received message stays hidden from other consumers."
    ),
]
WaitTimeSeconds = Annotated[
    str | None, setting_option("wait_time_seconds", "Long-poll wait of a receive, 0–20 s.")
]
BatchSize = Annotated[
    str | None, setting_option("batch_size", "Messages per database transaction.")
]
BatchWaitMs = Annotated[
    str | None,
    setting_option("batch_wait_ms", "Longest wait to fill a batch after its first message."),
]
Pollers = Annotated[
    str | None, setting_option("pollers", "Concurrent long-polls per worker process.")
]
MetricsPort = Annotated[
    str | None,
    setting_option("metrics_port", "Serve /metrics, /healthz, /readyz on this port.", unset="off"),
]
LogFormat = Annotated[
    str | None, setting_option("log_format", "json, console or auto (console on a terminal).")
]
LogLevel = Annotated[str | None, setting_option("log_level", "DEBUG, INFO, WARNING or ERROR.")]
KmsKeyUri = Annotated[
    str | None,
    setting_option(
        "kms_key_uri",
        "AWS KMS key that wraps the key file: aws-kms://arn:aws:kms:REGION:ACCOUNT:key/ID.",
        unset="none (cleartext key file)",
    ),
]
SqsProtocol = Annotated[
    str | None,
    setting_option(
        "sqs_protocol",
        "SQS wire protocol: json, query (older emulators, e.g. LocalStack 1.x) or auto (json, "
        "switching to query at the first answer that shows the endpoint needs it).",
    ),
]


def key_settings(
    keyset_file: Path | None,
    kms_key_uri: str | None,
    database_url: str | None = None,
    *,
    keyset_secret: str | None = None,
    database_secret: str | None = None,
) -> Settings:
    """Settings of a command that takes the key file's options (and maybe the database's), those
    given on the command line over the environment."""
    return load_settings(
        keyset_file=keyset_file,
        keyset_secret=keyset_secret,
        kms_key_uri=kms_key_uri,
        database_url=database_url,
        database_secret=database_secret,
    )
