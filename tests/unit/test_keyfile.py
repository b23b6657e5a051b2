"""Key file errors are clear and never carry key material."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import tink
from hypothesis import given
from hypothesis import strategies as st
from tink import aead, secret_key_access
from tink import json_proto_keyset_format as keyset_json

from login_etl.core.masking import key_id_of, token_key_id
from login_etl.errors import KeyFileError, LoginEtlError, RevealError
from login_etl.keys import create_key_file, load_key_file, write_key_file
from login_etl.keys.keyfile import TEMPLATES, new_key_file
from login_etl.keys.rotation import DISABLED, ENABLED, describe, rotated, with_status

_RING = new_key_file().ring()


def test_a_missing_key_file_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="login-etl keys create --out"):
        load_key_file(tmp_path / "absent.json")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not JSON"),
        ('{"format": "other"}', "is not a login-etl key file"),
        ('{"format": "login-etl-keys", "version": 9}', "has version 9"),
        ('{"format": "login-etl-keys", "version": 1, "keysets": {}}', "has no 'masking' keyset"),
    ],
)
def test_a_broken_key_file_is_named_with_what_is_wrong(
    tmp_path: Path, content: str, message: str
) -> None:
    path = tmp_path / "k.json"
    path.write_text(content)
    with pytest.raises(KeyFileError, match=message):
        load_key_file(path)


def test_swapped_keysets_are_refused_without_quoting_them(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    create_key_file(path)
    doc = json.loads(path.read_text())
    keysets = doc["keysets"]
    keysets["masking"], keysets["quarantine"] = keysets["quarantine"], keysets["masking"]
    path.write_text(json.dumps(doc))
    with pytest.raises(KeyFileError) as info:
        load_key_file(path)
    for keyset in keysets.values():
        for key in keyset["key"]:
            assert key["keyData"]["value"] not in str(info.value)


def test_a_malformed_keyset_is_refused_without_quoting_it(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    create_key_file(path)
    doc = json.loads(path.read_text())
    secret = doc["keysets"]["masking"]["key"][0]["keyData"]["value"]
    doc["keysets"]["masking"]["key"][0]["keyData"]["value"] = secret[:-8] + "!!!!!!!!"
    path.write_text(json.dumps(doc))
    with pytest.raises(KeyFileError) as info:
        load_key_file(path)
    assert secret[:20] not in str(info.value)


# --- version 2: rotation, statuses, KMS wrapping (with an in-process key-encryption key) ---

URI = "aws-kms://arn:aws:kms:eu-west-1:111122223333:key/test"


@pytest.fixture(scope="module")
def kek() -> Any:
    return tink.new_keyset_handle(aead.aead_key_templates.AES256_GCM).primitive(aead.Aead)


def test_a_version_1_file_still_loads(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    create_key_file(path)
    doc = json.loads(path.read_text())
    path.write_text(json.dumps({**doc, "version": 1}))
    assert load_key_file(path).masker.mask("ip", "1.2.3.4").token


def test_rotation_adds_a_primary_and_old_tokens_still_reveal(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    before = create_key_file(path)
    old = before.ring()
    token = old.masker.mask("ip", "10.0.0.1").token
    after = before.with_keysets(masking=rotated(before.keysets["masking"], TEMPLATES["masking"]))
    write_key_file(path, after, overwrite=True)
    ring = load_key_file(path)

    assert ring.masking_primary != old.masking_primary
    assert ring.quarantine_primary == old.quarantine_primary
    assert [k.primary for k in describe(after.keysets["masking"])] == [False, True]
    assert ring.masker.reveal("ip", token) == "10.0.0.1"
    new_token = ring.masker.mask("ip", "10.0.0.1").token
    assert new_token != token  # deterministic per key: why rekey exists
    assert (token_key_id(token), token_key_id(new_token)) == (
        old.masking_primary,
        ring.masking_primary,
    )
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert [p.name for p in tmp_path.iterdir()] == ["k.json"]  # no temporary file left


def test_a_disabled_key_no_longer_decrypts_and_the_primary_cannot_be_disabled(
    tmp_path: Path,
) -> None:
    key_file = create_key_file(tmp_path / "k.json")
    old = key_file.ring()
    token = old.masker.mask("device_id", "dev-1").token
    handle = rotated(key_file.keysets["masking"], TEMPLATES["masking"])
    disabled = with_status(handle, [old.masking_primary], DISABLED)
    ring = key_file.with_keysets(masking=disabled).ring()
    with pytest.raises(RevealError):
        ring.masker.reveal("device_id", token)
    enabled = with_status(disabled, [old.masking_primary], ENABLED)
    assert (
        key_file.with_keysets(masking=enabled).ring().masker.reveal("device_id", token) == "dev-1"
    )
    with pytest.raises(LoginEtlError, match="is the primary"):
        with_status(handle, [ring.masking_primary], DISABLED)
    with pytest.raises(LoginEtlError, match="no key with id 7"):
        with_status(handle, [7], DISABLED)


def test_a_wrapped_file_needs_its_kek_and_holds_no_key_material(tmp_path: Path, kek: Any) -> None:
    path = tmp_path / "k.json"
    created = create_key_file(path, kms_key_uri=URI, kms=lambda uri: kek)
    text = path.read_text()
    for handle in created.keysets.values():
        clear = json.loads(keyset_json.serialize(handle, secret_key_access.TOKEN))
        assert clear["key"][0]["keyData"]["value"] not in text
    ring = load_key_file(path, kms=lambda uri: kek, required_kms_key_uri=URI)
    assert ring.masker.reveal("ip", created.ring().masker.mask("ip", "1.1.1.1").token) == "1.1.1.1"

    other = tink.new_keyset_handle(aead.aead_key_templates.AES256_GCM).primitive(aead.Aead)
    with pytest.raises(KeyFileError, match="does not unwrap"):
        load_key_file(path, kms=lambda uri: other)
    with pytest.raises(KeyFileError, match="wrapped by another KMS key"):
        load_key_file(path, kms=lambda uri: kek, required_kms_key_uri=URI + "2")


def test_a_required_kms_key_refuses_a_cleartext_file(tmp_path: Path) -> None:
    path = tmp_path / "k.json"
    create_key_file(path)
    with pytest.raises(KeyFileError, match="not KMS-wrapped"):
        load_key_file(path, required_kms_key_uri=URI)


@given(st.text(min_size=1, max_size=64))
def test_every_token_names_the_primary_key(plaintext: str) -> None:
    ring = _RING
    assert token_key_id(ring.masker.mask("device_id", plaintext).token) == ring.masking_primary
    assert key_id_of(ring.sealer.seal("m-1", plaintext)) == ring.quarantine_primary
    assert token_key_id("~" + "A" * 43) is None
