"""`login-etl archive`: move old rows to Parquet files, one directory per day, then delete them.

Layout under the target (local directory or s3://bucket/prefix)::

    create_date=2024-01-31/part-<checksum>.parquet      user_logins rows of that day
    create_date=2024-01-31/manifest.json                the day's parts: rows, checksums, keys
    rejected_messages/rejected_date=…/…                 with --include-quarantine

A day, in one REPEATABLE READ transaction that holds its rows locked:
1. read the rows; write them as a new part (all at once: temp+rename, or one S3 PUT);
2. read the file back: row count and an order-independent row checksum must match;
3. write the manifest listing the part as "pending";
4. delete exactly the rows read (same snapshot), and record the part in
   login_etl.archived_parts — the commit point; then mark the manifest entry "archived".

A crash anywhere loses and doubles nothing: before the commit, the rows are still in the table
and the part has no marker, so the rerun treats it as untrusted, writes the rows again and drops
the stale part; after it, the marker says the part holds rows that left the table. Rows that
arrive later for an archived day (a delayed message, a replay) become another part.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any

import psycopg

from login_etl.adapters import parquet_files
from login_etl.adapters.archive_store import ArchiveStore, open_store
from login_etl.adapters.postgres import archive as sql
from login_etl.adapters.postgres import connect
from login_etl.adapters.postgres.archive import REJECTED, USER_LOGINS, Row, Source
from login_etl.config import Settings
from login_etl.errors import ArchiveError, ArchiveMismatch, ConfigError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT = 1

# Tests only: LOGIN_ETL_TEST_CRASH_AT=<point> ends the process with status 137 (like kill -9) there.
_CRASH_ENV = "LOGIN_ETL_TEST_CRASH_AT"


def crash_point(name: str) -> None:
    """Die at once, without cleanup, when the fault-injection variable names this point."""
    if os.environ.get(_CRASH_ENV) == name:
        log.warning("crash point %s: exiting", name)
        os._exit(137)


def _canonical(value: object) -> object:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


_PLAIN = frozenset({str, int, type(None)})


def row_digest(day: dt.date, row: Row) -> int:
    """A 256-bit hash of one row, its day included: sha256 of the repr of the tuple (day, values),
    bytes as hex and times as UTC ISO text. repr is unambiguous and about twice as fast as JSON,
    and this checksum is hashed twice for every archived row."""
    values = tuple(v if type(v) in _PLAIN else _canonical(v) for v in row)
    text = repr((day.isoformat(), *values))
    return int.from_bytes(hashlib.sha256(text.encode()).digest(), "big")


def row_checksum(day: dt.date, rows: list[Row]) -> str:
    """Order-independent checksum of a multiset of rows: the sum of their hashes mod 2**256."""
    total = sum(row_digest(day, row) for row in rows) % (1 << 256)
    return f"{total:064x}"


@dataclass
class Part:
    file: str
    rows: int
    sha256: str
    row_checksum: str
    key_ids: list[int]
    state: str  # "pending" until the delete committed, then "archived"

    def as_json(self) -> dict[str, Any]:
        return self.__dict__.copy()


@dataclass
class Manifest:
    source: Source
    day: dt.date
    schema: dict[str, str]
    parts: list[Part] = field(default_factory=list)

    @property
    def directory(self) -> str:
        return f"{self.source.directory}{self.source.day_column}={self.day.isoformat()}/"

    def path(self, file: str) -> str:
        return self.directory + file

    def dumps(self) -> bytes:
        document = {
            "format": FORMAT,
            "table": self.source.name,
            "day": self.day.isoformat(),
            "compression": "zstd",
            "row_checksum": "sum of sha256(repr((day, *values))) mod 2**256, as hex",
            "schema": self.schema,
            "key_ids": sorted({k for p in self.parts for k in p.key_ids}),
            "rows": sum(p.rows for p in self.parts),
            "parts": [p.as_json() for p in self.parts],
        }
        return (json.dumps(document, indent=2) + "\n").encode()


def load_manifest(store: ArchiveStore, source: Source, day: dt.date) -> Manifest:
    """The day's manifest (an empty one if there is none); ArchiveMismatch if it is unusable."""
    manifest = Manifest(source, day, parquet_files.schema_of(source))
    data = store.get(manifest.path(MANIFEST))
    if data is None:
        return manifest
    where = f"{store.uri}/{manifest.path(MANIFEST)}"
    try:
        document = json.loads(data)
        if document["format"] != FORMAT or document["table"] != source.name:
            raise ArchiveMismatch(f"{where}: not a format-{FORMAT} manifest of {source.name}")
        manifest.parts = [Part(**p) for p in document["parts"]]
    except (ValueError, KeyError, TypeError) as err:
        raise ArchiveMismatch(f"{where}: not a valid manifest ({type(err).__name__})") from None
    return manifest


