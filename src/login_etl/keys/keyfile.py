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

Nothing here puts key material in an exception message or a log line.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import tink
from tink import aead, daead, secret_key_access
from tink import json_proto_keyset_format as keyset_json
from tink.proto import tink_pb2

from login_etl.core.masking import TinkMasker, TinkSealer
from login_etl.errors import KeyFileError, LoginEtlError

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

# Key URI → the AEAD of that KMS key (login_etl.adapters.kms.kms_aead, or a test double).
Kms = Callable[[str], aead.Aead]


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


def write_key_file(
    path: Path, key_file: KeyFile, *, kms: Kms | None = None, overwrite: bool = False
) -> None:
    """Write the file, 0600 from birth. A new file is never put over an existing one; an
    overwrite (rotation) goes through a temporary file and one atomic rename, so a crash leaves
    the old file or the new one, never half of one."""
    text = _serialize(key_file, kms)  # before touching the disk: KMS may refuse
    target = path.with_name(f".{path.name}.{os.getpid()}.tmp") if overwrite else path
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as err:
        raise LoginEtlError(f"key file {target} already exists; it is never overwritten") from err
    except OSError as err:
        raise LoginEtlError(f"cannot create key file {target}: {err.strerror}") from err
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        if overwrite:
            os.replace(target, path)
    except OSError as err:
        target.unlink(missing_ok=True)
        raise LoginEtlError(f"cannot write key file {path}: {err.strerror}") from err


def create_key_file(
    path: Path, *, kms_key_uri: str | None = None, kms: Kms | None = None
) -> KeyFile:
    """Generate keysets and write a new key file (refuses to overwrite anything)."""
    key_file = new_key_file(kms_key_uri)
    write_key_file(path, key_file, kms=kms)
    return key_file


def _document(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise KeyFileError(f"key file {path} not found; {_how_to_create(path)}") from err
    except OSError as err:
        raise KeyFileError(f"cannot read key file {path}: {err.strerror}") from err
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        raise KeyFileError(f"key file {path} is not JSON (line {err.lineno})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise KeyFileError(f"{path} is not a login-etl key file")
    if document.get("version") not in _READABLE:
        raise KeyFileError(
            f"key file {path} has version {document.get('version')!r}; "
            f"this login-etl reads versions {', '.join(map(str, _READABLE))}"
        )
    return document


def _handle(path: Path, document: dict[str, Any], name: str, kek: aead.Aead | None) -> Any:
    keyset = document.get("keysets", {}).get(name)
    if not isinstance(keyset, dict):
        raise KeyFileError(f"key file {path} has no {name!r} keyset")
    wrapped = "encryptedKeyset" in keyset
    if wrapped != (kek is not None):
        # A cleartext keyset in a KMS file (or the reverse) is a substitution, not a slip.
        raise KeyFileError(
            f"key file {path}: the {name!r} keyset is "
            + ("KMS-wrapped but the file names no KMS key" if wrapped else "not KMS-wrapped")
        )
    try:
        if kek is None:
            return keyset_json.parse(json.dumps(keyset), secret_key_access.TOKEN)
        return keyset_json.parse_encrypted(json.dumps(keyset), kek, _context(name))
    except (tink.TinkError, ValueError, TypeError):
        # `from None`: the parser's message may quote the keyset.
        problem = "does not unwrap (altered, or moved from another slot)" if wrapped else ""
        raise KeyFileError(
            f"key file {path}: the {name!r} keyset {problem or 'is malformed'}"
        ) from None


def read_key_file(
    path: Path, *, kms: Kms | None = None, required_kms_key_uri: str | None = None
) -> KeyFile:
    """Read (and, for a KMS-wrapped file, unwrap) the keysets.

    `required_kms_key_uri` (LOGIN_ETL_KMS_KEY_URI) makes a file that is not wrapped by exactly
    that key an error, so that a planted cleartext key file is refused rather than used.
    """
    mode = path.stat().st_mode if path.exists() else 0
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("key file %s is readable by other users; chmod 600 it", path)
    document = _document(path)
    kms_key_uri = document.get("kms_key_uri")
    if kms_key_uri is not None and not isinstance(kms_key_uri, str):
        raise KeyFileError(f"key file {path}: kms_key_uri is not a string")
    if required_kms_key_uri is not None and kms_key_uri != required_kms_key_uri:
        raise KeyFileError(
            f"key file {path} is "
            + (f"wrapped by another KMS key ({kms_key_uri})" if kms_key_uri else "not KMS-wrapped")
            + f"; LOGIN_ETL_KMS_KEY_URI requires {required_kms_key_uri}"
        )
    kek = _kek(kms, kms_key_uri) if kms_key_uri else None
    return KeyFile(
        keysets={name: _handle(path, document, name, kek) for name in TEMPLATES},
        kms_key_uri=kms_key_uri,
        created_at=str(document.get("created_at", "")),
    )


def load_key_file(
    path: Path, *, kms: Kms | None = None, required_kms_key_uri: str | None = None
) -> KeyRing:
    """Read the key file and build the primitives."""
    return read_key_file(path, kms=kms, required_kms_key_uri=required_kms_key_uri).ring()
