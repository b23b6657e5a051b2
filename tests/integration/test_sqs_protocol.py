"""Both SQS protocols against moto's server, and `auto` against an endpoint that refuses JSON
the way LocalStack 1.x (the exercise's image) does: a small proxy in front of moto."""

from __future__ import annotations

import json
import socketserver
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Iterator
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import psycopg
import pytest

from login_etl.adapters.sqs import SqsSource, ensure_dead_letter_queue
from login_etl.adapters.sqs_protocol import (
    PROTOCOL_SETTING,
    QUERY_ONLY_ENDPOINTS,
    SqsProtocol,
    sqs_client,
)
from login_etl.config import Settings, load_settings
from login_etl.demo.data import generate_bodies, publish
from login_etl.demo.services import MotoSqs
from login_etl.errors import LoginEtlError, SqsProtocolError, TransientError
from login_etl.ports import Backlog
from tests.support import count, sample_bodies

SWITCH_LINE = "does not speak SQS's JSON protocol"
LOCALSTACK_1_4_REFUSAL = (
    b"<?xml version='1.0' encoding='utf-8'?>\n"
    b'<ErrorResponse xmlns="http://queue.amazonaws.com/doc/2012-11-05/"><Error>'
    b"<Code>InternalError</Code><Message>exception while calling sqs with unknown operation: "
    b"Operation detection failed. Missing Action in request for query-protocol service "
    b"ServiceModel(sqs).</Message></Error><RequestId>R</RequestId></ErrorResponse>"
)
JSON_ONLY_REFUSAL = (
    b'{"__type": "com.amazon.coral.service#UnknownOperationException", "message": "no Action"}'
)


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class OneProtocolSqs:
    """An SQS endpoint that speaks one protocol: requests in the other are refused as LocalStack
    1.4 refuses JSON (HTTP 500, XML, "Missing Action"), or as a JSON-only endpoint would refuse
    query (HTTP 400, JSON); the rest are forwarded to moto. Records each request's protocol."""

    def __init__(self, upstream: str, speaks: Literal["json", "query"]) -> None:
        self.upstream = upstream
        self.speaks = speaks
        self.requests: list[str] = []
        self._server = make_server("127.0.0.1", 0, self._app, _ThreadingServer, _Quiet)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def queue_url(self, moto_queue_url: str) -> str:
        """The queue's URL through this endpoint."""
        return self.endpoint + urlsplit(moto_queue_url).path

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        is_json = "HTTP_X_AMZ_TARGET" in environ or environ.get("CONTENT_TYPE", "").startswith(
            "application/x-amz-json"
        )
        wire = "json" if is_json else "query"
        self.requests.append(wire)
        if wire != self.speaks:
            if wire == "json":
                start_response("500 Internal Server Error", [("Content-Type", "text/xml")])
                return [LOCALSTACK_1_4_REFUSAL]
            start_response("400 Bad Request", [("Content-Type", "application/x-amz-json-1.0")])
            return [JSON_ONLY_REFUSAL]
        headers = {
            key[5:].replace("_", "-").title(): value
            for key, value in environ.items()
            if key.startswith("HTTP_") and key != "HTTP_HOST"
        }
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        path = environ.get("PATH_INFO", "/")
        if environ.get("QUERY_STRING"):
            path += "?" + environ["QUERY_STRING"]
        request = urllib.request.Request(  # noqa: S310 - moto on loopback
            self.upstream + path,
            data=body or None,
            headers=headers,
            method=environ["REQUEST_METHOD"],
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
                status, reason, answer = response.status, response.reason, response.read()
                content_type = response.headers.get("Content-Type", "text/xml")
        except urllib.error.HTTPError as err:
            status, reason, answer = err.code, err.reason, err.read()
            content_type = err.headers.get("Content-Type", "text/xml")
        start_response(f"{status} {reason}", [("Content-Type", content_type)])
        return [answer]


@pytest.fixture(autouse=True)
def _forget_detected_endpoints() -> Iterator[None]:
    QUERY_ONLY_ENDPOINTS.clear()
    yield
    QUERY_ONLY_ENDPOINTS.clear()


@pytest.fixture
def query_only(moto: MotoSqs) -> Iterator[OneProtocolSqs]:
    server = OneProtocolSqs(moto.endpoint, "query")
    yield server
    server.close()


@pytest.fixture
def json_only(moto: MotoSqs) -> Iterator[OneProtocolSqs]:
    server = OneProtocolSqs(moto.endpoint, "json")
    yield server
    server.close()


def switch_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if SWITCH_LINE in line]


