"""`login-etl archive`: move old rows to Parquet files, one directory per day, then delete them.

Layout under the target (local directory or s3://bucket/prefix)::

    create_date=2024-01-31/part-<checksum>.parquet      user_logins rows of that day
    create_date=2024-01-31/manifest.json                the day's parts: rows, checksums, keys
    rejected_messages/rejected_date=…/…                 with --include-quarantine

A day, in one REPEATABLE READ transaction (one archive or restore at a time: an advisory lock):
1. read the rows (COPY, into Arrow); write them as a new part (all at once: temp+rename, or one
   S3 PUT);
2. read the file back: its sha256 and its rows must equal what was written and read;
3. write the manifest listing the part as "pending", with its row checksum (docs/archive.md);
4. delete exactly the rows read (one DELETE in the same snapshot), and record the part in
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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from login_etl.adapters import parquet_files
from login_etl.adapters.archive_store import ArchiveStore, open_store
from login_etl.adapters.parquet_files import ROW_CHECKSUM_RULE, Table
from login_etl.adapters.postgres import archive as sql
from login_etl.adapters.postgres import connect, credentials
from login_etl.adapters.postgres.archive import REJECTED, USER_LOGINS, Row, Source
from login_etl.config import Settings
from login_etl.errors import ArchiveError, ArchiveMismatch, ConfigError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
FORMAT = 2  # 1: the row checksum was over Python reprs (LEGACY_RULE), still read and verified
FORMATS = (1, 2)
LEGACY_RULE = "sum of sha256(repr((day, *values))) mod 2**256, as hex"

# The user_logins columns holding tokens, whose key ids the manifest lists.
TOKEN_COLUMNS = ("masked_ip", "masked_device_id")

Checkpoint = Callable[[str], None]
"""Called with a point's name ("after_file", "after_verify", "after_manifest", "before_commit",
"after_commit", "restore_before_commit") as the run passes it: the kill -9 tests inject one that
kills the process there."""


def no_checkpoint(name: str) -> None:
    """The default checkpoint: nothing happens."""


def _canonical(value: object) -> object:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


_PLAIN = frozenset({str, int, type(None)})


def legacy_row_checksum(day: dt.date, rows: list[Row]) -> str:
    """LEGACY_RULE, the row checksum of format-1 manifests (kept to verify their parts): the sum
    mod 2**256 of sha256(repr((day, *values))), bytes as hex and times as UTC ISO text."""
    total = 0
    for row in rows:
        values = tuple(v if type(v) in _PLAIN else _canonical(v) for v in row)
        text = repr((day.isoformat(), *values))
        total += int.from_bytes(hashlib.sha256(text.encode()).digest(), "big")
    return f"{total % (1 << 256):064x}"


def row_checksum(day: dt.date, rows: list[Row], source: Source = USER_LOGINS) -> str:
    """The row checksum (docs/archive.md) of rows given as tuples in `source.columns` order."""
    return parquet_files.row_checksum(parquet_files.from_rows(source, rows), day)


def _checksum_of(part: Part, day: dt.date, table: Table) -> str:
    if part.checksum_rule == LEGACY_RULE:
        return legacy_row_checksum(day, parquet_files.to_rows(table))
    return parquet_files.row_checksum(table, day)


@dataclass
class Part:
    file: str
    rows: int
    sha256: str
    row_checksum: str
    key_ids: list[int]
    state: str  # "pending" until the delete committed, then "archived"
    checksum_rule: str = ROW_CHECKSUM_RULE  # LEGACY_RULE in format-1 manifests

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
            "row_checksum": {ROW_CHECKSUM_RULE: parquet_files.ROW_CHECKSUM_TEXT},
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
        if document["format"] not in FORMATS or document["table"] != source.name:
            raise ArchiveMismatch(f"{where}: not a format 1 or 2 manifest of {source.name}")
        legacy = {"checksum_rule": LEGACY_RULE} if document["format"] == 1 else {}
        manifest.parts = [Part(**(p | legacy)) for p in document["parts"]]
        if any(p.checksum_rule not in (ROW_CHECKSUM_RULE, LEGACY_RULE) for p in manifest.parts):
            raise ArchiveMismatch(f"{where}: a part's row checksum rule is unknown")
    except (ValueError, KeyError, TypeError) as err:
        raise ArchiveMismatch(f"{where}: not a valid manifest ({type(err).__name__})") from None
    return manifest


def read_part(store: ArchiveStore, manifest: Manifest, part: Part, *, rows: bool = True) -> Table:
    """The part's rows, after checking the file against the manifest: its sha256, and (unless
    `rows` is False, for a file whose rows were checked already) its row count and checksum."""
    where = f"{store.uri}/{manifest.path(part.file)}"
    data = store.get(manifest.path(part.file))
    if data is None:
        raise ArchiveMismatch(f"{where} is listed in its manifest but missing")
    if hashlib.sha256(data).hexdigest() != part.sha256:
        raise ArchiveMismatch(f"{where} does not match its manifest (sha256)")
    table = parquet_files.decode(manifest.source, data, where)
    if rows and (
        table.num_rows != part.rows or _checksum_of(part, manifest.day, table) != part.row_checksum
    ):
        raise ArchiveMismatch(f"{where} does not match its manifest (rows or row checksum)")
    return table


@dataclass
class ArchiveReport:
    days: int = 0
    rows: int = 0
    bytes: int = 0
    rejected: int = 0
    partitions_dropped: int = 0


def exclusive(conn: sql.Conn) -> None:
    """Hold the database's archive lock for this connection: ArchiveError if another archive or
    restore holds it (two at once could each write a manifest of the same day)."""
    if not sql.lock_archive(conn):
        raise ArchiveError("another archive or restore is running on this database: rerun later")


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


@dataclass
class _Rows:
    table: Table
    key_ids: set[int]


def _read_day(conn: sql.Conn, source: Source, read_from: Source, day: dt.date) -> _Rows:
    """The day's rows (in this transaction's snapshot) and the key ids their tokens need."""
    if source is USER_LOGINS:  # the bulk: COPY CSV parsed by pyarrow, no Python object per row
        table = parquet_files.from_csv(source, sql.copy_out(conn, read_from, day))
        probes = parquet_files.token_probes(table, TOKEN_COLUMNS)
        return _Rows(table, sql.key_ids_of(conn, probes) if probes else set())
    rows, key_ids = sql.read_rows(conn, read_from, day)
    return _Rows(parquet_files.from_rows(source, rows), key_ids)


def _verify(store: ArchiveStore, manifest: Manifest, part: Part, written: Table) -> None:
    """The file, read back from the target (not from memory), holds exactly the rows read."""
    where = f"{store.uri}/{manifest.path(part.file)}"
    if not read_part(store, manifest, part, rows=False).equals(written):
        raise ArchiveMismatch(f"{where} read back does not hold the rows written")


def _write_day(
    conn: sql.Conn,
    store: ArchiveStore,
    source: Source,
    day: dt.date,
    read_from: Source,
    *,
    checkpoint: Checkpoint,
) -> _Written | None:
    """Steps 1-3 for one day, inside the caller's transaction (whose snapshot the DELETE uses)."""
    manifest = load_manifest(store, source, day)
    read = _read_day(conn, source, read_from, day)
    kept, stale = _settle(conn, manifest)
    if read.table.num_rows == 0:
        if stale or any(p.state != "archived" for p in manifest.parts):
            manifest.parts = kept
            store.put(manifest.path(MANIFEST), manifest.dumps())
        return None
    checksum = parquet_files.row_checksum(read.table, day)
    name = _unique_name(checksum, kept)
    data = parquet_files.encode(read.table)
    store.put(manifest.path(name), data)
    checkpoint("after_file")
    part = Part(
        file=name,
        rows=read.table.num_rows,
        sha256=hashlib.sha256(data).hexdigest(),
        row_checksum=checksum,
        key_ids=sorted(read.key_ids),
        state="pending",
    )
    manifest.parts = [*kept, part]
    _verify(store, manifest, part, read.table)
    checkpoint("after_verify")
    store.put(manifest.path(MANIFEST), manifest.dumps())
    checkpoint("after_manifest")
    for old in stale:
        if old.file != name:
            store.delete(manifest.path(old.file))
        sql.drop_marker(conn, source, day, old.file)
    sql.set_marker(conn, source, day, name, rows=part.rows, checksum=checksum, state="archived")
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
    conn: sql.Conn,
    store: ArchiveStore,
    source: Source,
    day: dt.date,
    report: ArchiveReport,
    *,
    checkpoint: Checkpoint,
) -> None:
    with conn.transaction():
        written = _write_day(conn, store, source, day, source, checkpoint=checkpoint)
        if written is None:
            return
        deleted = sql.delete_day(conn, source, day)
        if deleted != written.part.rows:
            raise ArchiveError(
                f"{source.name} {day}: deleted {deleted} rows, archived {written.part.rows}"
            )
        checkpoint("before_commit")
    checkpoint("after_commit")
    _finished(store, written, report)


