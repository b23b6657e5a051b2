"""LOGIN_ETL_DATABASE_SECRET and LOGIN_ETL_DATABASE_IAM_AUTH: checked at start-up (exit 2), and
how they combine with LOGIN_ETL_DATABASE_URL."""

from __future__ import annotations

import os

import pytest

from login_etl.adapters.postgres.credentials import Credentials, credentials
from login_etl.cli import main
from login_etl.config import load_settings
from login_etl.errors import ConfigError

SECRET = "LOGIN_ETL_DATABASE_SECRET (--database-secret)"
URL = "LOGIN_ETL_DATABASE_URL (--database-url)"
IAM = "LOGIN_ETL_DATABASE_IAM_AUTH"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in os.environ:
        if name.startswith(("PG", "LOGIN_ETL_", "AWS_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")


@pytest.mark.parametrize(
    "value",
    [
        "prod/login-etl/db",
        "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/login-etl/db-AbCdEf",
    ],
)
def test_a_secret_name_or_arn_is_taken(value: str) -> None:
    assert load_settings(database_secret=value).database_secret == value


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("arn:aws:s3:::bucket", "not a Secrets Manager ARN"),
        ("name with spaces", "give a Secrets Manager secret's ARN or name"),
    ],
)
def test_a_bad_secret_reference_is_one_line_naming_the_setting(value: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(database_secret=value)
    assert str(caught.value).startswith(f"{SECRET}: ")
    assert says in str(caught.value)


def test_a_bad_secret_reference_in_the_environment_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOGIN_ETL_DATABASE_SECRET", "arn:aws:nope")
    assert main(["migrate"]) == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"login-etl: {SECRET}: not a Secrets Manager ARN")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://etl:pw@db/logins",
        "postgresql://db",
        "postgresql:///logins",
        "postgresql://?user=etl",
        "postgresql://?port=5433",
    ],
)
def test_beside_a_secret_the_url_must_not_name_the_server_or_login(url: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(database_secret="prod/db", database_url=url)
    message = str(caught.value)
    assert message.startswith(
        f"{URL}: with {SECRET} set, the secret gives the server and the login"
    )
    assert "pw" not in message


def test_beside_a_secret_the_url_may_add_options() -> None:
    settings = load_settings(
        database_secret="prod/db", database_url="postgresql://?sslmode=verify-full&sslrootcert=/ca"
    )
    assert settings.database_secret == "prod/db"


def test_beside_a_secret_the_default_url_is_not_used(monkeypatch: pytest.MonkeyPatch) -> None:
    creds = credentials(load_settings(database_secret="prod/db"))
    assert isinstance(creds, Credentials)
    assert creds._url is None, "localhost's default URL would add a host and a password"


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({}, f"{IAM}: needs {SECRET}, or {URL} naming the host and the user"),
        ({"database_url": "postgresql://db/logins"}, "naming the host and the user"),
        ({"database_url": "postgresql://etl:pw@db/logins"}, "the token is the password"),
        (
            {"database_url": "postgresql://etl@db/logins?sslmode=prefer"},
            "RDS takes IAM tokens only over TLS; sslmode must be require, verify-ca, verify-full",
        ),
        (
            {"database_secret": "prod/db", "database_url": "postgresql://?sslmode=disable"},
            "only over TLS",
        ),
    ],
)
def test_iam_auth_needs_a_host_a_user_no_password_and_tls(
    overrides: dict[str, str], says: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(database_iam_auth=True, **overrides)
    assert says in str(caught.value)


@pytest.mark.parametrize(
    "overrides",
    [
        {"database_secret": "prod/db"},
        {"database_url": "postgresql://etl@db.example/logins"},
        {"database_url": "postgresql://etl@db.example/logins?sslmode=verify-full"},
    ],
)
def test_iam_auth_is_taken_with_a_secret_or_a_url(overrides: dict[str, str]) -> None:
    assert load_settings(database_iam_auth="true", **overrides).database_iam_auth is True


def test_iam_auth_takes_pgsslmode_into_account(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGSSLMODE", "disable")
    with pytest.raises(ConfigError, match=r"sslmode \(from PGSSLMODE\) must be"):
        load_settings(database_iam_auth=True, database_secret="prod/db")


def test_a_bad_iam_auth_value_names_the_variable_alone() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(database_iam_auth="perhaps")
    assert str(caught.value).startswith(f"{IAM}: ")
    assert "--database-iam-auth" not in str(caught.value)
