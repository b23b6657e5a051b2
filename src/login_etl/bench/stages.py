"""The in-process stages alone: transform on one core, and the load into PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Sequence

from login_etl.adapters.postgres import PostgresSink, connect
from login_etl.core.model import Message, Outcome
from login_etl.core.transform import Transformer
from login_etl.keys import KeyFile
from login_etl.keys.keyfile import TEMPLATES
from login_etl.keys.rotation import rotated
from login_etl.ops.rekey import RekeyStats, rekey


def transform_rate(transform: Transformer, messages: Sequence[Message], rounds: int = 3) -> float:
    """Messages per CPU second of one thread (best of `rounds`)."""
    best = 0.0
    for _ in range(rounds):
        started = time.process_time()
        for message in messages:
            transform(message)
        best = max(best, len(messages) / (time.process_time() - started))
    return best


def load_rate(database_url: str, outcomes: Sequence[Outcome], batch_size: int) -> float:
    """Rows per second committed by the sink (COPY into staging, claim in the ledger, insert),
    in transactions of `batch_size`."""
    return commit_rate(PostgresSink(database_url), outcomes, batch_size)


def commit_rate(sink: PostgresSink, outcomes: Sequence[Outcome], batch_size: int) -> float:
    """Rows per second that `sink` commits in transactions of `batch_size`; closes the sink."""
    try:
        started = time.perf_counter()
        for start in range(0, len(outcomes), batch_size):
            sink.commit(outcomes[start : start + batch_size])
        return len(outcomes) / (time.perf_counter() - started)
    finally:
        sink.close()


def rekey_rate(database_url: str, key_file: KeyFile) -> tuple[float, RekeyStats]:
    """Rows per second that `rekey` rewrites after a rotation of both keysets, over what the
    load stage left in the database."""
    ring = key_file.with_keysets(
        **{name: rotated(handle, TEMPLATES[name]) for name, handle in key_file.keysets.items()}
    ).ring()
    with connect(database_url) as conn:
        started = time.perf_counter()
        stats = rekey(conn, ring)
        return stats.rows / (time.perf_counter() - started), stats
