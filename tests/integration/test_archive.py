"""`archive` and `restore`: every row back exactly, crashes that lose and double nothing, faults
that delete nothing, tokens that still reveal, duplicates found in the archive in place."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import psycopg
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import requests

from login_etl.adapters.archive_store import LocalStore
from login_etl.config import Settings
from login_etl.core.masking import token_key_id
from login_etl.demo.services import MotoSqs
from login_etl.errors import ArchiveError
from login_etl.keys import KeyRing
from login_etl.ops.archive import archive_before
from tests.support import free_port

DB = psycopg.Connection[tuple[Any, ...]]
Cli = Callable[..., subprocess.CompletedProcess[str]]

TODAY = dt.datetime.now(dt.UTC).date()
OLD_DAYS = [TODAY - dt.timedelta(days=n) for n in (12, 11, 9)]
BEFORE = (TODAY - dt.timedelta(days=5)).isoformat()
COLUMNS = "user_id, device_type, masked_ip, masked_device_id, locale, app_version, create_date"


def fill(db: DB, keys: KeyRing) -> None:
    """Rows on three old days and today: shared devices and IPs, and one exact duplicate row."""
    rows = []
    for n, day in enumerate([*OLD_DAYS, TODAY]):
        for i in range(7):
            device = keys.masker.mask("device_id", f"dev-{i % 3}").token
            ip = keys.masker.mask("ip", f"10.0.{n}.{i % 4}").token
            rows.append((f"user-{i}", "android", ip, device, "en_US", 2003000 + i, day))
        rows.append(rows[-1])  # an exact duplicate: the archive must keep both
        rows.append((None, None, None, None, None, None, day))  # all nullable columns
    with db.cursor() as cur:
        cur.executemany(
            f"INSERT INTO user_logins ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)", rows
        )


def table_rows(db: DB) -> Counter[tuple[Any, ...]]:
    return Counter(db.execute(f"SELECT {COLUMNS} FROM user_logins").fetchall())


def archive_rows(root: Path) -> Counter[tuple[Any, ...]]:
    """Every row in the archive's manifests' parts, with the day from the path."""
    found: Counter[tuple[Any, ...]] = Counter()
    for manifest_path in root.glob("create_date=*/manifest.json"):
        manifest = json.loads(manifest_path.read_text())
        day = dt.date.fromisoformat(manifest["day"])
        for part in manifest["parts"]:
            table = pq.read_table(manifest_path.parent / part["file"])
            for row in table.to_pylist():
                found[(*row.values(), day)] += 1
    return found


def test_archive_then_restore_gives_back_every_row(
    cli: Cli, db: DB, keys: KeyRing, tmp_path: Path
) -> None:
    fill(db, keys)
    original = table_rows(db)
    root = tmp_path / "archive"

    done = cli("archive", "--before", BEFORE, "--to", str(root))

    assert done.returncode == 0, done.stderr
    assert "Archived 27 rows of 3 days" in done.stdout
    assert {r[-1] for r in table_rows(db)} == {TODAY}
    assert table_rows(db) + archive_rows(root) == original
    manifest = json.loads((root / f"create_date={OLD_DAYS[0]}" / "manifest.json").read_text())
    assert manifest["rows"] == 9
    assert manifest["parts"][0]["state"] == "archived"
    tokens = [
        keys.masker.mask("ip", "10.0.0.1").token,
        keys.masker.mask("device_id", "dev-0").token,
    ]
    assert manifest["key_ids"] == sorted({token_key_id(t) for t in tokens})  # the keys needed
    assert (
        pq.read_metadata(root / f"create_date={OLD_DAYS[0]}" / manifest["parts"][0]["file"])
        .row_group(0)
        .column(0)
        .compression
        == "ZSTD"
    )

    again = cli("archive", "--before", BEFORE, "--to", str(root))
    assert again.returncode == 0, again.stderr
    assert "Archived 0 rows" in again.stdout

    restored = cli("restore", "--from", str(root))
    assert restored.returncode == 0, restored.stderr
    assert table_rows(db) == original

    twice = cli("restore", "--from", str(root))
    assert twice.returncode == 0, twice.stderr
    assert "Restored 0 rows" in twice.stdout
    assert table_rows(db) == original

    # Archiving restored days again replaces their parts: a later restore still doubles nothing.
    assert cli("archive", "--before", BEFORE, "--to", str(root)).returncode == 0
    assert table_rows(db) + archive_rows(root) == original
    assert cli("restore", "--from", str(root), "--since", str(OLD_DAYS[1])).returncode == 0
    assert table_rows(db) + archive_rows_not_restored(root, OLD_DAYS[0]) == original


def archive_rows_not_restored(root: Path, day: dt.date) -> Counter[tuple[Any, ...]]:
    return Counter({row: n for row, n in archive_rows(root).items() if row[-1] == day})


def test_rows_arriving_later_for_an_archived_day_become_a_second_part(
    cli: Cli, db: DB, keys: KeyRing, tmp_path: Path
) -> None:
    fill(db, keys)
    root = tmp_path / "archive"
    assert cli("archive", "--before", BEFORE, "--to", str(root)).returncode == 0
    late = ("late-user", "ios", None, None, "de_DE", 1000000, OLD_DAYS[0])
    db.execute(f"INSERT INTO user_logins ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)", late)
    everything = table_rows(db) + archive_rows(root)

    assert cli("archive", "--before", BEFORE, "--to", str(root)).returncode == 0

    manifest = json.loads((root / f"create_date={OLD_DAYS[0]}" / "manifest.json").read_text())
    assert [p["rows"] for p in manifest["parts"]] == [9, 1]
    assert table_rows(db) + archive_rows(root) == everything


CRASH_POINTS = ["after_file", "after_verify", "after_manifest", "before_commit", "after_commit"]
CRASH = str(Path(__file__).with_name("archive_crash.py"))


def killed_at(cli: Cli, point: str, *args: str) -> subprocess.CompletedProcess[str]:
    """`archive_crash.py` (archive or restore, killed with SIGKILL at `point`) under the CLI's
    environment."""
    return subprocess.run(
        [sys.executable, CRASH, args[0], point, *args[1:]],
        capture_output=True,
        text=True,
        env=cli.env,  # type: ignore[attr-defined]
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("point", CRASH_POINTS)
def test_kill_9_between_file_and_delete_loses_and_doubles_nothing(
    point: str, cli: Cli, db: DB, keys: KeyRing, tmp_path: Path
) -> None:
    fill(db, keys)
    original = table_rows(db)
    root = tmp_path / "archive"

    crashed = killed_at(cli, point, "archive", str(root), BEFORE)

    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert table_rows(db) + archive_rows_committed(db, root) == original
    done = cli("archive", "--before", BEFORE, "--to", str(root))
    assert done.returncode == 0, done.stderr
    assert {r[-1] for r in table_rows(db)} == {TODAY}
    assert table_rows(db) + archive_rows(root) == original
    assert cli("restore", "--from", str(root)).returncode == 0
    assert table_rows(db) == original


def archive_rows_committed(db: DB, root: Path) -> Counter[tuple[Any, ...]]:
    """Archived rows whose delete committed (a crashed run's pending part is not the truth)."""
    parts = {
        (day, part)
        for day, part in db.execute(
            "SELECT day, part FROM login_etl.archived_parts WHERE state = 'archived'"
        ).fetchall()
    }
    found: Counter[tuple[Any, ...]] = Counter()
    for day, part in parts:
        for row in pq.read_table(root / f"create_date={day}" / part).to_pylist():
            found[(*row.values(), day)] += 1
    return found


def test_a_partially_written_file_is_not_trusted_and_is_rewritten(
    cli: Cli, db: DB, keys: KeyRing, tmp_path: Path
) -> None:
    fill(db, keys)
    original = table_rows(db)
    root = tmp_path / "archive"
    crashed = killed_at(cli, "after_manifest", "archive", str(root), BEFORE)
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    day_dir = root / f"create_date={OLD_DAYS[0]}"
    part = day_dir / json.loads((day_dir / "manifest.json").read_text())["parts"][0]["file"]
    part.write_bytes(part.read_bytes()[:100])  # cut short, as a copy that stopped midway

    done = cli("archive", "--before", BEFORE, "--to", str(root))

    assert done.returncode == 0, done.stderr
    assert len(pq.read_table(part)) == 9  # rewritten whole
    assert table_rows(db) + archive_rows(root) == original


def test_restore_refuses_a_manifest_that_does_not_match_its_files(
    cli: Cli, db: DB, keys: KeyRing, tmp_path: Path
) -> None:
    fill(db, keys)
    root = tmp_path / "archive"
    assert cli("archive", "--before", BEFORE, "--to", str(root)).returncode == 0
    before = table_rows(db)
    day_dir = root / f"create_date={OLD_DAYS[1]}"
    manifest = json.loads((day_dir / "manifest.json").read_text())
    (day_dir / manifest["parts"][0]["file"]).write_bytes(pq_bytes_of_other_rows(tmp_path))

    refused = cli("restore", "--from", str(root))

    assert refused.returncode == 1
    assert refused.stderr.strip().count("\n") == 0
    assert "does not match its manifest" in refused.stderr
    assert table_rows(db) == before  # nothing loaded, not even the good days


def pq_bytes_of_other_rows(tmp_path: Path) -> bytes:
    import pyarrow as pa

    path = tmp_path / "other.parquet"
    pq.write_table(pa.table({"user_id": ["x"]}), path)
    return path.read_bytes()


def test_an_unwritable_target_deletes_nothing(
    cli: Cli, db: DB, keys: KeyRing, tmp_path: Path
) -> None:
    fill(db, keys)
    original = table_rows(db)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")

    failed = cli("archive", "--before", BEFORE, "--to", str(blocker / "archive"))

    assert failed.returncode == 1
    assert failed.stderr.startswith("login-etl: error: archive ")
    assert failed.stderr.strip().count("\n") == 0
    assert table_rows(db) == original


@pytest.mark.parametrize(
    ("before", "says"),
    [
        ((TODAY + dt.timedelta(days=1)).isoformat(), "in the future"),
        ("2024-02-30", "is not a date"),
        ("yesterday", "is not a date"),
    ],
)
def test_before_in_the_future_or_not_a_date_is_a_usage_error(
    before: str, says: str, cli: Cli, tmp_path: Path
) -> None:
    done = cli("archive", "--before", before, "--to", str(tmp_path))
    assert done.returncode == 2
    assert says in done.stderr
    assert done.stderr.strip().count("\n") == 0


def test_archived_tokens_reveal_with_the_key_file(
    cli: Cli, db: DB, keys: KeyRing, tmp_path: Path
) -> None:
    fill(db, keys)
    root = tmp_path / "archive"
    assert cli("archive", "--before", BEFORE, "--to", str(root)).returncode == 0
    day_dir = root / f"create_date={OLD_DAYS[0]}"
    part = json.loads((day_dir / "manifest.json").read_text())["parts"][0]["file"]
    token = next(t for t in pq.read_table(day_dir / part).column("masked_ip").to_pylist() if t)

    revealed = cli("reveal", "--field", "ip", "--reason", "TICKET-9 archive check", token)

    assert revealed.returncode == 0, revealed.stderr
    assert revealed.stdout.startswith("10.0.0.")


def test_the_archive_read_in_place_gives_the_same_duplicate_groups(
    cli: Cli, db: DB, keys: KeyRing, tmp_path: Path
) -> None:
    fill(db, keys)
    old = f"create_date < '{BEFORE}'"
    in_postgres = {
        (device, logins, users)
        for device, logins, users in db.execute(
            "SELECT masked_device_id, count(*), count(DISTINCT user_id) FROM user_logins "
            f"WHERE {old} GROUP BY masked_device_id HAVING count(*) > 1"
        ).fetchall()
    }
    root = tmp_path / "archive"
    assert cli("archive", "--before", BEFORE, "--to", str(root)).returncode == 0

    files = sorted(str(p) for p in root.glob("*/*.parquet"))  # as DuckDB's '…/*/*.parquet'
    dataset = ds.dataset(files, format="parquet", partitioning="hive", partition_base_dir=str(root))
    table = dataset.to_table()
    grouped = table.group_by("masked_device_id").aggregate(
        [([], "count_all"), ("user_id", "count_distinct")]
    )
    grouped = grouped.filter(pc.greater(grouped["count_all"], 1))
    in_archive = {
        (r["masked_device_id"], r["count_all"], r["user_id_count_distinct"])
        for r in grouped.to_pylist()
    }

    assert len(in_postgres) == 4  # three devices and the all-NULL rows
    assert in_archive == in_postgres
    assert table.schema.field("create_date") is not None  # the day, from the Hive path


def test_include_quarantine_archives_rejected_messages_still_encrypted(
    cli: Cli, db: DB, keys: KeyRing, tmp_path: Path
) -> None:
    old = dt.datetime.combine(OLD_DAYS[0], dt.time(12), tzinfo=dt.UTC)
    for n, when in enumerate([old, old, dt.datetime.now(dt.UTC)]):
        message_id = f"m-{n}"
        db.execute(
            "INSERT INTO login_etl.rejected_messages (message_id, rejected_at, sent_at, reason, "
            "body) VALUES (%s, %s, %s, 'bad', %s)",
            (message_id, when, when, keys.sealer.seal(message_id, '{"secret": "pii-body"}')),
        )
    query = "SELECT message_id, rejected_at, sent_at, reason, body FROM login_etl.rejected_messages"
    original = Counter(db.execute(query).fetchall())
    root = tmp_path / "archive"

    done = cli("archive", "--before", BEFORE, "--to", str(root), "--include-quarantine")

    assert done.returncode == 0, done.stderr
    assert "2 rejected messages" in done.stdout
    assert [r[0] for r in db.execute(query).fetchall()] == ["m-2"]
    files = list((root / "rejected_messages").rglob("*.parquet"))
    assert len(files) == 1
    assert b"pii-body" not in files[0].read_bytes()
    assert cli("restore", "--from", str(root)).returncode == 0
    assert Counter(db.execute(query).fetchall()) == original


def test_archive_and_restore_through_s3(cli: Cli, db: DB, keys: KeyRing, moto: MotoSqs) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=moto.endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    bucket = f"archive-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    aws = {
        "AWS_ENDPOINT_URL": moto.endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    fill(db, keys)
    original = table_rows(db)
    uri = f"s3://{bucket}/logins/v1"

    done = cli("archive", "--before", BEFORE, "--to", uri, **aws)

    assert done.returncode == 0, done.stderr
    keys_written = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert len(keys_written) == 6
    assert all(k.startswith("logins/v1/create_date=") for k in keys_written)
    assert {r[-1] for r in table_rows(db)} == {TODAY}
    restored = cli("restore", "--from", uri, **aws)
    assert restored.returncode == 0, restored.stderr
    assert table_rows(db) == original

    # A bucket that does not exist, and an endpoint nobody answers: exit 1, nothing deleted.
    for target, env in [
        (f"s3://missing-{bucket}/x", aws),
        (uri, aws | {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}),
    ]:
        failed = cli("archive", "--before", BEFORE, "--to", target, **env)
        assert failed.returncode == 1, failed.stderr
        assert failed.stderr.startswith("login-etl: error: archive s3://")
        assert failed.stderr.strip().count("\n") == 0
        assert table_rows(db) == original


def test_a_partitioned_user_logins_loses_whole_old_partitions(
    cli: Cli, db: DB, keys: KeyRing, tmp_path: Path
) -> None:
    db.execute("DROP TABLE user_logins")
    db.execute(
        "CREATE TABLE user_logins (user_id varchar(128), device_type varchar(32), "
        "masked_ip varchar(256), masked_device_id varchar(256), locale varchar(32), "
        "app_version integer, create_date date) PARTITION BY RANGE (create_date)"
    )
    bounds = {
        "logins_old": (TODAY - dt.timedelta(days=12), TODAY - dt.timedelta(days=10)),
        "logins_mid": (TODAY - dt.timedelta(days=10), TODAY - dt.timedelta(days=3)),
        "logins_now": (TODAY - dt.timedelta(days=3), TODAY + dt.timedelta(days=30)),
    }

    def create(name: str) -> None:
        lower, upper = bounds[name]
        db.execute(
            f"CREATE TABLE {name} PARTITION OF user_logins FOR VALUES FROM ('{lower}') TO ('{upper}')"
        )

    for name in bounds:
        create(name)
    fill(db, keys)
    original = table_rows(db)
    root = tmp_path / "archive"

    done = cli("archive", "--before", BEFORE, "--to", str(root))

    assert done.returncode == 0, done.stderr
    assert "1 partitions dropped" in done.stdout
    assert "Archived 27 rows of 3 days" in done.stdout
    left = {r[0] for r in db.execute("SELECT relname FROM pg_class WHERE relname LIKE 'logins_%'")}
    assert left == {"logins_mid", "logins_now"}  # mid ends after --before: emptied row by row
    assert {r[-1] for r in table_rows(db)} == {TODAY}
    assert table_rows(db) + archive_rows(root) == original

    create("logins_old")  # restore needs somewhere to put the rows
    restored = cli("restore", "--from", str(root))
    assert restored.returncode == 0, restored.stderr
    assert table_rows(db) == original


class _InsertsDuringArchive(LocalStore):
    """A target that, while the first day's archive transaction is open, has a concurrent `run`
    insert a row for that same day (as a delayed message would)."""

    def __init__(self, root: Path, database_url: str, row: tuple[Any, ...]) -> None:
        super().__init__(root)
        self.database_url = database_url
        self.row: tuple[Any, ...] | None = row

    def put(self, path: str, data: bytes) -> None:
        super().put(path, data)
        if self.row is not None and path.endswith("manifest.json"):
            with psycopg.connect(self.database_url, autocommit=True) as other:
                other.execute(
                    f"INSERT INTO user_logins ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    self.row,
                )
            self.row = None


def test_a_row_inserted_for_a_day_being_archived_is_kept_for_the_next_run(
    database_url: str, db: DB, keys: KeyRing, tmp_path: Path
) -> None:
    fill(db, keys)
    late = ("late-user", "ios", None, None, "de_DE", 1000000, OLD_DAYS[0])
    original = table_rows(db) + Counter([late])
    root = tmp_path / "archive"
    store = _InsertsDuringArchive(root, database_url, late)
    settings = Settings(database_url=database_url)

    first = archive_before(settings, dt.date.fromisoformat(BEFORE), str(root), store=store)

    assert first.rows == 27
    assert [r for r in table_rows(db) if r[-1] != TODAY] == [late]  # not deleted unarchived
    assert table_rows(db) + archive_rows(root) == original
    second = archive_before(settings, dt.date.fromisoformat(BEFORE), str(root))
    assert second.rows == 1
    assert table_rows(db) + archive_rows(root) == original


# The row checksum of docs/archive.md, written in PostgreSQL SQL from the rules there (not from
# the code): one line per row, escaped fields joined by TAB, sha256 per line, the hex digests
# sorted and concatenated, sha256 of that.
def _field(expression: str) -> str:
    return f"coalesce(replace(replace({expression}, '\\', '\\\\'), E'\\t', '\\t'), '\\N')"


SQL_CHECKSUM = """
SELECT encode(sha256(convert_to(coalesce(string_agg(h, '' ORDER BY h COLLATE "C"), ''), 'UTF8')),
              'hex')
FROM (SELECT encode(sha256(convert_to(concat_ws(E'\\t', {fields}), 'UTF8')), 'hex') AS h
      FROM {table} WHERE {day} = %s) AS lines
"""
USER_LOGINS_CHECKSUM = SQL_CHECKSUM.format(
    fields=", ".join(
        [
            "to_char(create_date, 'YYYY-MM-DD')",
            *(
                _field(c)
                for c in ("user_id", "device_type", "masked_ip", "masked_device_id", "locale")
            ),
            _field("app_version::text"),
        ]
    ),
    table="user_logins",
    day="create_date",
)
REJECTED_CHECKSUM = SQL_CHECKSUM.format(
    fields=", ".join(
        [
            "to_char(rejected_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')",
            _field("message_id"),
            _field("(extract(epoch FROM rejected_at) * 1000000)::bigint::text"),
            _field("(extract(epoch FROM sent_at) * 1000000)::bigint::text"),
            _field("reason"),
            _field("encode(body, 'hex')"),
        ]
    ),
    table="login_etl.rejected_messages",
    day="(rejected_at AT TIME ZONE 'UTC')::date",
)


def sql_checksum(db: DB, query: str, day: dt.date) -> str:
    found = db.execute(query, (day,)).fetchone()
    assert found is not None
    return str(found[0])


# Values that CSV, COPY and the checksum's escaping must all carry exactly.
AWKWARD = [
    "tab\there",
    "back\\slash",
    "\\N",
    "",
    "new\nline\r\n",
    'quote " and , comma',
    "\\.",
    "ünïcødé ✓",
    " spaced ",
    "NULL",
]


def test_the_manifest_checksum_is_recomputed_in_sql_and_awkward_values_come_back_exactly(
    cli: Cli, db: DB, keys: KeyRing, tmp_path: Path
) -> None:
    fill(db, keys)
    day = OLD_DAYS[1]
    for n, value in enumerate(AWKWARD):
        db.execute(
            f"INSERT INTO user_logins ({COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (value, value[:32], None, value, value[:32], -n, day),
        )
    original = table_rows(db)
    in_sql = {d: sql_checksum(db, USER_LOGINS_CHECKSUM, d) for d in OLD_DAYS}
    root = tmp_path / "archive"

    assert cli("archive", "--before", BEFORE, "--to", str(root)).returncode == 0

    for d in OLD_DAYS:
        manifest = json.loads((root / f"create_date={d}" / "manifest.json").read_text())
        assert manifest["format"] == 2
        assert [p["row_checksum"] for p in manifest["parts"]] == [in_sql[d]]
    assert table_rows(db) + archive_rows(root) == original
    assert cli("restore", "--from", str(root)).returncode == 0
    assert table_rows(db) == original
    assert {d: sql_checksum(db, USER_LOGINS_CHECKSUM, d) for d in OLD_DAYS} == in_sql


def test_rejected_messages_checksum_is_recomputed_in_sql(
    cli: Cli, db: DB, keys: KeyRing, tmp_path: Path
) -> None:
    when = dt.datetime.combine(OLD_DAYS[0], dt.time(23, 59, 58, 123456), tzinfo=dt.UTC)
    for n, reason in enumerate(["bad", "tab\tand\\"]):
        db.execute(
            "INSERT INTO login_etl.rejected_messages (message_id, rejected_at, sent_at, reason, "
            "body) VALUES (%s, %s, %s, %s, %s)",
            (f"m-{n}", when, None if n else when, reason, keys.sealer.seal(f"m-{n}", "{}")),
        )
    in_sql = sql_checksum(db, REJECTED_CHECKSUM, OLD_DAYS[0])
    root = tmp_path / "archive"

    done = cli("archive", "--before", BEFORE, "--to", str(root), "--include-quarantine")

    assert done.returncode == 0, done.stderr
    day_dir = root / "rejected_messages" / f"rejected_date={OLD_DAYS[0]}"
    manifest = json.loads((day_dir / "manifest.json").read_text())
    assert [p["row_checksum"] for p in manifest["parts"]] == [in_sql]


def test_kill_9_during_restore_loses_and_doubles_nothing(
    cli: Cli, db: DB, keys: KeyRing, tmp_path: Path
) -> None:
    fill(db, keys)
    original = table_rows(db)
    root = tmp_path / "archive"
    assert cli("archive", "--before", BEFORE, "--to", str(root)).returncode == 0

    crashed = killed_at(cli, "restore_before_commit", "restore", str(root))

    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert {r[-1] for r in table_rows(db)} == {TODAY}  # the first part's COPY rolled back
    assert cli("restore", "--from", str(root)).returncode == 0
    assert table_rows(db) == original


def _legacy_checksum(day: dt.date, rows: list[tuple[Any, ...]]) -> str:
    """Format 1's rule, as its manifests describe it: sum of sha256(repr((day, *values)))."""
    total = sum(
        int.from_bytes(hashlib.sha256(repr((day.isoformat(), *row)).encode()).digest(), "big")
        for row in rows
    )
    return f"{total % (1 << 256):064x}"


def test_an_archive_written_by_format_1_restores_and_is_still_checked(
    cli: Cli, db: DB, tmp_path: Path
) -> None:
    import pyarrow as pa

    root = tmp_path / "archive"
    day = OLD_DAYS[0]
    rows = [("u1", "ios", None, "AT_dev", "en_US", 7), ("u1", "ios", None, "AT_dev", "en_US", 7)]
    names = ["user_id", "device_type", "masked_ip", "masked_device_id", "locale", "app_version"]
    types = [pa.string()] * 5 + [pa.int32()]
    table = pa.table(
        [pa.array(c, t) for c, t in zip(zip(*rows, strict=True), types, strict=True)], names=names
    )
    day_dir = root / f"create_date={day}"
    day_dir.mkdir(parents=True)
    pq.write_table(table, day_dir / "part-old.parquet", compression="zstd")
    data = (day_dir / "part-old.parquet").read_bytes()
    part = {
        "file": "part-old.parquet",
        "rows": 2,
        "sha256": hashlib.sha256(data).hexdigest(),
        "row_checksum": _legacy_checksum(day, rows),
        "key_ids": [],
        "state": "archived",
    }
    manifest = {"format": 1, "table": "user_logins", "day": str(day), "parts": [part]}
    (day_dir / "manifest.json").write_text(json.dumps(manifest))

    wrong = manifest | {"parts": [part | {"row_checksum": _legacy_checksum(day, rows[:1])}]}
    (day_dir / "manifest.json").write_text(json.dumps(wrong))
    refused = cli("restore", "--from", str(root))
    assert refused.returncode == 1
    assert "does not match its manifest (rows or row checksum)" in refused.stderr

    (day_dir / "manifest.json").write_text(json.dumps(manifest))
    restored = cli("restore", "--from", str(root))
    assert restored.returncode == 0, restored.stderr
    assert table_rows(db) == Counter((*r, day) for r in rows)


def _moto_auth(moto: MotoSqs, count: str) -> None:
    """moto enforces IAM only after `count` requests ("0": from now on; "inf": never)."""
    answer = requests.post(
        f"{moto.endpoint}/moto-api/reset-auth",
        data=count.encode(),
        headers={"Content-Type": "text/plain"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text


def test_an_s3_target_that_denies_writes_deletes_nothing(
    cli: Cli, db: DB, keys: KeyRing, moto: MotoSqs
) -> None:
    root = {
        "endpoint_url": moto.endpoint,
        "region_name": "us-east-1",
        "aws_access_key_id": "test",
        "aws_secret_access_key": "test",
    }
    s3, iam = boto3.client("s3", **root), boto3.client("iam", **root)
    bucket, user = f"archive-{uuid.uuid4().hex[:12]}", f"reader-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    iam.create_user(UserName=user)
    read_only = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"}
        ],
    }
    iam.put_user_policy(UserName=user, PolicyName="read-only", PolicyDocument=json.dumps(read_only))
    key = iam.create_access_key(UserName=user)["AccessKey"]
    fill(db, keys)
    original = table_rows(db)

    _moto_auth(moto, "0")
    try:
        failed = cli(
            "archive",
            "--before",
            BEFORE,
            "--to",
            f"s3://{bucket}/logins",
            AWS_ENDPOINT_URL=moto.endpoint,
            AWS_ACCESS_KEY_ID=key["AccessKeyId"],
            AWS_SECRET_ACCESS_KEY=key["SecretAccessKey"],
            AWS_DEFAULT_REGION="us-east-1",
        )
    finally:
        _moto_auth(moto, "inf")

    assert failed.returncode == 1, failed.stderr
    assert failed.stderr.startswith(f"login-etl: error: archive s3://{bucket}/logins: cannot write")
    assert "AccessDenied" in failed.stderr
    assert failed.stderr.strip().count("\n") == 0
    assert table_rows(db) == original
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount") == 0


class _SecondRunDuringArchive(LocalStore):
    """A target that, while the first day's archive transaction is open, starts another archive
    of the same database (as a second cron job would)."""

    def __init__(self, root: Path, settings: Settings) -> None:
        super().__init__(root)
        self.settings = settings
        self.second: Exception | None = None

    def put(self, path: str, data: bytes) -> None:
        super().put(path, data)
        if self.second is None and path.endswith("manifest.json"):
            try:
                archive_before(self.settings, dt.date.fromisoformat(BEFORE), str(self.root))
            except ArchiveError as err:
                self.second = err


def test_a_second_archive_while_one_runs_stops_at_once(
    database_url: str, db: DB, keys: KeyRing, tmp_path: Path
) -> None:
    fill(db, keys)
    original = table_rows(db)
    settings = Settings(database_url=database_url)
    store = _SecondRunDuringArchive(tmp_path / "archive", settings)

    first = archive_before(settings, dt.date.fromisoformat(BEFORE), str(store.root), store=store)

    assert isinstance(store.second, ArchiveError)
    assert "another archive or restore is running" in str(store.second)
    assert first.rows == 27
    assert table_rows(db) + archive_rows(store.root) == original
