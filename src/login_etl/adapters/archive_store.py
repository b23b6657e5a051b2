"""Where archived files live: a local directory or an S3 prefix, behind one small interface.

Every write is all-or-nothing, so that a crash never leaves a half-written file under its final
name: a local file is written to a hidden temporary name, synced and renamed; an S3 object only
exists once its PUT has finished. Failures become ArchiveError with one line naming the target.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlparse

import boto3
import botocore.config
import botocore.exceptions

from login_etl.adapters.aws_errors import classify, error_code
from login_etl.errors import ArchiveError, ConfigError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

_NOT_FOUND = frozenset({"NoSuchKey", "404", "NotFound"})


class ArchiveStore(Protocol):
    """Files by relative path ("create_date=2024-01-31/part-….parquet")."""

    uri: str

    def put(self, path: str, data: bytes) -> None:
        """Write `data` at `path`, replacing what is there, all at once."""

    def get(self, path: str) -> bytes | None:
        """The file at `path`, or None if there is none."""

    def delete(self, path: str) -> None:
        """Remove the file at `path` if it exists."""

    def list(self, prefix: str = "") -> list[str]:
        """Relative paths of every file under `prefix`, sorted."""


class LocalStore:
    """A directory on a local (or mounted) file system."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.uri = str(root)

    def _fail(self, action: str, err: OSError) -> ArchiveError:
        return ArchiveError(f"archive {self.uri}: cannot {action}: {err.strerror or err}")

    def put(self, path: str, data: bytes) -> None:
        target = self.root / path
        tmp = target.with_name(f".{target.name}.tmp")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with tmp.open("wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            tmp.replace(target)
            directory = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(directory)  # the rename itself survives a power cut
            finally:
                os.close(directory)
        except OSError as err:
            raise self._fail(f"write {path}", err) from None

    def get(self, path: str) -> bytes | None:
        try:
            return (self.root / path).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as err:
            raise self._fail(f"read {path}", err) from None

    def delete(self, path: str) -> None:
        try:
            (self.root / path).unlink(missing_ok=True)
        except OSError as err:
            raise self._fail(f"delete {path}", err) from None

    def list(self, prefix: str = "") -> list[str]:
        base = self.root / prefix if prefix else self.root
        if not base.exists():
            return []
        try:
            return sorted(
                str(p.relative_to(self.root))
                for p in base.rglob("*")
                if p.is_file() and not p.name.startswith(".")
            )
        except OSError as err:
            raise self._fail("list files", err) from None


class S3Store:
    """An S3 bucket and key prefix; boto3 reads the usual AWS settings (AWS_ENDPOINT_URL...)."""

    def __init__(self, bucket: str, prefix: str, client: S3Client | None = None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.uri = f"s3://{bucket}/{self.prefix}".rstrip("/")
        config = botocore.config.Config(
            connect_timeout=5, read_timeout=60, retries={"max_attempts": 3, "mode": "standard"}
        )
        self._s3: S3Client = client or boto3.client("s3", config=config)

    def _key(self, path: str) -> str:
        return f"{self.prefix}/{path}" if self.prefix else path

    def _fail(
        self, action: str, err: botocore.exceptions.BotoCoreError | botocore.exceptions.ClientError
    ) -> ArchiveError:
        kind = classify(err)
        if kind == "no_credentials":
            why = "no AWS credentials (set AWS_ACCESS_KEY_ID/AWS_PROFILE)"
        elif kind == "unreachable":
            why = f"S3 unreachable ({type(err).__name__})"
        else:
            why = f"S3 answered {error_code(err) or type(err).__name__}"
        return ArchiveError(f"archive {self.uri}: cannot {action}: {why}")

    def put(self, path: str, data: bytes) -> None:
        try:
            self._s3.put_object(Bucket=self.bucket, Key=self._key(path), Body=data)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as err:
            raise self._fail(f"write {path}", err) from None

    def get(self, path: str) -> bytes | None:
        try:
            answer = self._s3.get_object(Bucket=self.bucket, Key=self._key(path))
            return answer["Body"].read()
        except botocore.exceptions.ClientError as err:
            if error_code(err) in _NOT_FOUND:
                return None
            raise self._fail(f"read {path}", err) from None
        except botocore.exceptions.BotoCoreError as err:
            raise self._fail(f"read {path}", err) from None

    def delete(self, path: str) -> None:
        try:
            self._s3.delete_object(Bucket=self.bucket, Key=self._key(path))
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as err:
            raise self._fail(f"delete {path}", err) from None

    def list(self, prefix: str = "") -> list[str]:
        start = self._key(prefix) if prefix else (f"{self.prefix}/" if self.prefix else "")
        cut = len(self.prefix) + 1 if self.prefix else 0
        found: list[str] = []
        try:
            pages = self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=start
            )
            for page in pages:
                found.extend(item["Key"][cut:] for item in page.get("Contents", []))
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as err:
            raise self._fail("list files", err) from None
        return sorted(found)


def open_store(uri: str) -> ArchiveStore:
    """The store for `uri`: `s3://bucket/prefix`, or a local directory path (or file:// URL)."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ConfigError(f"archive URI {uri!r} names no bucket: use s3://bucket/prefix")
        return S3Store(parsed.netloc, parsed.path)
    if parsed.scheme == "file":
        return LocalStore(Path(parsed.path))
    if parsed.scheme:
        raise ConfigError(f"archive URI {uri!r}: use a local directory or s3://bucket/prefix")
    return LocalStore(Path(uri))
