"""Rejection metrics are labelled from a fixed set of kinds, however varied the input."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from login_etl.core.model import Message, Outcome
from login_etl.core.reasons import KINDS
from login_etl.core.transform import Transformer
from login_etl.keys import KeyRing
from login_etl.runtime.metrics import UNKNOWN_KIND, PrometheusMetrics, rejection_label
from login_etl.runtime.pipeline import Pipeline
from login_etl.testing import MemoryQueue, MemorySink
from tests.conftest import body, message


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
    """Commit the bodies as one batch through the pipeline; its metrics' registry and the sink."""
    metrics = PrometheusMetrics()
    sink = sink or MemorySink()
    transformer = transformer or Transformer(keys.masker, keys.sealer)
    pipeline = Pipeline(MemoryQueue(), sink, transformer, metrics=metrics, backoff_max_s=0.01)
    messages = [message(text, message_id=f"m-{i}") for i, text in enumerate(bodies)]
    assert pipeline.commit(messages) is not None
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
