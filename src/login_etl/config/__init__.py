"""All configuration, read once at start-up into one frozen, typed object.

Every `LOGIN_ETL_*` variable is also a CLI option; an option given on the command line wins.
AWS region, credentials and endpoint are left to boto3's own lookup, except for the defaults the
SQS adapter fills in for a local emulator (see `login_etl.adapters.sqs.client_kwargs`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import urlsplit

from botocore.utils import is_valid_endpoint_url, is_valid_ipv6_endpoint_url
from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from login_etl.config import dburl
from login_etl.config.secretref import parse_secret_ref
from login_etl.errors import ConfigError

# The form Tink's AWS KMS integration takes; the region is read from the ARN.
KMS_KEY_URI = re.compile(r"^aws-kms://arn:aws[a-z-]*:kms:([a-z0-9-]+):\d{12}:(key|alias)/\S+$")

ENV_PREFIX = "LOGIN_ETL_"
DEFAULT_QUEUE_URL = "http://localhost:4566/000000000000/login-queue"
DEFAULT_DATABASE_URL = "postgresql://postgres:postgres@localhost:5432/postgres"
MAX_PORT = dburl.MAX_PORT
DATABASE_SECRET = dburl.DATABASE_SECRET
KEYSET_SECRET = f"{ENV_PREFIX}KEYSET_SECRET"
# boto3's own variables for the SQS endpoint, the first one set wins.
ENDPOINT_VARIABLES = ("AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL")


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    """The worker loop's slice of Settings, in the units the loop uses (`worker_options()`)."""

    batch_size: int
    batch_wait_s: float
    poll_wait_s: int
    pollers: int
    visibility_timeout_s: int  # held messages are extended before it runs out (heartbeat)
    # Received and not yet deleted; None: room for the batch being committed, the next one
    # filling, and one receive per poller. Not a setting: tests bound it to watch backpressure.
    max_in_flight: int | None = None