def loaded(db: psycopg.Connection[tuple[Any, ...]]) -> tuple[int, int]:
    return count(db, "user_logins"), count(db, "login_etl.rejected_messages")


@pytest.mark.parametrize("protocol", ["json", "query"])
def test_every_sqs_call_works_through_either_protocol_on_moto(
    protocol: SqsProtocol, moto: MotoSqs, make_settings: Callable[..., Settings]
) -> None:
    """receive, extend and release (ChangeMessageVisibilityBatch), delete (DeleteMessageBatch),
    backlog and the dead-letter queue (GetQueueAttributes, CreateQueue, SetQueueAttributes),
    and SendMessageBatch as the demo, the benchmark and the tests send."""
    settings = make_settings(sqs_protocol=protocol)
    source = SqsSource.from_settings(settings)
    client: Any = source._client
    assert client.meta.service_model.protocol == protocol
    sender = sqs_client(
        protocol,
        endpoint_url=moto.endpoint,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    assert publish(sender, settings.queue_url, generate_bodies(12)) == 12

    first = source.receive(0, 10)
    assert first
    source.extend(first, 30)
    source.release(first)
    received: dict[str, Any] = {}
    while not source.backlog().empty:
        for message in source.receive(0, 10):
            received[message.message_id] = message
            assert message.sent_timestamp_ms > 1_600_000_000_000
        assert source.delete(list(received.values())) == 0
    assert len(received) == 12
    assert source.backlog() == Backlog(visible=0, in_flight=0, delayed=0)

    dlq_url = ensure_dead_letter_queue(source)
    assert dlq_url.endswith(urlsplit(settings.queue_url).path.rsplit("/", 1)[1] + "-dlq")
    policy = sender.get_queue_attributes(
        QueueUrl=settings.queue_url, AttributeNames=["RedrivePolicy"]
    )["Attributes"]["RedrivePolicy"]
    assert json.loads(policy)["maxReceiveCount"] == 5


@pytest.mark.parametrize("protocol", ["json", "query"])
def test_run_loads_through_either_protocol_on_moto(
    protocol: str,
    cli: Any,
    send: Callable[[list[str]], int],
    backlog: Callable[[], Backlog],
    db: psycopg.Connection[tuple[Any, ...]],
) -> None:
    send(generate_bodies(40, malformed=2))
    done = cli("run", "--until-empty", "--sqs-protocol", protocol)
    assert done.returncode == 0, done.stderr
    assert "38 loaded, 2 rejected" in done.stdout
    assert loaded(db) == (38, 2)
    assert backlog().empty
    assert not switch_lines(done.stderr)


def test_auto_detects_an_endpoint_that_refuses_json_and_loads_everything(
    cli: Any,
    query_only: OneProtocolSqs,
    queue_url: str,
    send: Callable[[list[str]], int],
    backlog: Callable[[], Backlog],
    db: psycopg.Connection[tuple[Any, ...]],
) -> None:
    """The exercise's case: no SQS setting at all, an emulator that answers JSON with HTTP 500.
    Before LOGIN_ETL_SQS_PROTOCOL, this run retried `SQS receive: 500` for ever."""
    send(generate_bodies(100))
    env = {"LOGIN_ETL_QUEUE_URL": query_only.queue_url(queue_url)}
    done = cli("run", "--until-empty", **env)  # 8 pollers, all refused at first
    assert done.returncode == 0, done.stderr
    assert "99 loaded, 1 rejected" in done.stdout
    assert loaded(db) == (99, 1)
    assert backlog().empty
    [line] = switch_lines(done.stderr)
    assert "INFO" in line or '"level": "INFO"' in line
    assert "receive failed" not in done.stderr
    assert "query" in query_only.requests

    again = cli("run", "--until-empty", **env)
    assert again.returncode == 0, again.stderr
    assert "0 received" in again.stdout
    assert loaded(db) == (99, 1)
    assert len(switch_lines(again.stderr)) == 1  # a new process finds it out again, once


def test_json_forced_on_an_endpoint_that_refuses_it_exits_1_with_one_line(
    cli: Any, query_only: OneProtocolSqs, queue_url: str, send: Callable[[list[str]], int]
) -> None:
    send(generate_bodies(10))
    done = cli(
        "run",
        "--until-empty",
        LOGIN_ETL_QUEUE_URL=query_only.queue_url(queue_url),
        LOGIN_ETL_SQS_PROTOCOL="json",
    )
    assert done.returncode == 1, done.stderr
    [line] = [line for line in done.stderr.splitlines() if PROTOCOL_SETTING in line]
    assert line.startswith(f"login-etl: error: {PROTOCOL_SETTING} is json, but the SQS endpoint")
    assert line.endswith("set it to auto or query")
    assert "Traceback" not in done.stderr
    assert "receive failed" not in done.stderr
    # One refused request per poller and per queue check at most: no retry loop.
    assert "query" not in query_only.requests
    assert len(query_only.requests) <= 8 + 1


def test_query_forced_on_a_query_only_endpoint_needs_no_detection(
    cli: Any,
    query_only: OneProtocolSqs,
    queue_url: str,
    send: Callable[[list[str]], int],
    db: psycopg.Connection[tuple[Any, ...]],
) -> None:
    send(generate_bodies(30))
    done = cli(
        "run",
        "--until-empty",
        "--sqs-protocol",
        "query",
        LOGIN_ETL_QUEUE_URL=query_only.queue_url(queue_url),
    )
    assert done.returncode == 0, done.stderr
    assert loaded(db) == (29, 1)
    assert set(query_only.requests) == {"query"}
    assert not switch_lines(done.stderr)


def test_query_forced_on_a_json_only_endpoint_exits_1_with_one_line(
    cli: Any, json_only: OneProtocolSqs, queue_url: str
) -> None:
    done = cli(
        "run",
        "--until-empty",
        LOGIN_ETL_QUEUE_URL=json_only.queue_url(queue_url),
        LOGIN_ETL_SQS_PROTOCOL="query",
    )
    assert done.returncode == 1, done.stderr
    [line] = [line for line in done.stderr.splitlines() if PROTOCOL_SETTING in line]
    assert line.startswith(f"login-etl: error: {PROTOCOL_SETTING} is query, but")
    assert line.endswith("set it to auto or json")


def test_create_dlq_and_readiness_work_through_auto_on_a_query_only_endpoint(
    cli: Any,
    query_only: OneProtocolSqs,
    queue_url: str,
    sqs_client: Any,
    make_settings: Callable[..., Settings],
) -> None:
    through = query_only.queue_url(queue_url)
    done = cli("queue", "create-dlq", LOGIN_ETL_QUEUE_URL=through)
    assert done.returncode == 0, done.stderr
    attributes = sqs_client.get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["RedrivePolicy"]
    )["Attributes"]
    assert "RedrivePolicy" in attributes
    # /readyz asks the source for the backlog (login_etl.runtime.wiring.serving).
    source = SqsSource.from_settings(make_settings(queue_url=through, aws_endpoint_url=None))
    assert source.backlog().empty
    assert query_only.requests[0] == "json"
    assert query_only.requests[-1] == "query"


