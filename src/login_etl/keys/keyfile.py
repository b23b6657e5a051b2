"""Create and load the key file.

One JSON file, mode 0600, holding two Tink keysets: `masking` (AES256-SIV deterministic AEAD for
`ip` and `device_id`) and `quarantine` (AES256-GCM AEAD for rejected bodies). Keysets rather than
raw keys so that rotation (a new primary, old keys kept for decryption) needs no format change.

Nothing here puts key material in an exception message or a log line.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tink
from tink import aead, daead, secret_key_access
from tink import json_proto_keyset_format as keyset_json

from login_etl.core.masking import TinkMasker, TinkSealer
from login_etl.errors import KeyFileError, LoginEtlError

daead.register()
aead.register()

log = logging.getLogger(__name__)

FORMAT = "login-etl-keys"
VERSION = 1
_TEMPLATES = {
    "masking": daead.deterministic_aead_key_templates.AES256_SIV,
    "quarantine": aead.aead_key_templates.AES256_GCM,
}


@dataclass(frozen=True)
class KeyRing:
    """The primitives built from a key file; the keysets themselves are not kept."""

    masker: TinkMasker
    sealer: TinkSealer


def _how_to_create(path: Path) -> str:
    return f"create one with: login-etl keys create --out {path}"


def create_key_file(path: Path) -> None:
    """Write a new key file; refuses to overwrite anything (O_EXCL), and is 0600 from birth."""
    keysets: dict[str, Any] = {}
    for name, template in _TEMPLATES.items():
        handle = tink.new_keyset_handle(template)
        keysets[name] = json.loads(keyset_json.serialize(handle, secret_key_access.TOKEN))
    document = {
        "format": FORMAT,
        "version": VERSION,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "keysets": keysets,
    }
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as err:
        raise LoginEtlError(f"key file {path} already exists; it is never overwritten") from err
    except OSError as err:
        raise LoginEtlError(f"cannot create key file {path}: {err.strerror}") from err
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(document, out, indent=2)
        out.write("\n")


def _read(path: Path) -> dict[str, Any]:
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
    if document.get("version") != VERSION:
        raise KeyFileError(
            f"key file {path} has version {document.get('version')!r}; "
            f"this login-etl reads version {VERSION}"
        )
    return document


def _handle(path: Path, document: dict[str, Any], name: str) -> tink.KeysetHandle:
    keyset = document.get("keysets", {}).get(name)
    if keyset is None:
        raise KeyFileError(f"key file {path} has no {name!r} keyset")
    try:
        return keyset_json.parse(json.dumps(keyset), secret_key_access.TOKEN)
    except (tink.TinkError, ValueError, TypeError):
        # `from None`: the parser's message may quote the keyset.
        raise KeyFileError(f"key file {path}: the {name!r} keyset is malformed") from None


def load_key_file(path: Path) -> KeyRing:
    """Read the key file and build the primitives."""
    mode = path.stat().st_mode if path.exists() else 0
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("key file %s is readable by other users; chmod 600 it", path)
    document = _read(path)
    try:
        masker = TinkMasker(_handle(path, document, "masking").primitive(daead.DeterministicAead))
        sealer = TinkSealer(_handle(path, document, "quarantine").primitive(aead.Aead))
    except tink.TinkError:
        raise KeyFileError(f"key file {path}: a keyset holds the wrong kind of key") from None
    return KeyRing(masker=masker, sealer=sealer)
