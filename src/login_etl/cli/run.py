"""`login-etl run` and `login-etl migrate`: start the worker (one process or several) with its
signal handling and progress line, and create or upgrade the schema it needs."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Annotated

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from login_etl.cli import options
from login_etl.cli.app import app, err, out
from login_etl.config import MAX_PORT, load_settings
from login_etl.errors import ConfigError
from login_etl.logs import configure_logging
from login_etl.ops.migrate import DEFAULT_ANALYST_ROLE, DEFAULT_SERVICE_ROLE, Roles, migrate_schema
from login_etl.runtime.metrics import PrometheusMetrics
from login_etl.runtime.wiring import database, migrate_when_reachable, open_worker, serving
from login_etl.runtime.worker import RunStats
from login_etl.runtime.workers import run_processes

log = logging.getLogger(__name__)


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT/SIGTERM ask the worker to finish the batch in hand; a second one aborts."""
    previous: dict[signal.Signals, object] = {}

    def handle(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            signal.signal(signum, signal.SIG_DFL)
            raise KeyboardInterrupt
        log.info("%s received: finishing the batch in hand", signal.Signals(signum).name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, handle)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]


def summary(stats: RunStats) -> str:
    return (
        f"{stats.received} received, {stats.loaded} loaded, {stats.rejected} rejected, "
        f"{stats.skipped} redeliveries skipped in {stats.seconds:.1f} s ({stats.rate:.1f} msgs/s)"
    )


@contextmanager
def progress(enabled: bool) -> Iterator[Callable[[RunStats], None] | None]:
    """A live line of counters on a terminal; nothing otherwise."""
    if not enabled:
        yield None
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("waiting for messages…", total=None)
        yield lambda stats: bar.update(task, description=summary(stats))


@app.command()
def run(
    until_empty: Annotated[
        bool,
        typer.Option(
            "--until-empty",
            help="Exit once the queue has no visible, in-flight or delayed message.",
        ),
    ] = False,
    processes: Annotated[
        int, typer.Option(min=1, max=64, help="Worker processes to start on this host.")
    ] = 1,
    queue_url: options.QueueUrl = None,
    database_url: options.DatabaseUrl = None,
    database_secret: options.DatabaseSecret = None,
    keyset_file: options.KeysetFile = None,
    keyset_secret: options.KeysetSecret = None,
    visibility_timeout: options.VisibilityTimeout = None,
    wait_time_seconds: options.WaitTimeSeconds = None,
    batch_size: options.BatchSize = None,
    batch_wait_ms: options.BatchWaitMs = None,
    pollers: options.Pollers = None,
    metrics_port: options.MetricsPort = None,
    log_level: options.LogLevel = None,
    log_format: options.LogFormat = None,
    sqs_protocol: options.SqsProtocol = None,
) -> None:
    """Load messages until SIGINT/SIGTERM (or, with --until-empty, until the queue is empty)."""
    overrides = {
        "queue_url": queue_url,
        "database_url": database_url,
        "database_secret": database_secret,
        "keyset_file": keyset_file,
        "keyset_secret": keyset_secret,
        "visibility_timeout": visibility_timeout,
        "wait_time_seconds": wait_time_seconds,
        "batch_size": batch_size,
        "batch_wait_ms": batch_wait_ms,
        "pollers": pollers,
        "metrics_port": metrics_port,
        "log_level": log_level,
        "log_format": log_format,
        "sqs_protocol": sqs_protocol,
    }
    settings = load_settings(**overrides)
    if settings.keyset_secret is None:  # a secret is read (and checked) with the keys
        settings.require_keyset_file()
    if settings.metrics_port is not None and settings.metrics_port + processes - 1 > MAX_PORT:
        raise ConfigError(
            "LOGIN_ETL_METRICS_PORT (--metrics-port): worker i of --processes serves on the "
            f"port + i, which must stay at or below {MAX_PORT}"
        )
    configure_logging(settings.log_level, settings.log_format)
    stop = threading.Event()
    if processes > 1:
        with stop_on_signals(stop):
            # Migrate once here, so that the workers do not all queue on the migration lock;
            # waiting out a database (or secret) not reachable yet, as one worker would.
            migrate_when_reachable(database(settings), stop)
            stats = run_processes(processes, overrides, until_empty=until_empty, stop=stop)
        out.print(f"Done ({processes} processes): {summary(stats)}")
        return
    metrics = PrometheusMetrics()
    with (
        stop_on_signals(stop),
        progress(until_empty and sys.stderr.isatty()) as on_batch,
        open_worker(settings, stop=stop, on_batch=on_batch, metrics=metrics) as worker,
        serving(settings, worker, metrics),
    ):
        stats = worker.run(until_empty=until_empty)
    out.print(f"Done: {summary(stats)}")


@app.command()
def migrate(
    create_roles: Annotated[
        bool,
        typer.Option(
            "--create-roles",
            help="Also create the analyst and service group roles if missing, and (re)apply "
            "their grants, in the migration's transaction.",
        ),
    ] = False,
    analyst_role: Annotated[
        str, typer.Option(help="Group role of analysts: reads public.user_logins only.")
    ] = DEFAULT_ANALYST_ROLE,
    service_role: Annotated[
        str, typer.Option(help="Group role of the worker's database user: what `run` needs.")
    ] = DEFAULT_SERVICE_ROLE,
    database_url: options.DatabaseUrl = None,
    database_secret: options.DatabaseSecret = None,
    log_level: options.LogLevel = None,
) -> None:
    """Create or upgrade the service's schema (idempotent; `run` does it too). Run it as the
    schema owner."""
    if not create_roles and (analyst_role, service_role) != (
        DEFAULT_ANALYST_ROLE,
        DEFAULT_SERVICE_ROLE,
    ):
        raise typer.BadParameter("only with --create-roles", param_hint="'--analyst-role'")
    settings = load_settings(
        database_url=database_url, database_secret=database_secret, log_level=log_level
    )
    configure_logging(settings.log_level, settings.log_format)
    migrated = migrate_schema(settings, Roles(analyst_role, service_role) if create_roles else None)
    if migrated.applied:
        versions = ", ".join(map(str, migrated.applied))
        out.print(f"Applied migrations {versions}; schema at version {migrated.version}.")
    else:
        out.print(f"Schema is up to date (version {migrated.version}).")
    if roles := migrated.roles:
        out.print(
            f"Roles {roles.analyst} (analysts) and {roles.service} (the worker) are granted; "
            f"make people and apps members, e.g. GRANT {roles.analyst} TO alice.",
            markup=False,
        )
