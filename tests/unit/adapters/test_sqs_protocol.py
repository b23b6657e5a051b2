"""SQS wire protocol: telling an endpoint's refusal from other errors, switching once in `auto`,
and the vendored query-protocol model. No network: botocore's before-send event answers."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import botocore.awsrequest
import botocore.config
import pytest

from login_etl.adapters import sqs_protocol
from login_etl.adapters.sqs import SqsSource
from login_etl.adapters.sqs_protocol import (
    PROTOCOL_SETTING,
    QUERY_MODEL_DIR,
    QUERY_ONLY_ENDPOINTS,
    ProtocolClient,
    WireProtocol,
    answer_format,
    error_detail,
    refuses,
    sqs_client,
)
from login_etl.config import load_settings
from login_etl.errors import ConfigError, SourceUnavailable, SqsProtocolError, TransientError

# LocalStack 1.4.0's answer to every JSON-protocol request (HTTP 500).
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
QUERY_RECEIVED = (
    b'<?xml version="1.0"?><ReceiveMessageResponse><ReceiveMessageResult><Message>'
    b"<MessageId>m-1</MessageId><ReceiptHandle>r-1</ReceiptHandle><MD5OfBody>x</MD5OfBody>"
    b"<Body>hello</Body><Attribute><Name>SentTimestamp</Name><Value>1700000000000</Value>"
    b"</Attribute></Message></ReceiveMessageResult><ResponseMetadata><RequestId>R</RequestId>"
    b"</ResponseMetadata></ReceiveMessageResponse>"
)
JSON_RECEIVED = json.dumps(
    {
        "Messages": [
            {
                "MessageId": "m-1",
                "ReceiptHandle": "r-1",
                "Body": "hello",
                "Attributes": {"SentTimestamp": "1700000000000"},
            }
        ]
    }
).encode()
PROXY_PAGE = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
# An XHTML error page: its first 64 bytes hold only the XML declaration.
XHTML_503 = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" '
    b'"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">\n'
    b'<html xmlns="http://www.w3.org/1999/xhtml"><head><title>503 Service Unavailable</title>'
    b"</head><body><h1>Service Unavailable</h1></body></html>"
)
HEAD_PAGE = b"<head><title>404 Not Found</title></head><body>not here</body>"
# API gateways' answers: JSON, but no AWS error envelope.
GATEWAY_503 = b'{"message":"Service Unavailable"}'
GATEWAY_429 = b'{"message":"Too Many Requests"}'


def query_error(code: str) -> bytes:
    """An error in the query protocol's XML envelope."""
    return (
        b'<?xml version="1.0"?><ErrorResponse><Error><Type>Sender</Type><Code>'
        + code.encode()
        + b"</Code><Message>m</Message></Error><RequestId>R</RequestId></ErrorResponse>"
    )


QUEUE_URL = "http://127.0.0.1:4610/000000000000/login-queue"


