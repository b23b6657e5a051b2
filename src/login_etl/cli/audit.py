"""`login-etl audit`, and the options every recovery of plaintext takes: a reason and a
requester, kept in its audit record (see `login_etl.ops.recovery`)."""

from __future__ import annotations

import datetime as dt
import json
import sys
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from login_etl.cli import options
from login_etl.cli.app import app, out
from login_etl.config import load_settings
from login_etl.ops.recovery import AuditRecord, audit_records


def _not_blank(value: str | None) -> str | None:
    if value is not None and not value.strip():
        raise typer.BadParameter("must not be empty")
    return value


Reason = Annotated[
    str,
    typer.Option(
        "--reason",
        help="Why the plaintext is needed (e.g. a ticket); kept in the audit trail. "
        "Never put a value in it.",
        callback=_not_blank,
        show_default=False,
    ),
]
Requester = Annotated[
    str | None,
    typer.Option(
        "--requester",
        help="Who asked for it, if not you; kept in the audit trail as given (a claim).",
        callback=_not_blank,
        show_default="the name of your uid",
    ),
]


def _as_json(record: AuditRecord) -> str:
    return json.dumps(
        {
            "id": record.id,
            "at": record.at.astimezone(dt.UTC).isoformat(),
            "requester": record.requester,
            "os_user": record.os_user,
            "os_user_claimed": record.os_user_claimed,
            "db_user": record.db_user,
            "action": record.action,
            "field": record.field,
            "value_count": record.value_count,
            "reason": record.reason,
        },
        ensure_ascii=False,
    )


@app.command()
def audit(
    limit: Annotated[
        int, typer.Option(min=1, help="Show at most this many records, newest first.")
    ] = 100,
    since: Annotated[
        dt.datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="Only records from this UTC date on (YYYY-MM-DD)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON object per line, for tools.")
    ] = False,
    database_url: options.DatabaseUrl = None,
    database_secret: options.DatabaseSecret = None,
) -> None:
    """List the audit trail of `reveal` and `quarantine show`: who, when, why, how many."""
    settings = load_settings(database_url=database_url, database_secret=database_secret)
    start = since.replace(tzinfo=dt.UTC) if since else None
    records = audit_records(settings, limit, start)
    if as_json:
        sys.stdout.write("".join(_as_json(r) + "\n" for r in records))
        return
    noun = "record" if len(records) == 1 else "records"
    table = Table(
        "id",
        "at (UTC)",
        "requester",
        "OS user",
        "DB user",
        "action",
        "field",
        "values",
        "reason",
        title=f"{len(records)} audit {noun}, newest first",
    )
    for r in records:
        table.add_row(
            str(r.id),
            f"{r.at.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S}",
            escape(r.requester),
            escape(r.os_user + (f" (env says {r.os_user_claimed})" if r.os_user_claimed else "")),
            escape(r.db_user),
            r.action,
            r.field or "",
            str(r.value_count),
            escape(r.reason),
        )
    out.print(table)
