"""Create, read and rewrite the key file.

One JSON file, mode 0600, holding two Tink keysets: `masking` (AES256-SIV deterministic AEAD for
`ip` and `device_id`) and `quarantine` (AES256-GCM AEAD for rejected bodies). Keysets rather than
raw keys, so that rotation adds a key instead of replacing one (see keys.rotation).

With a KMS key (`kms_key_uri`), each keyset is stored as Tink's encrypted keyset, encrypted by
Tink's KMS envelope AEAD: a fresh AES256-GCM data key per write, itself wrapped by the KMS key,
and the keyset's name as associated data. So the file alone reveals nothing, a keyset cannot be
moved into the other's slot, and a keyset that has grown by many rotations still fits (KMS
encrypts at most 4 KiB itself). Unwrapping is one KMS Decrypt per keyset at start-up; the
plaintext keysets then live in this process's memory only.

The same text may be kept in a secret store instead (keys.store): `parse_key_file` makes every
check on text from anywhere, and errors name its `Origin` (a path, or a secret).

Nothing here puts key material in an exception message or a log line.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import stat
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import tink
from tink import aead, daead, secret_key_access
from tink import json_proto_keyset_format as keyset_json
from tink.proto import tink_pb2

from login_etl.config import KMS_KEY_URI
from login_etl.core.masking import TinkMasker, TinkSealer
from login_etl.errors import KeyFileError, KeyFileExists, KeyFileWriteError

daead.register()
aead.register()

log = logging.getLogger(__name__)

FORMAT = "login-etl-keys"
VERSION = 2  # 2 added KMS-wrapped keysets; version 1 files (cleartext) are still read
_READABLE = (1, VERSION)
TEMPLATES: Mapping[str, tink_pb2.KeyTemplate] = {
    "masking": daead.deterministic_aead_key_templates.AES256_SIV,
    "quarantine": aead.aead_key_templates.AES256_GCM,
}

PRIMITIVES: Mapping[str, type[Any]] = {"masking": daead.DeterministicAead, "quarantine": aead.Aead}
# A key file holds a few hundred bytes per key; 4 MiB is thousands of rotations. The cap keeps a
# wrong path (a log, /dev/zero) from being read into memory whole.
MAX_BYTES = 4 * 1024 * 1024
# What Tink's keyset parsers raise on input they cannot read (TinkError, which wraps protobuf's;
# the rest in case a Tink version lets one through). Their messages may quote the keyset.
_PARSE_ERRORS = (tink.TinkError, ValueError, TypeError, KeyError, RecursionError)

# Key URI → the AEAD of that KMS key (login_etl.adapters.kms.kms_aead, or a test double).
Kms = Callable[[str], aead.Aead]


@dataclass(frozen=True)
class Origin:
    """Where a key file's text came from, as error messages name it: `subject` opens most of
    them ("key file PATH"), `name` the few that name the place bare. A file's path, or a secret
    store's reference (keys.store): parsing is the same, the messages say which."""

    subject: str
    name: str

    @classmethod
    def file(cls, path: Path) -> Origin:
        return cls(f"key file {path}", str(path))


def _context(name: str) -> bytes:
    return b"login-etl/keyset/" + name.encode("ascii")


@dataclass(frozen=True)
class KeyRing:
    """The primitives built from a key file, and the ids of the keys they write with."""

    masker: TinkMasker
    sealer: TinkSealer
    masking_primary: int
    quarantine_primary: int

    def primary(self, keyset: str) -> int:
        """The id of the key a keyset ("masking" or "quarantine") writes with."""
        return self.masking_primary if keyset == "masking" else self.quarantine_primary


