"""The archive's pure parts: --before, the row checksum, the manifest checks, the target URI."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from login_etl.adapters.archive_store import LocalStore, S3Store, open_store
from login_etl.adapters.parquet_files import encode, from_csv, from_rows, to_rows
from login_etl.adapters.postgres.archive import REJECTED, USER_LOGINS
from login_etl.config import Settings
from login_etl.errors import ArchiveError, ArchiveMismatch, ConfigError
from login_etl.ops.archive import (
    Manifest,
    Part,
    load_manifest,
    parse_before,
    read_part,
    row_checksum,
)
from login_etl.ops.restore import archived_days, restore_archive

DAY = dt.date(2024, 1, 31)
ROWS = [
    ("u1", "ios", "AT_tok1", "AT_dev1", "en_US", 2003000),
    ("u1", "ios", "AT_tok1", "AT_dev1", "en_US", 2003000),
    (None, None, None, None, None, None),
]


def test_before_must_be_a_date_not_after_today() -> None:
    today = dt.date(2025, 6, 1)
    assert parse_before("2025-06-01", today) == today
    with pytest.raises(ConfigError, match="in the future"):
        parse_before("2025-06-02", today)
    with pytest.raises(ConfigError, match="not a date"):
        parse_before("2025-02-30", today)


def test_the_row_checksum_ignores_order_but_counts_duplicates_and_the_day() -> None:
    assert row_checksum(DAY, ROWS) == row_checksum(DAY, ROWS[::-1])
    assert row_checksum(DAY, ROWS) != row_checksum(DAY, ROWS[1:])  # a lost duplicate shows
    assert row_checksum(DAY, ROWS) != row_checksum(DAY + dt.timedelta(days=1), ROWS)
    changed = [*ROWS[:2], ("u2", None, None, None, None, None)]
    assert row_checksum(DAY, ROWS) != row_checksum(DAY, changed)


def _archived(root: Path) -> tuple[LocalStore, Manifest, Part]:
    store = LocalStore(root)
    manifest = Manifest(USER_LOGINS, DAY, {})
    data = encode(from_rows(USER_LOGINS, ROWS))
    part = Part(
        "part-0.parquet",
        3,
        hashlib.sha256(data).hexdigest(),
        row_checksum(DAY, ROWS),
        [],
        "archived",
    )
    store.put(manifest.path(part.file), data)
    return store, manifest, part


def test_a_file_that_matches_its_manifest_reads_back(tmp_path: Path) -> None:
    store, manifest, part = _archived(tmp_path)
    assert to_rows(read_part(store, manifest, part)) == ROWS
    assert (tmp_path / "create_date=2024-01-31" / "part-0.parquet").exists()
    assert not list(tmp_path.rglob(".*.tmp"))  # the temporary name is gone


@pytest.mark.parametrize("change", ["truncate", "rows", "missing"])
def test_a_file_that_does_not_match_its_manifest_is_refused(tmp_path: Path, change: str) -> None:
    store, manifest, part = _archived(tmp_path)
    path = tmp_path / manifest.path(part.file)
    if change == "truncate":
        path.write_bytes(path.read_bytes()[:50])
    elif change == "rows":  # a valid file with other rows, and a manifest updated to its sha256
        data = encode(from_rows(USER_LOGINS, ROWS[:2]))
        path.write_bytes(data)
        part.sha256 = hashlib.sha256(data).hexdigest()
    else:
        path.unlink()
    with pytest.raises(ArchiveMismatch):
        read_part(store, manifest, part)


def test_days_are_found_by_their_manifests(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    store.put("create_date=2024-01-02/manifest.json", b"{}")
    store.put("create_date=2024-01-01/manifest.json", b"{}")
    store.put("create_date=2024-01-03/part-1.parquet", b"")  # no manifest: not a day yet
    store.put("rejected_messages/rejected_date=2024-01-05/manifest.json", b"{}")
    assert archived_days(store, USER_LOGINS) == [dt.date(2024, 1, 1), dt.date(2024, 1, 2)]
    assert archived_days(store, REJECTED) == [dt.date(2024, 1, 5)]


def test_a_target_that_cannot_be_written_is_an_archive_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(ArchiveError, match="cannot write"):
        LocalStore(tmp_path / "file" / "dir").put("x/y", b"1")


def test_uris() -> None:
    s3 = open_store("s3://bucket/some/prefix/")
    assert isinstance(s3, S3Store)
    assert (s3.bucket, s3.prefix) == ("bucket", "some/prefix")
    assert isinstance(open_store("/mnt/archive"), LocalStore)
    assert isinstance(open_store("file:///mnt/archive"), LocalStore)
    with pytest.raises(ConfigError):
        open_store("s3:///prefix")
    with pytest.raises(ConfigError):
        open_store("ftp://host/x")


def test_without_pyarrow_archive_says_which_extra_to_install(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['pyarrow'] = None; from login_etl.cli import main; "
        f"sys.exit(main(['archive', '--before', '2024-01-01', '--to', {str(tmp_path)!r}]))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "login-etl: archive and restore need their extra: pip install 'login-etl[archive]' (pyarrow)"
    )


def test_restore_from_a_place_with_no_archive_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="no archive here"):
        restore_archive(Settings(database_url="postgresql://nobody@127.0.0.1:1/x"), str(tmp_path))


def test_the_row_checksum_follows_the_documented_rules() -> None:
    # docs/archive.md, "Row checksum", by hand: TAB between fields, \ and TAB escaped, NULL \N.
    rows = [("a\tb", "c\\d", None, "", "\\N", 5), ("a\tb", "c\\d", None, "", "\\N", 5)]
    line = "2024-01-31\ta\\tb\tc\\\\d\t\\N\t\t\\\\N\t5"
    digest = hashlib.sha256(line.encode()).hexdigest()
    other = hashlib.sha256(b"2024-01-31\tu1\tios\tAT_tok1\tAT_dev1\ten_US\t2003000").hexdigest()
    expected = "".join(sorted([digest, digest, other]))
    assert row_checksum(DAY, [*rows, ROWS[0]]) == hashlib.sha256(expected.encode()).hexdigest()
    assert row_checksum(DAY, []) == hashlib.sha256(b"").hexdigest()


def test_a_format_1_manifest_is_read_and_its_parts_checked_the_old_way(tmp_path: Path) -> None:
    store, manifest, part = _archived(tmp_path)
    old = sum(
        int.from_bytes(hashlib.sha256(repr((DAY.isoformat(), *r)).encode()).digest(), "big")
        for r in ROWS
    )
    document = {
        "format": 1,
        "table": "user_logins",
        "day": DAY.isoformat(),
        "parts": [part.as_json() | {"row_checksum": f"{old % (1 << 256):064x}"}],
    }
    del document["parts"][0]["checksum_rule"]  # format 1 had none
    store.put(manifest.path("manifest.json"), json.dumps(document).encode())

    loaded = load_manifest(store, USER_LOGINS, DAY)

    assert to_rows(read_part(store, loaded, loaded.parts[0])) == ROWS
    loaded.parts[0].row_checksum = f"{(old + 1) % (1 << 256):064x}"
    with pytest.raises(ArchiveMismatch, match="row checksum"):
        read_part(store, loaded, loaded.parts[0])


def test_postgres_csv_keeps_null_and_the_empty_string_apart() -> None:
    # COPY … (FORMAT csv): NULL is an empty unquoted field, "" the empty string.
    data = b',"",NULL,"a\nb","q""",7\n"\\N",,,,,\n'
    assert to_rows(from_csv(USER_LOGINS, data)) == [
        (None, "", "NULL", "a\nb", 'q"', 7),
        ("\\N", None, None, None, None, None),
    ]
    assert from_csv(USER_LOGINS, b"").num_rows == 0
