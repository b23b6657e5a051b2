"""LOGIN_ETL_KEYSET_SECRET (--keyset-secret): checked with the other settings, never together
with LOGIN_ETL_KEYSET_FILE, and an option of every command that takes --keyset-file."""

from __future__ import annotations

import re

import pytest

from login_etl.cli import main
from login_etl.config import load_settings
from login_etl.errors import ConfigError
from login_etl.keys.loading import key_store
from login_etl.keys.store import FileKeyStore, SecretKeyStore

# Every command that reads the key file.
KEY_COMMANDS = [
    ["run"],
    ["reveal"],
    ["rekey"],
    ["quarantine", "show"],
    ["quarantine", "replay"],
    ["keys", "list"],
    ["keys", "rotate"],
    ["keys", "wrap"],
    ["keys", "check"],
    ["keys", "disable"],
    ["keys", "enable"],
]


@pytest.mark.parametrize(
    "value",
    [
        "prod/login-etl/keys",
        "arn:aws:secretsmanager:eu-west-1:111122223333:secret:prod/login-etl/keys-AbCdEf",
        "ssm:///prod/login-etl/keys",
        "ssm://login-etl-keys",
    ],
)
def test_a_secret_reference_is_taken_as_given(value: str) -> None:
    assert load_settings(keyset_secret=value).keyset_secret == value


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("arn:aws:secretsmanager:eu-west-1:1:secret:k", "not a Secrets Manager ARN"),
        ("arn:aws:ssm:eu-west-1:111122223333:parameter/k", "not a Secrets Manager ARN"),
        ("ssm://", "needs an SSM parameter name"),
        ("two words", "or ssm://PARAMETER_NAME"),
    ],
)
def test_a_bad_reference_is_one_line_naming_the_setting(value: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(keyset_secret=value)
    message = str(info.value)
    assert message.startswith("LOGIN_ETL_KEYSET_SECRET (--keyset-secret): ")
    assert problem in message
    assert "\n" not in message


def test_a_key_file_and_a_key_secret_are_not_both_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGIN_ETL_KEYSET_FILE", "/etc/login-etl/keys.json")
    with pytest.raises(ConfigError, match=r"give this or LOGIN_ETL_KEYSET_FILE .*not both"):
        load_settings(keyset_secret="prod/login-etl/keys")
    monkeypatch.setenv("LOGIN_ETL_KEYSET_FILE", "")  # empty: unset
    assert load_settings(keyset_secret="prod/login-etl/keys").keyset_file is None


def test_the_key_store_is_the_secret_when_one_is_set() -> None:
    store = key_store(load_settings(keyset_secret="ssm:///prod/keys"))
    assert isinstance(store, SecretKeyStore)
    assert store.where == "secret ssm:///prod/keys (LOGIN_ETL_KEYSET_SECRET)"
    assert isinstance(key_store(load_settings(keyset_file="/k.json")), FileKeyStore)
    with pytest.raises(ConfigError, match="LOGIN_ETL_KEYSET_SECRET"):  # neither: how to set one
        key_store(load_settings())


@pytest.mark.parametrize("command", KEY_COMMANDS, ids=" ".join)
def test_every_command_with_a_key_file_option_takes_a_key_secret(
    command: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # one line per option: nothing wrapped
    assert main([*command, "--help"]) == 0
    options = set(re.findall(r"(--[a-z-]+)\s", capsys.readouterr().out))
    assert {"--keyset-file", "--keyset-secret"} <= options
