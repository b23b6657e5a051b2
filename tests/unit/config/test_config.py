from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import boto3
import pytest

from login_etl.adapters.kms import kms_client
from login_etl.adapters.sqs import SqsSource, client_kwargs
from login_etl.cli import main
from login_etl.config import DEFAULT_QUEUE_URL, Settings, load_settings
from login_etl.errors import ConfigError
from login_etl.runtime.health import HealthServer
from login_etl.runtime.metrics import PrometheusMetrics


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "LOGIN_ETL_QUEUE_URL",
        "LOGIN_ETL_DATABASE_URL",
        "LOGIN_ETL_KEYSET_FILE",
        "LOGIN_ETL_VISIBILITY_TIMEOUT",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_SQS",
        "AWS_ENDPOINT_URL_KMS",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_PROFILE",
        "AWS_DEFAULT_REGION",
        "AWS_REGION",
        *(name for name in os.environ if name.startswith(("PG", "LOGIN_ETL_"))),
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


# A password with an '@' and other URL delimiters, and what of it must never be seen.
PASSWORD_FRAGMENTS = ("Secret-Pw", "hunter2")
DB = "LOGIN_ETL_DATABASE_URL (--database-url): "
QUEUE = "LOGIN_ETL_QUEUE_URL (--queue-url): "
PORT_RULE = "must be a number from 1 to 65535"


def leaks_password(text: str) -> bool:
    """True if `text` shows any part of the passwords used here ("my" as a word)."""
    return (
        any(part in text for part in PASSWORD_FRAGMENTS) or re.search(r"\bmy\b", text) is not None
    )


