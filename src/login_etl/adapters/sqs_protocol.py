"""SQS's two wire protocols, and the one factory of SQS clients that speaks either.

botocore speaks SQS's JSON protocol since 1.31.81; emulators from before 2023 (LocalStack 1.x,
the exercise's image) speak only the older query protocol and answer every JSON request with an
XML error. `sqs_client` builds a client for either; with `auto` it starts with JSON and, at the
first answer showing that the endpoint does not speak it (`refuses`), uses the query protocol
for that endpoint for the rest of the process (`QUERY_ONLY_ENDPOINTS`), replaying the refused
call unless the endpoint may have executed it and it is not safe to repeat. The query protocol
comes from botocore 1.31.80's SQS model, vendored in `sqs_query_model/`.

Kept apart from `login_etl.adapters.sqs` (the message source), which uses it as any caller does.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import threading
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import urlsplit

import boto3
import botocore.session

from login_etl.errors import SourceUnavailable, SqsProtocolError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger(__name__)

SqsProtocol = Literal["auto", "json", "query"]
WireProtocol = Literal["json", "query"]

PROTOCOL_SETTING = "LOGIN_ETL_SQS_PROTOCOL (--sqs-protocol)"
# botocore's SQS model as botocore 1.31.80 shipped it, the last with "protocol": "query": a
# botocore Loader search-path root (sqs/2012-11-05/service-2.json). Licence: its NOTICE.
QUERY_MODEL_DIR = Path(__file__).with_name("sqs_query_model")

# Enough of an answer to tell XML, HTML and JSON apart, past an XML declaration, comments and
# whitespace: an XHTML error page starts `<?xml ...?><!DOCTYPE html ...>`.
_SNIFF_BYTES = 512
_HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<body", b"<title", b"<meta")
# What LocalStack 1.x answers to a JSON-protocol request (HTTP 500, "Operation detection failed.
# Missing Action in request for query-protocol service"), whatever the format around it.
_REFUSAL_MARKERS = (b"Missing Action", b"Operation detection failed")
# Error codes of an endpoint that did not find the operation in the request.
_UNKNOWN_OPERATION = frozenset(
    {"UnknownOperationException", "UnknownOperation", "InvalidAction", "MissingAction"}
)
_XML_MESSAGE = re.compile(rb"<Message>(.*?)</Message>", re.DOTALL)
_XML_CODE = re.compile(rb"<Code>\s*([^<]*?)\s*</Code>")
# Operations that may be sent again after an answer that shows the endpoint may have executed
# them: idempotent ones, and ReceiveMessage (delivery is at least once; the ledger dedupes).
# Anything else (SendMessage, SendMessageBatch, ...) is never replayed.
_REPLAY_SAFE = frozenset(
    {
        "ReceiveMessage",
        "DeleteMessage",
        "DeleteMessageBatch",
        "ChangeMessageVisibility",
        "ChangeMessageVisibilityBatch",
        "GetQueueAttributes",
        "SetQueueAttributes",
        "CreateQueue",
        "GetQueueUrl",
        "ListQueues",
    }
)
# How much of the endpoint's own error message an SqsProtocolError quotes.
_DETAIL_CHARS = 160


def answer_format(body: bytes) -> Literal["json", "xml", "html", "other"]:
    """The format of an HTTP answer's body, from its first bytes (its root element for XML)."""
    head = body[:_SNIFF_BYTES].removeprefix(b"\xef\xbb\xbf").lstrip().lower()
    if head.startswith(b"{"):
        return "json"
    while head.startswith((b"<?", b"<!--")):  # an XML declaration or a comment
        close = b"?>" if head.startswith(b"<?") else b"-->"
        end = head.find(close)
        if end < 0:
            break
        head = head[end + len(close) :].lstrip()
    if head.startswith(_HTML_STARTS):
        return "html"
    return "xml" if head.startswith(b"<") else "other"


def _error_code(form: str, body: bytes) -> str | None:
    """The code of an AWS error envelope: a JSON object with `__type` or `code`, or XML with
    `<ErrorResponse>` or `<Error>...<Code>`; None if the body is no such envelope."""
    if form == "json":
        try:
            parsed = json.loads(body)
        except ValueError:
            return None
        if not isinstance(parsed, dict):
            return None
        code = parsed.get("__type") or parsed.get("code")
        if not isinstance(code, str) or not code:
            return None
        return code.rpartition("#")[2]  # "com.amazon.coral.service#UnknownOperationException"
    if form == "xml" and (b"<ErrorResponse" in body or (b"<Error>" in body and b"<Code>" in body)):
        found = _XML_CODE.search(body)
        return found.group(1).decode("utf-8", "replace") if found else ""
    return None


