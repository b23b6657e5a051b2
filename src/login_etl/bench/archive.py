"""`login-etl bench --archive-rows N`: archive and restore rows/s beside the raw COPY rate of the
same rows, and the Parquet size against the table's size on disk."""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from dataclasses import dataclass

from login_etl.adapters.postgres import connect, migrate
from login_etl.adapters.postgres.archive import USER_LOGINS, table_bytes
from login_etl.config import Settings
from login_etl.errors import ArchiveError
from login_etl.ops.archive import archive_before
from login_etl.ops.restore import restore_archive

DAYS = 10

# Rows shaped like the service's: 43-character tokens that start as Tink's do (0x01, then the
# 4-byte key id: 1 here), a few device types and locales.
_FILL = """
INSERT INTO public.user_logins
SELECT 'user-' || (i %% 100000),
       (ARRAY['android', 'ios', 'web'])[1 + i %% 3],
       'AQAAAAE' || left(translate(encode(sha256(('ip' || (i %% 50000))::bytea), 'base64'),
                                   '+/=', '-_'), 36),
       'AQAAAAE' || left(translate(encode(sha256(('dev' || (i %% 80000))::bytea), 'base64'),
                                   '+/=', '-_'), 36),
       (ARRAY['en_US', 'de_DE', 'fr_FR', NULL])[1 + i %% 4],
       2003000 + i %% 50,
       %s::date - 1 - (i %% %s)
FROM generate_series(1, %s) AS i
"""


@dataclass
class ArchiveRates:
    rows: int
    copy_rate: float  # COPY … TO STDOUT (FORMAT binary), rows/s
    archive_rate: float
    restore_rate: float
    parquet_bytes: int
    table_bytes: int

    def lines(self) -> list[str]:
        return [
            f"archive of {self.rows:,} rows ({DAYS} days): {self.archive_rate:,.0f} rows/s "
            f"(raw COPY TO STDOUT binary of the same rows: {self.copy_rate:,.0f} rows/s)",
            f"restore of the same: {self.restore_rate:,.0f} rows/s "
            f"(raw COPY TO STDOUT binary: {self.copy_rate:,.0f} rows/s)",
            f"Parquet (zstd): {self.parquet_bytes / 1e6:,.1f} MB against "
            f"{self.table_bytes / 1e6:,.1f} MB on disk for user_logins "
            f"({self.table_bytes / max(self.parquet_bytes, 1):.1f}x smaller)",
        ]


def archive_rates(database_url: str, rows: int) -> ArchiveRates:
    """Fill user_logins with `rows` rows over DAYS past days; archive all; restore all."""
    today = dt.datetime.now(dt.UTC).date()
    with connect(database_url) as conn:
        migrate(conn)
        conn.autocommit = True
        conn.execute("TRUNCATE public.user_logins")
        conn.execute(_FILL.encode(), (today, DAYS, rows))
        conn.execute("VACUUM ANALYZE public.user_logins")
        size = table_bytes(conn, USER_LOGINS)
        start = time.perf_counter()
        with conn.cursor().copy(
            "COPY (SELECT * FROM public.user_logins WHERE create_date < "
            "current_date) TO STDOUT (FORMAT binary)"
        ) as copy:
            for _ in copy:
                pass
        copy_rate = rows / (time.perf_counter() - start)
    settings = Settings(database_url=database_url)
    with tempfile.TemporaryDirectory(prefix="login-etl-archive-bench-") as target:
        start = time.perf_counter()
        report = archive_before(settings, today, target)
        archive_rate = report.rows / (time.perf_counter() - start)
        start = time.perf_counter()
        restored = restore_archive(settings, target)
        restore_rate = restored.rows / (time.perf_counter() - start)
    if report.rows != rows or restored.rows != rows:  # a rate of a partial job means nothing
        raise ArchiveError(
            f"bench: archived {report.rows:,}, restored {restored.rows:,} of {rows:,}"
        )
    return ArchiveRates(rows, copy_rate, archive_rate, restore_rate, report.bytes, size)


def archive_bench(admin_url: str | None, rows: int) -> list[str]:
    """The report's lines, measured in a scratch database (on an embedded server by default)."""
    from login_etl.bench.run import _scratch_database  # noqa: PLC0415

    with _scratch_database(admin_url) as database_url:
        return archive_rates(database_url, rows).lines()
