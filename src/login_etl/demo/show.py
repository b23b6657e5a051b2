"""The demo's script: start servers, load generated messages, show the analyst's view, stop."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

import psycopg
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table

from login_etl.adapters.postgres import QuarantineStore
from login_etl.adapters.sqs_protocol import SqsProtocol, sqs_client
from login_etl.config import Settings
from login_etl.demo.data import generate_bodies, publish
from login_etl.demo.services import EmbeddedPostgres, MotoSqs
from login_etl.keys import create_key_file, load_key_file
from login_etl.logs import configure_logging
from login_etl.runtime.wiring import open_worker

MESSAGES = 100

COUNTS_SQL = """\
SELECT (SELECT count(*) FROM user_logins)                     AS rows,
       (SELECT count(*) FROM login_etl.rejected_messages)     AS rejected,
       (SELECT count(*) FROM login_etl.processed_messages)    AS processed"""

SAMPLE_SQL = """\
SELECT user_id, device_type, masked_ip, masked_device_id, locale,
       login_etl.app_version_text(app_version) AS app_version, create_date
FROM user_logins ORDER BY user_id LIMIT 5"""

DUPLICATES_SQL = """\
SELECT 'device_id' AS field, masked_device_id AS masked_value, count(*) AS logins,
       count(DISTINCT user_id) AS users
FROM user_logins GROUP BY masked_device_id HAVING count(*) > 1
UNION ALL
SELECT 'ip', masked_ip, count(*), count(DISTINCT user_id)
FROM user_logins GROUP BY masked_ip HAVING count(*) > 1
ORDER BY field, masked_value"""


def _short(value: object, width: int = 24) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def _table(title: str, headers: Sequence[str], rows: Sequence[Sequence[object]]) -> Table:
    table = Table(*headers, title=title, title_justify="left")
    for row in rows:
        table.add_row(*(_short(v) for v in row))
    return table


def _query(
    console: Console, conn: psycopg.Connection[tuple[object, ...]], title: str, sql: str
) -> list[tuple[object, ...]]:
    console.print(Syntax(sql, "sql", theme="ansi_dark", background_color="default", word_wrap=True))
    cur = conn.execute(sql)
    rows = cur.fetchall()
    headers = [c.name for c in cur.description or ()]
    console.print(_table(title, headers, rows))
    return rows


def run_demo(console: Console | None = None, *, sqs_protocol: SqsProtocol = "auto") -> None:
    """The whole demo; every server it starts is stopped before it returns. moto speaks both
    SQS protocols: `sqs_protocol` picks the one the demo uses."""
    console = console or Console()
    configure_logging("WARNING")
    with tempfile.TemporaryDirectory(prefix="login-etl-demo-") as tmp:
        root = Path(tmp)
        console.rule("login-etl demo")
        with console.status("Starting PostgreSQL (embedded) and an SQS server (moto)…"):
            postgres = EmbeddedPostgres(root)
            sqs = MotoSqs()
        with postgres, sqs:
            client = sqs_client(
                sqs_protocol,
                endpoint_url=sqs.endpoint,
                region_name="us-east-1",
                aws_access_key_id="test",  # an emulator accepts any credentials
                aws_secret_access_key="test",  # noqa: S106
            )
            queue_url = client.create_queue(QueueName="login-queue")["QueueUrl"]
            sent = publish(client, queue_url, generate_bodies(MESSAGES))
            console.print(f"Published {sent} generated login messages to {queue_url}")

            keyset = root / "keys.json"
            create_key_file(keyset)
            console.print(f"Created key file {keyset} (deleted with the demo)")

            settings = Settings(
                queue_url=queue_url,
                database_url=postgres.url,
                keyset_file=keyset,
                aws_endpoint_url=sqs.endpoint,
                sqs_protocol=sqs_protocol,
                wait_time_seconds=1,
                # One poller: moto's SQS is not safe under concurrent receives and would hand a
                # few messages out twice (harmless, but the counts would distract here).
                pollers=1,
            )
            with open_worker(settings) as worker:
                stats = worker.run(until_empty=True)
            console.print(
                f"Drained the queue: {stats.received} received, {stats.loaded} loaded, "
                f"{stats.rejected} rejected, {stats.skipped} redeliveries skipped "
                f"in {stats.seconds:.1f} s"
            )
            _analyst_view(console, postgres.url, keyset)
        console.rule("Stopped PostgreSQL and the SQS server; removed the temporary directory")


def _analyst_view(console: Console, url: str, keyset: Path) -> None:
    console.rule("What an analyst sees")
    with psycopg.connect(url) as conn:
        _query(console, conn, "Counts", COUNTS_SQL)
        _query(console, conn, "Sample rows (PII masked)", SAMPLE_SQL)
        duplicates = _query(console, conn, "Devices and IPs seen more than once", DUPLICATES_SQL)
        rejected = QuarantineStore(conn).list(5)

    console.rule("Quarantine")
    for entry in rejected:
        console.print(f"{entry.message_id}: {entry.reason}", markup=False)

    console.rule("Reveal, for someone holding the key file")
    masker = load_key_file(keyset).masker
    if duplicates:
        field, token = str(duplicates[0][0]), str(duplicates[0][1])
        plaintext = masker.reveal(field, token)  # type: ignore[arg-type]
        console.print(
            f"The most repeated {field}, as `login-etl reveal --field {field} --reason R {token}` "
            f"would print it with this demo's key file:",
            markup=False,
        )
        console.print(f"  {plaintext}", markup=False)
        again = masker.mask(field, plaintext).token  # type: ignore[arg-type]
        console.print(
            f"Masking {plaintext!r} again gives the same token: {again == token}", markup=False
        )
