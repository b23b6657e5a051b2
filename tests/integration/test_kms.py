"""A KMS-wrapped key file, against a real KMS API (moto's server over HTTP): the file alone
reveals nothing, the service works only while KMS can unwrap it, and tampering is refused."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
import pytest

from login_etl.demo.data import generate_bodies
from login_etl.demo.services import MotoSqs
from login_etl.errors import KeyFileError, KmsUnavailable
from login_etl.keys import read_key_file
from tests.support import Cli, start_worker, wait_for_log

CLOSED_PORT = "http://127.0.0.1:9"  # discard: nothing listens there

# These tests rotate or rewrap their key file: each has one of its own.
pytestmark = pytest.mark.own_key_file


@pytest.fixture
def key_uri(kms: Any) -> str:
    return "aws-kms://" + str(kms.create_key()["KeyMetadata"]["Arn"])


@pytest.fixture
def kms_env(moto: MotoSqs, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """boto3's own variable for the KMS endpoint; no credentials, as on a laptop."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", moto.endpoint)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    return {"AWS_ENDPOINT_URL_KMS": moto.endpoint}


@pytest.fixture
def wrapped(tmp_path: Path, cli: Cli, key_uri: str, kms_env: dict[str, str]) -> Path:
    path = tmp_path / "wrapped-keys.json"
    made = cli("keys", "create", "--out", str(path), "--kms-key-uri", key_uri, **kms_env)
    assert made.returncode == 0, made.stderr
    return path


def secrets_of(path: Path) -> list[str]:
    """The key material in a key file, as Tink's cleartext JSON would write it."""
    from tink import json_proto_keyset_format, secret_key_access

    return [
        key["keyData"]["value"]
        for handle in read_key_file(path).keysets.values()
        for key in json.loads(json_proto_keyset_format.serialize(handle, secret_key_access.TOKEN))[
            "key"
        ]
    ]


def test_the_wrapped_file_holds_no_key_material(wrapped: Path, key_uri: str) -> None:
    document = json.loads(wrapped.read_text())
    assert document["kms_key_uri"] == key_uri
    assert all(set(k) == {"encryptedKeyset", "keysetInfo"} for k in document["keysets"].values())
    text = wrapped.read_text()
    secrets = secrets_of(wrapped)  # unwrapped through KMS
    assert len(secrets) == 2
    assert not any(s in text or s[:16] in text for s in secrets)
    assert oct(wrapped.stat().st_mode & 0o777) == "0o600"


def test_run_unwraps_the_key_file_through_kms(
    wrapped: Path,
    key_uri: str,
    kms_env: dict[str, str],
    cli: Cli,
    send: Callable[[list[str]], int],
    database_url: str,
) -> None:
    send(generate_bodies(30, malformed=1))
    env = {"LOGIN_ETL_KEYSET_FILE": str(wrapped), "LOGIN_ETL_KMS_KEY_URI": key_uri, **kms_env}
    done = cli("run", "--until-empty", **env)
    assert done.returncode == 0, done.stderr
    assert " 29 loaded, 1 rejected, " in done.stdout
    with psycopg.connect(database_url) as conn:
        [token] = conn.execute("SELECT masked_ip FROM user_logins LIMIT 1").fetchone() or [""]
    ring = read_key_file(wrapped).ring()
    assert ring.masker.reveal("ip", token)  # the same keys, unwrapped in this process


