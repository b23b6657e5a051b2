"""Reversible, deterministic masking of PII, and sealing of rejected bodies.

Masking is Tink Deterministic AEAD (AES256-SIV) with the field name as associated data: equal
inputs give equal tokens (so analysts can GROUP BY them), the two fields never share a token, and
nothing can be recovered or brute-forced without the key, unlike a hash of the 2^32 IPv4
addresses. A token is the unpadded base64url of the Tink ciphertext (5-byte key prefix + 16-byte
SIV + plaintext).

The columns are varchar(256), which holds the token of a plaintext of at most 171 UTF-8 bytes. A
longer value (a device_id may be up to 256 characters, up to 1,024 bytes) gets a *vault token*
instead: "~" + base64url(SHA-256(ciphertext)), still deterministic and keyed, with the ciphertext
kept in `login_etl.masked_values` so that it stays revealable.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable
from typing import Literal, NamedTuple, Protocol

import tink
from tink import aead, daead

from login_etl.core.model import VaultEntry
from login_etl.errors import RevealError

Field = Literal["ip", "device_id"]
FIELDS: tuple[Field, ...] = ("ip", "device_id")

# Width of user_logins.masked_ip and masked_device_id.
MAX_TOKEN_LENGTH = 256
VAULT_PREFIX = "~"  # not in the base64url alphabet, so the two token kinds never collide

# Associated data for a rejected body: binds each ciphertext to its message id, so a body cannot
# be moved to another quarantine row and still decrypt.
_BODY_CONTEXT = b"login-etl/rejected-body/"


class Masked(NamedTuple):
    """A token for a column, and the vault entry to store with it when the value was too long."""

    token: str
    vault: VaultEntry | None = None


class Masker(Protocol):
    """Turns a plaintext into its deterministic token."""

    def mask(self, field: Field, plaintext: str) -> Masked: ...


class Sealer(Protocol):
    """Encrypts a rejected message's body (it may hold PII too)."""

    def seal(self, message_id: str, body: str) -> bytes: ...


VaultLookup = Callable[[str], bytes | None]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(token: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError) as err:
        raise RevealError("not a masked value: it is not base64url") from err


def key_id_of(ciphertext: bytes) -> int | None:
    """The id of the Tink key that made a ciphertext (TINK prefix: 0x01, then 4 bytes)."""
    if len(ciphertext) < 5 or ciphertext[0] != 1:
        return None
    return int.from_bytes(ciphertext[1:5], "big")


def token_key_id(token: str) -> int | None:
    """The key id inside an inline token; None for a vault token or a non-token."""
    if token.startswith(VAULT_PREFIX):
        return None
    try:
        return key_id_of(_unb64(token[:8]))
    except RevealError:
        return None


class TinkMasker:
    """Masker (and, given the same keyset, unmasker) over a Tink DeterministicAead primitive."""

    def __init__(self, primitive: daead.DeterministicAead) -> None:
        self._primitive = primitive

    def mask(self, field: Field, plaintext: str) -> Masked:
        ciphertext: bytes = self._primitive.encrypt_deterministically(
            plaintext.encode("utf-8"), field.encode("ascii")
        )
        token = _b64(ciphertext)
        if len(token) <= MAX_TOKEN_LENGTH:
            return Masked(token)
        vault_token = VAULT_PREFIX + _b64(hashlib.sha256(ciphertext).digest())
        return Masked(vault_token, VaultEntry(vault_token, field, ciphertext))

    def reveal(self, field: Field, token: str, vault: VaultLookup | None = None) -> str:
        """The plaintext behind a token; RevealError (never a Tink traceback) if it is not one."""
        token = token.strip()
        if token.startswith(VAULT_PREFIX):
            if vault is None:
                raise RevealError("a vault token needs the database to reveal")
            found = vault(token)
            if found is None:
                raise RevealError("vault token not found in login_etl.masked_values")
            ciphertext = found
        else:
            ciphertext = _unb64(token)
        problem = (
            f"does not decrypt as a {field} with this key file "
            "(wrong field, wrong key file, or not a masked value)"
        )
        return self._decrypt(field, ciphertext, problem).decode("utf-8")

    def reencrypt(self, field: Field, ciphertext: bytes) -> bytes:
        """The same plaintext encrypted under the primary key (for rekeying vault entries)."""
        problem = f"a stored {field} does not decrypt with this key file"
        plaintext = self._decrypt(field, ciphertext, problem)
        fresh: bytes = self._primitive.encrypt_deterministically(plaintext, field.encode("ascii"))
        return fresh

    def _decrypt(self, field: Field, ciphertext: bytes, problem: str) -> bytes:
        """The plaintext; RevealError(problem), never a Tink traceback, if it does not decrypt."""
        try:
            plaintext: bytes = self._primitive.decrypt_deterministically(
                ciphertext, field.encode("ascii")
            )
        except tink.TinkError as err:
            raise RevealError(problem) from err
        return plaintext


class TinkSealer:
    """Sealer (and opener) over a Tink AEAD primitive."""

    def __init__(self, primitive: aead.Aead) -> None:
        self._primitive = primitive

    def seal(self, message_id: str, body: str) -> bytes:
        sealed: bytes = self._primitive.encrypt(
            body.encode("utf-8", "surrogatepass"), _BODY_CONTEXT + message_id.encode("utf-8")
        )
        return sealed

    def open(self, message_id: str, sealed: bytes) -> str:
        try:
            body: bytes = self._primitive.decrypt(
                sealed, _BODY_CONTEXT + message_id.encode("utf-8")
            )
        except tink.TinkError as err:
            raise RevealError(
                "the stored body does not decrypt with this key file (wrong key file?)"
            ) from err
        return body.decode("utf-8", "surrogatepass")
