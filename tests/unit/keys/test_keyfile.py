"""Key file errors are clear and never carry key material."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tink
from hypothesis import given
from hypothesis import strategies as st
from tink import aead, secret_key_access
from tink import json_proto_keyset_format as keyset_json

from login_etl.cli import main
from login_etl.core.masking import key_id_of, token_key_id
from login_etl.errors import KeyFileError, LoginEtlError, RevealError
from login_etl.keys import create_key_file, load_key_file, read_key_file, write_key_file
from login_etl.keys.keyfile import MAX_BYTES, TEMPLATES, new_key_file
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


# --- issue 9 (e): any malformed key file is one line naming it, exit 2, no key material ---


def _good_document() -> dict[str, Any]:
    return json.loads(
        json.dumps(
            {
                "format": "login-etl-keys",
                "version": 2,
                "keysets": {
                    name: json.loads(keyset_json.serialize(handle, secret_key_access.TOKEN))
                    for name, handle in new_key_file().keysets.items()
                },
            }
        )
    )


_GOOD = _good_document()
_SECRETS = [
    key["keyData"]["value"] for keyset in _GOOD["keysets"].values() for key in keyset["key"]
]


def _with(**fields: Any) -> bytes:
    return json.dumps({**_GOOD, **fields}).encode()


def _without(field: str) -> bytes:
    return json.dumps({k: v for k, v in _GOOD.items() if k != field}).encode()


def _masking(keyset: Any) -> bytes:
    return _with(keysets={**_GOOD["keysets"], "masking": keyset})


def _masking_key(**fields: Any) -> bytes:
    keyset = _GOOD["keysets"]["masking"]
    key = keyset["key"][0]
    return _masking({**keyset, "key": [{**key, "keyData": {**key["keyData"], **fields}}]})


# Each: the file's bytes, and what the one line must say. Cases marked (was a traceback) raised
# UnicodeDecodeError, AttributeError, RecursionError or ValueError before issue 9.
MALFORMED: dict[str, tuple[bytes, str]] = {
    "not UTF-8 (was a traceback)": (b'{"format": "\xff\xfe"}', "is not UTF-8 text"),
    "Latin-1 (was a traceback)": ('{"x": "é"}'.encode("latin-1"), "is not UTF-8 text"),
    "empty": (b"", "is not JSON"),
    "NUL": (b"\x00", "is not JSON"),
    "not JSON": (b"{not json", "is not JSON"),
    "a list": (b"[]", "is not a login-etl key file"),
    "a string": (b'"keys"', "is not a login-etl key file"),
    "null": (b"null", "is not a login-etl key file"),
    "another format": (b'{"format": "other"}', "is not a login-etl key file"),
    "a repeated key": (
        b'{"format": "login-etl-keys", "format": "login-etl-keys"}',
        "names one key twice",
    ),
    "nesting 100,000 deep (was a traceback)": (b"[" * 100_000 + b"]" * 100_000, "nesting too deep"),
    "deep inside keysets (was a traceback)": (
        b'{"format": "login-etl-keys", "version": 2, "keysets": '
        + b'{"a": ' * 100_000
        + b"1"
        + b"}" * 100_001,
        "nesting too deep",
    ),
    "a 5,000-digit number (was a traceback)": (
        b'{"format": "login-etl-keys", "version": ' + b"9" * 5000 + b"}",
        "a number too long",
    ),
    "no version": (_without("version"), "has a version that is null"),
    "version 9": (_with(version=9), "has version 9"),
    "version as a string": (_with(version="2"), "has a version that is a string"),
    "version 2.0": (_with(version=2.0), "has a version that is a number"),
    "version true": (_with(version=True), "has a version that is a boolean"),
    "version NaN": (_with(version=float("nan")), "has a version that is a number"),
    "a huge version": (_with(version=10**40), "has a version out of range"),
    "no keysets": (_without("keysets"), "has no keysets"),
    "keysets a list (was a traceback)": (_with(keysets=[]), "keysets is a list"),
    "keysets a string (was a traceback)": (_with(keysets="x"), "keysets is a string"),
    "keysets null (was a traceback)": (_with(keysets=None), "keysets is null"),
    "no masking keyset": (_with(keysets={"quarantine": {}}), "has no 'masking' keyset"),
    "a keyset a string": (_masking("CMjX"), "the 'masking' keyset is a string"),
    "a keyset a list": (_masking([]), "the 'masking' keyset is a list"),
    "a keyset a number": (_masking(5), "the 'masking' keyset is a number"),
    "an empty keyset": (_masking({}), "the 'masking' keyset is malformed"),
    "key not a list": (_masking({"primaryKeyId": 1, "key": "x"}), "is malformed"),
    "primaryKeyId a string": (
        _masking({**_GOOD["keysets"]["masking"], "primaryKeyId": "x"}),
        "is malformed",
    ),
    "primaryKeyId 10**40": (
        _masking({**_GOOD["keysets"]["masking"], "primaryKeyId": 10**40}),
        "is malformed",
    ),
    "primaryKeyId 1e999": (
        _masking({**_GOOD["keysets"]["masking"], "primaryKeyId": 1e999}),
        "is malformed",
    ),
    "key value base64 garbage": (_masking_key(value="%%%%"), "not a usable AES256-SIV key"),
    "key value a number": (_masking_key(value=5), "is malformed"),
    "swapped keysets": (
        _with(
            keysets={
                "masking": _GOOD["keysets"]["quarantine"],
                "quarantine": _GOOD["keysets"]["masking"],
            }
        ),
        "not a usable AES256-SIV key",
    ),
    "wrapped keyset in a cleartext file": (_masking({"encryptedKeyset": 5}), "names no KMS key"),
    "kms_key_uri a number": (_with(kms_key_uri=5), "kms_key_uri is a number"),
    "kms_key_uri empty": (_with(kms_key_uri=""), "kms_key_uri is not an aws-kms://"),
    "kms_key_uri not a key URI": (_with(kms_key_uri="nope"), "kms_key_uri is not an aws-kms://"),
    "created_at an object": (_with(created_at={"a": 1}), "created_at is an object"),
}


def _write(tmp_path: Path, content: bytes) -> Path:
    path = tmp_path / "k.json"
    path.write_bytes(content)
    path.chmod(0o600)
    return path


def _one_clean_line(text: str, path: Path) -> None:
    assert text.count("\n") <= 1, text
    assert str(path) in text
    assert "Traceback" not in text
    for secret in _SECRETS:
        assert secret not in text
        assert secret[:12] not in text


@pytest.mark.parametrize(("content", "message"), MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_key_file_is_one_error_naming_it(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = _write(tmp_path, content)
    with pytest.raises(KeyFileError, match=message) as info:
        load_key_file(path)
    _one_clean_line(str(info.value), path)


@pytest.mark.parametrize(("content", "message"), MALFORMED.values(), ids=MALFORMED.keys())
def test_keys_list_on_a_malformed_key_file_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    path = _write(tmp_path, content)
    assert main(["keys", "list", "--keyset-file", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert message in captured.err
    assert captured.err.startswith("login-etl: ")
    _one_clean_line(captured.err, path)


def _not_a_file(tmp_path: Path, kind: str) -> Path:
    if kind == "a directory":
        return tmp_path
    if kind == "a FIFO":
        os.mkfifo(tmp_path / "fifo")  # must not hang the command
        return tmp_path / "fifo"
    if kind == "under a file":
        (tmp_path / "file").write_text("{}")
        return tmp_path / "file" / "k.json"
    if kind == "unreadable":
        if os.geteuid() == 0:
            pytest.skip("root reads a file of mode 000")
        path = _write(tmp_path, json.dumps(_GOOD).encode())
        path.chmod(0)
        return path
    path = tmp_path / "huge.json"  # kind == "too large": sparse, costs no disk
    with path.open("wb") as huge:
        huge.truncate(MAX_BYTES + 1)
    return path


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("a directory", "is a directory"),
        ("a FIFO", "is not a regular file"),
        ("under a file", "cannot read key file"),
        ("unreadable", "cannot read key file"),
        ("too large", f"is larger than {MAX_BYTES} bytes"),
    ],
)
def test_a_key_file_path_that_is_no_readable_file_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, message: str
) -> None:
    path = _not_a_file(tmp_path, kind)
    with pytest.raises(KeyFileError, match=message):
        load_key_file(path)
    assert main(["keys", "list", "--keyset-file", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err
    _one_clean_line(err, path)


def test_a_byte_order_mark_is_harmless(tmp_path: Path) -> None:
    path = _write(tmp_path, b"\xef\xbb\xbf" + json.dumps(_GOOD).encode())
    assert load_key_file(path).masker.mask("ip", "1.2.3.4").token


@pytest.mark.parametrize(
    "keyset",
    [
        {"encryptedKeyset": 5},
        {"encryptedKeyset": None},
        {"encryptedKeyset": "!!!"},
        {"encryptedKeyset": "AAAA", "keysetInfo": "x"},
    ],
    ids=["a number", "null", "not base64", "keysetInfo a string"],
)
def test_a_wrapped_keyset_of_the_wrong_shape_does_not_unwrap(
    tmp_path: Path, kek: Any, keyset: dict[str, Any]
) -> None:
    path = tmp_path / "k.json"
    create_key_file(path, kms_key_uri=URI, kms=lambda uri: kek)
    doc = json.loads(path.read_text())
    doc["keysets"]["masking"] = keyset
    path.write_text(json.dumps(doc))
    with pytest.raises(KeyFileError, match="'masking' keyset does not unwrap") as info:
        load_key_file(path, kms=lambda uri: kek)
    _one_clean_line(str(info.value), path)


# --- issue 9 (f): commands that rewrite the file write a symlink's target, under a lock ---


def _masking_keys(path: Path) -> list[int]:
    return [k.key_id for k in describe(read_key_file(path).keysets["masking"])]


def _status(path: Path, key_id: int) -> str:
    return {k.key_id: k.status for k in describe(read_key_file(path).keysets["masking"])}[key_id]


@pytest.fixture
def linked(tmp_path: Path) -> tuple[Path, Path]:
    """A key file in secrets/, and a link to it in app/ (as a mounted Secret is)."""
    (tmp_path / "secrets").mkdir()
    (tmp_path / "app").mkdir()
    target = tmp_path / "secrets" / "keys.json"
    create_key_file(target)
    link = tmp_path / "app" / "keys.json"
    link.symlink_to(target)
    return link, target


def _leaves_the_link(link: Path, target: Path) -> None:
    assert link.is_symlink()
    assert link.resolve() == target
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    assert sorted(p.name for p in link.parent.iterdir()) == ["keys.json"]
    # Beside the target: the file and its lock, no temporary file left.
    assert sorted(p.name for p in target.parent.iterdir()) == ["keys.json", "keys.json.lock"]


def test_keys_rotate_enable_disable_on_a_symlink_write_its_target(
    linked: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    link, target = linked
    first = _masking_keys(target)
    assert main(["keys", "rotate", "--keyset", "masking", "--keyset-file", str(link)]) == 0
    _leaves_the_link(link, target)
    assert _masking_keys(target)[:1] == first
    assert len(_masking_keys(target)) == 2

    # Nothing stored.
    monkeypatch.setattr("login_etl.ops.keyadmin.stored_key_usage", lambda settings: [])
    assert main(["keys", "disable", str(first[0]), "--keyset-file", str(link)]) == 0
    _leaves_the_link(link, target)
    assert _status(target, first[0]) == "DISABLED"

    assert main(["keys", "enable", str(first[0]), "--keyset-file", str(link)]) == 0
    _leaves_the_link(link, target)
    assert _status(target, first[0]) == "ENABLED"


def test_keys_wrap_on_a_symlink_writes_its_target(
    linked: tuple[Path, Path], kek: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    link, target = linked
    before = read_key_file(target).ring()
    monkeypatch.setattr("login_etl.keys.keyfile._default_kms", lambda uri: kek)
    assert main(["keys", "wrap", "--kms-key-uri", URI, "--keyset-file", str(link)]) == 0
    _leaves_the_link(link, target)
    after = load_key_file(target, kms=lambda uri: kek, required_kms_key_uri=URI)
    assert after.masking_primary == before.masking_primary
    assert "encryptedKeyset" in json.loads(target.read_text())["keysets"]["masking"]


def test_write_key_file_follows_a_relative_symlink_across_directories(
    linked: tuple[Path, Path],
) -> None:
    link, target = linked
    link.unlink()
    link.symlink_to(Path("..") / "secrets" / "keys.json")  # relative to the link's directory
    key_file = read_key_file(link)
    write_key_file(
        link,
        key_file.with_keysets(masking=rotated(key_file.keysets["masking"], TEMPLATES["masking"])),
        overwrite=True,
    )
    assert link.is_symlink()
    assert len(_masking_keys(target)) == 2
    assert oct(target.stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize("dangling", [False, True], ids=["to a key file", "dangling"])
def test_keys_create_never_writes_through_a_symlink(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], dangling: bool
) -> None:
    target = tmp_path / "keys.json"
    link = tmp_path / "link.json"
    link.symlink_to(target)
    if not dangling:
        create_key_file(target)
    before = target.read_bytes() if not dangling else None
    assert main(["keys", "create", "--out", str(link)]) == 1
    assert "already exists; it is never overwritten" in capsys.readouterr().err
    assert link.is_symlink()
    assert (target.read_bytes() if not dangling else None) == before
    assert dangling != target.exists()


_ROTATIONS = 6
_ROTATE = """
import sys
from login_etl.cli import main
for _ in range({n}):
    assert main(["keys", "rotate", "--keyset", "masking", "--keyset-file", sys.argv[1]]) == 0
