"""Millisecond Unix timestamps (SQS's SentTimestamp) and UTC dates and times: the one place of
epoch arithmetic.

A row's `create_date` is `utc_date` of its message's SentTimestamp, the quarantine's `sent_at` is
`utc_datetime` of it, and a replay goes back with `epoch_ms`. All three agree with PostgreSQL's
own arithmetic (`AT TIME ZONE 'UTC'`), leap days included, from year 1 (negative timestamps) to
`MAX_TIMESTAMP_MS` (tests/integration/test_timestamps.py).
"""

from __future__ import annotations

import datetime as dt

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# 9999-12-31T23:59:59.999Z: the last millisecond a Python datetime (and so psycopg) can hold.
MAX_TIMESTAMP_MS = 253_402_300_799_999

_EPOCH_ORDINAL = EPOCH.date().toordinal()
_MS_PER_DAY = 86_400_000
_ONE_MS = dt.timedelta(milliseconds=1)


def utc_date(timestamp_ms: int) -> dt.date:
    """The UTC calendar date of a millisecond Unix timestamp.

    Integer arithmetic (floor division, so -1 is 1969-12-31): this runs once per message, and
    is several times cheaper than building a datetime first.
    """
    return dt.date.fromordinal(_EPOCH_ORDINAL + timestamp_ms // _MS_PER_DAY)


def utc_datetime(timestamp_ms: int) -> dt.datetime:
    """A millisecond Unix timestamp as an aware UTC datetime, to the millisecond."""
    return EPOCH + dt.timedelta(milliseconds=timestamp_ms)


def epoch_ms(when: dt.datetime) -> int:
    """An aware datetime as a millisecond Unix timestamp (sub-millisecond parts floored)."""
    return (when - EPOCH) // _ONE_MS
