"""What the worker counts, as Prometheus metrics; a do-nothing default for library use and tests.

Labels never carry input, and their values come from fixed sets: a rejection is labelled with
its kind (`ip:invalid`, `body:not_json`: field and rule, one of `core.reasons.KINDS`), never with
its reason text, which holds counts and JSON positions and so would grow the series without bound.

The names here are what `deploy/grafana/` and `deploy/prometheus/` query; a test
(`tests/deploy/test_prometheus.py`) fails if one is renamed without them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from login_etl.core.reasons import KINDS, Kind
from login_etl.ports import Backlog, CommitResult

# Batch latency buckets: a batch of 1,000 takes ~50 ms to commit; minutes mean an outage.
_BATCH_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
# The label of a kind outside KINDS, which only a bug could produce: counted, never a new series.
UNKNOWN_KIND = "unknown"


def rejection_label(kind: str) -> str:
    """The `reason` label of a rejection of this kind: the kind itself, from a fixed set."""
    return kind if kind in KINDS else UNKNOWN_KIND


class Metrics(Protocol):
    """What the committer and the worker report; see PrometheusMetrics for what each call feeds."""

    def batch(
        self, received: int, result: CommitResult, seconds: float, kinds: Sequence[Kind]
    ) -> None: ...

    def deletes_failed(self, count: int) -> None: ...

    def error(self, kind: str) -> None: ...

    def backlog(self, backlog: Backlog) -> None: ...

    def oldest_age(self, seconds: float) -> None: ...

    def ledger_maintained(self) -> None: ...


class NoMetrics:
    """The default: counts nothing."""

    def batch(
        self, received: int, result: CommitResult, seconds: float, kinds: Sequence[Kind]
    ) -> None:
        pass

    def deletes_failed(self, count: int) -> None:
        pass

    def error(self, kind: str) -> None:
        pass

    def backlog(self, backlog: Backlog) -> None:
        pass

    def oldest_age(self, seconds: float) -> None:
        pass

    def ledger_maintained(self) -> None:
        pass


class PrometheusMetrics:
    """Metrics in their own registry, served by `runtime.health` on LOGIN_ETL_METRICS_PORT."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.received = Counter(
            "login_etl_messages_received",
            "Messages received from SQS and committed in a batch",
            registry=r,
        )
        self.loaded = Counter(
            "login_etl_messages_loaded", "Rows written to user_logins", registry=r
        )
        self.rejected = Counter(
            "login_etl_messages_rejected",
            "Messages quarantined, by the first rule broken (field:rule)",
            ["reason"],
            registry=r,
        )
        self.skipped = Counter(
            "login_etl_redeliveries_skipped",
            "Messages already committed before (redeliveries)",
            registry=r,
        )
        self.delete_failures = Counter(
            "login_etl_delete_failures",
            "Deletes that failed (the message comes back and is skipped)",
            registry=r,
        )
        self.errors = Counter(
            "login_etl_errors", "Errors, by kind (transient ones are retried)", ["kind"], registry=r
        )
        self.batch_seconds = Histogram(
            "login_etl_batch_seconds",
            "Transform and commit time of one batch",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.queue = Gauge(
            "login_etl_queue_messages",
            "Approximate messages in the queue, by state",
            ["state"],
            registry=r,
        )
        # SQS's ApproximateAgeOfOldestMessage is a CloudWatch metric only: GetQueueAttributes,
        # which the queue gauge reads, has no age. What the worker can see is each message's
        # SentTimestamp, so this is the age of the oldest message of the last committed batch:
        # how far behind the workers are. A stalled worker stops moving it; the errors and
        # backlog alerts cover that, and CloudWatch's metric stays the queue-side truth.
        self.oldest_age_s = Gauge(
            "login_etl_oldest_message_age_seconds",
            "Age (now minus SentTimestamp) of the oldest message in the last committed batch",
            registry=r,
        )
        # When this worker last saw the ledger maintained (by itself, or by another worker within
        # the hour): partitions are made 48 hours ahead, so hours without it are a warning.
        self.ledger_maintained_at = Gauge(
            "login_etl_ledger_maintained_timestamp_seconds",
            "Unix time of the last ledger maintenance this worker ran or found recent",
            registry=r,
        )

    def batch(
        self, received: int, result: CommitResult, seconds: float, kinds: Sequence[Kind]
    ) -> None:
        self.received.inc(received)
        self.loaded.inc(result.loaded)
        self.skipped.inc(result.skipped)
        # Count what was committed: a redelivered rejection claims nothing. Which of the batch's
        # rejections were redeliveries is not reported back, so if some were, the split by
        # reason is approximate; the total is exact.
        for kind in kinds[: result.rejected]:
            self.rejected.labels(reason=rejection_label(kind)).inc()
        self.batch_seconds.observe(seconds)

    def deletes_failed(self, count: int) -> None:
        self.delete_failures.inc(count)

    def error(self, kind: str) -> None:
        self.errors.labels(kind=kind).inc()

    def backlog(self, backlog: Backlog) -> None:
        self.queue.labels(state="visible").set(backlog.visible)
        self.queue.labels(state="in_flight").set(backlog.in_flight)
        self.queue.labels(state="delayed").set(backlog.delayed)

    def oldest_age(self, seconds: float) -> None:
        self.oldest_age_s.set(seconds)

    def ledger_maintained(self) -> None:
        self.ledger_maintained_at.set_to_current_time()