@pytest.mark.parametrize(
    ("sent", "status", "body", "expected"),
    [
        ("json", 500, LOCALSTACK_1_4_REFUSAL, True),
        ("json", 200, QUERY_RECEIVED, True),  # an XML success is no JSON answer either
        ("json", 400, JSON_ONLY_REFUSAL, True),  # the operation was not found in the request
        ("json", 500, b'{"message": "Operation detection failed. Missing Action"}', True),
        ("json", 200, JSON_RECEIVED, False),
        ("json", 400, b'{"__type": "com.amazonaws.sqs#QueueDoesNotExist"}', False),
        ("json", 400, b'{"__type": "ThrottlingException", "message": "slow down"}', False),
        ("json", 502, PROXY_PAGE, False),  # a proxy's page says nothing about the protocol
        ("json", 503, b"<!DOCTYPE html><html></html>", False),
        ("json", 500, b"", False),
        ("json", 500, b"Internal Server Error", False),
        ("query", 200, QUERY_RECEIVED, False),
        ("query", 500, LOCALSTACK_1_4_REFUSAL, False),  # an XML error: the query protocol's own
        ("query", 400, JSON_ONLY_REFUSAL, True),
        ("query", 200, JSON_RECEIVED, True),
        ("query", 502, PROXY_PAGE, False),
        # Outages and throttling, in whatever format a gateway answers: ordinary errors.
        ("json", 503, XHTML_503, False),
        ("json", 200, XHTML_503, False),
        ("json", 404, HEAD_PAGE, False),
        ("json", 503, HEAD_PAGE, False),
        ("json", 503, query_error("ServiceUnavailable"), False),
        ("json", 429, query_error("Throttling"), False),
        ("json", 500, query_error("InternalError"), False),
        ("json", 400, b"<status>bad</status>", False),  # XML, but no AWS error envelope
        ("json", 503, GATEWAY_503, False),
        ("query", 503, GATEWAY_503, False),
        ("query", 429, GATEWAY_429, False),
        ("query", 500, b'{"__type": "InternalFailure", "message": "m"}', False),
        ("query", 403, b'{"message": "Forbidden"}', False),  # JSON, but no AWS error envelope
        ("query", 400, query_error("InvalidAction"), False),  # the query protocol's own error
        # The other protocol's error envelope on a 4xx; an unknown operation at any status.
        ("json", 400, query_error("InvalidParameterValue"), True),
        ("json", 403, b"<Error><Code>AccessDenied</Code><Message>m</Message></Error>", True),
        ("json", 500, query_error("InvalidAction"), True),
        ("json", 503, LOCALSTACK_1_4_REFUSAL, True),
        ("query", 400, b'{"__type": "com.amazonaws.sqs#QueueDoesNotExist"}', True),
        ("query", 400, b'{"code": "InvalidParameterValue", "message": "m"}', True),
        ("query", 500, JSON_ONLY_REFUSAL, True),
    ],
)
def test_refuses_tells_a_protocol_refusal_from_other_answers(
    sent: WireProtocol, status: int, body: bytes, expected: bool
) -> None:
    assert refuses(sent, status, body) is expected


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (XHTML_503, "html"),
        (HEAD_PAGE, "html"),
        (b"<!-- proxy -->\n<html></html>", "html"),
        (PROXY_PAGE, "html"),
        (LOCALSTACK_1_4_REFUSAL, "xml"),
        (b"\xef\xbb\xbf" + QUERY_RECEIVED, "xml"),
        (b'<?xml version="1.0"', "xml"),
        (b' \n{"Messages": []}', "json"),
        (b"Internal Server Error", "other"),
        (b"", "other"),
    ],
)
def test_answer_format_looks_past_the_xml_declaration(body: bytes, expected: str) -> None:
    assert answer_format(body) == expected


def test_error_detail_quotes_the_endpoint_briefly_on_one_line() -> None:
    detail = error_detail(500, LOCALSTACK_1_4_REFUSAL)
    assert detail.startswith("HTTP 500: exception while calling sqs with unknown operation:")
    assert "Missing Action" in detail
    assert error_detail(400, JSON_ONLY_REFUSAL) == "HTTP 400: no Action"
    assert error_detail(502, b"") == "HTTP 502"
    long = error_detail(500, b"<Error><Message>" + b"x\n" * 500 + b"</Message></Error>")
    assert "\n" not in long
    assert len(long) < 200


class FakeEndpoint:
    """An SQS endpoint that speaks `speaks` (json, query, both or neither), answering botocore's
    requests in its before-send event; records the protocol of every request."""

    def __init__(self, speaks: set[WireProtocol], *, refusal: bytes | None = None) -> None:
        self.speaks = speaks
        self.refusal = refusal
        self.requests: list[WireProtocol] = []
        self.barrier: threading.Barrier | None = None
        self._lock = threading.Lock()

    def answer(self, request: botocore.awsrequest.AWSPreparedRequest, **_: Any) -> Any:
        wire: WireProtocol = "json" if "X-Amz-Target" in request.headers else "query"
        with self._lock:
            self.requests.append(wire)
        if self.refusal is not None:
            return _response(request, 502, self.refusal)
        if wire not in self.speaks:
            if self.barrier is not None:
                self.barrier.wait(timeout=30)  # every caller refused before any switches
            if wire == "json":
                return _response(request, 500, LOCALSTACK_1_4_REFUSAL)
            return _response(request, 400, JSON_ONLY_REFUSAL)
        return _response(request, 200, JSON_RECEIVED if wire == "json" else QUERY_RECEIVED)


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._body