def read_part(store: ArchiveStore, manifest: Manifest, part: Part) -> list[Row]:
    """The part's rows, after checking the file against the manifest (size, sha256, rows)."""
    where = f"{store.uri}/{manifest.path(part.file)}"
    data = store.get(manifest.path(part.file))
    if data is None:
        raise ArchiveMismatch(f"{where} is listed in its manifest but missing")
    if hashlib.sha256(data).hexdigest() != part.sha256:
        raise ArchiveMismatch(f"{where} does not match its manifest (sha256)")
    rows = parquet_files.decode(manifest.source, data, where)
    if len(rows) != part.rows or row_checksum(manifest.day, rows) != part.row_checksum:
        raise ArchiveMismatch(f"{where} does not match its manifest (rows or row checksum)")
    return rows


@dataclass
class ArchiveReport:
    days: int = 0
    rows: int = 0
    bytes: int = 0
    rejected: int = 0
    partitions_dropped: int = 0


def parse_before(text: str, today: dt.date | None = None) -> dt.date:
    """`--before`: a date (YYYY-MM-DD) not after today (UTC); else ConfigError."""
    try:
        before = dt.date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--before {text!r} is not a date: use YYYY-MM-DD") from None
    today = today or dt.datetime.now(dt.UTC).date()
    if before > today:
        raise ConfigError(f"--before {before} is in the future: archive only past days")
    return before


def _unique_name(checksum: str, kept: list[Part]) -> str:
    taken = {p.file for p in kept}
    name = f"part-{checksum[:16]}.parquet"
    n = 1
    while name in taken:  # identical rows archived before: a second copy is a second part
        name = f"part-{checksum[:16]}-{n}.parquet"
        n += 1
    return name


def _settle(conn: sql.Conn, manifest: Manifest) -> tuple[list[Part], list[Part]]:
    """Split the day's parts into those holding rows that left the table, and stale ones.

    A "pending" part is kept only if its delete committed (its marker says so); an archived part
    is dropped when `restore` brought its rows back here (they are in the table again).
    """
    kept: list[Part] = []
    stale: list[Part] = []
    for part in manifest.parts:
        state = sql.marker(conn, manifest.source, manifest.day, part.file)
        if (part.state == "pending" and state == "archived") or (
            part.state == "archived" and state != "restored"
        ):
            part.state = "archived"
            kept.append(part)
        else:
            stale.append(part)
    return kept, stale


@dataclass
class _Written:
    """A day's new part, written and verified, whose rows are not yet deleted."""

    manifest: Manifest
    part: Part
    stale: list[Part]
    bytes: int