"""


def test_concurrent_rotations_lose_no_key(linked: tuple[Path, Path]) -> None:
    link, target = linked
    before = _masking_keys(target)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGIN_ETL_")}
    # Four writers, two through the link and two through the target: one lock for both.
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", _ROTATE.format(n=_ROTATIONS), str(path)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for path in (link, target, link, target)
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
    after = _masking_keys(target)
    assert after[:1] == before
    assert len(set(after)) == 1 + 4 * _ROTATIONS
    _leaves_the_link(link, target)


# --- issue 9 review: the write goes where the lock is, and keeps the file's owner ---


def test_a_link_repointed_mid_rotation_does_not_redirect_the_write(
    linked: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    link, target = linked
    other = target.with_name("other.json")
    create_key_file(other)
    other_before = other.read_bytes()
    first = _masking_keys(target)
    real_rotated = rotated

    def repoint_then_rotate(handle: tink.KeysetHandle, template: Any) -> tink.KeysetHandle:
        # Another administrator re-points the link while this rotation holds target's lock.
        link.unlink()
        link.symlink_to(other)
        return real_rotated(handle, template)

    monkeypatch.setattr("login_etl.ops.keyadmin.rotated", repoint_then_rotate)
    assert main(["keys", "rotate", "--keyset", "masking", "--keyset-file", str(link)]) == 0
    # The file that was locked and read is the one written; the other file is untouched.
    assert _masking_keys(target)[:1] == first
    assert len(_masking_keys(target)) == 2
    assert other.read_bytes() == other_before
    assert sorted(p.name for p in target.parent.iterdir()) == [
        "keys.json",
        "keys.json.lock",
        "other.json",
    ]


NOBODY = 65_534
_needs_root = pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0, reason="changing a file's owner needs root"
)


@_needs_root
def test_a_rotation_by_root_keeps_the_files_owner(linked: tuple[Path, Path]) -> None:
    link, target = linked
    os.chown(target, NOBODY, NOBODY)
    assert main(["keys", "rotate", "--keyset", "masking", "--keyset-file", str(link)]) == 0
    assert len(_masking_keys(target)) == 2
    written = target.stat()
    assert (written.st_uid, written.st_gid) == (NOBODY, NOBODY)
    assert oct(written.st_mode & 0o777) == "0o600"
    # The owner can take the lock next time: the lock file is theirs too.
    assert target.with_name("keys.json.lock").stat().st_uid == NOBODY


@_needs_root
def test_a_rotation_that_cannot_keep_the_owner_is_refused_and_changes_nothing(
    linked: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    link, target = linked
    os.chown(target, NOBODY, NOBODY)
    before = target.read_bytes()

    def not_permitted(fd: int, uid: int, gid: int) -> None:  # as for a user who is not root
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr("login_etl.keys.keyfile.os.fchown", not_permitted)
    assert main(["keys", "rotate", "--keyset", "masking", "--keyset-file", str(link)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"owned by uid {NOBODY}" in err
    assert "Traceback" not in err
    assert target.read_bytes() == before
    assert target.stat().st_uid == NOBODY
    assert sorted(p.name for p in target.parent.iterdir()) == ["keys.json", "keys.json.lock"]