def _response(
    request: botocore.awsrequest.AWSPreparedRequest, status: int, body: bytes
) -> botocore.awsrequest.AWSResponse:
    return botocore.awsrequest.AWSResponse(request.url, status, {}, _Raw(body))


@pytest.fixture(autouse=True)
def _forget_detected_endpoints() -> Iterator[None]:
    QUERY_ONLY_ENDPOINTS.clear()
    yield
    QUERY_ONLY_ENDPOINTS.clear()


def client_for(
    endpoint: FakeEndpoint | ExecutingEndpoint,
    protocol: sqs_protocol.SqsProtocol,
    *,
    url: str = "http://127.0.0.1:4610",
    attempts: int = 4,
) -> ProtocolClient:
    """A ProtocolClient whose botocore clients (built as login-etl builds them, with standard
    retries) talk to `endpoint`."""
    config = botocore.config.Config(retries={"mode": "standard", "max_attempts": attempts})

    def make(wire: WireProtocol) -> Any:
        client = sqs_protocol._make_client(
            wire,
            None,
            {
                "endpoint_url": url,
                "region_name": "us-east-1",
                "aws_access_key_id": "test",
                "aws_secret_access_key": "test",
                "config": config,
            },
        )
        client.meta.events.register("before-send.sqs", endpoint.answer)
        return client

    return ProtocolClient(protocol, make)


def receive(client: ProtocolClient) -> list[str]:
    source = SqsSource(client, QUEUE_URL, visibility_timeout=30)  # type: ignore[arg-type]
    return [m.body for m in source.receive(0)]


def switch_lines(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "using the query protocol" in r.getMessage()]


def test_auto_switches_to_query_replays_the_refused_call_and_says_so_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    endpoint = FakeEndpoint({"query"})
    client = client_for(endpoint, "auto")
    with caplog.at_level(logging.INFO, logger="login_etl.adapters.sqs_protocol"):
        assert receive(client) == ["hello"]  # the refused receive, replayed
        assert receive(client) == ["hello"]
        # A client built afterwards asks the query protocol at once.
        assert receive(client_for(endpoint, "auto")) == ["hello"]
    assert endpoint.requests == ["json", "query", "query", "query"]
    [line] = switch_lines(caplog)
    assert line.levelno == logging.INFO
    assert "http://127.0.0.1:4610 does not speak SQS's JSON protocol" in line.getMessage()