@dataclass(frozen=True)
class KeyFile:
    """A key file's keysets, in memory, and the KMS key (if any) that wraps them on disk."""

    keysets: Mapping[str, tink.KeysetHandle]
    kms_key_uri: str | None = None
    created_at: str = ""

    def ring(self) -> KeyRing:
        try:
            masking, quarantine = self.keysets["masking"], self.keysets["quarantine"]
            return KeyRing(
                masker=TinkMasker(masking.primitive(daead.DeterministicAead)),
                sealer=TinkSealer(quarantine.primitive(aead.Aead)),
                masking_primary=masking.keyset_info().primary_key_id,
                quarantine_primary=quarantine.keyset_info().primary_key_id,
            )
        except tink.TinkError:
            raise KeyFileError("a keyset holds the wrong kind of key") from None

    def with_keysets(self, **keysets: tink.KeysetHandle) -> KeyFile:
        return replace(self, keysets={**self.keysets, **keysets})


def _how_to_create(path: Path) -> str:
    return f"create one with: login-etl keys create --out {path}"


def new_key_file(kms_key_uri: str | None = None) -> KeyFile:
    """Fresh keysets, one key each."""
    return KeyFile(
        keysets={name: tink.new_keyset_handle(t) for name, t in TEMPLATES.items()},
        kms_key_uri=kms_key_uri,
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )


def _default_kms(key_uri: str) -> aead.Aead:
    from login_etl.adapters.kms import kms_aead  # noqa: PLC0415 - boto3 only when a file needs it

    return kms_aead(key_uri)


def _kek(kms: Kms | None, key_uri: str) -> aead.Aead:
    """The keyset-encryption AEAD: envelope encryption under the KMS key."""
    return aead.KmsEnvelopeAead(aead.aead_key_templates.AES256_GCM, (kms or _default_kms)(key_uri))


def serialize_key_file(key_file: KeyFile, *, kms: Kms | None = None) -> str:
    """The key file's text (KMS-wrapped if it names a KMS key), as written to a file or a
    secret. KMS may refuse (KeyFileError) or be unreachable (KmsUnavailable)."""
    return _serialize(key_file, kms)


def _serialize(key_file: KeyFile, kms: Kms | None) -> str:
    keysets: dict[str, Any] = {}
    kek = None
    if key_file.kms_key_uri is not None:
        kek = _kek(kms, key_file.kms_key_uri)
    for name, handle in key_file.keysets.items():
        if kek is None:
            text = keyset_json.serialize(handle, secret_key_access.TOKEN)
        else:
            text = keyset_json.serialize_encrypted(handle, kek, _context(name))
        keysets[name] = json.loads(text)
    document: dict[str, Any] = {"format": FORMAT, "version": VERSION}
    if key_file.created_at:
        document["created_at"] = key_file.created_at
    if key_file.kms_key_uri is not None:
        document["kms_key_uri"] = key_file.kms_key_uri
    document["keysets"] = keysets
    return json.dumps(document, indent=2) + "\n"


def _target(path: Path) -> Path:
    """The file a path names: a symlink's target, since that is what the workers read."""
    return Path(os.path.realpath(path))


@contextlib.contextmanager
def locked(path: Path) -> Iterator[Path]:
    """Hold the key file's lock for a read-modify-write (rotate, wrap, disable, enable); yields
    the file's real path.

    An exclusive flock on `<target>.lock` beside the real file, so that two commands editing one
    file through different links still take the same lock and neither loses the other's key.
    Readers need no lock: a write replaces the file in one rename.
    """
    target = _target(path)
    lock_path = target.with_name(target.name + ".lock")
    try:
        # O_NOFOLLOW: a link planted at the lock's name must not make us create a file elsewhere.
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as err:
        raise KeyFileError(f"cannot lock key file {path} ({lock_path}): {err.strerror}") from err
    try:
        # A lock file made by root must stay openable by the key file's owner, who runs the
        # next rotation; where that is not permitted, the lock file is already theirs or ours.
        with contextlib.suppress(OSError):
            owner = os.stat(target)
            if os.fstat(fd).st_uid != owner.st_uid:
                os.fchown(fd, owner.st_uid, owner.st_gid)
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield target
    finally:
        os.close(fd)  # closing releases the lock


