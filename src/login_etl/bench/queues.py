"""Benchmark queues: create, fill in parallel, drain raw, delete."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import botocore.config

from login_etl.adapters.sqs_protocol import SqsProtocol, sqs_client
from login_etl.demo.data import SEND_BATCH

# Parallel SendMessageBatch calls when filling a queue.
PUBLISHERS = 16


def client(endpoint_url: str, connections: int, protocol: SqsProtocol = "auto") -> Any:
    """An SQS client for the emulator under test, which accepts any credentials."""
    return sqs_client(
        protocol,
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        config=botocore.config.Config(
            max_pool_connections=connections, retries={"mode": "standard", "max_attempts": 10}
        ),
        aws_access_key_id="test",  # an emulator accepts any credentials
        aws_secret_access_key="test",  # noqa: S106
    )


def create_queue(client: Any, purpose: str) -> str:
    name = f"login-etl-bench-{purpose}-{uuid.uuid4().hex[:8]}"
    return str(client.create_queue(QueueName=name)["QueueUrl"])


def fill(client: Any, queue_url: str, bodies: list[str]) -> float:
    """Publish with PUBLISHERS parallel SendMessageBatch calls; returns seconds taken."""
    chunks = [bodies[i : i + SEND_BATCH] for i in range(0, len(bodies), SEND_BATCH)]

    def send(chunk: list[str]) -> None:
        entries = [{"Id": str(i), "MessageBody": b} for i, b in enumerate(chunk)]
        response = client.send_message_batch(QueueUrl=queue_url, Entries=entries)
        if response.get("Failed"):
            raise RuntimeError(f"SQS refused {len(response['Failed'])} messages")

    started = time.perf_counter()
    with ThreadPoolExecutor(PUBLISHERS) as pool:
        list(pool.map(send, chunks))
    return time.perf_counter() - started


def drain_raw(client: Any, queue_url: str, expected: int, threads: int) -> float:
    """The endpoint's raw capacity: `threads` plain receive-10 + delete-batch loops, nothing
    else. The receive asks for what the worker's does (SentTimestamp, a visibility timeout), so
    that the two compare the same SQS work. Returns seconds to remove `expected` messages."""
    removed = 0
    lock = threading.Lock()
    done = threading.Event()

    def loop() -> None:
        nonlocal removed
        while not done.is_set():
            messages = client.receive_message(
                QueueUrl=queue_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=1,
                VisibilityTimeout=60,
                AttributeNames=["SentTimestamp"],
            ).get("Messages", [])
            if not messages:
                continue
            client.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )
            with lock:
                removed += len(messages)
                if removed >= expected:
                    done.set()

    started = time.perf_counter()
    workers = [threading.Thread(target=loop, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    done.wait()
    elapsed = time.perf_counter() - started
    for worker in workers:
        worker.join(5)
    return elapsed


class QueueWatch:
    """Times a drain from the outside: from the first message taken (visible count drops) to
    the queue being empty (nothing visible or in flight), sampling every SAMPLE_S. This excludes
    a worker's process start and its shutdown, and treats the raw loop and the worker alike."""

    SAMPLE_S = 0.05

    def __init__(self, client: Any, queue_url: str, total: int) -> None:
        self._client = client
        self._queue_url = queue_url
        self._total = total
        self.first_taken: float | None = None
        self.emptied: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> QueueWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _watch(self) -> None:
        while not self._stop.is_set() and self.emptied is None:
            attributes = self._client.get_queue_attributes(
                QueueUrl=self._queue_url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                ],
            )["Attributes"]
            visible = int(attributes["ApproximateNumberOfMessages"])
            in_flight = int(attributes["ApproximateNumberOfMessagesNotVisible"])
            now = time.perf_counter()
            if self.first_taken is None and visible < self._total:
                self.first_taken = now
            if self.first_taken is not None and visible + in_flight == 0:
                self.emptied = now
            self._stop.wait(self.SAMPLE_S)

    @property
    def rate(self) -> float:
        if self.first_taken is None or self.emptied is None:
            return 0.0
        return self._total / max(self.emptied - self.first_taken, self.SAMPLE_S)