def _write_day(
    conn: sql.Conn, store: ArchiveStore, source: Source, day: dt.date, read_from: Source
) -> _Written | None:
    """Steps 1-3 for one day, inside the caller's transaction (which holds the rows locked)."""
    manifest = load_manifest(store, source, day)
    rows, key_ids = sql.lock_day(conn, read_from, day)
    kept, stale = _settle(conn, manifest)
    if not rows:
        if stale or any(p.state != "archived" for p in manifest.parts):
            manifest.parts = kept
            store.put(manifest.path(MANIFEST), manifest.dumps())
        return None
    checksum = row_checksum(day, rows)
    name = _unique_name(checksum, kept)
    data = parquet_files.encode(source, rows)
    store.put(manifest.path(name), data)
    crash_point("after_file")
    part = Part(
        file=name,
        rows=len(rows),
        sha256=hashlib.sha256(data).hexdigest(),
        row_checksum=checksum,
        key_ids=sorted(key_ids),
        state="pending",
    )
    manifest.parts = [*kept, part]
    read_part(store, manifest, part)  # read back from the target, not from memory
    crash_point("after_verify")
    store.put(manifest.path(MANIFEST), manifest.dumps())
    crash_point("after_manifest")
    for old in stale:
        if old.file != name:
            store.delete(manifest.path(old.file))
        sql.drop_marker(conn, source, day, old.file)
    sql.set_marker(conn, source, day, name, rows=len(rows), checksum=checksum, state="archived")
    return _Written(manifest, part, stale, len(data))


def _finished(store: ArchiveStore, written: _Written, report: ArchiveReport) -> None:
    """After the commit: the manifest says so, and the report counts the day."""
    written.part.state = "archived"
    store.put(written.manifest.path(MANIFEST), written.manifest.dumps())
    report.days += 1
    report.rows += written.part.rows
    report.bytes += written.bytes
    if written.manifest.source is REJECTED:
        report.rejected += written.part.rows


def _archive_day(
    conn: sql.Conn, store: ArchiveStore, source: Source, day: dt.date, report: ArchiveReport
) -> None:
    with conn.transaction():
        written = _write_day(conn, store, source, day, source)
        if written is None:
            return
        deleted = sql.delete_day(conn, source, day)
        if deleted != written.part.rows:
            raise ArchiveError(
                f"{source.name} {day}: deleted {deleted} rows, archived {written.part.rows}"
            )
        crash_point("before_commit")
    crash_point("after_commit")
    _finished(store, written, report)


def _archive_partition(
    conn: sql.Conn, store: ArchiveStore, partition: sql.Partition, report: ArchiveReport
) -> None:
    """A whole partition of old days: every day written and verified, then detach and drop."""
    read_from = dataclasses.replace(USER_LOGINS, table=partition.qualified)
    written = []
    with conn.transaction():
        for day in sql.lock_partition(conn, partition):
            one = _write_day(conn, store, USER_LOGINS, day, read_from)
            if one is not None:
                written.append(one)
        sql.drop_partition(conn, USER_LOGINS, partition)
        crash_point("before_commit")
    crash_point("after_commit")
    for one in written:
        _finished(store, one, report)
    report.partitions_dropped += 1


def archive_before(
    settings: Settings,
    before: dt.date,
    uri: str,
    *,
    include_quarantine: bool = False,
    store: ArchiveStore | None = None,
) -> ArchiveReport:
    """Move rows of days before `before` to the archive at `uri`; resumable and idempotent.

    A `user_logins` partitioned by create_date loses whole partitions that hold only old days
    (detached and dropped); the rest is deleted day by day.
    """
    parquet_files.require()
    store = store or open_store(uri)
    sources = [USER_LOGINS, REJECTED] if include_quarantine else [USER_LOGINS]
    report = ArchiveReport()
    with connect(settings.database_url.get_secret_value()) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        with conn.transaction():
            partitions = sql.partitions_before(conn, USER_LOGINS, before) or []
        for partition in partitions:
            _archive_partition(conn, store, partition, report)
            log.info("archived and dropped partition %s", partition.qualified)
        for source in sources:
            with conn.transaction():
                days = sql.days_before(conn, source, before)
            for day in days:
                _archive_day(conn, store, source, day, report)
                log.info("archived %s of %s", source.name, day)
    return report
