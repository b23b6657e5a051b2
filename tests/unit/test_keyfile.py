"""Key file errors are clear and never carry key material."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from login_etl.errors import KeyFileError
from login_etl.keys import create_key_file, load_key_file


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
