"""Logging set-up: other libraries never log below WARNING, however they are configured; an
exception that may quote input is logged by its type and frames only."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import botocore.endpoint
import botocore.parsers
import botocore.session
import pytest

from login_etl.logs import configure_logging, log_failure

SECRET = "Plaintext-c2VjcmV0"  # what must not show


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """Every logger's level, filters and handlers as they were: these tests change them."""
    manager = logging.Logger.manager
    loggers = [logging.getLogger()] + [
        lg for lg in manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    saved = {id(lg): (lg.level, lg.filters[:], lg.handlers[:]) for lg in loggers}
    yield
    for lg in [logging.getLogger(), *manager.loggerDict.values()]:
        if not isinstance(lg, logging.Logger):
            continue
        level, filters, handlers = saved.get(id(lg), (logging.NOTSET, [], []))
        lg.setLevel(level)
        lg.filters[:] = filters
        lg.handlers[:] = handlers


def emitted(capsys: pytest.CaptureFixture[str]) -> list[dict[str, str]]:
    return [json.loads(line) for line in capsys.readouterr().err.splitlines()]


def log_everywhere() -> None:
    """A DEBUG record with the secret from library loggers in every way one could get out."""
    botocore.parsers.LOG.debug("Response body: %s", SECRET)  # a child with its own level
    botocore.endpoint.logger.debug("Making request: %s", SECRET)  # has a handler of its own
    logging.getLogger("urllib3.connectionpool").debug("GET /%s", SECRET)
    logging.getLogger("some_unlisted_library").info("%s", SECRET)
    logging.debug("%s", SECRET)  # the root logger itself
    logging.getLogger("botocore.credentials").warning("no region configured")
    logging.getLogger("login_etl.runtime.committer").debug("batch 1: 10 received")


def test_libraries_log_only_warnings_however_their_loggers_are_set(
    capsys: pytest.CaptureFixture[str],
) -> None:
    direct = io.StringIO()
    logging.getLogger("botocore.parsers").setLevel(logging.DEBUG)
    logging.getLogger("some_unlisted_library").setLevel(logging.DEBUG)
    botocore.session.get_session().set_stream_logger("botocore.endpoint", "DEBUG", direct)

    configure_logging("DEBUG", "json")
    # Called afterwards too (someone debugging): DEBUG on the namespace, a handler attached.
    botocore.session.get_session().set_stream_logger("botocore", "DEBUG", direct)
    log_everywhere()

    lines = emitted(capsys)
    assert SECRET not in json.dumps(lines) + direct.getvalue()
    assert [(r["logger"], r["level"]) for r in lines if r["logger"] != "login_etl.logs"] == [
        ("botocore.credentials", "WARNING"),
        ("login_etl.runtime.committer", "DEBUG"),
    ]
    assert "no region configured" in direct.getvalue()  # warnings still get through


def test_a_host_keeps_its_handlers_and_level_and_libraries_are_held_all_the_same() -> None:
    """As in AWS Lambda: the runtime's root handler, the root at AWS_LAMBDA_LOG_LEVEL=DEBUG."""
    lambdas = io.StringIO()
    runtime_handler = logging.StreamHandler(lambdas)
    root = logging.getLogger()
    root.handlers[:] = [runtime_handler]
    root.setLevel(logging.DEBUG)

    configure_logging("INFO", keep_handlers=True)
    log_everywhere()
    logging.getLogger("login_etl.lambda_handler").info("invocation: 3 records")

    assert root.handlers == [runtime_handler]
    assert root.level == logging.DEBUG
    output = lambdas.getvalue()
    assert SECRET not in output
    assert "no region configured" in output
    assert "invocation: 3 records" in output
    assert "batch 1" not in output  # login_etl at INFO, as asked


def test_login_etl_logs_at_the_level_asked(capsys: pytest.CaptureFixture[str]) -> None:
    logging.getLogger("login_etl").setLevel(logging.ERROR)  # left by an earlier Lambda set-up
    configure_logging("INFO", "json")
    logging.getLogger("login_etl.runtime.committer").debug("not this")
    logging.getLogger("login_etl.runtime.committer").info("this")
    assert [r["message"] for r in emitted(capsys)] == ["this"]


def _parse(text: str) -> int:
    try:
        return int(text)
    except ValueError as err:
        raise LookupError(f"no user for {text!r}") from err


def test_a_failure_is_logged_with_its_types_and_frames_never_its_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    marker = "199.172.111.135"
    try:
        _parse(marker)
    except LookupError as err:
        with caplog.at_level(logging.DEBUG):
            log_failure(logging.getLogger("login_etl.test"), err, "message %s failed", "m-1")
    [record] = caplog.records
    text = record.getMessage()
    assert marker not in caplog.text
    assert record.exc_info is None
    assert record.levelno == logging.ERROR
    assert text.startswith("message m-1 failed (LookupError)\nTraceback (most recent call last):")
    assert "ValueError (message not logged" in text  # the cause, first, as Python prints it
    assert "direct cause of the following exception" in text
    assert "in _parse" in text
    assert text.endswith("LookupError (message not logged: it may quote input)")
    assert record.__dict__["error"] == "LookupError"


def test_a_failure_of_a_library_type_is_named_with_its_module(
    caplog: pytest.LogCaptureFixture,
) -> None:
    document = '{"ip": "10.1.2.3"'
    try:
        json.loads(document)
    except json.JSONDecodeError as err:
        with caplog.at_level(logging.DEBUG):
            log_failure(logging.getLogger("login_etl.test"), err, "parse failed")
    assert "parse failed (json.decoder.JSONDecodeError)" in caplog.text
    assert "10.1.2.3" not in caplog.text
    assert "Expecting" not in caplog.text