def _archive_partition(
    conn: sql.Conn,
    store: ArchiveStore,
    partition: sql.Partition,
    report: ArchiveReport,
    checkpoint: Checkpoint,
) -> None:
    """A whole partition of old days: every day written and verified, then detach and drop."""
    read_from = dataclasses.replace(USER_LOGINS, table=partition.qualified)
    written = []
    with conn.transaction():
        for day in sql.lock_partition(conn, partition):
            one = _write_day(conn, store, USER_LOGINS, day, read_from, checkpoint=checkpoint)
            if one is not None:
                written.append(one)
        sql.drop_partition(conn, USER_LOGINS, partition)
        checkpoint("before_commit")
    checkpoint("after_commit")
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
    checkpoint: Checkpoint = no_checkpoint,
) -> ArchiveReport:
    """Move rows of days before `before` to the archive at `uri`; resumable and idempotent.

    A `user_logins` partitioned by create_date loses whole partitions that hold only old days
    (detached and dropped); the rest is deleted day by day. `checkpoint` is for crash tests.
    """
    parquet_files.require()
    store = store or open_store(uri)
    sources = [USER_LOGINS, REJECTED] if include_quarantine else [USER_LOGINS]
    report = ArchiveReport()
    with connect(credentials(settings)) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        with conn.transaction():
            exclusive(conn)
            partitions = sql.partitions_before(conn, USER_LOGINS, before) or []
        for partition in partitions:
            _archive_partition(conn, store, partition, report, checkpoint)
            log.info("archived and dropped partition %s", partition.qualified)
        for source in sources:
            with conn.transaction():
                days = sql.days_before(conn, source, before)
            for day in days:
                _archive_day(conn, store, source, day, report, checkpoint=checkpoint)
                log.info("archived %s of %s", source.name, day)
    return report
