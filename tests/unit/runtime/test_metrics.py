"""The worker's Prometheus metrics (runtime.metrics): each is moved by what it counts, and
rejections are labelled from a fixed set of kinds, however varied the input."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from login_etl.core.model import Message, Outcome
from login_etl.core.reasons import KINDS
from login_etl.core.transform import Transformer
from login_etl.keys import KeyRing
from login_etl.ports import Backlog, CommitResult
from login_etl.runtime.committer import Committer
from login_etl.runtime.metrics import UNKNOWN_KIND, PrometheusMetrics, rejection_label
from login_etl.testing import MemorySink
from tests.support import body, message


def rejected_by_label(registry: CollectorRegistry) -> Counter[str]:
    """login_etl_messages_rejected_total's samples, by their `reason` label."""
    counts: Counter[str] = Counter()
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name == "login_etl_messages_rejected_total":
                counts[sample.labels["reason"]] += int(sample.value)
    return counts


def commit(
    keys: KeyRing,
    bodies: list[str],
    sink: MemorySink | None = None,
    transformer: Transformer | None = None,
) -> tuple[CollectorRegistry, MemorySink]:
    """Commit the bodies as one batch through the committer; its metrics' registry and the sink."""
    metrics = PrometheusMetrics()
    sink = sink or MemorySink()
    transformer = transformer or Transformer(keys.masker, keys.sealer)
    committer = Committer(sink, transformer, metrics=metrics, backoff_max_s=0.01)
    messages = [message(text, message_id=f"m-{i}") for i, text in enumerate(bodies)]
    assert committer.commit(messages, threading.Event()) is not None
    return metrics.registry, sink


def malformed_bodies() -> list[str]:
    """Hundreds of distinct malformed bodies: JSON errors at many positions, many fields and
    rules, lengths that put different counts in the reason."""
    bodies = [body()[:n] for n in range(1, len(body()) - 1)]  # cut anywhere
    bodies += ['{"user_id": ' + " " * n for n in range(100)]  # "Expecting value" at column N
    bodies += ["\n" * n + "{,}" for n in range(50)]  # at line N
    bodies += [body(user_id="u" * n) for n in range(129, 229)]  # "got N"
    bodies += [body(device_id="d" * n, ip=f"10.0.0.{n}x") for n in range(257, 307)]
    bodies += [body(app_version=f"{n}.0") for n in range(2147, 2197)]
    return bodies


def test_many_distinct_malformed_bodies_make_only_labels_from_the_fixed_set(
    keys: KeyRing,
) -> None:
    # Regression (issue 9, 2c): labels were the reason text, JSON positions included.
    bodies = malformed_bodies()
    registry, sink = commit(keys, bodies)
    reasons = {r.reason for r in sink.rejections.values()}
    assert len(sink.rejections) == len(bodies)
    assert len(reasons) > 300, "the reasons (stored) do vary"
    labels = rejected_by_label(registry)
    assert set(labels) <= KINDS
    assert set(labels) == {
        "body:not_json",
        "user_id:length",
        "ip:invalid",  # the first problem's kind, in field order: ip comes before device_id
        "app_version:out_of_range",
    }
    assert sum(labels.values()) == len(bodies)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=80) | st.binary(max_size=80).map(repr), max_size=5))
def test_random_garbage_makes_only_labels_from_the_fixed_set(
    keys: KeyRing, garbage: list[str]
) -> None:
    registry, _ = commit(keys, [*garbage, "{" + "".join(garbage)])
    assert set(rejected_by_label(registry)) <= KINDS


def test_a_refused_row_and_a_transform_bug_have_their_own_kinds(keys: KeyRing) -> None:
    transform = Transformer(keys.masker, keys.sealer)

    class Buggy(Transformer):
        def __call__(self, message: Message) -> Outcome:
            if "bug" in message.body:
                raise KeyError("text that might quote the input")
            return transform(message)

    sink = MemorySink(refuse=lambda row: row.user_id == "refused")
    bodies = [body(user_id="refused"), body(user_id="bug"), body(user_id="fine"), "{"]
    registry, sink = commit(keys, bodies, sink, transformer=Buggy(keys.masker, keys.sealer))
    assert rejected_by_label(registry) == {
        "database:refused": 1,
        "internal:transform_failed": 1,
        "body:not_json": 1,
    }
    assert sorted(r.reason for r in sink.rejections.values()) == [
        "body: not valid JSON (Expecting property name enclosed in double quotes at line 1 "
        "column 2)",
        "database: refused the row (SQLSTATE 22001)",
        "internal: transform failed (KeyError)",
    ]


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kind_is_its_own_label(kind: str) -> None:
    assert rejection_label(kind) == kind


@pytest.mark.parametrize(
    "text", ["body: not valid JSON (Expecting value at line 1 column 5)", "ip:other", ""]
)
def test_anything_else_is_labelled_unknown_never_a_new_series(text: str) -> None:
    assert rejection_label(text) == UNKNOWN_KIND


# --- each metric, moved by what it counts ------------------------------------------------------


