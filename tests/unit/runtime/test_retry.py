"""The one retry policy (runtime.retry.until_stopped): TransientError is retried with capped,
jittered backoff until the call passes or the stop event is set; nothing else is retried."""

from __future__ import annotations

import logging
import threading

import pytest
import tenacity

from login_etl.errors import (
    KmsUnavailable,
    LoginEtlError,
    SinkError,
    SinkUnavailable,
    SourceError,
    SourceUnavailable,
    TransientError,
)
from login_etl.runtime.retry import BACKOFF_INITIAL_S, BACKOFF_MAX_S, until_stopped

QUICK_S = 0.001  # the cap in tests that do retry: each sleep at most a millisecond


class RecordingEvent(threading.Event):
    """A stop event that records each wait: the policy sleeps on it, so that stop wakes it."""

    def __init__(self) -> None:
        super().__init__()
        self.waits: list[float | None] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        return super().wait(timeout)


class Flaky:
    """Raises the given errors in turn, then returns "done"."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


@pytest.mark.parametrize(
    "error",
    [SourceUnavailable("sqs down"), SinkUnavailable("db down"), KmsUnavailable("kms down")],
    ids=lambda error: type(error).__name__,
)
def test_a_transient_error_is_retried_until_the_call_passes(error: TransientError) -> None:
    seen: list[BaseException] = []
    call = Flaky(error, error)
    retrying = until_stopped("op", threading.Event(), max_wait_s=QUICK_S, on_error=seen.append)
    assert retrying(call) == "done"
    assert call.calls == 3
    assert seen == [error, error], "on_error sees each transient failure"


@pytest.mark.parametrize(
    "error",
    [
        SourceError("queue missing"),
        SinkError("schema mismatch"),
        LoginEtlError("a bare one"),
        ValueError("a bug"),
    ],
    ids=lambda error: type(error).__name__,
)
def test_any_other_error_is_raised_at_once(error: Exception) -> None:
    seen: list[BaseException] = []
    call = Flaky(error)
    retrying = until_stopped("op", threading.Event(), max_wait_s=QUICK_S, on_error=seen.append)
    with pytest.raises(type(error)) as raised:
        retrying(call)
    assert raised.value is error
    assert call.calls == 1
    assert seen == []


def test_once_stop_is_set_the_last_transient_error_is_raised() -> None:
    stop = threading.Event()
    stop.set()
    call = Flaky(SourceUnavailable("down"), SourceUnavailable("down"))
    with pytest.raises(SourceUnavailable):
        until_stopped("op", stop, max_wait_s=QUICK_S)(call)
    assert call.calls == 1


def test_stop_set_while_retrying_ends_the_retries_and_wakes_the_sleep() -> None:
    stop = RecordingEvent()
    call = Flaky(*(SinkUnavailable(f"down {n}") for n in range(100)))
    # The first failure asks for shutdown, as a signal would; the sleep is a wait on `stop`.
    retrying = until_stopped("commit", stop, on_error=lambda _err: stop.set())
    with pytest.raises(SinkUnavailable, match="down 1"):
        retrying(call)
    assert call.calls == 2  # the attempt in hand when stop came, and no more
    assert len(stop.waits) == 1
    assert stop.waits[0] is not None
    assert 0 <= stop.waits[0] <= 2 * BACKOFF_INITIAL_S


def backoffs(retrying: tenacity.Retrying, attempt: int, samples: int = 200) -> list[float]:
    """The waits the policy would pick after the `attempt`-th failure."""
    state = tenacity.RetryCallState(retrying, fn=None, args=(), kwargs={})
    state.attempt_number = attempt
    return [retrying.wait(state) for _ in range(samples)]


def test_the_first_retry_comes_soon_and_every_wait_is_capped() -> None:
    retrying = until_stopped("op", threading.Event())
    assert BACKOFF_MAX_S == 30.0  # "no more often than every 30 s" (the module's docstring)
    first = backoffs(retrying, 1)
    assert all(0 <= w <= 2 * BACKOFF_INITIAL_S for w in first)
    for attempt in (10, 50, 1000):
        waits = backoffs(retrying, attempt)
        assert all(0 <= w <= BACKOFF_MAX_S for w in waits)
        # Full jitter: spread over the range, not in step with other workers.
        assert max(waits) > BACKOFF_MAX_S / 2
        assert min(waits) < BACKOFF_MAX_S / 2


def test_a_callers_cap_replaces_the_default() -> None:
    retrying = until_stopped("op", threading.Event(), max_wait_s=2.0)
    assert all(w <= 2.0 for w in backoffs(retrying, 1000))


def test_each_retry_is_logged_with_the_operation_and_the_error_class(
    caplog: pytest.LogCaptureFixture,
) -> None:
    call = Flaky(SourceUnavailable("sqs down"))
    with caplog.at_level(logging.WARNING, logger="login_etl.runtime.retry"):
        assert until_stopped("receive", threading.Event(), max_wait_s=QUICK_S)(call) == "done"
    [record] = caplog.records
    assert record.getMessage().startswith("receive failed (sqs down); retry 1 in ")
    assert record.operation == "receive"  # type: ignore[attr-defined]
    assert record.error == "SourceUnavailable"  # type: ignore[attr-defined]
