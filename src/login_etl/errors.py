"""The one error hierarchy of login-etl.

Adapters translate botocore, psycopg and Tink errors into these where they are raised, so the
pipeline and the CLI decide what to do from the class alone::

    LoginEtlError
     ├── ConfigError          a setting is missing or invalid (CLI exit status 2)
     │    └── KeyFileError    the key file is missing, unreadable, or does not fit
     ├── RevealError          a masked value does not decrypt with this key file
     ├── TransientError       worth retrying: connection lost, throttled, server restarting
     │    ├── SourceUnavailable   SQS could not be reached
     │    ├── SinkUnavailable     PostgreSQL could not be reached
     │    └── KmsUnavailable      AWS KMS could not be reached to unwrap the keyset
     └── PermanentError       retrying will not help: stop with a clear message
          ├── SourceError         the queue is missing, or access is denied
          │    └── SqsProtocolError  the SQS endpoint does not speak the protocol in use
          └── SinkError           the schema does not match, or the database refused the load
               └── RowRefused     a row broke a constraint: the batch is retried row by row

Messages never include key material, plaintext PII, or passwords.
"""

from __future__ import annotations


class LoginEtlError(Exception):
    """Base of every error login-etl raises on purpose."""


class ConfigError(LoginEtlError):
    """A setting is missing or invalid; the message names the setting."""


class KeyFileError(ConfigError):
    """The key file is missing, unreadable, malformed, or lacks a key the service needs."""


class RevealError(LoginEtlError):
    """A masked value or encrypted body does not decrypt with the key file given."""


class TransientError(LoginEtlError):
    """Retrying later may succeed."""


class SourceUnavailable(TransientError):
    """SQS could not be reached or throttled the call."""


class SinkUnavailable(TransientError):
    """PostgreSQL could not be reached or dropped the connection."""


class KmsUnavailable(TransientError):
    """AWS KMS could not be reached (or throttled), so an encrypted keyset stays locked."""


class PermanentError(LoginEtlError):
    """Retrying will not help; the worker stops and says why."""


class SourceError(PermanentError):
    """The queue does not exist, or the credentials may not use it."""


class SqsProtocolError(SourceError):
    """The SQS endpoint does not speak the wire protocol LOGIN_ETL_SQS_PROTOCOL chose or found."""


class SinkError(PermanentError):
    """The database schema does not match, or the database refused the data."""


class RowRefused(SinkError):
    """The database refused a row (a data or integrity error), not the connection."""

    def __init__(self, message: str, sqlstate: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


__all__ = [
    "ConfigError",
    "KeyFileError",
    "KmsUnavailable",
    "LoginEtlError",
    "PermanentError",
    "RevealError",
    "RowRefused",
    "SinkError",
    "SinkUnavailable",
    "SourceError",
    "SourceUnavailable",
    "SqsProtocolError",
    "TransientError",
]