# -- an outage is no protocol refusal ----------------------------------------------------------

# A proxy's XHTML error page: its first 64 bytes hold only the XML declaration.
XHTML_503 = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" '
    b'"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">\n'
    b'<html xmlns="http://www.w3.org/1999/xhtml"><head><title>503 Service Unavailable</title>'
    b"</head><body><h1>Service Unavailable</h1></body></html>"
)
HEAD_503 = b"<head><title>503 Service Unavailable</title></head><body>down</body>"
GATEWAY_503 = b'{"message":"Service Unavailable"}'
GATEWAY_429 = b'{"message":"Too Many Requests"}'


class Outage:
    """An SQS endpoint behind a gateway in an outage: every request in protocol p gets
    `answers[p]` (an HTTP status and a gateway's body, never an SQS answer). Records each
    request's protocol."""

    def __init__(self, answers: dict[str, tuple[int, bytes]]) -> None:
        self.answers = answers
        self.requests: list[str] = []
        self._server = make_server("127.0.0.1", 0, self._app, _ThreadingServer, _Quiet)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def queue_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}/000000000000/login-queue"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
        wire = "json" if "HTTP_X_AMZ_TARGET" in environ else "query"
        self.requests.append(wire)
        status, body = self.answers[wire]
        kind = "application/json" if body.startswith(b"{") else "text/html"
        start_response(f"{status} {HTTPStatus(status).phrase}", [("Content-Type", kind)])
        return [body]


