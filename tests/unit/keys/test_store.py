"""The key file kept as a secret (keys.store.SecretKeyStore), against an in-memory secret and an
in-process KMS key: the file's checks with the secret named, and a write only on the version read.
(Against moto's KMS, Secrets Manager and SSM: tests/integration/test_keyset_secret.py.)"""

from __future__ import annotations

import json
from typing import Any

import pytest
import tink
from tink import aead

from login_etl.config.secretref import parse_secret_ref
from login_etl.errors import KeyFileError, KeySecretChanged
from login_etl.keys.keyfile import TEMPLATES, new_key_file, serialize_key_file
from login_etl.keys.rotation import rotated
from login_etl.keys.store import SecretKeyStore

URI = "aws-kms://arn:aws:kms:eu-west-1:111122223333:key/test"
SETTING = "LOGIN_ETL_KEYSET_SECRET"


class FakeSecret:
    """One secret's versions in memory; the last is current."""

    def __init__(self, value: str) -> None:
        self.versions = [value]
        self.tokens: list[str | None] = []

    def read(self) -> str:
        return self.versions[-1]

    def read_versioned(self) -> tuple[str, str]:
        return self.versions[-1], str(len(self.versions))

    def current_version(self) -> str | None:
        return str(len(self.versions))

    def write(self, value: str, *, token: str | None = None) -> str:
        self.versions.append(value)
        self.tokens.append(token)
        return str(len(self.versions))


@pytest.fixture(scope="module")
def kek() -> Any:
    return tink.new_keyset_handle(aead.aead_key_templates.AES256_GCM).primitive(aead.Aead)


def store(secret: FakeSecret, kek: Any, ref: str = "prod/login-etl/keys") -> SecretKeyStore:
    return SecretKeyStore(parse_secret_ref(ref, SETTING), secret, kms=lambda _uri: kek)


def wrapped(kek: Any) -> str:
    return serialize_key_file(new_key_file(URI), kms=lambda _uri: kek)


def test_a_wrapped_key_file_reads_from_the_secret(kek: Any) -> None:
    text = wrapped(kek)
    keys = store(FakeSecret(text), kek).read(required_kms_key_uri=URI)
    assert keys.kms_key_uri == URI
    assert keys.ring().masker.mask("ip", "10.0.0.1").token


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("password=hunter2", "key file in secret prod/login-etl/keys (LOGIN_ETL_KEYSET_SECRET) is "
         "not JSON (line 1)"),
        ('{"password": "hunter2"}', "secret prod/login-etl/keys (LOGIN_ETL_KEYSET_SECRET) is not "
         "a login-etl key file"),
        ('{"format": "login-etl-keys", "version": 2, "keysets": {"masking": "hunter2"}}',
         "the 'masking' keyset is a string, not an object"),
    ],
)  # fmt: skip
def test_a_secret_that_is_not_a_key_file_is_named_not_quoted(
    kek: Any, value: str, problem: str
) -> None:
    with pytest.raises(KeyFileError) as info:
        store(FakeSecret(value), kek).read()
    assert problem in str(info.value)
    assert "hunter2" not in str(info.value)


def test_a_key_file_wrapped_by_another_kms_key_is_refused(kek: Any) -> None:
    with pytest.raises(KeyFileError, match=r"ssm://prod/keys \(LOGIN_ETL_KEYSET_SECRET\) is "):
        store(FakeSecret(wrapped(kek)), kek, "ssm://prod/keys").read(
            required_kms_key_uri=URI + "-other"
        )


def test_an_edit_writes_a_new_version_with_a_token_of_the_version_and_text(kek: Any) -> None:
    secret = FakeSecret(wrapped(kek))
    keys = store(secret, kek)
    with keys.editing() as edit:
        key_file = edit.read(required_kms_key_uri=URI)
        edit.write(
            key_file.with_keysets(
                masking=rotated(key_file.keysets["masking"], TEMPLATES["masking"])
            )
        )
    assert len(secret.versions) == 2
    assert json.loads(secret.versions[-1])["kms_key_uri"] == URI  # written wrapped
    [token] = secret.tokens
    assert token is not None
    assert 32 <= len(token) <= 64
    after = keys.read(required_kms_key_uri=URI).ring()
    before = store(FakeSecret(secret.versions[0]), kek).read().ring()
    assert after.masking_primary != before.masking_primary


def test_a_version_written_since_the_read_is_not_overwritten(kek: Any) -> None:
    secret = FakeSecret(wrapped(kek))
    theirs = wrapped(kek)
    with store(secret, kek).editing() as edit:
        key_file = edit.read()
        secret.write(theirs)  # another custodian, between our read and our write
        with pytest.raises(KeySecretChanged, match=r"changed since it was read .*run the command"):
            edit.write(key_file)
    assert secret.versions[-1] == theirs
