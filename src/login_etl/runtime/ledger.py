"""The worker's ledger housekeeping: `login_etl.maintain_ledger` at most once an hour.

Called from the worker's heartbeat thread: each process tries at its first beat and then once
an hour (`run --until-empty` also when drained, if no beat came first). The function itself
skips when any worker ran it less than an hour ago, and its advisory lock lets one caller work
at a time, so a fleet of workers maintains the ledger about once an hour in all. A failure is
logged and tried again at the next hour: partitions are created 48 hours ahead, so a missed
hour costs nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable

from login_etl.adapters.postgres import Credentials, connect
from login_etl.adapters.postgres.ledger import LedgerAction, maintain_ledger

log = logging.getLogger(__name__)

EVERY = dt.timedelta(hours=1)


class LedgerKeeper:
    """A chore for the heartbeat: maintain the ledger when an hour has passed since the last try."""

    def __init__(
        self,
        target: str | Credentials,
        retention_s: Callable[[], int],
        *,
        every: dt.timedelta = EVERY,
        clock: Callable[[], float] = time.monotonic,
        on_maintained: Callable[[], None] = lambda: None,
    ) -> None:
        self._target = target
        self._retention_s = retention_s
        self._every = every
        self._clock = clock
        self._on_maintained = on_maintained  # e.g. the metric an alert watches
        self._last: float | None = None

    def __call__(self, budget_s: float | None = None) -> list[LedgerAction] | None:
        """Maintain if due; returns what was done, None when not due in this process.
        `budget_s` bounds the maintenance itself (after connecting)."""
        now = self._clock()
        if self._last is not None and now - self._last < self._every.total_seconds():
            return None
        self._last = now  # a failure waits for the next hour too, rather than retrying each beat
        retention = self._retention_s()
        with connect(self._target) as conn:
            timeout = None if budget_s is None else dt.timedelta(seconds=budget_s)
            actions = maintain_ledger(conn, retention, min_interval=self._every, timeout=timeout)
        for act in actions:
            if act.action in ("create", "drop", "delete", "truncate"):
                log.info("ledger: %s %s (%s)", act.action, act.relation, act.detail)
        # Done, or found done by another worker within the hour ('skipped'), or under way
        # elsewhere ('busy'): the ledger is looked after either way.
        self._on_maintained()
        return actions