def write_key_file(
    path: Path, key_file: KeyFile, *, kms: Kms | None = None, overwrite: bool = False
) -> None:
    """Write the file, 0600 from birth.

    A new file is never put over anything that exists at `path`, a symlink included (even one
    pointing nowhere): `keys create` makes files, it does not replace them. An overwrite
    (rotation) writes the symlink's target if `path` is one, through a temporary file in the
    target's directory and one atomic rename, so a crash leaves the old file or the new one,
    never half of one; under a lock, use `replace_key_file` with the path `locked` yields.
    """
    text = _serialize(key_file, kms)  # before touching the disk: KMS may refuse
    if not overwrite:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        except FileExistsError as err:
            raise KeyFileExists(f"key file {path} already exists; it is never overwritten") from err
        except OSError as err:
            raise KeyFileWriteError(f"cannot create key file {path}: {err.strerror}") from err
        _write_fd(fd, path, text, temporary=None)
        return
    _replace(_target(path), text)


def replace_key_file(target: Path, key_file: KeyFile, *, kms: Kms | None = None) -> None:
    """Rewrite the key file at `target`, the real path `locked` yielded, without resolving any
    link again: the file written is the file locked. Atomic, mode 0600, and with the replaced
    file's owner and group, so that workers running as its owner can still read it."""
    _replace(target, _serialize(key_file, kms))  # serialised first: KMS may refuse


def _replace(target: Path, text: str) -> None:
    """Put `text` at `target` through a temporary file beside it and one rename."""
    try:
        fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as err:
        raise KeyFileWriteError(f"cannot write key file {target}: {err.strerror}") from err
    temporary = Path(name)  # mkstemp: O_EXCL, mode 0600
    try:
        _keep_owner(fd, target)
    except KeyFileWriteError:
        os.close(fd)
        temporary.unlink(missing_ok=True)
        raise
    _write_fd(fd, target, text, temporary=temporary)
    try:
        os.replace(temporary, target)
        _fsync_directory(target.parent)
    except OSError as err:
        temporary.unlink(missing_ok=True)
        raise KeyFileWriteError(f"cannot write key file {target}: {err.strerror}") from err


def _keep_owner(fd: int, target: Path) -> None:
    """Give the temporary file `fd` the owner and group of the file it will replace.

    A rotation run as another user (root) would otherwise leave a 0600 file that the workers,
    running as the old file's owner, cannot read. If the owner cannot be kept (only root may
    give a file away), KeyFileWriteError: better no rotation than workers that cannot start.
    A group that cannot be kept is let go: at mode 0600 it grants nothing.
    """
    try:
        old = os.stat(target, follow_symlinks=False)
    except FileNotFoundError:
        return  # nothing to keep
    except OSError as err:
        raise KeyFileWriteError(f"cannot write key file {target}: {err.strerror}") from err
    new = os.fstat(fd)
    if (old.st_uid, old.st_gid) == (new.st_uid, new.st_gid):
        return
    try:
        os.fchown(fd, old.st_uid, old.st_gid)
    except OSError:
        if old.st_uid != new.st_uid:
            raise KeyFileWriteError(
                f"cannot replace key file {target}: it is owned by uid {old.st_uid}, and a new "
                f"file of uid {new.st_uid} (mode 0600) would lock its readers out; run the "
                f"command as uid {old.st_uid} or as root"
            ) from None


def _write_fd(fd: int, path: Path, text: str, *, temporary: Path | None) -> None:
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
    except OSError as err:
        (temporary or path).unlink(missing_ok=True)
        raise KeyFileWriteError(f"cannot write key file {path}: {err.strerror}") from err