class Settings(BaseSettings):
    """The service's settings. Secrets are `SecretStr`, so they never print or log."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, frozen=True, extra="ignore", env_ignore_empty=True
    )

    queue_url: str = DEFAULT_QUEUE_URL
    database_url: SecretStr = SecretStr(DEFAULT_DATABASE_URL)
    # A Secrets Manager secret (ARN or name) in RDS's JSON form, which then gives the server and
    # the login; the URL, if also set, adds only libpq options (`dburl.login_problem`).
    database_secret: str | None = None
    # RDS IAM authentication: a token for each new connection instead of a password, over TLS.
    database_iam_auth: bool = False
    keyset_file: Path | None = None
    # The key file's text kept in a secret store instead: a Secrets Manager secret (ARN or name)
    # or ssm://NAME (an SSM SecureString). Either this or keyset_file, not both.
    keyset_secret: str | None = None
    # The KMS key that must wrap the key file (aws-kms://arn:aws:kms:...). Set, a cleartext or
    # differently wrapped key file is refused; unset, a wrapped file names its own key.
    kms_key_uri: str | None = None
    # SQS's own range is 0–43200; 0 would hand every message to the next poller at once.
    visibility_timeout: int = Field(60, ge=1, le=43_200)
    # 20 s is SQS's longest long poll: fewest empty receives, and the bound on shutdown latency.
    wait_time_seconds: int = Field(20, ge=0, le=20)
    # Messages per database transaction: big enough that COPY amortises the commit (load
    # throughput flattens above ~1,000, docs/benchmarks.md), small enough that a batch is held
    # well within the visibility timeout.
    batch_size: int = Field(1000, ge=1, le=10_000)
    # How long to keep filling a batch once its first message arrived: a fraction of a second,
    # so that a quiet queue's messages still land promptly.
    batch_wait_ms: int = Field(250, ge=0, le=60_000)
    # Concurrent long-polls per worker process (SQS gives 10 messages per call).
    pollers: int = Field(8, ge=1, le=64)
    log_level: str = "INFO"
    # json: one object per line (for log shippers); console: for people; auto: console on a
    # terminal, json elsewhere.
    log_format: Literal["auto", "json", "console"] = "auto"
    # Serve /metrics, /healthz and /readyz on this port; unset: no HTTP server.
    metrics_port: int | None = Field(None, ge=1, le=MAX_PORT)
    # SQS's wire protocol. Today's botocore speaks JSON; SQS emulators from before 2023 (the
    # exercise's LocalStack image among them) speak only the older query protocol. auto: JSON
    # until the endpoint shows it does not speak it, then query (login_etl.adapters.sqs_protocol).
    sqs_protocol: Literal["auto", "json", "query"] = "auto"
    # Read from boto3's own variables so that the adapter can tell whether one was set.
    aws_endpoint_url: str | None = Field(None, validation_alias=AliasChoices(*ENDPOINT_VARIABLES))

    @field_validator("queue_url")
    @classmethod
    def _queue_url(cls, value: str) -> str:
        problem = endpoint_problem(value, "http(s) URL such as " + DEFAULT_QUEUE_URL)
        if problem:
            raise ValueError(problem)
        if urlsplit(value).path.strip("/").count("/") != 1:
            raise ValueError("must end in /ACCOUNT_ID/QUEUE_NAME")
        return value

    @field_validator("aws_endpoint_url")
    @classmethod
    def _aws_endpoint_url(cls, value: str | None) -> str | None:
        problem = value and endpoint_problem(value, "http(s) URL such as http://localhost:4566")
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("kms_key_uri")
    @classmethod
    def _kms_key_uri(cls, value: str | None) -> str | None:
        if value is not None and not KMS_KEY_URI.match(value):
            raise ValueError("must look like aws-kms://arn:aws:kms:REGION:ACCOUNT:key/KEY_ID")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: SecretStr) -> SecretStr:
        # The problem is told in words of our own: libpq's would quote the URL.
        problem = dburl.problem(value.get_secret_value())
        if problem:
            raise ValueError(problem)
        return value

    @field_validator("database_secret")
    @classmethod
    def _database_secret(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_secret_ref(value, DATABASE_SECRET)
            except ConfigError as err:
                raise ValueError(str(err).removeprefix(f"{DATABASE_SECRET}: ")) from None
        return value

    @model_validator(mode="after")
    def _database_login(self) -> Self:
        url = (
            self.database_url.get_secret_value()
            if "database_url" in self.model_fields_set
            else None
        )
        problem = dburl.login_problem(
            url, secret=self.database_secret is not None, iam_auth=self.database_iam_auth
        )
        if problem:
            raise ConfigError(problem)  # not a ValueError: pydantic passes it through as it is
        return self

    @field_validator("keyset_secret")
    @classmethod
    def _keyset_secret(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return value
        if info.data.get("keyset_file") is not None:
            raise ValueError(
                f"give this or {ENV_PREFIX}KEYSET_FILE (--keyset-file), not both: "
                "the key file is kept in one place"
            )
        try:
            parse_secret_ref(value, KEYSET_SECRET)
        except ConfigError as err:
            raise ValueError(str(err).removeprefix(f"{KEYSET_SECRET}: ")) from None
        return value

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        level = value.upper()
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return level

    def worker_options(self) -> WorkerOptions:
        """What the worker loop needs of the settings."""
        return WorkerOptions(
            batch_size=self.batch_size,
            batch_wait_s=self.batch_wait_ms / 1000,
            poll_wait_s=self.wait_time_seconds,
            pollers=self.pollers,
            visibility_timeout_s=self.visibility_timeout,
        )

    def require_keyset_file(self) -> Path:
        """The key file, or ConfigError saying how to create one."""
        if self.keyset_file is None:
            raise ConfigError(
                f"{ENV_PREFIX}KEYSET_FILE: not set. Create a key file with "
                "`login-etl keys create --out login-etl-keys.json` and pass it with "
                "--keyset-file or LOGIN_ETL_KEYSET_FILE (or keep it in a secret store: "
                "--keyset-secret or LOGIN_ETL_KEYSET_SECRET)"
            )
        return self.keyset_file


def default_of(field: str) -> Any:
    """A setting's default, as Settings types it: for other places that need it (bench, help),
    so that each default is written once."""
    return Settings.model_fields[field].default


def endpoint_problem(url: str, expected: str) -> str | None:
    """What keeps botocore from using `url` as an endpoint; the URL itself is not quoted."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an " + expected
    if parts.username is not None or parts.password is not None:
        return "must not hold a user name or password"
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:  # None: the scheme's default port
        return f"the port must be a number from 1 to {MAX_PORT}"
    # botocore's own check, which it makes only when the first client is built.
    endpoint = f"{parts.scheme}://{parts.netloc}"
    if not (is_valid_endpoint_url(endpoint) or is_valid_ipv6_endpoint_url(endpoint)):
        return "the host is not a valid host name or IP address"
    return None


def _setting_name(field: str) -> str:
    if field in ("aws_endpoint_url", *ENDPOINT_VARIABLES):
        # pydantic names the first alias whichever was read; name the one that was.
        return next((name for name in ENDPOINT_VARIABLES if os.environ.get(name)), field)
    if field == "database_iam_auth":  # a deployment's choice: no CLI option
        return dburl.DATABASE_IAM_AUTH
    return f"{ENV_PREFIX}{field.upper()} (--{field.replace('_', '-')})"


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with non-None `overrides` (CLI options) on top.

    Raises ConfigError with one line naming the setting and what is wrong; the value itself is
    not echoed, since it may be a secret.
    """
    given = {name: value for name, value in overrides.items() if value is not None}
    try:
        return Settings(**given)
    except ValidationError as err:
        first = err.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "settings"
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"{_setting_name(field)}: {message}") from None
