"""`login-etl archive` and `login-etl restore`: old rows to Parquet files and back
(`login_etl.ops.archive`, `login_etl.ops.restore`)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from login_etl.cli import options
from login_etl.cli.app import app, out
from login_etl.config import load_settings
from login_etl.errors import ConfigError
from login_etl.ops.archive import archive_before, parse_before
from login_etl.ops.restore import restore_archive


@app.command()
def archive(
    before: Annotated[
        str, typer.Option(help="Archive the days before this date (YYYY-MM-DD, UTC), not after.")
    ],
    to: Annotated[str, typer.Option(help="A local directory or s3://bucket/prefix.")],
    include_quarantine: Annotated[
        bool, typer.Option(help="Also archive rejected messages of those days (still encrypted).")
    ] = False,
    database_url: options.DatabaseUrl = None,
    database_secret: options.DatabaseSecret = None,
) -> None:
    """Move user_logins rows older than --before to Parquet files, one per day, then delete them.

    Each file is read back and checked before its day's rows are deleted. Resumable: rerun after
    an interruption and it completes the job, losing and doubling nothing.
    """
    day = parse_before(before)
    report = archive_before(
        load_settings(database_url=database_url, database_secret=database_secret),
        day,
        to,
        include_quarantine=include_quarantine,
    )
    out.print(
        f"Archived {report.rows:,} rows of {report.days} days to {to} "
        f"({report.bytes:,} bytes of Parquet; {report.rejected:,} rejected messages; "
        f"{report.partitions_dropped} partitions dropped).",
        markup=False,
    )


def _day(text: str | None, option: str) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{option} {text!r} is not a date: use YYYY-MM-DD") from None


@app.command()
def restore(
    from_: Annotated[
        str, typer.Option("--from", help="The archive: a local directory or s3://bucket/prefix.")
    ],
    since: Annotated[str | None, typer.Option(help="First day to restore (YYYY-MM-DD).")] = None,
    until: Annotated[str | None, typer.Option(help="Last day to restore (YYYY-MM-DD).")] = None,
    database_url: options.DatabaseUrl = None,
    database_secret: options.DatabaseSecret = None,
) -> None:
    """Load archived days back into PostgreSQL (COPY); parts already restored are skipped.

    Every file is checked against its manifest first; a mismatch loads nothing (exit 1).
    """
    first, last = _day(since, "--since"), _day(until, "--until")
    report = restore_archive(
        load_settings(database_url=database_url, database_secret=database_secret),
        from_,
        since=first,
        until=last,
    )
    out.print(
        f"Restored {report.rows:,} rows of {report.days} days from {from_} "
        f"({report.skipped} parts already restored, skipped).",
        markup=False,
    )
