"""AWS KMS as Tink's key-encryption key: the AEAD that wraps and unwraps keysets.

Tink's own AWS integration does the KMS calls (EncryptionContext = the associated data); this
module only builds its boto3 client the way login-etl builds every AWS client: boto3's lookup
(`AWS_ENDPOINT_URL_KMS`, `AWS_ENDPOINT_URL`, profiles, roles), the region taken from the key's
ARN, `test`/`test` credentials for an emulator that has none, short timeouts so that an
unreachable KMS fails in seconds, and errors translated into login-etl's own.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import boto3
import botocore.config
import botocore.exceptions
import tink
from tink import aead
from tink.integration import awskms

from login_etl.adapters.aws_errors import classify, error_code
from login_etl.adapters.sqs import EMULATOR_CREDENTIALS, is_aws_host
from login_etl.config import KMS_KEY_URI, endpoint_problem
from login_etl.errors import ConfigError, KeyFileError, KmsUnavailable

_CONFIG = botocore.config.Config(
    connect_timeout=3, read_timeout=10, retries={"mode": "standard", "max_attempts": 3}
)
# Where boto3 may have found the KMS endpoint.
_ENDPOINT_SETTING = "AWS_ENDPOINT_URL_KMS (or AWS_ENDPOINT_URL, or endpoint_url in the AWS config)"
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
    """A boto3 KMS client for the key's region, through boto3's own endpoint lookup."""
    region = region_of(key_uri)
    try:
        client = _kms_client(region, session or boto3.session.Session())
    except botocore.exceptions.ProfileNotFound as err:
        raise ConfigError(f"AWS_PROFILE: {err}") from None
    except botocore.exceptions.BotoCoreError as err:  # e.g. an AWS config file it cannot parse
        raise ConfigError(f"AWS configuration: {err}") from None
    except ValueError:  # botocore's own check of the endpoint URL
        raise ConfigError(f"{_ENDPOINT_SETTING}: is not a valid endpoint URL") from None
    # botocore leaves a bad port to the first request, where it would be a traceback.
    problem = endpoint_problem(client.meta.endpoint_url, "http(s) URL")
    if problem:
        raise ConfigError(f"{_ENDPOINT_SETTING}: {problem}")
    return client


def _kms_client(region: str, session: boto3.session.Session) -> Any:
    client = session.client("kms", region_name=region, config=_CONFIG)
    host = urlsplit(client.meta.endpoint_url).hostname or ""
    if not is_aws_host(host) and session.get_credentials() is None:
        client = session.client(
            "kms",
            region_name=region,
            config=_CONFIG,
            aws_access_key_id=EMULATOR_CREDENTIALS["aws_access_key_id"],
            aws_secret_access_key=EMULATOR_CREDENTIALS["aws_secret_access_key"],
        )
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
