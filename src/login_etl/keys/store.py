"""Where the key file is kept: a file (LOGIN_ETL_KEYSET_FILE) or a secret in AWS Secrets Manager
or SSM Parameter Store (LOGIN_ETL_KEYSET_SECRET), holding the same text either way.

Both are read through `keyfile.parse_key_file`, so a secret gets every check a file gets, with
messages naming the secret instead of a path (never its value). Changes (rotate, wrap, disable,
enable) are a read-modify-write in `editing()`:

* a file is read and replaced under its lock (`keyfile.locked`), in one rename;
* a secret gets a new version, and is guarded by optimistic concurrency: the version read is
  compared with the current one just before the write, and a change in between is refused
  (KeySecretChanged). This is check-then-write, not atomic: neither Secrets Manager nor SSM has
  a conditional put, so a write landing in the instant between our check and our put is not
  seen. The earlier version stays retrievable (Secrets Manager's AWSPREVIOUS stage, SSM's
  parameter history), so nothing is destroyed even then.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from login_etl.adapters.secrets import SecretStore
from login_etl.config.secretref import SecretRef
from login_etl.errors import KeySecretChanged
from login_etl.keys.keyfile import (
    KeyFile,
    Kms,
    Origin,
    locked,
    parse_key_file,
    read_key_file,
    replace_key_file,
    serialize_key_file,
)

log = logging.getLogger(__name__)

# Secrets Manager's ClientRequestToken: a UUID, derived (below) from the version replaced and
# the new text, so that a retried put of the same change makes no second version.
_TOKEN_NAMESPACE = uuid.UUID("5b0f3c1e-7d43-4a53-9a8e-6c1f0e9d2b71")


class VersionedSecret(Protocol):
    """What a key secret needs of its store (adapters.secrets.SecretStore; a fake in tests)."""

    def read(self) -> str: ...

    def read_versioned(self) -> tuple[str, str]: ...

    def current_version(self) -> str | None: ...

    def write(self, value: str, *, token: str | None = None) -> str: ...


class KeyEdit(Protocol):
    """One read-modify-write of the key file: `read` once, then `write` the changed keysets."""

    def read(self, *, required_kms_key_uri: str | None = None) -> KeyFile: ...

    def write(self, key_file: KeyFile) -> None: ...


class KeyStore(Protocol):
    """A key file's place."""

    @property
    def where(self) -> str:
        """The place, as messages name it: a path, or `secret NAME (SETTING)`."""
        ...

    @property
    def location(self) -> Path | str:
        """A file's path; a secret's `where`."""
        ...

    @property
    def in_secret(self) -> bool: ...

    def read(self, *, required_kms_key_uri: str | None = None) -> KeyFile: ...

    def editing(self) -> AbstractContextManager[KeyEdit]: ...


@dataclass(frozen=True)
class FileKeyStore:
    """The key file on disk."""

    path: Path
    kms: Kms | None = None

    @property
    def where(self) -> str:
        return str(self.path)

    @property
    def location(self) -> Path | str:
        return self.path

    @property
    def in_secret(self) -> bool:
        return False

    def read(self, *, required_kms_key_uri: str | None = None) -> KeyFile:
        return read_key_file(self.path, kms=self.kms, required_kms_key_uri=required_kms_key_uri)

    @contextmanager
    def editing(self) -> Iterator[KeyEdit]:
        # Under the lock, another change's new key is not lost to this one's write; and the file
        # read and written is the one locked (`target`), not whatever `path` names by then.
        with locked(self.path) as target:
            yield _FileEdit(target, self.kms)


@dataclass
class _FileEdit:
    target: Path
    kms: Kms | None

    def read(self, *, required_kms_key_uri: str | None = None) -> KeyFile:
        return read_key_file(self.target, kms=self.kms, required_kms_key_uri=required_kms_key_uri)

    def write(self, key_file: KeyFile) -> None:
        replace_key_file(self.target, key_file, kms=self.kms)


class SecretKeyStore:
    """The key file's text kept as a secret: Secrets Manager (ARN or name) or SSM SecureString."""

    def __init__(
        self, ref: SecretRef, store: VersionedSecret | None = None, kms: Kms | None = None
    ) -> None:
        self.ref = ref
        self._store: VersionedSecret = store or SecretStore(ref)
        self._kms = kms

    @property
    def where(self) -> str:
        return f"secret {self.ref} ({self.ref.setting})"

    @property
    def location(self) -> Path | str:
        return self.where

    @property
    def in_secret(self) -> bool:
        return True

    @property
    def origin(self) -> Origin:
        return Origin(f"key file in {self.where}", self.where)

    def read(self, *, required_kms_key_uri: str | None = None) -> KeyFile:
        return self.parse(self._store.read(), required_kms_key_uri)

    def parse(self, text: str, required_kms_key_uri: str | None, *, warn: bool = True) -> KeyFile:
        key_file = parse_key_file(
            text.encode("utf-8"),
            self.origin,
            kms=self._kms,
            required_kms_key_uri=required_kms_key_uri,
        )
        if warn and key_file.kms_key_uri is None:
            # As a group-readable file does: GetSecretValue alone then gives the keys.
            log.warning("key file in %s is not KMS-wrapped; run login-etl keys wrap", self.where)
        return key_file

    @contextmanager
    def editing(self) -> Iterator[KeyEdit]:
        yield _SecretEdit(self, self._store, self._kms)


@dataclass
class _SecretEdit:
    keys: SecretKeyStore
    store: VersionedSecret
    kms: Kms | None
    version: str | None = None

    def read(self, *, required_kms_key_uri: str | None = None) -> KeyFile:
        text, self.version = self.store.read_versioned()
        return self.keys.parse(text, required_kms_key_uri, warn=False)  # `keys wrap` may follow

    def write(self, key_file: KeyFile) -> None:
        if self.version is None:
            raise RuntimeError("write before read")  # a programming error, not a user's
        text = serialize_key_file(key_file, kms=self.kms)  # first: KMS may refuse
        current = self.store.current_version()
        if current != self.version:
            raise KeySecretChanged(
                f"{self.keys.where} changed since it was read (version {self.version}, now "
                f"{current}); nothing written: run the command again"
            )
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        self.store.write(text, token=str(uuid.uuid5(_TOKEN_NAMESPACE, self.version + digest)))
