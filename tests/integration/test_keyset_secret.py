"""The key file kept in a secret store (LOGIN_ETL_KEYSET_SECRET), KMS-wrapped, against moto's
KMS, Secrets Manager and SSM over HTTP: `run`, `reveal`, `rekey` and `keys rotate|disable|enable`
work from the secret, and each change is a new secret version with the old one still there. A
secret that is missing, denied, not a key file, or wrapped by another KMS key is one line naming
it (never its value), exit 2 at start-up; one that cannot be reached makes a worker wait."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pytest

from login_etl import lambda_handler
from login_etl.adapters.secrets import SecretStore
from login_etl.config.secretref import parse_secret_ref
from login_etl.demo.services import MotoSqs
from login_etl.errors import KeySecretChanged
from login_etl.keys import KeyRing, create_key_file
from login_etl.keys.keyfile import Origin, parse_key_file
from login_etl.keys.rotation import describe
from login_etl.keys.store import SecretKeyStore
from tests.support import Cli, body, start_worker, wait_for_log

CLOSED_PORT = "http://127.0.0.1:9"  # discard: nothing listens there
REGION = "us-east-1"  # the adapter's region when none is configured (names carry none)
PLANTED = "hunter2-planted-value"  # in bad secrets' values: must never be printed


@pytest.fixture
def aws_env(moto: MotoSqs, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """boto3's own endpoint variables for KMS, Secrets Manager and SSM; no credentials."""
    env = {f"AWS_ENDPOINT_URL_{s}": moto.endpoint for s in ("KMS", "SECRETS_MANAGER", "SSM")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    return env


def _client(service: str, moto: MotoSqs) -> Any:
    return boto3.client(
        service,  # type: ignore[call-overload]
        endpoint_url=moto.endpoint,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


@pytest.fixture
def secrets(moto: MotoSqs) -> Any:
    return _client("secretsmanager", moto)


@pytest.fixture
def ssm(moto: MotoSqs) -> Any:
    return _client("ssm", moto)


def _new_key_uri(kms: Any) -> str:
    return "aws-kms://" + str(kms.create_key()["KeyMetadata"]["Arn"])


@pytest.fixture
def key_uri(kms: Any) -> str:
    return _new_key_uri(kms)


def _wrapped_text(directory: Path, key_uri: str) -> str:
    path = directory / f"keys-{uuid.uuid4().hex[:8]}.json"
    create_key_file(path, kms_key_uri=key_uri)  # KMS through AWS_ENDPOINT_URL_KMS
    return path.read_text()


@pytest.fixture
def key_text(tmp_path: Path, key_uri: str, aws_env: dict[str, str]) -> str:
    """A KMS-wrapped key file's text, as `keys create --kms-key-uri` writes it."""
    return _wrapped_text(tmp_path, key_uri)


def _name() -> str:
    return f"login-etl/keys-{uuid.uuid4().hex[:12]}"


def _env(aws_env: dict[str, str], secret: str, key_uri: str) -> dict[str, str]:
    # LOGIN_ETL_KEYSET_FILE empty: unset (the cli fixture sets it), since both may not be given.
    return aws_env | {
        "LOGIN_ETL_KEYSET_FILE": "",
        "LOGIN_ETL_KEYSET_SECRET": secret,
        "LOGIN_ETL_KMS_KEY_URI": key_uri,
    }


def ring(text: str) -> KeyRing:
    return parse_key_file(text.encode(), Origin("test", "test")).ring()


def statuses(text: str) -> dict[int, str]:
    key_file = parse_key_file(text.encode(), Origin("test", "test"))
    return {k.key_id: k.status for h in key_file.keysets.values() for k in describe(h)}


def masked_ips(database_url: str) -> dict[str, str]:
    """user_id → masked_ip of every stored row."""
    with psycopg.connect(database_url) as conn:
        return dict(conn.execute("SELECT user_id, masked_ip FROM user_logins").fetchall())


def send_logins(send: Callable[[list[str]], int], prefix: str, count: int) -> dict[str, str]:
    """`count` logins, user `PREFIX-i` from ip 10.PREFIX.0.i; returns user_id → ip."""
    ips = {f"u{prefix}-{i}": f"10.{prefix}.0.{i}" for i in range(1, count + 1)}
    send([body(user_id=user, ip=ip) for user, ip in ips.items()])
    return ips


def reveal(cli: Cli, env: dict[str, str], tokens: list[str]) -> list[str]:
    revealed = cli("reveal", "--field", "ip", "--reason", "test", *tokens, **env)
    assert revealed.returncode == 0, revealed.stderr
    return revealed.stdout.split()


def stages(secrets: Any, name: str) -> dict[str, list[str]]:
    return dict(secrets.describe_secret(SecretId=name)["VersionIdsToStages"])


def current(secrets: Any, name: str) -> str:
    return str(secrets.get_secret_value(SecretId=name)["SecretString"])


def test_run_reveal_rotate_disable_enable_through_secrets_manager(
    cli: Cli,
    send: Callable[[list[str]], int],
    database_url: str,
    secrets: Any,
    key_text: str,
    key_uri: str,
    aws_env: dict[str, str],
) -> None:
    name = _name()
    secrets.create_secret(Name=name, SecretString=key_text)
    env = _env(aws_env, name, key_uri)

    first = send_logins(send, "1", 4)
    done = cli("run", "--until-empty", **env)
    assert done.returncode == 0, done.stderr
    assert " 4 loaded, 0 rejected, " in done.stdout
    old_tokens = masked_ips(database_url)
    assert set(old_tokens) == set(first)
    assert not set(first.values()) & set(old_tokens.values())  # masked
    users = sorted(first)
    assert reveal(cli, env, [old_tokens[u] for u in users]) == [first[u] for u in users]

    # rotate: a new version; the old text stays retrievable as AWSPREVIOUS
    rotated = cli("keys", "rotate", **env)
    assert rotated.returncode == 0, rotated.stderr
    assert len(stages(secrets, name)) == 2
    assert secrets.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")["SecretString"] == (
        key_text
    )
    new_text = current(secrets, name)
    assert json.loads(new_text)["kms_key_uri"] == key_uri  # still wrapped
    old, new = ring(key_text), ring(new_text)
    assert new.masking_primary != old.masking_primary
    assert f"masking: new primary key {new.masking_primary}" in rotated.stdout

    # new rows under the new primary; old rows still reveal
    second = send_logins(send, "2", 3)
    done = cli("run", "--until-empty", **env)
    assert done.returncode == 0, done.stderr
    tokens = masked_ips(database_url)
    for user, ip in second.items():
        assert tokens[user] == new.masker.mask("ip", ip).token != old.masker.mask("ip", ip).token
    assert reveal(cli, env, [tokens[u] for u in users]) == [first[u] for u in users]

    # disable: refused (nothing written) while stored values need the old key; after rekey, a
    # new version with the key disabled; enable: another version with it enabled again
    old_key = str(old.masking_primary)
    refused = cli("keys", "disable", old_key, **env)
    assert refused.returncode == 1, refused.stderr
    assert current(secrets, name) == new_text
    rekeyed = cli("rekey", **env)
    assert rekeyed.returncode == 0, rekeyed.stderr
    disabled = cli("keys", "disable", old_key, **env)
    assert disabled.returncode == 0, disabled.stderr
    assert name in disabled.stdout
    assert statuses(current(secrets, name))[old.masking_primary] == "DISABLED"
    assert "AWSPREVIOUS" in stages(secrets, name)[_version_of(secrets, name, new_text)]
    enabled = cli("keys", "enable", old_key, **env)
    assert enabled.returncode == 0, enabled.stderr
    assert statuses(current(secrets, name))[old.masking_primary] == "ENABLED"
    assert len(stages(secrets, name)) >= 3
    listed = cli("keys", "list", **env)
    assert listed.returncode == 0, listed.stderr
    assert str(new.masking_primary) in listed.stdout


def _version_of(secrets: Any, name: str, text: str) -> str:
    """The id of the version of `name` whose value is `text`."""
    for version in stages(secrets, name):
        answer = secrets.get_secret_value(SecretId=name, VersionId=version)
        if answer["SecretString"] == text:
            return str(answer["VersionId"])
    raise AssertionError("no version holds that text")


def test_run_and_rotate_through_an_ssm_securestring(
    cli: Cli,
    send: Callable[[list[str]], int],
    database_url: str,
    ssm: Any,
    key_text: str,
    key_uri: str,
    aws_env: dict[str, str],
) -> None:
    name = "/" + _name()
    ssm.put_parameter(Name=name, Value=key_text, Type="SecureString")
    env = _env(aws_env, f"ssm://{name}", key_uri)

    first = send_logins(send, "3", 3)
    done = cli("run", "--until-empty", **env)
    assert done.returncode == 0, done.stderr
    assert " 3 loaded, 0 rejected, " in done.stdout
    old_tokens = masked_ips(database_url)

    rotated = cli("keys", "rotate", "--keyset", "masking", **env)
    assert rotated.returncode == 0, rotated.stderr
    parameter = ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]
    assert parameter["Version"] == 2
    assert ssm.get_parameter(Name=f"{name}:1", WithDecryption=True)["Parameter"]["Value"] == (
        key_text
    )
    old, new = ring(key_text), ring(parameter["Value"])
    assert new.masking_primary != old.masking_primary
    assert new.quarantine_primary == old.quarantine_primary  # --keyset masking only

    second = send_logins(send, "4", 2)
    done = cli("run", "--until-empty", **env)
    assert done.returncode == 0, done.stderr
    tokens = masked_ips(database_url)
    for user, ip in second.items():
        assert tokens[user] == new.masker.mask("ip", ip).token
    users = sorted(first)
    assert reveal(cli, env, [old_tokens[u] for u in users]) == [first[u] for u in users]


