"""Wiring: settings → key ring → PostgreSQL sink → `Committer`, and with the SQS source → `Worker`.

The one place the runtime is assembled: the CLI (`login-etl run`, its worker processes), the
demo and the Lambda handler all build their committer here, so that all of them run the same
code path. The Lambda stops at the committer: Lambda itself receives and deletes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from login_etl.adapters.postgres import (
    Credentials,
    PostgresSink,
    Roles,
    connect,
    credentials,
    migrate,
)
from login_etl.adapters.sqs import SqsSource
from login_etl.config import Settings
from login_etl.core.transform import Transformer
from login_etl.keys import load_keys
from login_etl.runtime.committer import Committer
from login_etl.runtime.health import HealthServer
from login_etl.runtime.ledger import LedgerKeeper
from login_etl.runtime.metrics import Metrics, PrometheusMetrics
from login_etl.runtime.retry import until_stopped
from login_etl.runtime.worker import RunStats, Worker


def database(settings: Settings) -> Credentials:
    """The process's one `Credentials` for these settings, shared by the sink, the ledger keeper
    and /readyz, so that a secret is read once (and again only when a login is refused)."""
    key = (
        settings.database_url.get_secret_value(),
        "database_url" in settings.model_fields_set,
        settings.database_secret,
        settings.database_iam_auth,
    )
    with _DATABASES_LOCK:
        if key not in _DATABASES:
            _DATABASES[key] = credentials(settings)
        return _DATABASES[key]


_DATABASES: dict[tuple[str, bool, str | None, bool], Credentials] = {}
_DATABASES_LOCK = threading.Lock()


def migrate_database(target: str | Credentials, roles: Roles | None = None) -> list[int]:
    """Apply pending migrations once (and, with `roles`, create and grant the group roles);
    errors propagate (for `login-etl migrate`)."""
    with connect(target) as conn:
        return migrate(conn, roles)


def migrate_when_reachable(target: str | Credentials, stop: threading.Event) -> None:
    """Migrate, waiting out a database (or a secret) that is not reachable yet (a worker may
    start first)."""
    until_stopped("migrate", stop)(migrate_database, target)


def build_committer(
    settings: Settings, stop: threading.Event, metrics: Metrics | None = None
) -> Committer:
    """A ready committer: keys loaded and schema migrated, both waiting out a KMS or database
    not reachable yet until `stop` (then TransientError). The caller closes it."""
    # A KMS-wrapped key file waits out a KMS that is not reachable yet, as the database does.
    keys = until_stopped("load keys", stop)(load_keys, settings)
    db = database(settings)
    migrate_when_reachable(db, stop)
    return Committer(PostgresSink(db), Transformer(keys.masker, keys.sealer), metrics=metrics)


@contextmanager
def open_worker(
    settings: Settings,
    *,
    stop: threading.Event | None = None,
    on_batch: Callable[[RunStats], None] | None = None,
    metrics: Metrics | None = None,
) -> Iterator[Worker]:
    """A ready worker on the settings' queue; closes its connections on exit."""
    stop = stop or threading.Event()
    committer = build_committer(settings, stop, metrics)
    try:
        # One connection per poller and per deleter thread.
        source = SqsSource.from_settings(settings, max_connections=2 * settings.pollers)
        keeper = LedgerKeeper(
            database(settings),
            source.retention_seconds,
            on_maintained=committer.metrics.ledger_maintained,
        )
        yield Worker(
            source,
            committer,
            settings.worker_options(),
            stop=stop,
            on_batch=on_batch,
            chores=(keeper,),
        )
    finally:
        committer.close()


@contextmanager
def serving(settings: Settings, worker: Worker, metrics: PrometheusMetrics) -> Iterator[None]:
    """/metrics, /healthz and /readyz on LOGIN_ETL_METRICS_PORT while the block runs."""
    if settings.metrics_port is None:
        yield
        return
    db = database(settings)

    def sqs() -> None:
        metrics.backlog(worker.source.backlog())  # also keeps the queue-depth gauge fresh

    def postgres() -> None:
        connect(db).close()

    server = HealthServer(settings.metrics_port, metrics, {"sqs": sqs, "postgres": postgres})
    server.start()
    try:
        yield
    finally:
        server.close()
