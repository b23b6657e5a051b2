"""`login-etl restore`: load archived days back into PostgreSQL with COPY.

Every part is checked against its manifest first (sha256, row count, row checksum); a mismatch
refuses the whole restore before anything is loaded. To load a part, its file is read again and
must still have the sha256 that was checked. `user_logins` parts go in as CSV written by pyarrow,
one COPY per part, no Python object per row. A part is loaded in one transaction with
its marker in login_etl.archived_parts set to "restored", so a second restore (or one resumed
after a crash) skips it: restoring twice changes nothing. Parts still "pending" (their delete
never committed: the rows are still in the source table) are not loaded.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from login_etl.adapters import parquet_files
from login_etl.adapters.archive_store import ArchiveStore, open_store
from login_etl.adapters.postgres import archive as sql
from login_etl.adapters.postgres import connect, credentials
from login_etl.adapters.postgres.archive import REJECTED, USER_LOGINS, Source
from login_etl.config import Settings
from login_etl.errors import ArchiveError
from login_etl.ops.archive import (
    MANIFEST,
    Checkpoint,
    Manifest,
    exclusive,
    load_manifest,
    no_checkpoint,
    read_part,
)

_DAY = re.compile(r"=(\d{4}-\d{2}-\d{2})/" + re.escape(MANIFEST) + "$")


@dataclass
class RestoreReport:
    days: int = 0
    rows: int = 0
    skipped: int = 0  # parts already restored here


def archived_days(store: ArchiveStore, source: Source) -> list[dt.date]:
    """The days that have a manifest in the archive, oldest first."""
    prefix = source.directory
    days = []
    for path in store.list(prefix):
        rest = path[len(prefix) :]
        if not rest.startswith(f"{source.day_column}="):
            continue
        found = _DAY.search(rest)
        if found and rest.count("/") == 1:
            days.append(dt.date.fromisoformat(found.group(1)))
    return sorted(days)


def _manifests(store: ArchiveStore, since: dt.date | None, until: dt.date | None) -> list[Manifest]:
    manifests = []
    found = False
    for source in (USER_LOGINS, REJECTED):
        for day in archived_days(store, source):
            found = True
            if (since is None or day >= since) and (until is None or day <= until):
                manifests.append(load_manifest(store, source, day))
    if not found:  # a mistyped path or prefix, rather than an empty archive
        raise ArchiveError(f"{store.uri}: no archive here (no create_date=…/manifest.json)")
    return manifests


def restore_archive(
    settings: Settings,
    uri: str,
    *,
    since: dt.date | None = None,
    until: dt.date | None = None,
    store: ArchiveStore | None = None,
    checkpoint: Checkpoint = no_checkpoint,
) -> RestoreReport:
    """Load the archived days in [since, until] back; already restored parts are skipped.
    `checkpoint` is for crash tests."""
    parquet_files.require()
    store = store or open_store(uri)
    manifests = _manifests(store, since, until)
    # Check every file first: a manifest that does not match its files loads nothing at all.
    # (Each file is read again to load it, rather than holding the whole archive in memory.)
    parts = [(manifest, part) for manifest in manifests for part in manifest.parts]
    for manifest, part in parts:
        read_part(store, manifest, part)
    report = RestoreReport()
    days: set[tuple[str, dt.date]] = set()
    with connect(credentials(settings)) as conn:
        with conn.transaction():
            exclusive(conn)
        for manifest, part in parts:
            table = read_part(store, manifest, part, rows=False)  # same sha256: rows checked
            with conn.transaction():
                state = sql.marker(conn, manifest.source, manifest.day, part.file)
                if state == "restored" or (part.state == "pending" and state != "archived"):
                    report.skipped += 1
                    continue
                day = manifest.day
                if manifest.source is USER_LOGINS:
                    sql.copy_in_csv(conn, _USER_LOGINS_WITH_DAY, parquet_files.to_csv(table, day))
                else:
                    sql.copy_in(conn, manifest.source, parquet_files.to_rows(table))
                checkpoint("restore_before_commit")
                sql.set_marker(
                    conn,
                    manifest.source,
                    day,
                    part.file,
                    rows=part.rows,
                    checksum=part.row_checksum,
                    state="restored",
                )
            report.rows += part.rows
            days.add((manifest.source.name, day))
    report.days = len(days)
    return report


# user_logins' columns with create_date, which the files keep in their path.
_USER_LOGINS_WITH_DAY = Source(
    name=USER_LOGINS.name,
    table=USER_LOGINS.table,
    columns=(*USER_LOGINS.columns, "create_date"),
    day=USER_LOGINS.day,
    day_column=USER_LOGINS.day_column,
    key_ids=USER_LOGINS.key_ids,
)