def _fsync_directory(directory: Path) -> None:
    """Make the rename durable: a crash right after must not bring the old file back."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def create_key_file(
    path: Path, *, kms_key_uri: str | None = None, kms: Kms | None = None
) -> KeyFile:
    """Generate keysets and write a new key file (refuses to overwrite anything)."""
    key_file = new_key_file(kms_key_uri)
    write_key_file(path, key_file, kms=kms)
    return key_file


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json.loads keeps the last of a repeated key; in a key file that hides what is used."""
    document = dict(pairs)
    if len(document) != len(pairs):
        raise _RepeatedKeyError
    return document


class _RepeatedKeyError(ValueError):
    """An object in the key file names one key twice."""


def _kind(value: object) -> str:
    """What a JSON value is, for an error message that must not quote it (it may be a key)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "a list" if isinstance(value, list) else "an object"


def _read_bytes(path: Path) -> tuple[bytes, int]:
    """The file's bytes and mode; KeyFileError for anything that is not a readable file."""
    try:
        # O_NONBLOCK: a FIFO at the path must not hang the command; no effect on a file.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError as err:
        raise KeyFileError(f"key file {path} not found; {_how_to_create(path)}") from err
    except OSError as err:
        raise KeyFileError(f"cannot read key file {path}: {err.strerror}") from err
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
            raise KeyFileError(f"key file {path} is {kind}; point to the key file itself")
        with os.fdopen(fd, "rb", closefd=False) as stream:
            data = stream.read(MAX_BYTES + 1)
    except OSError as err:
        raise KeyFileError(f"cannot read key file {path}: {err.strerror}") from err
    finally:
        os.close(fd)
    if len(data) > MAX_BYTES:
        raise KeyFileError(f"key file {path} is larger than {MAX_BYTES} bytes; not a key file")
    return data, mode


def _parse(origin: Origin, data: bytes) -> Any:
    """The file's JSON value; KeyFileError, quoting none of it, if it is not JSON."""
    try:
        text = data.decode("utf-8-sig")  # -sig: a byte-order mark an editor added is harmless
    except UnicodeDecodeError as err:
        raise KeyFileError(
            f"{origin.subject} is not UTF-8 text (byte {err.start}); not a key file"
        ) from None
    try:
        document = json.loads(text, object_pairs_hook=_no_duplicates)
    except json.JSONDecodeError as err:
        raise KeyFileError(f"{origin.subject} is not JSON (line {err.lineno})") from None
    except _RepeatedKeyError:
        raise KeyFileError(f"{origin.subject} names one key twice in an object") from None
    except (ValueError, RecursionError):
        # A number too long to convert, or nesting deeper than the parser's stack.
        raise KeyFileError(
            f"{origin.subject} is not a login-etl key file (a number too long or nesting too deep)"
        ) from None
    return document


def _document(origin: Origin, data: bytes) -> dict[str, Any]:
    """The key file's JSON object, checked down to its keysets' container."""
    document = _parse(origin, data)
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise KeyFileError(f"{origin.name} is not a login-etl key file")
    version = document.get("version")
    if type(version) is not int or version not in _READABLE:  # not True, not 2.0
        if type(version) is int:
            shown = f"version {version}" if abs(version) < 10**6 else "a version out of range"
        else:
            shown = f"a version that is {_kind(version)}, not an integer"
        raise KeyFileError(
            f"{origin.subject} has {shown}; "
            f"this login-etl reads versions {', '.join(map(str, _READABLE))}"
        )
    for field in ("created_at", "kms_key_uri"):
        if field in document and not isinstance(document[field], str):
            raise KeyFileError(
                f"{origin.subject}: {field} is {_kind(document[field])}, not a string"
            )
    kms_key_uri = document.get("kms_key_uri")
    if kms_key_uri is not None and not KMS_KEY_URI.match(kms_key_uri):
        raise KeyFileError(
            f"{origin.subject}: kms_key_uri is not an aws-kms://arn:aws:kms:... key URI"
        )
    if not isinstance(document.get("keysets"), dict):
        if "keysets" not in document:
            raise KeyFileError(f"{origin.subject} has no keysets")
        what = _kind(document["keysets"])
        raise KeyFileError(f"{origin.subject}: keysets is {what}, not an object of keysets")
    return document


