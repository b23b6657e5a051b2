"""`login-etl run --processes N`: N local worker processes draining one queue.

Workers need no coordination beyond SQS and PostgreSQL (the ledger makes any overlap harmless),
so this is a convenience for using several cores on one host; across hosts, run more containers.
Each child builds its own settings from the same environment and options, and reports its
counters back when it ends, or the error that ended it: the exception itself, pickled, so that the
parent raises the same class (a ConfigError still exits 2, a RowRefused keeps its SQLSTATE).
"""

from __future__ import annotations

import logging
import multiprocessing
import pickle
import queue
import signal
import threading
from dataclasses import asdict, fields
from multiprocessing.queues import Queue
from types import FrameType
from typing import Any

from login_etl.config import load_settings
from login_etl.errors import LoginEtlError, WorkerExited
from login_etl.logs import configure_logging
from login_etl.runtime.metrics import PrometheusMetrics
from login_etl.runtime.wiring import open_worker, serving
from login_etl.runtime.worker import RunStats

log = logging.getLogger(__name__)

_COUNTERS = [f.name for f in fields(RunStats) if f.name not in ("started", "finished")]


def _child(
    index: int, overrides: dict[str, Any], until_empty: bool, results: Queue[dict[str, Any]]
) -> None:
    """One worker process: runs until its queue is empty or it is told to stop. Worker i serves
    its metrics on LOGIN_ETL_METRICS_PORT + i."""
    stop = threading.Event()

    def handle(_signum: int, _frame: FrameType | None) -> None:
        stop.set()  # the parent forwards one SIGTERM; the terminal may add a SIGINT: same thing

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
    try:
        settings = load_settings(**overrides)
        if settings.metrics_port is not None:
            settings = settings.model_copy(update={"metrics_port": settings.metrics_port + index})
        configure_logging(settings.log_level, settings.log_format)  # spawned: nothing inherited
        log.debug("worker %d started", index)
        metrics = PrometheusMetrics()
        with (
            open_worker(settings, stop=stop, metrics=metrics) as worker,
            serving(settings, worker, metrics),
        ):
            stats = worker.run(until_empty=until_empty)
    except LoginEtlError as err:
        results.put(error_report(err))
        raise SystemExit(1) from None
    results.put({**asdict(stats), "seconds": stats.seconds})


def error_report(err: LoginEtlError) -> dict[str, Any]:
    """What a child puts on the results queue for the error that ended it: the exception itself.

    Pickled here, not by the queue's feeder thread, which would only print a failure: an error
    that does not survive the round trip (a subclass with an unpicklable argument) is reported
    as its nearest class that does, with its message."""
    for cls in type(err).__mro__:
        if not issubclass(cls, LoginEtlError):
            break
        candidate = err if cls is type(err) else _rebuilt(cls, str(err))
        if candidate is not None and _round_trips(candidate):
            return {"error": candidate}
    return {"error": LoginEtlError(str(err))}  # not reached: LoginEtlError(str) pickles


def _rebuilt(cls: type[LoginEtlError], message: str) -> LoginEtlError | None:
    try:
        return cls(message)
    except TypeError:  # a class that needs more than a message
        return None


def _round_trips(err: LoginEtlError) -> bool:
    try:
        pickle.loads(pickle.dumps(err))  # noqa: S301 - our own bytes, made on the line before
    except (pickle.PicklingError, TypeError, AttributeError):
        return False
    return True


def reraise(reports: list[dict[str, Any]]) -> None:
    """Raise the first error a child reported, as the class it was raised as."""
    for report in reports:
        error = report.get("error")
        if isinstance(error, LoginEtlError):
            raise error


def run_processes(
    count: int, overrides: dict[str, Any], *, until_empty: bool, stop: threading.Event
) -> RunStats:
    """Start `count` workers, forward shutdown to them, and add up their counters."""
    context = multiprocessing.get_context("spawn")  # no fork: boto3 and psycopg hold sockets
    results: Queue[dict[str, Any]] = context.Queue()
    children = [
        context.Process(
            target=_child, args=(i, overrides, until_empty, results), name=f"worker-{i}"
        )
        for i in range(count)
    ]
    for child in children:
        child.start()
    forwarded = False
    while any(child.is_alive() for child in children):
        if stop.wait(0.2) and not forwarded:
            forwarded = True
            for child in children:
                if child.pid is not None and child.is_alive():
                    child.terminate()  # SIGTERM: finish the batch in hand
    reports: list[dict[str, Any]] = []
    while len(reports) < count:
        try:
            reports.append(results.get(timeout=2))
        except queue.Empty:
            break  # a child that was killed reports nothing
    reraise(reports)
    for child in children:
        if child.exitcode != 0:
            raise WorkerExited(f"{child.name} exited with status {child.exitcode}")
    total = RunStats()
    for report in reports:  # none is an error report: reraise() raised those
        for name in _COUNTERS:
            setattr(total, name, getattr(total, name) + report[name])
    total.finished = total.started + max((r["seconds"] for r in reports), default=0.0)
    return total