BAD_VALUES = [
    # 2a: an unescaped '@' puts the rest of the password in libpq's host name.
    (
        "LOGIN_ETL_DATABASE_URL",
        "postgresql://etl:my@Secret-Pw@127.0.0.1:5999/etl",
        DB + "the user name or password holds an unescaped '@': percent-encode",
    ),
    (
        "LOGIN_ETL_DATABASE_URL",
        "postgresql://etl:my@Secret-Pw@db.example.com",
        DB + "the user name or password holds an unescaped '@'",
    ),
    # A '/' or '?' ends libpq's user info early: any '@' after the host is refused, wherever.
    (
        "LOGIN_ETL_DATABASE_URL",
        "postgresql://etl:my@Secret-Pw/x@127.0.0.1:5999/etl",
        DB + "holds an unescaped '@' after the host: percent-encode",
    ),
    (
        "LOGIN_ETL_DATABASE_URL",
        "postgresql://etl:9999/Secret-Pw@127.0.0.1/etl",
        DB + "holds an unescaped '@' after the host: percent-encode",
    ),
    (
        "LOGIN_ETL_DATABASE_URL",
        "postgresql://etl:my?Secret-Pw@127.0.0.1/etl",
        DB + "holds an unescaped '@' after the host: percent-encode",
    ),
    (
        "LOGIN_ETL_DATABASE_URL",
        "postgresql://etl:hunter2@127.0.0.1/etl?application_name=a@b",
        DB + "holds an unescaped '@' after the host: percent-encode",
    ),
    # libpq's URLs have no fragment; a '#' in a password cuts the URL for other parsers.
    (
        "LOGIN_ETL_DATABASE_URL",
        "postgresql://etl:my#Secret-Pw@127.0.0.1/etl",
        DB + "holds an unescaped '#': percent-encode",
    ),
    (
        "LOGIN_ETL_DATABASE_URL",
        "postgresql://etl:hunter2@127.0.0.1/etl#x",
        DB + "holds an unescaped '#': percent-encode",
    ),
    # A '/' ends libpq's user info early: "my" becomes the port.
    (
        "LOGIN_ETL_DATABASE_URL",
        "postgresql://etl:my/Secret-Pw@127.0.0.1/etl",
        DB + "port " + PORT_RULE,
    ),
    (
        "LOGIN_ETL_DATABASE_URL",
        "postgresql://etl:hunter2@127.0.0.1:99999/etl",
        DB + "port " + PORT_RULE,
    ),
    (
        "LOGIN_ETL_DATABASE_URL",
        "postgresql://etl:hunter2@127.0.0.1:0/etl",
        DB + "port " + PORT_RULE,
    ),
    (
        "LOGIN_ETL_DATABASE_URL",
        "postgresql://etl:hunter2@127.0.0.1:abc/etl",
        DB + "port " + PORT_RULE,
    ),
    (
        "LOGIN_ETL_DATABASE_URL",
        "postgresql://etl:hunter2@h1,h2/etl?port=1,2,3",
        DB + "give one port",
    ),
    (
        "LOGIN_ETL_DATABASE_URL",
        "postgresql://etl:hunter2%zz@h/db",
        DB + "is not a valid PostgreSQL URL",
    ),
    ("LOGIN_ETL_DATABASE_URL", "postgresql://etl:hunter2@h/db?nonsense=1", DB + "is not a valid"),
    ("LOGIN_ETL_DATABASE_URL", "postgresql://etl:hunter2@exa%20mple/db", DB + "a host is not"),
    (
        "LOGIN_ETL_DATABASE_URL",
        "postgresql://etl:hunter2@h/db?sslmode=bogus",
        DB + "sslmode must be one of",
    ),
    (
        "LOGIN_ETL_DATABASE_URL",
        "postgresql://etl:hunter2@h/db?sslmode=REQUIRE",
        DB + "sslmode must be",
    ),
    (
        "LOGIN_ETL_DATABASE_URL",
        "postgresql://etl:hunter2@h/db?gssencmode=x",
        DB + "gssencmode must be",
    ),
    (
        "LOGIN_ETL_DATABASE_URL",
        "postgresql://etl:hunter2@h/db?target_session_attrs=x",
        DB + "target_session_attrs",
    ),
    (
        "LOGIN_ETL_DATABASE_URL",
        "postgresql://etl:hunter2@h/db?ssl_min_protocol_version=x",
        DB + "ssl_min_protocol_version must",
    ),
    (
        "LOGIN_ETL_DATABASE_URL",
        "postgresql://etl:hunter2@h/db?keepalives=x",
        DB + "keepalives must be a whole number",
    ),
    (
        "LOGIN_ETL_DATABASE_URL",
        "postgresql://etl:hunter2@h/db?hostaddr=x",
        DB + "hostaddr must be an IP address",
    ),
    ("LOGIN_ETL_DATABASE_URL", "host=h password=hunter2", DB + "must be a postgresql:// URL"),
    # libpq reads what the URL leaves out from PG* variables: the one at fault is named.
    ("PGSSLMODE", "bogus", DB + "sslmode (from PGSSLMODE) must be one of"),
    ("PGTARGETSESSIONATTRS", "x", DB + "target_session_attrs (from PGTARGETSESSIONATTRS) must"),
    # 2h: the queue URL's port, host and user info.
    (
        "LOGIN_ETL_QUEUE_URL",
        "http://localhost:99999/000000000000/q",
        QUEUE + "the port " + PORT_RULE,
    ),
    ("LOGIN_ETL_QUEUE_URL", "http://localhost:abc/000000000000/q", QUEUE + "the port " + PORT_RULE),
    ("LOGIN_ETL_QUEUE_URL", "http://localhost:0/000000000000/q", QUEUE + "the port " + PORT_RULE),
    ("LOGIN_ETL_QUEUE_URL", "http://exa mple/000000000000/q", QUEUE + "the host is not a valid"),
    ("LOGIN_ETL_QUEUE_URL", "http://[::1/000000000000/q", QUEUE + "Invalid IPv6 URL"),
    (
        "LOGIN_ETL_QUEUE_URL",
        "http://u:hunter2@localhost/000000000000/q",
        QUEUE + "must not hold a user",
    ),
    # boto3's endpoint variables, named as set.
    ("AWS_ENDPOINT_URL", "ftp://localhost:4566", "AWS_ENDPOINT_URL: must be an http(s) URL"),
    ("AWS_ENDPOINT_URL", "not a url", "AWS_ENDPOINT_URL: must be an http(s) URL"),
    ("AWS_ENDPOINT_URL", "http://localhost:99999", "AWS_ENDPOINT_URL: the port " + PORT_RULE),
    ("AWS_ENDPOINT_URL_SQS", "http://localhost:abc", "AWS_ENDPOINT_URL_SQS: the port " + PORT_RULE),
    ("AWS_ENDPOINT_URL_SQS", "http://a_b c:1", "AWS_ENDPOINT_URL_SQS: the host is not a valid"),
    ("LOGIN_ETL_METRICS_PORT", "65536", "LOGIN_ETL_METRICS_PORT (--metrics-port): Input should be"),
    ("LOGIN_ETL_METRICS_PORT", "http", "LOGIN_ETL_METRICS_PORT (--metrics-port): Input should be"),
    ("LOGIN_ETL_LOG_FORMAT", "xml", "LOGIN_ETL_LOG_FORMAT (--log-format): Input should be"),
]