def test_auto_switches_once_however_many_pollers_find_it_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pollers = 8
    endpoint = FakeEndpoint({"query"})
    endpoint.barrier = threading.Barrier(pollers)
    client = client_for(endpoint, "auto")
    received: list[list[str]] = []

    def poll() -> None:
        received.append(receive(client))

    with caplog.at_level(logging.INFO, logger="login_etl.adapters.sqs_protocol"):
        threads = [threading.Thread(target=poll) for _ in range(pollers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert received == [["hello"]] * pollers
    assert endpoint.requests.count("json") == pollers
    assert endpoint.requests.count("query") == pollers
    assert len(switch_lines(caplog)) == 1


def test_auto_is_per_endpoint() -> None:
    receive(client_for(FakeEndpoint({"query"}), "auto", url="http://legacy:4610"))
    modern = FakeEndpoint({"json", "query"})
    receive(client_for(modern, "auto", url="http://modern:4566"))
    assert modern.requests == ["json"]


@pytest.mark.parametrize(
    ("protocol", "speaks", "remedy"),
    [("json", {"query"}, "set it to auto or query"), ("query", {"json"}, "set it to auto or json")],
)
def test_a_forced_protocol_the_endpoint_does_not_speak_is_permanent_and_not_retried(
    protocol: sqs_protocol.SqsProtocol, speaks: set[WireProtocol], remedy: str
) -> None:
    endpoint = FakeEndpoint(speaks)
    with pytest.raises(SqsProtocolError) as raised:
        receive(client_for(endpoint, protocol))
    message = str(raised.value)
    assert message.startswith(f"{PROTOCOL_SETTING} is {protocol}, but the SQS endpoint ")
    assert remedy in message
    assert "\n" not in message
    assert endpoint.requests == [protocol]  # one request: neither retried nor switched


def test_auto_on_an_endpoint_that_speaks_neither_is_permanent() -> None:
    endpoint = FakeEndpoint(set())
    with pytest.raises(SqsProtocolError, match=r"answers neither SQS's JSON nor its query"):
        receive(client_for(endpoint, "auto"))
    assert endpoint.requests == ["json", "query"]


class ExecutingEndpoint:
    """A query-only endpoint that executes JSON requests all the same and answers them with its
    query protocol's XML success, or with `json_refusal` (HTTP 500) when given. Records each
    request as (protocol, operation)."""

    def __init__(self, *, json_refusal: bytes | None = None) -> None:
        self.json_refusal = json_refusal
        self.requests: list[tuple[WireProtocol, str]] = []

    def answer(self, request: botocore.awsrequest.AWSPreparedRequest, **_: Any) -> Any:
        target: str | bytes | None = request.headers.get("X-Amz-Target")
        if target is not None:
            wire: WireProtocol = "json"
            text = target.decode() if isinstance(target, bytes) else target
            operation = text.rpartition(".")[2]  # "AmazonSQS.SendMessage"
        else:
            wire = "query"
            operation = str(request.body).partition("Action=")[2].partition("&")[0]
        self.requests.append((wire, operation))
        if wire == "json" and self.json_refusal is not None:
            return _response(request, 500, self.json_refusal)
        if operation == "ReceiveMessage":
            return _response(request, 200, QUERY_RECEIVED)
        return _response(
            request,
            200,
            f"<{operation}Response><{operation}Result></{operation}Result><ResponseMetadata>"
            f"<RequestId>R</RequestId></ResponseMetadata></{operation}Response>".encode(),
        )


SEND_CALLS: dict[str, dict[str, Any]] = {
    "send_message": {"QueueUrl": QUEUE_URL, "MessageBody": "x"},
    "send_message_batch": {"QueueUrl": QUEUE_URL, "Entries": [{"Id": "0", "MessageBody": "x"}]},
}


@pytest.mark.parametrize("method", sorted(SEND_CALLS))
def test_a_send_the_endpoint_may_have_executed_is_not_replayed(method: str) -> None:
    endpoint = ExecutingEndpoint()
    client: Any = client_for(endpoint, "auto")
    with pytest.raises(SourceUnavailable, match="may have been executed") as raised:
        getattr(client, method)(**SEND_CALLS[method])
    assert "\n" not in str(raised.value)
    operation = "SendMessage" if method == "send_message" else "SendMessageBatch"
    assert endpoint.requests == [("json", operation)]  # sent once, not twice
    # The switch holds: the next send goes out in the query protocol, once.
    getattr(client, method)(**SEND_CALLS[method])
    assert endpoint.requests == [("json", operation), ("query", operation)]


def test_a_receive_or_delete_the_endpoint_may_have_executed_is_replayed() -> None:
    endpoint = ExecutingEndpoint()
    client = client_for(endpoint, "auto")
    source = SqsSource(client, QUEUE_URL, visibility_timeout=30)  # type: ignore[arg-type]
    assert source.delete(source.receive(0)) == 0
    assert endpoint.requests == [
        ("json", "ReceiveMessage"),
        ("query", "ReceiveMessage"),
        ("query", "DeleteMessageBatch"),
    ]
    fresh = ExecutingEndpoint()
    other: Any = client_for(fresh, "auto", url="http://other:4610")
    other.delete_message_batch(QueueUrl=QUEUE_URL, Entries=[{"Id": "0", "ReceiptHandle": "r"}])
    assert fresh.requests == [("json", "DeleteMessageBatch"), ("query", "DeleteMessageBatch")]


def test_a_send_refused_with_an_error_was_not_executed_and_is_replayed() -> None:
    endpoint = ExecutingEndpoint(json_refusal=LOCALSTACK_1_4_REFUSAL)
    client: Any = client_for(endpoint, "auto")
    client.send_message_batch(**SEND_CALLS["send_message_batch"])
    assert endpoint.requests == [("json", "SendMessageBatch"), ("query", "SendMessageBatch")]


def test_a_proxy_error_page_is_an_ordinary_transient_error_not_a_switch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    endpoint = FakeEndpoint({"json", "query"}, refusal=PROXY_PAGE)
    with pytest.raises(TransientError), caplog.at_level(logging.INFO):
        receive(client_for(endpoint, "auto", attempts=2))
    # botocore retried it, as a 502 should be, and never in the query protocol.
    assert len(endpoint.requests) > 1
    assert set(endpoint.requests) == {"json"}
    assert not switch_lines(caplog)


def test_the_error_never_shows_credentials_in_the_endpoint_url() -> None:
    endpoint = FakeEndpoint({"query"})
    with pytest.raises(SqsProtocolError) as raised:
        receive(client_for(endpoint, "json", url="http://user:s3cret@127.0.0.1:4610"))
    assert "s3cret" not in str(raised.value)
    assert "http://127.0.0.1:4610" in str(raised.value)


def test_the_query_client_uses_the_vendored_model_with_the_current_botocore() -> None:
    client = sqs_client("query", endpoint_url="http://127.0.0.1:4610", region_name="us-east-1")
    model = client.meta.service_model
    assert model.protocol == "query"
    assert model.api_version == "2012-11-05"
    # The old model lacks the newer alias; AttributeNames (what login-etl sends) is there.
    receive_input = model.operation_model("ReceiveMessage").input_shape.members
    assert "AttributeNames" in receive_input
    assert "MessageSystemAttributeNames" not in receive_input
    used = {
        "ReceiveMessage",
        "DeleteMessageBatch",
        "ChangeMessageVisibilityBatch",
        "GetQueueAttributes",
        "SetQueueAttributes",
        "CreateQueue",
        "DeleteQueue",
        "SendMessageBatch",
    }
    assert used <= set(model.operation_names)
    # The JSON side is today's botocore, untouched.
    json_client = sqs_client("json", endpoint_url="http://127.0.0.1:4610", region_name="us-east-1")
    assert json_client.meta.service_model.protocol == "json"


def test_the_vendored_model_ships_with_its_licence() -> None:
    assert (QUERY_MODEL_DIR / "sqs" / "2012-11-05" / "service-2.json").is_file()
    notice = (QUERY_MODEL_DIR / "NOTICE").read_text()
    assert "botocore 1.31.80" in notice
    assert "Amazon.com, Inc." in notice
    assert "Apache License" in (QUERY_MODEL_DIR / "LICENSE").read_text()


def test_the_setting_defaults_to_auto_and_names_itself_when_wrong(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LOGIN_ETL_SQS_PROTOCOL", raising=False)
    assert load_settings().sqs_protocol == "auto"
    assert load_settings(sqs_protocol="query").sqs_protocol == "query"
    monkeypatch.setenv("LOGIN_ETL_SQS_PROTOCOL", "xml")
    with pytest.raises(ConfigError, match=r"^LOGIN_ETL_SQS_PROTOCOL \(--sqs-protocol\): "):
        load_settings()


def test_from_settings_builds_the_client_the_setting_names() -> None:
    settings = load_settings(queue_url=QUEUE_URL, sqs_protocol="query")
    client: Any = SqsSource.from_settings(settings)._client
    assert client.wire == "query"
    assert client.meta.service_model.protocol == "query"


@pytest.mark.parametrize(
    ("attribute", "argument"),
    [("get_paginator", "list_queues"), ("get_waiter", "queue_exists")],
)
def test_paginators_and_waiters_are_refused_since_they_would_skip_the_switch(
    attribute: str, argument: str
) -> None:
    # Their calls would go to botocore directly: never switched, never replayed.
    client = client_for(FakeEndpoint({"query"}), "auto")
    with pytest.raises(AttributeError, match=f"no {attribute}: .*bypass the protocol switch"):
        getattr(client, attribute)(argument)