def test_wrap_writes_the_wrapped_file_as_a_new_version_keeping_every_key(
    cli: Cli, secrets: Any, key_uri: str, aws_env: dict[str, str], tmp_path: Path
) -> None:
    cleartext = tmp_path / "cleartext.json"
    create_key_file(cleartext)
    name = _name()
    secrets.create_secret(Name=name, SecretString=cleartext.read_text())
    env = _env(aws_env, name, "")  # LOGIN_ETL_KMS_KEY_URI empty: unset, so cleartext is read

    listed = cli("keys", "list", **env)  # read, with a warning: GetSecretValue alone gives keys
    assert listed.returncode == 0, listed.stderr
    assert "is not KMS-wrapped; run login-etl keys wrap" in listed.stderr

    wrapped = cli("keys", "wrap", "--kms-key-uri", key_uri, **env)
    assert wrapped.returncode == 0, wrapped.stderr
    assert "AWSPREVIOUS" in wrapped.stdout  # the earlier version still holds cleartext keys
    text = current(secrets, name)
    assert json.loads(text)["kms_key_uri"] == key_uri
    assert all("encryptedKeyset" in k for k in json.loads(text)["keysets"].values())
    before, after = ring(cleartext.read_text()), ring(text)
    assert after.masker.mask("ip", "10.9.8.7") == before.masker.mask("ip", "10.9.8.7")
    assert (
        secrets.get_secret_value(SecretId=name, VersionStage="AWSPREVIOUS")["SecretString"]
        == cleartext.read_text()
    )
    again = cli("keys", "wrap", "--kms-key-uri", key_uri, **env)
    assert again.returncode == 1
    assert f"secret {name} (LOGIN_ETL_KEYSET_SECRET) is already wrapped" in again.stderr


