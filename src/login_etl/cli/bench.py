"""`login-etl bench`."""

from __future__ import annotations

from typing import Annotated

import typer

from login_etl.cli import options
from login_etl.cli.app import app, out
from login_etl.config import default_of, load_settings


@app.command()
def bench(
    endpoint_url: Annotated[
        str, typer.Option(help="SQS endpoint to benchmark against (LocalStack, not moto).")
    ] = "http://localhost:4566",
    database_url: Annotated[
        str | None,
        typer.Option(
            help="PostgreSQL server to use (a scratch database is made and dropped); "
            "by default an embedded one is started.",
            show_default=False,
        ),
    ] = None,
    messages: Annotated[int, typer.Option(min=100, help="Messages to publish and drain.")] = 20_000,
    malformed_pct: Annotated[
        float, typer.Option(min=0, max=100, help="Share of bad messages.")
    ] = 3.0,
    pollers: Annotated[int, typer.Option(min=1, max=64, help="Pollers per worker.")] = default_of(
        "pollers"
    ),
    batch_size: Annotated[int, typer.Option(min=1, help="Messages per transaction.")] = default_of(
        "batch_size"
    ),
    processes: Annotated[int, typer.Option(min=1, max=64, help="Worker processes.")] = 1,
    rounds: Annotated[int, typer.Option(min=1, help="Raw and run drains, alternated.")] = 3,
    profile: Annotated[
        bool, typer.Option("--profile", help="Profile the worker (cProfile).")
    ] = False,
    stages_only: Annotated[
        bool, typer.Option("--stages-only", help="Only the transform and load stages; no SQS.")
    ] = False,
    ledger_rows: Annotated[
        int,
        typer.Option(
            min=0,
            help="Also load against a ledger of this many ids, unpartitioned and partitioned "
            "(0: skip; 50000000 takes minutes).",
        ),
    ] = 0,
    archive_rows: Annotated[
        int,
        typer.Option(
            min=0,
            help="Also archive and restore this many rows, beside the raw COPY rate "
            "(0: skip; needs the archive extra).",
        ),
    ] = 0,
    sqs_protocol: options.SqsProtocol = None,
) -> None:
    """Measure raw SQS capacity, the real `run` path, and the transform and load stages."""
    from login_etl.bench.run import BenchOptions, run_bench  # noqa: PLC0415 - heavy, rarely used

    report = run_bench(
        BenchOptions(
            endpoint_url=endpoint_url,
            sqs_protocol=load_settings(sqs_protocol=sqs_protocol).sqs_protocol,
            database_url=database_url,
            messages=messages,
            malformed_pct=malformed_pct,
            pollers=pollers,
            batch_size=batch_size,
            processes=processes,
            rounds=rounds,
            profile=profile,
            stages_only=stages_only,
            ledger_rows=ledger_rows,
        )
    )
    for line in report.lines():
        out.print(line, markup=False, highlight=False)
    if archive_rows:
        from login_etl.bench.archive import archive_bench  # noqa: PLC0415 - archive extra

        for line in archive_bench(database_url, archive_rows):
            out.print(line, markup=False, highlight=False)