def sample(metrics: PrometheusMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_a_batch_moves_each_counter_and_the_latency_histogram() -> None:
    metrics = PrometheusMetrics()
    kinds = ["ip:invalid", "body:not_json", "ip:invalid"]
    metrics.batch(6, CommitResult(loaded=2, rejected=3, skipped=1), 0.3, kinds)
    metrics.batch(4, CommitResult(loaded=1, rejected=1, skipped=2), 0.02, ["user_id:required"])
    assert sample(metrics, "login_etl_messages_received_total") == 10
    assert sample(metrics, "login_etl_messages_loaded_total") == 3
    assert sample(metrics, "login_etl_redeliveries_skipped_total") == 3
    assert sample(metrics, "login_etl_messages_rejected_total", reason="ip:invalid") == 2
    assert sample(metrics, "login_etl_messages_rejected_total", reason="body:not_json") == 1
    assert sample(metrics, "login_etl_messages_rejected_total", reason="user_id:required") == 1
    assert sample(metrics, "login_etl_batch_seconds_count") == 2
    assert sample(metrics, "login_etl_batch_seconds_sum") == pytest.approx(0.32)
    assert sample(metrics, "login_etl_batch_seconds_bucket", le="0.025") == 1
    assert sample(metrics, "login_etl_batch_seconds_bucket", le="0.25") == 1
    assert sample(metrics, "login_etl_batch_seconds_bucket", le="0.5") == 2


def test_only_the_rejections_committed_are_counted() -> None:
    # A redelivered rejection is skipped by the ledger: it claims no rejection.
    metrics = PrometheusMetrics()
    metrics.batch(2, CommitResult(loaded=0, rejected=1, skipped=1), 0.01, ["ip:invalid"] * 2)
    assert sample(metrics, "login_etl_messages_rejected_total", reason="ip:invalid") == 1


def test_failed_deletes_and_errors_are_counted_by_kind() -> None:
    metrics = PrometheusMetrics()
    metrics.deletes_failed(3)
    metrics.deletes_failed(2)
    metrics.error("SinkUnavailable")
    metrics.error("SinkUnavailable")
    metrics.error("SourceUnavailable")
    assert sample(metrics, "login_etl_delete_failures_total") == 5
    assert sample(metrics, "login_etl_errors_total", kind="SinkUnavailable") == 2
    assert sample(metrics, "login_etl_errors_total", kind="SourceUnavailable") == 1


def test_the_queue_gauges_show_the_latest_backlog() -> None:
    metrics = PrometheusMetrics()
    metrics.backlog(Backlog(visible=70, in_flight=20, delayed=3))
    metrics.backlog(Backlog(visible=7, in_flight=2, delayed=0))
    assert sample(metrics, "login_etl_queue_messages", state="visible") == 7
    assert sample(metrics, "login_etl_queue_messages", state="in_flight") == 2
    assert sample(metrics, "login_etl_queue_messages", state="delayed") == 0


def test_a_committed_batch_and_its_redelivery_move_the_counters(keys: KeyRing) -> None:
    metrics = PrometheusMetrics()
    committer = Committer(
        MemorySink(), Transformer(keys.masker, keys.sealer), metrics=metrics, backoff_max_s=0.01
    )
    batch = [message(text, message_id=f"m-{i}") for i, text in enumerate([body(), body(), "{"])]
    assert committer.commit(batch, threading.Event()) == CommitResult(
        loaded=2, rejected=1, skipped=0
    )
    assert committer.commit(batch, threading.Event()) == CommitResult(
        loaded=0, rejected=0, skipped=3
    )
    assert sample(metrics, "login_etl_messages_received_total") == 6
    assert sample(metrics, "login_etl_messages_loaded_total") == 2
    assert sample(metrics, "login_etl_messages_rejected_total", reason="body:not_json") == 1
    assert sample(metrics, "login_etl_redeliveries_skipped_total") == 3
    assert sample(metrics, "login_etl_batch_seconds_count") == 2


def test_a_database_outage_is_counted_as_an_error_of_its_kind(keys: KeyRing) -> None:
    class Flaky(MemorySink):
        """Down for the first commit, up from then on."""

        calls = 0

        def commit(self, outcomes: Sequence[Outcome]) -> CommitResult:
            self.calls += 1
            self.down = self.calls == 1
            return super().commit(outcomes)

    metrics = PrometheusMetrics()
    committer = Committer(
        Flaky(), Transformer(keys.masker, keys.sealer), metrics=metrics, backoff_max_s=0.001
    )
    assert committer.commit([message(body())], threading.Event()) == CommitResult(
        loaded=1, rejected=0, skipped=0
    )
    assert sample(metrics, "login_etl_errors_total", kind="SinkUnavailable") == 1


def test_the_oldest_message_age_is_that_of_the_oldest_message_of_the_last_batch(
    keys: KeyRing,
) -> None:
    metrics = PrometheusMetrics()
    committer = Committer(
        MemorySink(), Transformer(keys.masker, keys.sealer), metrics=metrics, backoff_max_s=0.01
    )
    now_ms = int(time.time() * 1000)
    hour_old = [message(body(), message_id="old", sent_ms=now_ms - 3_600_000)]
    committer.commit(
        [*hour_old, message(body(), message_id="new", sent_ms=now_ms)], threading.Event()
    )
    age = sample(metrics, "login_etl_oldest_message_age_seconds")
    assert age is not None and 3600 <= age < 2 * 3600
    # A batch sent later than the worker's clock reads (clock skew) is 0, never negative.
    future = [message(body(), message_id="future", sent_ms=now_ms + 600_000)]
    committer.commit(future, threading.Event())
    assert sample(metrics, "login_etl_oldest_message_age_seconds") == 0
