"""The one retry policy for dependencies that are down: tenacity, stopped by shutdown.

First retry soon (a restart takes seconds), then no more often than every 30 s, with full
jitter so that many workers do not return in step; a long outage costs a few log lines a minute.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import tenacity

from login_etl.errors import TransientError

log = logging.getLogger(__name__)

BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 30.0


def until_stopped(
    what: str,
    stop: threading.Event,
    *,
    max_wait_s: float = BACKOFF_MAX_S,
    on_error: Callable[[BaseException], None] | None = None,
) -> tenacity.Retrying:
    """Retry TransientError until the call passes or `stop` is set; then re-raise it.
    `on_error` sees each transient failure (for metrics)."""

    def sleep(seconds: float) -> None:
        stop.wait(seconds)  # wakes at once on shutdown

    def before_sleep(state: tenacity.RetryCallState) -> None:
        err = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0
        if err is not None and on_error is not None:
            on_error(err)
        log.warning(
            "%s failed (%s); retry %d in %.1f s",
            what,
            err,
            state.attempt_number,
            wait,
            extra={"operation": what, "error": type(err).__name__, "retry_in_s": round(wait, 1)},
        )

    return tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(TransientError),
        wait=tenacity.wait_random_exponential(multiplier=BACKOFF_INITIAL_S, max=max_wait_s),
        stop=tenacity.stop_when_event_set(stop),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
