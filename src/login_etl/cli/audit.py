"""`login-etl audit`, and the record that every recovery of plaintext leaves first.

`reveal` and `quarantine show` need a reason and name a requester; they write one audit record
and commit it before printing anything, and print nothing if that fails. A recovery that fails
(a value that does not decrypt) shows nothing and so leaves no record.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import pwd
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated

import psycopg
import typer
from rich.markup import escape
from rich.table import Table

from login_etl.adapters.postgres import AuditLog, AuditRecord, connect
from login_etl.adapters.postgres.audit import Action, AuditField
from login_etl.cli import options
from login_etl.cli.app import app, out
from login_etl.config import load_settings


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


# Where getpass.getuser() looks, in its order. Anyone can set them: they are recorded as a claim.
_CLAIMS = ("LOGNAME", "USER", "LNAME", "USERNAME")


@dataclass(frozen=True, slots=True)
class OsUser:
    """Who runs this process: the uid's name, and what the environment claims if it differs."""

    name: str
    claimed: str | None


def os_user(environ: Mapping[str, str] = os.environ) -> OsUser:
    """The effective uid's name from the password database (its number where it has none, as a
    container's arbitrary uid), not LOGNAME/USER, which the caller sets; those are kept as
    `claimed` when they name someone else."""
    uid = os.geteuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    claim = next((environ[v] for v in _CLAIMS if environ.get(v)), None)
    return OsUser(name=name, claimed=claim if claim != name else None)


def record_recovery(
    conn: psycopg.Connection[tuple[object, ...]],
    *,
    action: Action,
    field: AuditField,
    value_count: int,
    reason: str,
    requester: str | None,
) -> None:
    """Write and commit the audit record; call it once the plaintext is in hand and about to be
    shown. If it raises, show nothing."""
    user = os_user()
    AuditLog(conn).record(
        action=action,
        field=field,
        value_count=value_count,
        reason=reason.strip(),
        requester=(requester or user.name).strip(),
        os_user=user.name,
        os_user_claimed=user.claimed,
    )


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
) -> None:
    """List the audit trail of `reveal` and `quarantine show`: who, when, why, how many."""
    settings = load_settings(database_url=database_url)
    start = since.replace(tzinfo=dt.UTC) if since else None
    with connect(settings.database_url.get_secret_value()) as conn:
        records = AuditLog(conn).list(limit, start)
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
