"""AWS KMS as Tink's key-encryption key: the AEAD that wraps and unwraps keysets.

Tink's own AWS integration does the KMS calls (EncryptionContext = the associated data); this
module builds its boto3 client with the one factory (`adapters/aws_clients.py`), in the region
taken from the key's ARN, and translates KMS's errors into login-etl's own.
"""

from __future__ import annotations

from typing import Any

import boto3
import botocore.exceptions
import tink
from tink import aead
from tink.integration import awskms

from login_etl.adapters.aws_clients import aws_client, endpoint_setting
from login_etl.adapters.aws_errors import classify, error_code
from login_etl.config import KMS_KEY_URI, endpoint_problem
from login_etl.errors import ConfigError, KeyFileError, KmsUnavailable

_CAUGHT = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)
# KMS's own answers worth retrying (adapters/aws_errors.py holds those every AWS service shares);
# any other 4xx means "this key will not do it" (wrong or disabled key, missing permission, bad
# request) and no retry will help.
_TRANSIENT_CODES = frozenset(
    {
        "DependencyTimeoutException",
        "KMSInternalException",
        "KeyUnavailableException",
        "LimitExceededException",
    }
)


def region_of(key_uri: str) -> str:
    """The region in an aws-kms:// key URI; ConfigError-style KeyFileError if it is not one."""
    match = KMS_KEY_URI.match(key_uri)
    if match is None:
        raise KeyFileError(
            "LOGIN_ETL_KMS_KEY_URI: must look like "
            "aws-kms://arn:aws:kms:REGION:ACCOUNT:key/KEY_ID (or :alias/NAME)"
        )
    return match.group(1)


def kms_client(key_uri: str, session: boto3.session.Session | None = None) -> Any:
    """A boto3 KMS client for the key's region, through the one AWS client factory."""
    client = aws_client("kms", region_of(key_uri), session)
    # botocore leaves a bad port to the first request, where it would be a traceback.
    problem = endpoint_problem(client.meta.endpoint_url, "http(s) URL")
    if problem:
        raise ConfigError(f"{endpoint_setting('kms')}: {problem}")
    return client


class _TranslatedAead(aead.Aead):  # type: ignore[misc]  # tink ships no type hints
    """Tink's KMS AEAD, with an unreachable KMS told apart from a key that refuses."""

    def __init__(self, inner: aead.Aead, key_uri: str) -> None:
        self._inner = inner
        self._key_uri = key_uri

    def encrypt(self, plaintext: bytes, associated_data: bytes) -> bytes:
        return self._call(self._inner.encrypt, plaintext, associated_data)

    def decrypt(self, ciphertext: bytes, associated_data: bytes) -> bytes:
        return self._call(self._inner.decrypt, ciphertext, associated_data)

    def _call(self, method: Any, data: bytes, associated_data: bytes) -> bytes:
        try:
            result: bytes = method(data, associated_data)
        except tink.TinkError as err:
            # Tink wraps botocore's ClientError; its text names the error code, never key material.
            cause = err.args[0] if err.args else None
            if not isinstance(cause, botocore.exceptions.ClientError):
                raise KeyFileError(f"KMS key {self._key_uri}: {type(err).__name__}") from None
            raise self._translate(cause) from None
        except _CAUGHT as err:
            raise self._translate(err) from None
        return result

    def _translate(
        self, err: botocore.exceptions.BotoCoreError | botocore.exceptions.ClientError
    ) -> Exception:
        code = error_code(err)
        match classify(err, transient=_TRANSIENT_CODES):
            case "no_credentials":
                return KeyFileError(f"KMS key {self._key_uri}: no AWS credentials configured")
            case "unreachable":
                return KmsUnavailable(f"KMS could not be reached ({type(err).__name__})")
            case "permanent":
                return KeyFileError(
                    f"KMS key {self._key_uri} refused to unwrap or wrap the keyset ({code}): "
                    "wrong key, key disabled, or no kms:Decrypt/kms:Encrypt permission"
                )
            case "transient":
                return KmsUnavailable(f"KMS {code or 'error'}; try again")


def kms_aead(key_uri: str, session: boto3.session.Session | None = None) -> aead.Aead:
    """The AEAD of a KMS key (a key-encryption key): every call is a KMS Encrypt or Decrypt."""
    client = awskms.new_client(boto3_client=kms_client(key_uri, session), key_uri=key_uri)
    return _TranslatedAead(client.get_aead(key_uri), key_uri)