def refuses(sent: WireProtocol, status: int, body: bytes) -> bool:
    """Whether this answer to a `sent`-protocol request shows that the endpoint does not speak
    that protocol.

    - 2xx: a success in the other protocol's format (XML to a JSON request, JSON to a query one).
    - Any error status: LocalStack 1.x's "Missing Action" (to a JSON request), or an
      unknown-operation error code.
    - 4xx but 429: an AWS error envelope of the other protocol (`<ErrorResponse>` to a JSON
      request, `{"__type": ...}` to a query one).

    Anything else says nothing about the protocol and stays an ordinary error, retried or not by
    its status: a gateway's 503 or 429 in JSON or XML, an (X)HTML page, an empty body.
    """
    form = answer_format(body)
    other = "xml" if sent == "json" else "json"
    if 200 <= status < 300:
        return form == other
    if status < 400:
        return False
    if sent == "json" and any(marker in body for marker in _REFUSAL_MARKERS):
        return True
    code = _error_code(form, body)
    if code is None:
        return False
    # An XML error to a query request is the query protocol's own, whatever its code.
    if code in _UNKNOWN_OPERATION and (sent == "json" or form == "json"):
        return True
    return form == other and status < 500 and status != 429


def error_detail(status: int, body: bytes) -> str:
    """`HTTP 500: <the endpoint's message>`, on one line and short, for an SqsProtocolError."""
    message = b""
    if answer_format(body) == "json":
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            message = str(parsed.get("message") or parsed.get("Message") or "").encode()
    elif found := _XML_MESSAGE.search(body):
        message = found.group(1)
    text = " ".join(message.decode("utf-8", "replace").split())
    if len(text) > _DETAIL_CHARS:
        text = text[: _DETAIL_CHARS - 1] + "…"
    return f"HTTP {status}: {text}" if text else f"HTTP {status}"


def _public(url: str) -> str:
    """The endpoint as scheme://host:port, without any user or password in it."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


class _Refused(Exception):
    """An answer showed that the endpoint does not speak the protocol of the request.

    Raised in botocore's before-parse event, so that botocore neither parses nor retries the
    answer; ProtocolClient turns it into a switch or an SqsProtocolError: it never leaves this
    module.
    """

    def __init__(self, sent: WireProtocol, detail: str, *, executed: bool) -> None:
        super().__init__(detail)
        self.sent = sent
        self.detail = detail
        # A success answer: the endpoint may have executed the call, in its own protocol.
        self.executed = executed


def _is_xml_error(body: bytes) -> bool:
    return answer_format(body) == "xml" and _error_code("xml", body) is not None


def _bare_query_error(status: int) -> bytes:
    """The error botocore itself makes of a bare 5xx (code: the status), as query-protocol XML."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    return (
        f"<ErrorResponse><Error><Code>{status}</Code><Message>{phrase}</Message></Error>"
        "</ErrorResponse>"
    ).encode()


def _check_answers(sent: WireProtocol) -> Callable[..., None]:
    def check(response_dict: dict[str, Any], **_: Any) -> None:
        body = response_dict.get("body")
        status = int(response_dict.get("status_code", 0))
        if not isinstance(body, bytes):
            return
        if refuses(sent, status, body):
            raise _Refused(sent, error_detail(status, body), executed=200 <= status < 300)
        if sent == "query" and status >= 400 and not _is_xml_error(body):
            # botocore's query parser fails on an error that is not XML (a gateway's JSON, a
            # page), with an exception that is neither a BotoCoreError nor retried: make it the
            # error botocore makes of a bare 5xx, retried or not by its status.
            response_dict["body"] = _bare_query_error(status)

    return check