@pytest.mark.parametrize(("env", "value", "message"), BAD_VALUES)
def test_every_bad_setting_is_one_line_naming_it_and_never_the_password(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, message: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)
    assert not leaks_password(str(info.value))
    assert value not in str(info.value)


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://etl:my%40Secret-Pw@127.0.0.1:5999/etl",
        "postgres://etl@db.example.com/etl?sslmode=verify-full&connect_timeout=10",
        "postgresql://etl@[::1]:5433/etl?target_session_attrs=read-write",
        "postgresql://etl@h1:5432,h2:5433/etl?load_balance_hosts=random",
        "postgresql://etl@/etl?host=/var/run/postgresql",
        "postgresql:///etl?ssl_min_protocol_version=tlsv1.3",
        "postgresql://etl:a%2Fb%3Fc%23d%25@db/etl",
    ],
)
def test_good_database_urls_pass(url: str) -> None:
    assert load_settings(database_url=url).database_url.get_secret_value() == url


@pytest.mark.parametrize(("env", "value", "message"), BAD_VALUES[:3] + BAD_VALUES[-12:])
def test_the_cli_says_it_in_one_line_and_exits_2(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    env: str,
    value: str,
    message: str,
) -> None:
    """Before anything connects: nothing listens at these URLs, and nothing needs to."""
    monkeypatch.setenv("LOGIN_ETL_KEYSET_FILE", str(tmp_path / "keys.json"))
    monkeypatch.setenv(env, value)
    assert main(["run", "--until-empty"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("login-etl: " + message)
    assert err.count("\n") == 1
    assert not leaks_password(err)


@pytest.mark.parametrize("command", [["run", "--until-empty"], ["migrate"]])
def test_a_password_with_an_unescaped_at_is_refused_by_the_real_cli(
    tmp_path: Path, command: list[str]
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LOGIN_ETL_", "AWS_", "PG"))}
    env |= {
        "LOGIN_ETL_DATABASE_URL": "postgresql://etl:my@Secret-Pw@127.0.0.1:5999/etl",
        "LOGIN_ETL_KEYSET_FILE": str(tmp_path / "keys.json"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "login_etl", *command],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr == (
        "login-etl: LOGIN_ETL_DATABASE_URL (--database-url): the user name or password holds an "
        "unescaped '@': percent-encode any '@', ':', '/', '?', '#' or '%' in the user name and "
        "password (e.g. '@' as %40)\n"
    )


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


def test_metrics_ports_past_65535_for_several_processes_are_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("LOGIN_ETL_KEYSET_FILE", str(tmp_path / "keys.json"))
    assert main(["run", "--processes", "3", "--metrics-port", "65534"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("login-etl: LOGIN_ETL_METRICS_PORT (--metrics-port): ")
    assert err.count("\n") == 1


def test_a_metrics_port_in_use_names_the_setting() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=r"^LOGIN_ETL_METRICS_PORT \(--metrics-port\): "):
            HealthServer(port, PrometheusMetrics(), {}, host="127.0.0.1")


@pytest.fixture
def unparsable_aws_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "aws-config"
    config.write_text("[default\nregion = us-east-1\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))


@pytest.mark.usefixtures("unparsable_aws_config")
def test_an_aws_config_file_botocore_cannot_parse_is_one_line_for_sqs() -> None:
    with pytest.raises(ConfigError, match=r"^AWS configuration: Unable to parse config file"):
        SqsSource.from_settings(load_settings())


KMS_KEY = "aws-kms://arn:aws:kms:us-east-1:000000000000:key/k"


@pytest.mark.parametrize(
    ("env", "value", "message"),
    [
        ("AWS_PROFILE", "nope", "AWS_PROFILE: The config profile (nope) could not be found"),
        ("AWS_ENDPOINT_URL_KMS", "not a url", "AWS_ENDPOINT_URL_KMS (or AWS_ENDPOINT_URL"),
        ("AWS_ENDPOINT_URL_KMS", "http://localhost:99999", "AWS_ENDPOINT_URL_KMS (or"),
        ("AWS_ENDPOINT_URL_KMS", "http://localhost:abc", "AWS_ENDPOINT_URL_KMS (or"),
    ],
)
def test_bad_aws_settings_for_kms_are_one_line(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, message: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(ConfigError) as info:
        kms_client(KMS_KEY)
    assert str(info.value).startswith(message)


@pytest.mark.usefixtures("unparsable_aws_config")
def test_an_aws_config_file_botocore_cannot_parse_is_one_line_for_kms() -> None:
    with pytest.raises(ConfigError, match=r"^AWS configuration: Unable to parse config file"):
        kms_client(KMS_KEY)


def test_the_option_is_checked_as_the_variable_is(capsys: pytest.CaptureFixture[str]) -> None:
    url = "postgresql://etl:my@Secret-Pw@127.0.0.1:5999/etl"
    assert main(["migrate", "--database-url", url]) == 2
    err = capsys.readouterr().err
    assert err.startswith("login-etl: LOGIN_ETL_DATABASE_URL (--database-url): ")
    assert "percent-encode" in err
    assert not leaks_password(err)
