"""Epoch-millisecond arithmetic (core/timestamps.py): the create_date of every row."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from login_etl.core.timestamps import MAX_TIMESTAMP_MS, epoch_ms, utc_date, utc_datetime

DAY_MS = 86_400_000
# 0001-01-01T00:00:00Z, the first instant a Python date holds.
MIN_TIMESTAMP_MS = (dt.date(1, 1, 1).toordinal() - dt.date(1970, 1, 1).toordinal()) * DAY_MS
UTC = dt.UTC


@pytest.mark.parametrize(
    ("ms", "date"),
    [
        (0, dt.date(1970, 1, 1)),
        (DAY_MS - 1, dt.date(1970, 1, 1)),
        (DAY_MS, dt.date(1970, 1, 2)),
        (-1, dt.date(1969, 12, 31)),  # floor, not truncation toward zero
        (-DAY_MS, dt.date(1969, 12, 31)),
        (-DAY_MS - 1, dt.date(1969, 12, 30)),
        (951_782_400_000, dt.date(2000, 2, 29)),  # a century that is a leap year
        (1_709_164_800_000 - 1, dt.date(2024, 2, 28)),
        (1_709_164_800_000, dt.date(2024, 2, 29)),
        (1_709_164_800_000 + DAY_MS, dt.date(2024, 3, 1)),
        (4_107_542_400_000 - 1, dt.date(2100, 2, 28)),  # 2100 is not a leap year
        (4_107_542_400_000, dt.date(2100, 3, 1)),
        (MAX_TIMESTAMP_MS, dt.date(9999, 12, 31)),
        (MIN_TIMESTAMP_MS, dt.date(1, 1, 1)),
    ],
)
def test_utc_date_at_the_boundaries(ms: int, date: dt.date) -> None:
    assert utc_date(ms) == date
    assert utc_datetime(ms).date() == date


def test_max_timestamp_is_the_last_millisecond_a_datetime_holds() -> None:
    assert utc_datetime(MAX_TIMESTAMP_MS) == dt.datetime(9999, 12, 31, 23, 59, 59, 999_000, UTC)
    with pytest.raises(OverflowError):
        utc_datetime(MAX_TIMESTAMP_MS + 1)


def test_epoch_ms_reads_any_time_zone_and_floors_microseconds() -> None:
    cet = dt.timezone(dt.timedelta(hours=1))
    assert epoch_ms(dt.datetime(1970, 1, 1, 1, tzinfo=cet)) == 0
    assert epoch_ms(dt.datetime(1970, 1, 1, 0, 0, 0, 1_999, UTC)) == 1
    assert epoch_ms(dt.datetime(1969, 12, 31, 23, 59, 59, 999_999, UTC)) == -1


@given(st.integers(min_value=MIN_TIMESTAMP_MS, max_value=MAX_TIMESTAMP_MS))
def test_the_three_agree_everywhere(ms: int) -> None:
    when = utc_datetime(ms)
    assert when.tzinfo is UTC
    assert epoch_ms(when) == ms
    assert utc_date(ms) == when.date()
    seconds, millis = divmod(ms, 1000)
    assert when == dt.datetime.fromtimestamp(seconds, UTC) + dt.timedelta(milliseconds=millis)