def _handle(origin: Origin, document: dict[str, Any], name: str, kek: aead.Aead | None) -> Any:
    keyset = document["keysets"].get(name)
    if keyset is None:
        raise KeyFileError(f"{origin.subject} has no {name!r} keyset")
    if not isinstance(keyset, dict):
        raise KeyFileError(
            f"{origin.subject}: the {name!r} keyset is {_kind(keyset)}, not an object"
        )
    wrapped = "encryptedKeyset" in keyset
    if wrapped != (kek is not None):
        # A cleartext keyset in a KMS file (or the reverse) is a substitution, not a slip.
        raise KeyFileError(
            f"{origin.subject}: the {name!r} keyset is "
            + ("KMS-wrapped but the file names no KMS key" if wrapped else "not KMS-wrapped")
        )
    try:
        if kek is None:
            handle = keyset_json.parse(json.dumps(keyset), secret_key_access.TOKEN)
        else:
            handle = keyset_json.parse_encrypted(json.dumps(keyset), kek, _context(name))
    except _PARSE_ERRORS:
        # `from None`: the parser's message may quote the keyset.
        problem = "does not unwrap (altered, or moved from another slot)" if wrapped else ""
        raise KeyFileError(
            f"{origin.subject}: the {name!r} keyset {problem or 'is malformed'}"
        ) from None
    try:
        handle.primitive(PRIMITIVES[name])  # keys of the wrong kind, or that Tink cannot use
    except _PARSE_ERRORS:
        raise KeyFileError(
            f"{origin.subject}: the {name!r} keyset holds a key that is not {_USE[name]}"
        ) from None
    return handle


_USE = {"masking": "a usable AES256-SIV key", "quarantine": "a usable AES256-GCM key"}


def read_key_file(
    path: Path, *, kms: Kms | None = None, required_kms_key_uri: str | None = None
) -> KeyFile:
    """Read (and, for a KMS-wrapped file, unwrap) the keysets.

    `required_kms_key_uri` (LOGIN_ETL_KMS_KEY_URI) makes a file that is not wrapped by exactly
    that key an error, so that a planted cleartext key file is refused rather than used. Any
    malformed file is a KeyFileError naming it, with no part of its content.
    """
    data, mode = _read_bytes(path)
    key_file = parse_key_file(
        data, Origin.file(path), kms=kms, required_kms_key_uri=required_kms_key_uri
    )
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("key file %s is readable by other users; chmod 600 it", path)
    return key_file


def parse_key_file(
    data: bytes,
    origin: Origin,
    *,
    kms: Kms | None = None,
    required_kms_key_uri: str | None = None,
) -> KeyFile:
    """A key file's keysets from its text, wherever it was kept (`origin` names the place in
    errors); as `read_key_file`, whose checks these are."""
    document = _document(origin, data)
    kms_key_uri = document.get("kms_key_uri")
    if required_kms_key_uri is not None and kms_key_uri != required_kms_key_uri:
        raise KeyFileError(
            f"{origin.subject} is "
            + (f"wrapped by another KMS key ({kms_key_uri})" if kms_key_uri else "not KMS-wrapped")
            + f"; LOGIN_ETL_KMS_KEY_URI requires {required_kms_key_uri}"
        )
    kek = _kek(kms, kms_key_uri) if kms_key_uri else None
    return KeyFile(
        keysets={name: _handle(origin, document, name, kek) for name in TEMPLATES},
        kms_key_uri=kms_key_uri,
        created_at=document.get("created_at", ""),
    )


def load_key_file(
    path: Path, *, kms: Kms | None = None, required_kms_key_uri: str | None = None
) -> KeyRing:
    """Read the key file and build the primitives."""
    return read_key_file(path, kms=kms, required_kms_key_uri=required_kms_key_uri).ring()
