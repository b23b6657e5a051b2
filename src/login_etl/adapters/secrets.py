"""Secrets kept in AWS Secrets Manager or SSM Parameter Store, read and written as text.

A reference is a Secrets Manager ARN or name, or `ssm://NAME` for an SSM SecureString parameter.
Errors name the reference and the setting that gave it, never the value: a secret that is
missing or denied is an operator's to fix (SecretError, a ConfigError: exit 2 at start-up); one
that cannot be reached now (network, throttling, a 5xx) is SecretUnavailable, a TransientError,
so a running worker waits and deletes nothing. Writes make a new version (Secrets Manager's
PutSecretValue, SSM's PutParameter with Overwrite), so an earlier one stays retrievable.
"""

from __future__ import annotations

import boto3
import botocore.exceptions

from login_etl.adapters.aws_clients import aws_client
from login_etl.adapters.aws_errors import classify, error_code
from login_etl.config.secretref import SecretRef
from login_etl.errors import SecretError, SecretUnavailable

_CAUGHT = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)
# Codes that mean "this secret is not there (for you)": an operator's to fix.
_MISSING_CODES = frozenset(
    {"ResourceNotFoundException", "ParameterNotFound", "ParameterVersionNotFound"}
)
_PERMANENT_CODES = _MISSING_CODES | frozenset(
    {
        "InvalidRequestException",  # e.g. the secret is scheduled for deletion
        "InvalidParameterException",
        "DecryptionFailure",  # the secret's KMS key refuses us
        "InvalidKeyId",
        "ValidationException",
    }
)
_TRANSIENT_CODES = frozenset({"InternalServiceError", "InternalServerError", "ThrottlingException"})


class SecretStore:
    """One secret, read and written as text."""

    def __init__(self, ref: SecretRef, session: boto3.session.Session | None = None) -> None:
        self.ref = ref
        self._client = aws_client(ref.store, ref.region, session)

    def read(self) -> str:
        """The secret's current value."""
        return self.read_versioned()[0]

    def read_versioned(self) -> tuple[str, str]:
        """The secret's current value and that version's id (Secrets Manager's VersionId, SSM's
        Version as text), for a later `current_version` check before a write."""
        try:
            if self.ref.store == "ssm":
                answer = self._client.get_parameter(Name=self.ref.name, WithDecryption=True)
                parameter = answer["Parameter"]
                if parameter.get("Type", "SecureString") != "SecureString":
                    # Written in clear: refuse rather than read a secret someone left unencrypted.
                    raise SecretError(
                        f"{self._where()}: is a {parameter['Type']} parameter; "
                        "keep it as a SecureString (aws ssm put-parameter --type SecureString)"
                    )
                return str(parameter["Value"]), str(parameter["Version"])
            answer = self._client.get_secret_value(SecretId=self.ref.name)
        except _CAUGHT as err:
            raise self._translate(err, "read") from None
        if "SecretString" not in answer:
            raise SecretError(f"{self._where()}: holds binary data, not text")
        return str(answer["SecretString"]), str(answer["VersionId"])

    def read_pending(self) -> str | None:
        """The value staged as AWSPENDING by a Secrets Manager rotation under way, None if there
        is none (or for SSM, which has no stages). Between a rotation's setSecret, which changes
        the password in the database, and its finishSecret, which makes the new value current,
        only this version opens a connection."""
        if self.ref.store == "ssm":
            return None
        try:
            answer = self._client.get_secret_value(
                SecretId=self.ref.name, VersionStage="AWSPENDING"
            )
        except _CAUGHT as err:
            # None staged, or a policy that allows only AWSCURRENT (a common condition on
            # secretsmanager:VersionStage): no pending version to try, not a failure.
            kind = classify(err, transient=_TRANSIENT_CODES, permanent=_PERMANENT_CODES)
            if error_code(err) in _MISSING_CODES or kind in ("permanent", "no_credentials"):
                return None
            raise self._translate(err, "read") from None
        return str(answer["SecretString"]) if "SecretString" in answer else None

    def current_version(self) -> str | None:
        """The id of the current version, without reading the value (DescribeSecret's AWSCURRENT
        stage; SSM's Version, read without decryption); None if the secret has no value yet."""
        try:
            if self.ref.store == "ssm":
                answer = self._client.get_parameter(Name=self.ref.name, WithDecryption=False)
                return str(answer["Parameter"]["Version"])
            stages = self._client.describe_secret(SecretId=self.ref.name).get(
                "VersionIdsToStages", {}
            )
        except _CAUGHT as err:
            raise self._translate(err, "describe") from None
        return next((str(v) for v, names in stages.items() if "AWSCURRENT" in names), None)

    def write(self, value: str, *, token: str | None = None) -> str:
        """Store `value` as the secret's new current version; returns that version's id.

        `token` is Secrets Manager's ClientRequestToken (32-64 characters): a request repeated
        with the same token and value makes no second version. SSM takes none.
        """
        try:
            if self.ref.store == "ssm":
                # Intelligent-Tiering: Standard (4 KB) until a value outgrows it, then Advanced
                # (8 KB), rather than a write refused for its size.
                answer = self._client.put_parameter(
                    Name=self.ref.name,
                    Value=value,
                    Type="SecureString",
                    Overwrite=True,
                    Tier="Intelligent-Tiering",
                )
                return str(answer["Version"])
            extra = {"ClientRequestToken": token} if token else {}
            answer = self._client.put_secret_value(
                SecretId=self.ref.name, SecretString=value, **extra
            )
            return str(answer["VersionId"])
        except _CAUGHT as err:
            raise self._translate(err, "write") from None

    def _where(self) -> str:
        return f"{self.ref.setting}: secret {self.ref}"

    def _translate(
        self, err: botocore.exceptions.BotoCoreError | botocore.exceptions.ClientError, action: str
    ) -> Exception:
        code = error_code(err)
        match classify(err, transient=_TRANSIENT_CODES, permanent=_PERMANENT_CODES):
            case "no_credentials":
                return SecretError(f"{self._where()}: no AWS credentials configured")
            case "unreachable":
                return SecretUnavailable(
                    f"{self._where()}: could not be reached ({type(err).__name__})"
                )
            case "transient":
                return SecretUnavailable(f"{self._where()}: {code or 'server error'}; try again")
            case "permanent":
                if code in _MISSING_CODES:
                    return SecretError(f"{self._where()}: does not exist (or is not visible to us)")
                return SecretError(
                    f"{self._where()}: {action} refused ({code or 'denied'}); check the name "
                    f"and the permission to {action} it"
                )
