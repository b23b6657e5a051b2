"""The one error hierarchy of login-etl.

Adapters translate botocore, psycopg and Tink errors into these where they are raised, so the
runtime and the CLI decide what to do from the class alone::

    LoginEtlError
     ├── ConfigError          a setting is missing or invalid (CLI exit status 2)
     │    ├── KeyFileError    the key file is missing, unreadable, or does not fit
     │    └── SecretError     a secret is missing, denied, or not in the expected form
     ├── RevealError          a masked value does not decrypt with this key file
     ├── NotInQuarantine      no rejected message has the MessageId given
     ├── KeyAdminError        a key file change was refused or could not be written (exit 1)
     │    ├── KeyFileExists       `keys create` never overwrites what is at the path
     │    ├── KeyFileWriteError   the key file could not be created or replaced
     │    ├── AlreadyWrapped      `keys wrap` on a file that is already wrapped
     │    ├── UnknownKeyId        no key in the file has the id given
     │    ├── PrimaryKeyDisable   the primary key cannot be disabled
     │    ├── KeyStillNeeded      stored values still need a key asked to be disabled
     │    └── KeySecretChanged    the key secret changed between our read and our write
     ├── ArchiveError         the archive target cannot be read or written (exit 1)
     │    └── ArchiveMismatch     a manifest does not match its files: refused, nothing loaded
     ├── WorkerExited         a worker process ended without reporting (killed or crashed)
     ├── UnreadableRecord     an SQS record has no message id or no body
     ├── TransientError       worth retrying: connection lost, throttled, server restarting
     │    ├── SourceUnavailable   SQS could not be reached
     │    ├── SinkUnavailable     PostgreSQL could not be reached
     │    ├── KmsUnavailable      AWS KMS could not be reached to unwrap the keyset
     │    └── SecretUnavailable   Secrets Manager or SSM could not be reached now
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


class SecretError(ConfigError):
    """A secret (Secrets Manager or SSM) is missing, denied, or not in the form expected."""


class RevealError(LoginEtlError):
    """A masked value or encrypted body does not decrypt with the key file given."""


class NotInQuarantine(LoginEtlError):
    """No rejected message has the MessageId given."""


class KeyAdminError(LoginEtlError):
    """A change to the key file was refused, or could not be written; the file is unchanged."""


class KeyFileExists(KeyAdminError):
    """Something already exists at the path of a new key file; it is never overwritten."""


class KeyFileWriteError(KeyAdminError):
    """The key file could not be created or replaced (permissions, disk full, ...)."""


class AlreadyWrapped(KeyAdminError):
    """The key file is already wrapped by a KMS key."""


class UnknownKeyId(KeyAdminError):
    """No key in the key file has the id given."""


class PrimaryKeyDisable(KeyAdminError):
    """The primary key cannot be disabled: rotate first."""


class KeyStillNeeded(KeyAdminError):
    """Stored values still need a key asked to be disabled: run rekey first."""

    def __init__(self, message: str, needs: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.needs = needs  # one line per group of values, e.g. "3 values in <table> need key 7"


class KeySecretChanged(KeyAdminError):
    """Someone wrote the key secret after we read it: nothing written; run the command again."""


class ArchiveError(LoginEtlError):
    """The archive target is unreachable, denies access, or its contents cannot be used."""


class ArchiveMismatch(ArchiveError):
    """An archived file does not match its manifest (size, checksum or rows): it is not trusted."""


class WorkerExited(LoginEtlError):
    """A worker process ended with a non-zero status and no error report (killed, crashed)."""


class UnreadableRecord(LoginEtlError):
    """An SQS record that cannot become a Message; `message_id` is None when it has none."""

    def __init__(self, message_id: str | None, why: str) -> None:
        super().__init__(why)
        self.message_id = message_id
        self.why = why

    def __reduce__(self) -> tuple[type[UnreadableRecord], tuple[str | None, str]]:
        return type(self), (self.message_id, self.why)


class TransientError(LoginEtlError):
    """Retrying later may succeed."""


class SourceUnavailable(TransientError):
    """SQS could not be reached or throttled the call."""


class SinkUnavailable(TransientError):
    """PostgreSQL could not be reached or dropped the connection."""


class KmsUnavailable(TransientError):
    """AWS KMS could not be reached (or throttled), so an encrypted keyset stays locked."""


class SecretUnavailable(TransientError):
    """Secrets Manager or SSM could not be reached now (network, throttling, a server error)."""


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

    def __reduce__(self) -> tuple[type[RowRefused], tuple[str, str]]:
        # Exception pickles as cls(*args), and args holds the message only (worker processes).
        return type(self), (str(self), self.sqlstate)


__all__ = [
    "AlreadyWrapped",
    "ArchiveError",
    "ArchiveMismatch",
    "ConfigError",
    "KeyAdminError",
    "KeyFileError",
    "KeyFileExists",
    "KeyFileWriteError",
    "KeyStillNeeded",
    "KmsUnavailable",
    "LoginEtlError",
    "NotInQuarantine",
    "PermanentError",
    "PrimaryKeyDisable",
    "RevealError",
    "RowRefused",
    "SinkError",
    "SinkUnavailable",
    "SourceError",
    "SourceUnavailable",
    "SqsProtocolError",
    "TransientError",
    "UnknownKeyId",
    "UnreadableRecord",
    "WorkerExited",
]
