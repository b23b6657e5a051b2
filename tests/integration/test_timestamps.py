"""core/timestamps.py agrees with PostgreSQL's own epoch arithmetic, at the boundaries."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest

from login_etl.core.timestamps import MAX_TIMESTAMP_MS, epoch_ms, utc_date, utc_datetime

DAY_MS = 86_400_000
EDGES = [
    0,
    DAY_MS - 1,
    DAY_MS,
    -1,
    -DAY_MS - 1,
    951_782_400_000,  # 2000-02-29
    1_709_164_800_000 - 1,  # 2024-02-28T23:59:59.999Z
    1_709_164_800_000,  # 2024-02-29
    4_107_542_400_000 - 1,  # 2100-02-28T23:59:59.999Z
    1_700_000_000_123,
    MAX_TIMESTAMP_MS,
    -62_135_596_800_000,  # 0001-01-01T00:00:00Z
]


@pytest.mark.parametrize("ms", EDGES)
def test_python_and_postgresql_give_the_same_utc_date_and_instant(admin_url: str, ms: int) -> None:
    with psycopg.connect(admin_url) as conn:
        # psycopg reads a timestamptz in the session's zone; at the edges only UTC stays in range.
        conn.execute("SET TIME ZONE 'UTC'")
        # Integer seconds and milliseconds: `ms * interval '1 ms'` goes through a float8.
        row = conn.execute(
            "SELECT (t AT TIME ZONE 'UTC')::date, t,"
            " (extract(epoch FROM %(at)s::timestamptz) * 1000)::bigint"
            " FROM (SELECT to_timestamp(%(ms)s::bigint / 1000)"
            "       + mod(%(ms)s::bigint, 1000) * interval '1 millisecond') AS s(t)",
            {"ms": ms, "at": utc_datetime(ms)},
        ).fetchone()
    assert row is not None
    date, instant, back = row
    assert utc_date(ms) == date
    assert utc_datetime(ms) == instant
    assert epoch_ms(instant) == back == ms
    assert isinstance(instant, dt.datetime)
