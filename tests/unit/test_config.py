from __future__ import annotations

from pathlib import Path

import boto3
import pytest

from login_etl.adapters.sqs import client_kwargs
from login_etl.config import DEFAULT_QUEUE_URL, Settings, load_settings
from login_etl.errors import ConfigError


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "LOGIN_ETL_QUEUE_URL",
        "LOGIN_ETL_DATABASE_URL",
        "LOGIN_ETL_KEYSET_FILE",
        "LOGIN_ETL_VISIBILITY_TIMEOUT",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_SQS",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_PROFILE",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")


def test_defaults_are_the_exercise() -> None:
    settings = load_settings()
    assert settings.queue_url == DEFAULT_QUEUE_URL
    assert (
        settings.database_url.get_secret_value()
        == "postgresql://postgres:postgres@localhost:5432/postgres"
    )
    assert settings.visibility_timeout == 60
    assert settings.keyset_file is None


def test_the_environment_is_read_and_options_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGIN_ETL_VISIBILITY_TIMEOUT", "90")
    monkeypatch.setenv("LOGIN_ETL_KEYSET_FILE", "/k.json")
    assert load_settings().visibility_timeout == 90
    assert load_settings(visibility_timeout=30).visibility_timeout == 30
    assert load_settings().keyset_file == Path("/k.json")


@pytest.mark.parametrize(
    ("env", "value", "message"),
    [
        (
            "LOGIN_ETL_VISIBILITY_TIMEOUT",
            "abc",
            "LOGIN_ETL_VISIBILITY_TIMEOUT (--visibility-timeout): Input should be a valid integer",
        ),
        (
            "LOGIN_ETL_VISIBILITY_TIMEOUT",
            "0",
            "LOGIN_ETL_VISIBILITY_TIMEOUT (--visibility-timeout): Input should be greater than or equal to 1",
        ),
        (
            "LOGIN_ETL_VISIBILITY_TIMEOUT",
            "43201",
            "LOGIN_ETL_VISIBILITY_TIMEOUT (--visibility-timeout): Input should be less than or equal to 43200",
        ),
        (
            "LOGIN_ETL_QUEUE_URL",
            "ftp://x/1/q",
            "LOGIN_ETL_QUEUE_URL (--queue-url): must be an http(s) URL",
        ),
        (
            "LOGIN_ETL_QUEUE_URL",
            "http://localhost:4566/",
            "LOGIN_ETL_QUEUE_URL (--queue-url): must end in /ACCOUNT_ID/QUEUE_NAME",
        ),
        (
            "LOGIN_ETL_DATABASE_URL",
            "mysql://u:hunter2@h/db",
            "LOGIN_ETL_DATABASE_URL (--database-url): must be a postgresql:// URL",
        ),
        ("LOGIN_ETL_LOG_LEVEL", "loud", "LOGIN_ETL_LOG_LEVEL (--log-level): must be one of"),
    ],
)
def test_a_bad_value_names_the_setting_and_the_rule(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, message: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value).startswith(message)
    assert "hunter2" not in str(info.value)
    assert "\n" not in str(info.value)


def test_the_database_password_never_prints() -> None:
    settings = load_settings(database_url="postgresql://u:hunter2@h/db")
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in str(settings)


def test_run_without_a_key_file_says_how_to_create_one() -> None:
    with pytest.raises(ConfigError, match="login-etl keys create"):
        load_settings().require_keyset_file()


def kwargs_for(queue_url: str, **settings: object) -> dict[str, object]:
    return client_kwargs(Settings(queue_url=queue_url, **settings), boto3.session.Session())  # type: ignore[arg-type]


def test_a_local_queue_url_gives_its_endpoint_test_credentials_and_us_east_1() -> None:
    assert kwargs_for(DEFAULT_QUEUE_URL) == {
        "endpoint_url": "http://localhost:4566",
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
        "region_name": "us-east-1",
    }


def test_an_aws_queue_url_is_left_to_boto3_with_its_region() -> None:
    assert kwargs_for("https://sqs.eu-west-1.amazonaws.com/123456789012/logins") == {
        "region_name": "eu-west-1"
    }


def test_an_explicit_aws_endpoint_gets_no_test_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "https://sqs.us-west-2.amazonaws.com")
    assert kwargs_for("https://sqs.us-west-2.amazonaws.com/123456789012/logins") == {
        "endpoint_url": "https://sqs.us-west-2.amazonaws.com",
        "region_name": "us-west-2",
    }


def test_configured_credentials_region_and_endpoint_are_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://sqs.internal:9324")
    assert kwargs_for(DEFAULT_QUEUE_URL) == {"endpoint_url": "http://sqs.internal:9324"}


@pytest.mark.parametrize(
    ("status", "code", "kind"),
    [
        (400, "AWS.SimpleQueueService.NonExistentQueue", "SourceError"),
        (400, "InvalidParameterValue", "SourceError"),
        (403, "AccessDenied", "SourceError"),
        (400, "Throttling", "SourceUnavailable"),
        (400, "RequestThrottled", "SourceUnavailable"),
        (500, "InternalError", "SourceUnavailable"),
        (503, "ServiceUnavailable", "SourceUnavailable"),
    ],
)
def test_sqs_errors_are_sorted_into_transient_and_permanent(
    status: int, code: str, kind: str
) -> None:
    import botocore.exceptions

    from login_etl.adapters.sqs import _translate

    error = botocore.exceptions.ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "ReceiveMessage",
    )
    assert type(_translate(error, "receive")).__name__ == kind
