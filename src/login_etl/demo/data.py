"""Look-alike login messages for the demo, the tests and the benchmarks.

Same shape as the exercise's queue: UUID user ids, `X.Y.Z` or `X.Y` versions, android/ios,
IPv4 addresses, two-letter locales (a third of them null), `ddd-dd-dddd` device ids. A few
devices and IPs recur, so that duplicate detection has something to find; a few messages are
malformed, like the exercise's `{"foo": …, "bar": …}`.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

_LOCALES = ("RU", "PH", "ID", "CN", "FR", "BR", "US", "PT", "SE", "NG", "PL", "JP")
_MALFORMED = ('{"foo": "oops_wrong_msg_type", "bar": "123"}',)
SEND_BATCH = 10  # SQS's SendMessageBatch limit


def _event(rng: random.Random) -> dict[str, Any]:
    version = f"{rng.randint(0, 9)}.{rng.randint(0, 9)}"
    if rng.random() < 0.7:
        version += f".{rng.randint(0, 9)}"
    return {
        "user_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "app_version": version,
        "device_type": rng.choice(("android", "ios")),
        "ip": ".".join(str(rng.randint(1, 254)) for _ in range(4)),
        "locale": None if rng.random() < 0.3 else rng.choice(_LOCALES),
        "device_id": "-".join(f"{rng.randint(0, 10**width - 1):0{width}d}" for width in (3, 2, 4)),
    }


def generate_bodies(
    count: int = 100, *, malformed: int = 1, repeats: int = 3, seed: int = 2024
) -> list[str]:
    """`count` JSON bodies, `malformed` of them invalid; `repeats` devices and `repeats` IPs
    appear twice (in other users' logins)."""
    rng = random.Random(seed)
    valid = count - malformed
    events = [_event(rng) for _ in range(valid)]
    for i in range(min(repeats, valid // 4)):
        # A device used by two users, and an IP shared by two logins (a NAT, an office).
        events[valid - 1 - i]["device_id"] = events[i]["device_id"]
        events[valid - 1 - repeats - i]["ip"] = events[i + repeats]["ip"]
    bodies = [json.dumps(e) for e in events]
    for i in range(malformed):
        bodies.insert(rng.randint(0, len(bodies)), _MALFORMED[i % len(_MALFORMED)])
    return bodies


def _batches(bodies: Iterable[str]) -> Iterator[list[str]]:
    batch: list[str] = []
    for body in bodies:
        batch.append(body)
        if len(batch) == SEND_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def publish(client: Any, queue_url: str, bodies: Iterable[str]) -> int:
    """Send bodies with SendMessageBatch; returns how many were sent."""
    sent = 0
    for batch in _batches(bodies):
        response = client.send_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "MessageBody": body} for i, body in enumerate(batch)],
        )
        if response.get("Failed"):
            raise RuntimeError(f"SQS refused {len(response['Failed'])} messages")
        sent += len(batch)
    return sent