class _QueryOnlyEndpoints:
    """Endpoints found, in this process, to speak only the query protocol."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._endpoints: set[str] = set()

    def __contains__(self, endpoint: str) -> bool:
        return endpoint in self._endpoints

    def add(self, endpoint: str, refused: _Refused) -> None:
        """Record it, and log it once per endpoint however many calls found it at once."""
        with self._lock:
            if endpoint in self._endpoints:
                return
            self._endpoints.add(endpoint)
        log.info(
            "the SQS endpoint %s does not speak SQS's JSON protocol (%s); using the query "
            "protocol from now on (LOGIN_ETL_SQS_PROTOCOL=auto)",
            endpoint,
            refused.detail,
            extra={"sqs_endpoint": endpoint, "sqs_protocol": "query"},
        )

    def clear(self) -> None:
        """Forget what was found (for tests)."""
        with self._lock:
            self._endpoints.clear()


QUERY_ONLY_ENDPOINTS = _QueryOnlyEndpoints()

_query_session_lock = threading.Lock()
_query_session: boto3.session.Session | None = None


def _query_protocol_session() -> boto3.session.Session:
    """A boto3 session whose botocore Loader finds the vendored query-protocol SQS model before
    botocore's own; one per process (its model is loaded once). Call under _query_session_lock:
    sessions are not thread-safe."""
    global _query_session  # noqa: PLW0603 - one loaded model per process
    if _query_session is None:
        core = botocore.session.get_session()
        loader = core.get_component("data_loader")
        loader.search_paths.insert(0, str(QUERY_MODEL_DIR))
        _query_session = boto3.session.Session(botocore_session=core)
    return _query_session


def _make_client(
    wire: WireProtocol, session: boto3.session.Session | None, client_args: dict[str, Any]
) -> Any:
    if wire == "query":
        with _query_session_lock:
            return _query_protocol_session().client("sqs", **client_args)
    return (session or boto3.session.Session()).client("sqs", **client_args)


# botocore objects that call the client's operations themselves, past `ProtocolClient._call`:
# their calls would be neither switched to the query protocol nor replayed.
_UNSUPPORTED = {
    "get_paginator": "a paginator's calls bypass the protocol switch and replay; "
    "call the operation in a loop with its NextToken",
    "get_waiter": "a waiter's calls bypass the protocol switch and replay; "
    "poll the operation instead",
}


class ProtocolClient:
    """An SQS client that speaks the wire protocol chosen, or found with `auto`.

    Every operation goes through `_call`: a call refused for its protocol raises
    SqsProtocolError, or with `auto` switches the endpoint to the query protocol (for every
    client in the process) and is replayed, so no receive or delete is lost. A call the endpoint
    may have executed (a success answer in the query protocol) is replayed only if it is safe
    to repeat; a send is not, and raises SourceUnavailable instead. Thread-safe, as botocore
    clients are. Paginators and waiters are refused (AttributeError): they would call botocore
    directly, past the switch. `sqs_client` types it as boto3's SQSClient, which it stands for.
    """

    def __init__(self, protocol: SqsProtocol, make: Callable[[WireProtocol], Any]) -> None:
        self._protocol = protocol
        self._make = make
        self._lock = threading.Lock()
        self._clients: dict[WireProtocol, Any] = {}
        first = self._client("query" if protocol == "query" else "json")
        self.endpoint = _public(str(first.meta.endpoint_url))

    @property
    def wire(self) -> WireProtocol:
        """The protocol the next call uses."""
        if self._protocol == "auto":
            return "query" if self.endpoint in QUERY_ONLY_ENDPOINTS else "json"
        return self._protocol

    def _client(self, wire: WireProtocol) -> Any:
        client = self._clients.get(wire)
        if client is None:
            with self._lock:
                client = self._clients.get(wire)
                if client is None:
                    client = self._make(wire)
                    # First, so that a refused answer is neither parsed nor retried.
                    client.meta.events.register_first("before-parse.sqs", _check_answers(wire))
                    self._clients[wire] = client
        return client

    def __getattr__(self, name: str) -> Any:
        if reason := _UNSUPPORTED.get(name):
            raise AttributeError(f"ProtocolClient has no {name}: {reason}")
        attribute = getattr(self._client(self.wire), name)
        if name.startswith("_") or not callable(attribute):
            return attribute  # meta, exceptions
        return functools.partial(self._call, name)

    def _call(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        wire = self.wire
        try:
            return getattr(self._client(wire), name)(*args, **kwargs)
        except _Refused as refused:
            if self._protocol != "auto" or wire == "query":
                raise SqsProtocolError(self._mismatch(refused)) from None
            QUERY_ONLY_ENDPOINTS.add(self.endpoint, refused)
            operation = self._client(wire).meta.method_to_api_mapping.get(name, name)
            if refused.executed and operation not in _REPLAY_SAFE:
                raise SourceUnavailable(
                    f"SQS {operation}: the endpoint {self.endpoint} answered in the query "
                    "protocol, so the call may have been executed; it is not repeated (not "
                    "safe to repeat) and the next call uses the query protocol"
                ) from None
        try:
            return getattr(self._client("query"), name)(*args, **kwargs)
        except _Refused as refused:
            raise SqsProtocolError(self._mismatch(refused)) from None

    def _mismatch(self, refused: _Refused) -> str:
        if self._protocol == "auto":
            return (
                f"{PROTOCOL_SETTING} is auto, but the SQS endpoint {self.endpoint} answers "
                f"neither SQS's JSON nor its query protocol ({refused.detail}); check that "
                "LOGIN_ETL_QUEUE_URL (or AWS_ENDPOINT_URL) names an SQS endpoint"
            )
        other = "json" if self._protocol == "query" else "query"
        name = "JSON" if self._protocol == "json" else "query"
        return (
            f"{PROTOCOL_SETTING} is {self._protocol}, but the SQS endpoint {self.endpoint} does "
            f"not speak SQS's {name} protocol ({refused.detail}); set it to auto or {other}"
        )


def sqs_client(
    protocol: SqsProtocol,
    *,
    session: boto3.session.Session | None = None,
    **client_args: Any,
) -> SQSClient:
    """The one way login-etl builds an SQS client: boto3's `client("sqs", **client_args)`,
    speaking `protocol` (auto, json or query). `session` serves the JSON protocol; the query
    protocol has its own session, with the vendored model."""
    client = ProtocolClient(protocol, lambda wire: _make_client(wire, session, client_args))
    return cast("SQSClient", client)
