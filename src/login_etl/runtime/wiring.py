"""Wiring: settings → key ring, SQS source, PostgreSQL sink → one Pipeline.

The CLI, the demo (and later the Lambda handler) build their pipeline here, so that all of them
run the same code path.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from login_etl.adapters.postgres import PostgresSink, Roles, connect, migrate
from login_etl.adapters.sqs import SqsSource
from login_etl.config import Settings
from login_etl.core.transform import Transformer
from login_etl.keys import load_keys
from login_etl.runtime.health import HealthServer
from login_etl.runtime.metrics import Metrics, PrometheusMetrics
from login_etl.runtime.pipeline import Pipeline, RunStats
from login_etl.runtime.retry import until_stopped


def migrate_database(url: str, roles: Roles | None = None) -> list[int]:
    """Apply pending migrations once (and, with `roles`, create and grant the group roles);
    errors propagate (for `login-etl migrate`)."""
    with connect(url) as conn:
        return migrate(conn, roles)


def migrate_when_reachable(url: str, stop: threading.Event) -> None:
    """Migrate, waiting out a database that is not up yet (a worker may start first)."""
    until_stopped("migrate", stop)(migrate_database, url)


@contextmanager
def open_pipeline(
    settings: Settings,
    *,
    stop: threading.Event | None = None,
    on_batch: Callable[[RunStats], None] | None = None,
    metrics: Metrics | None = None,
) -> Iterator[Pipeline]:
    """A ready pipeline (keys loaded, schema migrated); closes its connections on exit."""
    stop = stop or threading.Event()
    # A KMS-wrapped key file waits out a KMS that is not reachable yet, as the database does.
    keys = until_stopped("load keys", stop)(load_keys, settings)
    database_url = settings.database_url.get_secret_value()
    migrate_when_reachable(database_url, stop)
    sink = PostgresSink(database_url)
    try:
        yield Pipeline(
            # One connection per poller and per deleter thread.
            SqsSource.from_settings(settings, max_connections=2 * settings.pollers),
            sink,
            Transformer(keys.masker, keys.sealer),
            batch_size=settings.batch_size,
            batch_wait_s=settings.batch_wait_ms / 1000,
            poll_wait_s=settings.wait_time_seconds,
            pollers=settings.pollers,
            stop=stop,
            on_batch=on_batch,
            metrics=metrics,
            visibility_timeout_s=settings.visibility_timeout,
        )
    finally:
        sink.close()


@contextmanager
def serving(settings: Settings, pipeline: Pipeline, metrics: PrometheusMetrics) -> Iterator[None]:
    """/metrics, /healthz and /readyz on LOGIN_ETL_METRICS_PORT while the block runs."""
    if settings.metrics_port is None:
        yield
        return
    url = settings.database_url.get_secret_value()

    def sqs() -> None:
        metrics.backlog(pipeline.source.backlog())  # also keeps the queue-depth gauge fresh

    def postgres() -> None:
        connect(url).close()

    server = HealthServer(settings.metrics_port, metrics, {"sqs": sqs, "postgres": postgres})
    server.start()
    try:
        yield
    finally:
        server.close()
