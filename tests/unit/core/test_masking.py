"""Masking properties: deterministic, reversible with the key, fields never collide, no PII out."""

from __future__ import annotations

import base64
import re
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from login_etl.core.masking import MAX_TOKEN_LENGTH, VAULT_PREFIX
from login_etl.errors import RevealError
from login_etl.keys import KeyRing, create_key_file, load_key_file

# Strings a validated message can carry: no NUL, no unpaired surrogates.
plaintexts = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=256,
)
fields = st.sampled_from(["ip", "device_id"])
TOKEN = re.compile(r"[A-Za-z0-9_-]+")


@given(fields, plaintexts)
def test_masking_is_deterministic(keys: KeyRing, field: str, plaintext: str) -> None:
    assert keys.masker.mask(field, plaintext) == keys.masker.mask(field, plaintext)  # type: ignore[arg-type]


@given(fields, plaintexts)
def test_reveal_inverts_mask(keys: KeyRing, field: str, plaintext: str) -> None:
    masked = keys.masker.mask(field, plaintext)  # type: ignore[arg-type]
    vault = {masked.vault.token: masked.vault.ciphertext} if masked.vault else {}
    assert keys.masker.reveal(field, masked.token, vault.get) == plaintext  # type: ignore[arg-type]


@given(plaintexts)
def test_the_two_fields_never_share_a_token(keys: KeyRing, plaintext: str) -> None:
    assert keys.masker.mask("ip", plaintext).token != keys.masker.mask("device_id", plaintext).token


@given(fields, plaintexts, plaintexts)
def test_different_inputs_give_different_tokens(keys: KeyRing, field: str, a: str, b: str) -> None:
    if a != b:
        assert keys.masker.mask(field, a).token != keys.masker.mask(field, b).token  # type: ignore[arg-type]


@given(fields, plaintexts)
def test_a_token_fits_its_column_and_holds_no_plaintext(
    keys: KeyRing, field: str, plaintext: str
) -> None:
    masked = keys.masker.mask(field, plaintext)  # type: ignore[arg-type]
    assert len(masked.token) <= MAX_TOKEN_LENGTH
    body = masked.token.removeprefix(VAULT_PREFIX)
    assert TOKEN.fullmatch(body)
    if len(plaintext) >= 4:
        assert plaintext not in masked.token
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        assert plaintext.encode() not in raw


def test_long_values_get_a_vault_token_short_ones_an_inline_one(keys: KeyRing) -> None:
    assert keys.masker.mask("device_id", "d" * 171).vault is None
    long = keys.masker.mask("device_id", "d" * 172)
    assert long.vault is not None
    assert long.token.startswith(VAULT_PREFIX)
    assert long.vault.field == "device_id"
    assert len(long.token) == 44


def test_an_ipv6_address_is_always_inline(keys: KeyRing) -> None:
    assert keys.masker.mask("ip", "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255").vault is None


def test_another_key_file_gives_other_tokens_and_cannot_reveal(
    keys: KeyRing, tmp_path: Path
) -> None:
    create_key_file(tmp_path / "other.json")
    other = load_key_file(tmp_path / "other.json")
    token = keys.masker.mask("ip", "10.0.0.1").token
    assert other.masker.mask("ip", "10.0.0.1").token != token
    with pytest.raises(RevealError, match="does not decrypt as a ip with this key file"):
        other.masker.reveal("ip", token)


@pytest.mark.parametrize("token", ["not base64!", "", "AAAA", "A"])
def test_a_value_that_is_not_a_token_fails_clearly(keys: KeyRing, token: str) -> None:
    with pytest.raises(RevealError):
        keys.masker.reveal("ip", token)


def test_a_token_of_one_field_does_not_reveal_as_the_other(keys: KeyRing) -> None:
    token = keys.masker.mask("ip", "10.0.0.1").token
    with pytest.raises(RevealError, match="device_id"):
        keys.masker.reveal("device_id", token)


def test_a_vault_token_needs_its_ciphertext(keys: KeyRing) -> None:
    token = keys.masker.mask("device_id", "d" * 200).token
    with pytest.raises(RevealError, match="needs the database"):
        keys.masker.reveal("device_id", token)
    with pytest.raises(RevealError, match="not found"):
        keys.masker.reveal("device_id", token, lambda _t: None)


@given(st.text(max_size=300), st.text(min_size=1, max_size=40))
def test_sealed_bodies_open_only_with_their_message_id(
    keys: KeyRing, body: str, message_id: str
) -> None:
    sealed = keys.sealer.seal(message_id, body)
    if len(body) >= 4 and "\\" not in body:
        assert body.encode("utf-8", "surrogatepass") not in sealed
    assert keys.sealer.open(message_id, sealed) == body
    with pytest.raises(RevealError):
        keys.sealer.open(message_id + "x", sealed)


def test_key_file_is_private_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    create_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    before = path.read_bytes()
    with pytest.raises(Exception, match="already exists"):
        create_key_file(path)
    assert path.read_bytes() == before
