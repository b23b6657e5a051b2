"""What the worker counts, as Prometheus metrics; a do-nothing default for library use and tests.

Labels never carry input: a rejection's label is the first clause of its reason with any count
removed ("user_id: must be 1–128 characters"), a fixed, small set.
"""

from __future__ import annotations

import re
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from login_etl.ports import Backlog, CommitResult

# Batch latency buckets: a batch of 1,000 takes ~50 ms to commit; minutes mean an outage.
_BATCH_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
_COUNT = re.compile(r",? got \d+.*$")


def reason_label(reason: str) -> str:
    """A low-cardinality label for a rejection reason."""
    return _COUNT.sub("", reason.split("; ", 1)[0])[:80]


class Metrics(Protocol):
    """What the pipeline reports; see PrometheusMetrics for what each call feeds."""

    def batch(
        self, received: int, result: CommitResult, seconds: float, reasons: list[str]
    ) -> None: ...

    def deletes_failed(self, count: int) -> None: ...

    def error(self, kind: str) -> None: ...

    def backlog(self, backlog: Backlog) -> None: ...


class NoMetrics:
    """The default: counts nothing."""

    def batch(
        self, received: int, result: CommitResult, seconds: float, reasons: list[str]
    ) -> None:
        pass

    def deletes_failed(self, count: int) -> None:
        pass

    def error(self, kind: str) -> None:
        pass

    def backlog(self, backlog: Backlog) -> None:
        pass


class PrometheusMetrics:
    """Metrics in their own registry, served by `login_etl.health` on LOGIN_ETL_METRICS_PORT."""

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
            "Messages quarantined, by the first rule broken",
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

    def batch(
        self, received: int, result: CommitResult, seconds: float, reasons: list[str]
    ) -> None:
        self.received.inc(received)
        self.loaded.inc(result.loaded)
        self.skipped.inc(result.skipped)
        # Count what was committed: a redelivered rejection claims nothing. Which of the batch's
        # rejections were redeliveries is not reported back, so if some were, the split by
        # reason is approximate; the total is exact.
        for reason in reasons[: result.rejected]:
            self.rejected.labels(reason=reason_label(reason)).inc()
        self.batch_seconds.observe(seconds)

    def deletes_failed(self, count: int) -> None:
        self.delete_failures.inc(count)

    def error(self, kind: str) -> None:
        self.errors.labels(kind=kind).inc()

    def backlog(self, backlog: Backlog) -> None:
        self.queue.labels(state="visible").set(backlog.visible)
        self.queue.labels(state="in_flight").set(backlog.in_flight)
        self.queue.labels(state="delayed").set(backlog.delayed)