@pytest.mark.parametrize(
    ("protocol", "answers"),
    [
        ("json", {"json": (503, XHTML_503)}),
        ("json", {"json": (503, HEAD_503)}),
        ("query", {"query": (503, GATEWAY_503)}),
        ("query", {"query": (429, GATEWAY_429)}),
        ("query", {"query": (503, HEAD_503)}),
        ("auto", {"json": (503, XHTML_503), "query": (503, GATEWAY_503)}),
        ("auto", {"json": (429, GATEWAY_429), "query": (429, GATEWAY_429)}),
    ],
)
def test_a_gateways_503_or_429_is_a_passing_outage_not_a_protocol_refusal(
    protocol: SqsProtocol, answers: dict[str, tuple[int, bytes]]
) -> None:
    """Before, each of these stopped the worker (SqsProtocolError, exit 1): a JSON body to a
    query request, or any body starting with `<` to a JSON request, counted as a refusal."""
    outage = Outage(answers)
    try:
        settings = load_settings(
            queue_url=outage.queue_url,
            aws_endpoint_url=outage.queue_url.rsplit("/", 2)[0],
            sqs_protocol=protocol,
        )
        with pytest.raises(LoginEtlError) as raised:
            SqsSource.from_settings(settings).receive(0)
    finally:
        outage.close()
    assert not isinstance(raised.value, SqsProtocolError), raised.value
    assert isinstance(raised.value, TransientError), raised.value
    # No switch in auto: every request, retries included, stayed in the first protocol.
    assert set(outage.requests) == {"query" if protocol == "query" else "json"}


# -- the real LocalStack 1.4 (../shared/tools/localstack-legacy), when it runs ------------------

LEGACY = "http://127.0.0.1:4610"
SHARED = Path(__file__).resolve().parents[3] / "shared"


def _legacy_is_up() -> bool:
    try:
        with urllib.request.urlopen(LEGACY + "/health", timeout=2) as response:  # noqa: S310
            return b'"sqs"' in response.read()
    except OSError:
        return False


def test_the_exercise_queue_on_the_real_localstack_1_4(
    cli: Any, db: psycopg.Connection[tuple[Any, ...]]
) -> None:
    """Skipped unless `../shared/tools/localstack-legacy start` is running; CI does not start it."""
    if not SHARED.exists() or not _legacy_is_up():
        pytest.skip("LocalStack 1.4 is not running on 127.0.0.1:4610 (../shared/tools)")
    bodies = sample_bodies()
    client = sqs_client(
        "query",
        endpoint_url=LEGACY,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    url = client.create_queue(QueueName=f"login-queue-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    try:
        publish(client, url, bodies)
        env = {"LOGIN_ETL_QUEUE_URL": LEGACY + urlsplit(url).path}
        done = cli("run", "--until-empty", **env)
        assert done.returncode == 0, done.stderr
        assert loaded(db) == (99, 1)
        assert len(switch_lines(done.stderr)) == 1
        again = cli("run", "--until-empty", **env)
        assert again.returncode == 0, again.stderr
        assert loaded(db) == (99, 1)
    finally:
        client.delete_queue(QueueUrl=url)