class _Context:
    """What the handler reads of Lambda's context: the time left."""

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


def test_the_lambda_handler_loads_its_keys_from_the_secret(
    database_url: str,
    secrets: Any,
    key_text: str,
    key_uri: str,
    aws_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name = _name()
    secrets.create_secret(Name=name, SecretString=key_text)
    for variable, value in _env(aws_env, name, key_uri).items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setenv("LOGIN_ETL_DATABASE_URL", database_url)
    monkeypatch.delenv("LOGIN_ETL_LOG_LEVEL", raising=False)
    package_logger = logging.getLogger("login_etl")
    level = package_logger.level  # a cold start sets it
    records = [
        {
            "messageId": f"m-{i}",
            "body": body(user_id=f"lambda-{i}", ip=f"10.5.0.{i}"),
            "attributes": {"SentTimestamp": "1700000000000", "ApproximateReceiveCount": "1"},
            "eventSource": "aws:sqs",
        }
        for i in (1, 2)
    ]
    lambda_handler.reset()  # a cold start: the key ring is built from the settings
    try:
        response = lambda_handler.handler({"Records": records}, _Context())
    finally:
        lambda_handler.reset()
        package_logger.setLevel(level)
    assert response == {"batchItemFailures": []}
    keys = ring(key_text)
    assert masked_ips(database_url) == {
        f"lambda-{i}": keys.masker.mask("ip", f"10.5.0.{i}").token for i in (1, 2)
    }


@pytest.mark.parametrize("store", ["secretsmanager", "ssm"])
def test_a_change_written_since_the_read_is_refused(
    store: str, secrets: Any, ssm: Any, key_text: str, aws_env: dict[str, str]
) -> None:
    if store == "ssm":
        name = "/" + _name()
        ssm.put_parameter(Name=name, Value=key_text, Type="SecureString")
        ref = f"ssm://{name}"
    else:
        name = ref = _name()
        secrets.create_secret(Name=name, SecretString=key_text)
    keys = SecretKeyStore(parse_secret_ref(ref, "LOGIN_ETL_KEYSET_SECRET"))
    other = SecretStore(parse_secret_ref(ref, "another custodian"))
    theirs = key_text.replace('"created_at"', '"created_at" ', 1)  # another valid text
    with keys.editing() as edit:
        key_file = edit.read()
        other.write(theirs)  # another custodian's change lands between our read and our write
        with pytest.raises(KeySecretChanged, match=f"{name}.* changed since it was read"):
            edit.write(key_file)
    assert other.read() == theirs  # theirs kept, ours not written

    with keys.editing() as edit:  # read afresh: the write goes through
        key_file = edit.read()
        edit.write(key_file)
    assert other.read() != theirs


# --- bad input --------------------------------------------------------------------------------


class _Denying(BaseHTTPRequestHandler):
    """An AWS JSON endpoint that refuses every call, as IAM does without the permission."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        answer = json.dumps(
            {
                "__type": "AccessDeniedException",
                "message": "User: arn:aws:iam::123456789012:user/w is not authorized",
            }
        ).encode()
        self.send_response(400)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def denying() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Denying)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _assert_one_line_naming(result: Any, name: str, *phrases: str) -> None:
    assert result.returncode == 2, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert name in lines[0]
    for phrase in phrases:
        assert phrase in lines[0]
    assert PLANTED not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


BAD_VALUES = {
    "not JSON": (f"password={PLANTED}", "is not JSON (line 1)"),
    "JSON of another shape": (
        json.dumps({"username": "app", "password": PLANTED}),
        "is not a login-etl key file",
    ),
    "a key file without keysets": (
        json.dumps({"format": "login-etl-keys", "version": 2, "note": PLANTED}),
        "has no keysets",
    ),
    "a keyset that is not one": (
        json.dumps({"format": "login-etl-keys", "version": 2, "keysets": {"masking": PLANTED}}),
        "the 'masking' keyset is a string, not an object",
    ),
}


@pytest.mark.parametrize("store", ["secretsmanager", "ssm"])
@pytest.mark.parametrize("case", BAD_VALUES)
def test_a_secret_that_is_not_a_key_file_is_one_line_naming_it(
    case: str, store: str, cli: Cli, secrets: Any, ssm: Any, aws_env: dict[str, str]
) -> None:
    value, problem = BAD_VALUES[case]
    name = _name()
    if store == "ssm":
        ssm.put_parameter(Name=f"/{name}", Value=value, Type="SecureString")
        setting = f"ssm:///{name}"
    else:
        secrets.create_secret(Name=name, SecretString=value)
        setting = name
    env = aws_env | {"LOGIN_ETL_KEYSET_FILE": "", "LOGIN_ETL_KEYSET_SECRET": setting}
    _assert_one_line_naming(
        cli("run", "--until-empty", **env), setting, "LOGIN_ETL_KEYSET_SECRET", problem
    )


def test_a_secret_wrapped_by_another_kms_key_is_refused(
    cli: Cli, secrets: Any, kms: Any, key_text: str, aws_env: dict[str, str]
) -> None:
    name = _name()
    secrets.create_secret(Name=name, SecretString=key_text)
    required = _new_key_uri(kms)
    result = cli("run", "--until-empty", **_env(aws_env, name, required))
    _assert_one_line_naming(
        result, name, "wrapped by another KMS key", f"LOGIN_ETL_KMS_KEY_URI requires {required}"
    )


def test_an_ssm_parameter_kept_in_clear_is_refused(
    cli: Cli, ssm: Any, key_text: str, aws_env: dict[str, str]
) -> None:
    """A key file must be a SecureString: a String parameter is refused, not read."""
    name = f"/{_name()}"
    ssm.put_parameter(Name=name, Value=key_text, Type="String")
    env = aws_env | {"LOGIN_ETL_KEYSET_FILE": "", "LOGIN_ETL_KEYSET_SECRET": f"ssm://{name}"}
    _assert_one_line_naming(cli("keys", "list", **env), f"ssm://{name}", "SecureString")


@pytest.mark.parametrize("setting", ["login-etl/absent-{}", "ssm:///login-etl/absent-{}"])
def test_a_missing_secret_is_one_line_naming_it(
    setting: str, cli: Cli, aws_env: dict[str, str]
) -> None:
    name = setting.format(uuid.uuid4().hex[:8])
    env = aws_env | {"LOGIN_ETL_KEYSET_FILE": "", "LOGIN_ETL_KEYSET_SECRET": name}
    _assert_one_line_naming(cli("run", "--until-empty", **env), name, "does not exist")


@pytest.mark.parametrize("setting", ["login-etl/keys", "ssm:///login-etl/keys"])
def test_a_denied_secret_is_one_line_naming_it(
    setting: str, cli: Cli, aws_env: dict[str, str], denying: str
) -> None:
    env = aws_env | {
        "AWS_ENDPOINT_URL_SECRETS_MANAGER": denying,
        "AWS_ENDPOINT_URL_SSM": denying,
        "LOGIN_ETL_KEYSET_FILE": "",
        "LOGIN_ETL_KEYSET_SECRET": setting,
    }
    result = cli("keys", "list", **env)
    _assert_one_line_naming(result, setting, "read refused (AccessDeniedException)")
    _assert_one_line_naming(cli("run", "--until-empty", **env), setting, "AccessDeniedException")


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("arn:aws:secretsmanager:eu-west-1:1:secret:k", "not a Secrets Manager ARN"),
        ("ssm://", "needs an SSM parameter name"),
        ("two words", "give a Secrets Manager secret's ARN or name, or ssm://"),
    ],
)
def test_a_bad_setting_is_refused_before_anything_is_read(
    value: str, problem: str, cli: Cli, aws_env: dict[str, str]
) -> None:
    env = aws_env | {"LOGIN_ETL_KEYSET_FILE": "", "LOGIN_ETL_KEYSET_SECRET": value}
    _assert_one_line_naming(
        cli("run", "--until-empty", **env), "LOGIN_ETL_KEYSET_SECRET (--keyset-secret)", problem
    )


def test_a_key_file_and_a_key_secret_at_once_are_refused(
    cli: Cli, aws_env: dict[str, str], key_file: Path
) -> None:
    result = cli("keys", "rotate", "--keyset-secret", "login-etl/keys", **aws_env)
    _assert_one_line_naming(result, "LOGIN_ETL_KEYSET_SECRET", "LOGIN_ETL_KEYSET_FILE", "not both")
    assert key_file.exists()


def test_an_unreachable_secret_store_makes_the_worker_wait(
    cli: Cli,
    send: Callable[[list[str]], int],
    database_url: str,
    aws_env: dict[str, str],
    key_uri: str,
) -> None:
    send([body()])
    env = cli.env | _env(aws_env, "login-etl/keys", key_uri)  # type: ignore[attr-defined]
    env["AWS_ENDPOINT_URL_SECRETS_MANAGER"] = CLOSED_PORT
    worker = start_worker(env, "--until-empty")
    try:
        wait_for_log(worker, "load keys failed")  # a transient error: retried, not fatal
        assert worker.poll() is None
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    with psycopg.connect(database_url) as conn:  # keys come first: nothing loaded, not migrated
        assert conn.execute("SELECT to_regclass('public.user_logins')").fetchone() == (None,)