def test_without_kms_the_key_file_is_useless(
    wrapped: Path,
    cli: Cli,
    send: Callable[[list[str]], int],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_KMS", CLOSED_PORT)
    with pytest.raises(KmsUnavailable, match="KMS could not be reached"):
        read_key_file(wrapped)

    listed = cli(
        "keys", "list", AWS_ENDPOINT_URL_KMS=CLOSED_PORT, LOGIN_ETL_KEYSET_FILE=str(wrapped)
    )
    assert listed.returncode == 1
    assert "KMS could not be reached" in listed.stderr

    # A worker waits for KMS as it waits for PostgreSQL, and loads nothing meanwhile.
    send(generate_bodies(5))
    env = cli.env | {"LOGIN_ETL_KEYSET_FILE": str(wrapped), "AWS_ENDPOINT_URL_KMS": CLOSED_PORT}  # type: ignore[attr-defined]
    worker = start_worker(env, "--until-empty")
    try:
        wait_for_log(worker, "load keys failed")
    finally:
        worker.terminate()
        worker.wait(timeout=30)
    with psycopg.connect(database_url) as conn:  # keys come first: not even migrated
        assert conn.execute("SELECT to_regclass('public.user_logins')").fetchone() == (None,)


def _tamper(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    document = json.loads(path.read_text())
    change(document)
    path.write_text(json.dumps(document))


def test_a_wrapped_file_under_another_kms_key_is_refused(
    wrapped: Path, kms: Any, kms_env: dict[str, str]
) -> None:
    other = "aws-kms://" + str(kms.create_key()["KeyMetadata"]["Arn"])
    _tamper(wrapped, lambda d: d.update(kms_key_uri=other))
    with pytest.raises(KeyFileError, match="refused"):
        read_key_file(wrapped)


def test_swapped_wrapped_keysets_are_refused(wrapped: Path, kms_env: dict[str, str]) -> None:
    def swap(d: dict[str, Any]) -> None:
        k = d["keysets"]
        k["masking"], k["quarantine"] = k["quarantine"], k["masking"]

    _tamper(wrapped, swap)
    with pytest.raises(KeyFileError, match="'masking' keyset does not unwrap"):  # name is AD
        read_key_file(wrapped)


def test_a_planted_cleartext_key_file_is_refused_when_a_kms_key_is_required(
    cli: Cli, key_uri: str, key_file: Path, wrapped: Path, kms_env: dict[str, str]
) -> None:
    result = cli("keys", "list", LOGIN_ETL_KMS_KEY_URI=key_uri, **kms_env)  # key_file: cleartext
    assert result.returncode == 2
    assert "not KMS-wrapped; LOGIN_ETL_KMS_KEY_URI requires" in result.stderr

    cleartext = json.loads(key_file.read_text())["keysets"]["masking"]
    _tamper(wrapped, lambda d: d["keysets"].update(masking=cleartext))
    with pytest.raises(KeyFileError, match="'masking' keyset is not KMS-wrapped"):
        read_key_file(wrapped)


def test_rotation_keeps_the_file_wrapped(
    wrapped: Path, cli: Cli, kms_env: dict[str, str], database_url: str
) -> None:
    before = read_key_file(wrapped).ring()
    rotated = cli("keys", "rotate", LOGIN_ETL_KEYSET_FILE=str(wrapped), **kms_env)
    assert rotated.returncode == 0, rotated.stderr
    document = json.loads(wrapped.read_text())
    assert all("encryptedKeyset" in k for k in document["keysets"].values())
    after = read_key_file(wrapped).ring()
    assert after.masking_primary != before.masking_primary
    token = before.masker.mask("ip", "10.0.0.1").token
    assert after.masker.reveal("ip", token) == "10.0.0.1"  # old keys still decrypt


def test_an_existing_cleartext_file_can_be_wrapped_without_changing_its_keys(
    key_file: Path, key_uri: str, cli: Cli, kms_env: dict[str, str]
) -> None:
    token = read_key_file(key_file).ring().masker.mask("ip", "10.9.8.7").token
    wrapped = cli("keys", "wrap", "--kms-key-uri", key_uri, **kms_env)
    assert wrapped.returncode == 0, wrapped.stderr
    assert json.loads(key_file.read_text())["kms_key_uri"] == key_uri
    assert (
        read_key_file(key_file, required_kms_key_uri=key_uri)
        .ring()
        .masker.mask("ip", "10.9.8.7")
        .token
        == token
    )
    assert cli("keys", "wrap", "--kms-key-uri", key_uri, **kms_env).returncode == 1
