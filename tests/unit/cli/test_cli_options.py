"""The CLI's help shows Settings' defaults, read from Settings, and never a password."""

from __future__ import annotations

import os
import re

import pytest

from login_etl.cli import main
from login_etl.cli.options import shown_default
from login_etl.config import DEFAULT_DATABASE_URL, Settings

# Each `login-etl run` option that mirrors a setting, and its setting.
RUN_OPTIONS = {
    "--queue-url": "queue_url",
    "--database-url": "database_url",
    "--visibility-timeout": "visibility_timeout",
    "--wait-time-seconds": "wait_time_seconds",
    "--batch-size": "batch_size",
    "--batch-wait-ms": "batch_wait_ms",
    "--pollers": "pollers",
    "--metrics-port": "metrics_port",
    "--log-level": "log_level",
    "--log-format": "log_format",
    "--sqs-protocol": "sqs_protocol",
}


@pytest.fixture
def help_defaults(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> dict[str, str]:
    """`login-etl run --help`, as {option: the default it shows}."""
    monkeypatch.setenv("COLUMNS", "400")  # one line per option: nothing wrapped
    assert main(["run", "--help"]) == 0
    shown: dict[str, str] = {}
    for line in capsys.readouterr().out.splitlines():
        option = re.search(r"(--[a-z-]+)\s", line)
        default = re.search(r"\[default: \((.*?)\)\]", line)
        if option and default:
            shown[option.group(1)] = default.group(1)
    return shown


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings from no environment: their defaults."""
    for name in list(os.environ):
        if name.startswith("LOGIN_ETL_"):
            monkeypatch.delenv(name)
    return Settings()


def test_run_help_shows_the_settings_defaults(
    help_defaults: dict[str, str], settings: Settings
) -> None:
    assert set(RUN_OPTIONS) <= set(help_defaults)
    assert help_defaults["--batch-size"] == str(settings.batch_size)
    assert help_defaults["--pollers"] == str(settings.pollers)
    assert help_defaults["--visibility-timeout"] == str(settings.visibility_timeout)
    assert help_defaults["--wait-time-seconds"] == str(settings.wait_time_seconds)
    assert help_defaults["--batch-wait-ms"] == str(settings.batch_wait_ms)
    assert help_defaults["--queue-url"] == settings.queue_url
    assert help_defaults["--log-level"] == settings.log_level
    assert help_defaults["--log-format"] == settings.log_format
    assert help_defaults["--sqs-protocol"] == settings.sqs_protocol
    assert settings.metrics_port is None
    assert help_defaults["--metrics-port"] == "off"


def test_run_help_shows_the_database_url_without_its_password(
    help_defaults: dict[str, str], settings: Settings
) -> None:
    url = settings.database_url.get_secret_value()
    assert url == DEFAULT_DATABASE_URL
    password = "postgres"
    assert f":{password}@" in url
    assert help_defaults["--database-url"] == url.replace(f":{password}@", ":***@")


def test_each_option_names_the_variable_of_its_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # one line per option: nothing wrapped
    assert main(["run", "--help"]) == 0
    named = {
        option.group(1): env.group(1)
        for line in capsys.readouterr().out.splitlines()
        if (option := re.search(r"(--[a-z-]+)\s", line)) and (env := re.search(r"Env: (\w+)", line))
    }
    options = {**RUN_OPTIONS, "--keyset-file": "keyset_file"}
    assert {option: named.get(option) for option in options} == {
        option: f"LOGIN_ETL_{field.upper()}" for option, field in options.items()
    }


@pytest.mark.parametrize(("option", "field"), RUN_OPTIONS.items())
def test_each_default_shown_is_the_settings_default(option: str, field: str) -> None:
    default = Settings.model_fields[field].default
    shown = shown_default(field)
    if default is None:
        assert shown == "none"
    elif field == "database_url":
        assert shown != default.get_secret_value()
        assert "***" in shown
    else:
        assert shown == str(default)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://etl:s3cret@db:5432/etl", "postgresql://etl:***@db:5432/etl"),
        (
            "postgresql://etl:p%40ss%3Aw@[::1]/etl?sslmode=require",
            "postgresql://etl:***@[::1]/etl?sslmode=require",
        ),
        ("postgresql://etl@db/etl", "postgresql://etl@db/etl"),
        ("postgresql:///etl", "postgresql:///etl"),
    ],
)
def test_a_url_default_is_shown_without_its_password(
    monkeypatch: pytest.MonkeyPatch, url: str, shown: str
) -> None:
    from pydantic import SecretStr

    monkeypatch.setattr("login_etl.cli.options.default_of", lambda field: SecretStr(url))
    assert shown_default("database_url") == shown
