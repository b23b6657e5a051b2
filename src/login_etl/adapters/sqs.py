"""SQS message source over boto3.

Translates botocore errors into login-etl's: unreachable or throttled → SourceUnavailable
(retry), missing queue or denied access → SourceError (stop), an endpoint that does not speak
the protocol in use → SqsProtocolError (stop, naming LOGIN_ETL_SQS_PROTOCOL).

Its clients come from `login_etl.adapters.sqs_protocol.sqs_client`, which speaks SQS's JSON or
query protocol, as configured or as found with `auto`.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import boto3
import botocore.config
import botocore.exceptions

from login_etl.adapters.aws_errors import classify, error_code, error_message
from login_etl.adapters.sqs_protocol import sqs_client
from login_etl.core.model import Message
from login_etl.core.sqs_record import FALLBACK_WARNING, parse_record
from login_etl.errors import ConfigError, SourceError, SourceUnavailable, UnreadableRecord
from login_etl.ports import MAX_RECEIVE, Backlog

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import (
        ChangeMessageVisibilityBatchRequestEntryTypeDef,
        DeleteMessageBatchRequestEntryTypeDef,
    )

    from login_etl.config import Settings

log = logging.getLogger(__name__)

# SQS's limit on entries in one *Batch call.
MAX_ENTRIES_PER_BATCH_CALL = 10

DEFAULT_REGION = "us-east-1"
# Credentials for an emulator (moto, LocalStack), which accepts any.
EMULATOR_CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
_AWS_HOST_SUFFIXES = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws")

# SQS's own codes (adapters/aws_errors.py holds those every AWS service shares). A missing queue
# or a bad queue URL is for an operator to fix, whatever HTTP status carries it.
_PERMANENT_CODES = frozenset(
    {
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
        "InvalidAddress",
        "InvalidSecurity",
    }
)
# OverLimit: too many messages in flight, which deletes will lower. KmsThrottled (JSON protocol)
# and KMS.ThrottlingException (its query-protocol name): the queue's SSE-KMS key is throttled.
_TRANSIENT_CODES = frozenset({"OverLimit", "KmsThrottled", "KMS.ThrottlingException"})


def is_aws_host(host: str) -> bool:
    return host.endswith(_AWS_HOST_SUFFIXES)


def client_kwargs(settings: Settings, session: boto3.session.Session) -> dict[str, Any]:
    """boto3 client arguments: boto3's own lookup, plus defaults for a non-AWS queue host.

    With no endpoint configured and a queue URL on a host that is not AWS's, the endpoint is the
    queue URL's scheme, host and port; with no credentials configured for such an endpoint,
    `test`/`test`. The region defaults to the queue host's AWS region, else us-east-1.
    """
    parts = urlsplit(settings.queue_url)
    host = parts.hostname or ""
    kwargs: dict[str, Any] = {}
    endpoint = settings.aws_endpoint_url
    if endpoint is None and not is_aws_host(host):
        endpoint = f"{parts.scheme}://{parts.netloc}"
    if endpoint is not None:
        kwargs["endpoint_url"] = endpoint
    emulator = endpoint is not None and not is_aws_host(urlsplit(endpoint).hostname or "")
    if emulator and session.get_credentials() is None:
        kwargs.update(EMULATOR_CREDENTIALS)
    if session.region_name is None:
        labels = host.split(".")
        aws_region = labels[1] if is_aws_host(host) and labels[0] == "sqs" else None
        kwargs["region_name"] = aws_region or DEFAULT_REGION
    return kwargs


def _translate(
    err: botocore.exceptions.BotoCoreError | botocore.exceptions.ClientError, action: str
) -> Exception:
    code = error_code(err)
    match classify(err, transient=_TRANSIENT_CODES, permanent=_PERMANENT_CODES):
        case "no_credentials":
            return SourceError(f"SQS {action}: no AWS credentials configured")
        case "unreachable":
            return SourceUnavailable(f"SQS {action}: {type(err).__name__}: {err}")
        case "permanent":
            return SourceError(f"SQS {action}: {code}: {error_message(err)}")
        case "transient":
            return SourceUnavailable(f"SQS {action}: {code or 'error'}")


_CAUGHT = (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError)


def _chunks(items: Sequence[Message], size: int) -> Iterator[Sequence[Message]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _warn_fallback(message_id: str, source: str) -> None:
    # SQS always sends SentTimestamp when asked; an emulator might not.
    log.warning(FALLBACK_WARNING, message_id, source)


class SqsSource:
    """Receives, deletes and releases messages of one queue."""

    def __init__(self, client: SQSClient, queue_url: str, *, visibility_timeout: int) -> None:
        self._client = client
        self.queue_url = queue_url
        self._visibility_timeout = visibility_timeout

    @classmethod
    def from_settings(cls, settings: Settings, *, max_connections: int = 10) -> SqsSource:
        try:
            session = boto3.session.Session()
        except botocore.exceptions.ProfileNotFound as err:
            raise ConfigError(f"AWS_PROFILE: {err}") from None
        except botocore.exceptions.BotoCoreError as err:  # e.g. an AWS config file it cannot parse
            raise ConfigError(f"AWS configuration: {err}") from None
        config = botocore.config.Config(
            # botocore's standard mode retries throttling and 5xx with jittered backoff; longer
            # outages surface as SourceUnavailable and the pipeline backs off.
            retries={"mode": "standard", "max_attempts": 4},
            connect_timeout=5,
            # A long poll holds the connection for wait_time_seconds.
            read_timeout=settings.wait_time_seconds + 10,
            max_pool_connections=max_connections,
            # The requests are built here, never from input; validating each against the model
            # costs CPU on every call of the hot path.
            parameter_validation=False,
        )
        try:
            client = sqs_client(
                settings.sqs_protocol,
                session=session,
                config=config,
                **client_kwargs(settings, session),
            )
        except botocore.exceptions.BotoCoreError as err:
            raise ConfigError(f"AWS configuration: {err}") from None
        return cls(client, settings.queue_url, visibility_timeout=settings.visibility_timeout)

    def receive(self, wait_seconds: int, max_messages: int = MAX_RECEIVE) -> list[Message]:
        try:
            response = self._client.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=max_messages,
                WaitTimeSeconds=wait_seconds,
                VisibilityTimeout=self._visibility_timeout,
                # AttributeNames, not its newer alias MessageSystemAttributeNames: every botocore
                # and emulator knows it, including the query-protocol ones old images need.
                AttributeNames=["SentTimestamp"],
            )
        except _CAUGHT as err:
            raise _translate(err, "receive") from err
        now_ms = int(time.time() * 1000)
        messages: list[Message] = []
        for raw in response.get("Messages", []):
            try:
                messages.append(parse_record(raw, now_ms=now_ms, on_fallback=_warn_fallback))
            except UnreadableRecord as err:
                # SQS never sends one; should an emulator, it is left to come back and, after
                # the redrive policy's receives, to move to the dead-letter queue.
                log.warning("received message %s left on the queue: %s", err.message_id, err)
        return messages

    def delete(self, messages: Sequence[Message]) -> int:
        """Delete with DeleteMessageBatch; returns how many deletes failed.

        A failed delete is not an error: the message comes back after its visibility timeout and
        the ledger recognises it as a redelivery.
        """
        failed = 0
        for chunk in _chunks(messages, MAX_ENTRIES_PER_BATCH_CALL):
            entries: list[DeleteMessageBatchRequestEntryTypeDef] = [
                {"Id": str(i), "ReceiptHandle": m.receipt} for i, m in enumerate(chunk)
            ]
            try:
                response = self._client.delete_message_batch(
                    QueueUrl=self.queue_url, Entries=entries
                )
            except _CAUGHT as err:
                log.warning(
                    "delete of %d messages failed: %s", len(chunk), _translate(err, "delete")
                )
                failed += len(chunk)
                continue
            for failure in response.get("Failed", []):
                log.warning(
                    "delete of message %s failed: %s",
                    chunk[int(failure["Id"])].message_id,
                    failure.get("Code"),
                )
                failed += 1
        return failed

    def release(self, messages: Sequence[Message]) -> None:
        """Make messages visible again at once (visibility 0), for a batch not committed.
        If this fails they reappear at their visibility timeout instead; nothing is lost."""
        self._change_visibility(messages, 0, "release", strict=False)

    def extend(self, messages: Sequence[Message], seconds: int) -> None:
        """Keep messages hidden for `seconds` more (the heartbeat for long-held messages);
        SourceUnavailable if SQS could not be reached, so that the caller tries again soon."""
        self._change_visibility(messages, seconds, "extend visibility", strict=True)

    def _change_visibility(
        self, messages: Sequence[Message], seconds: int, action: str, *, strict: bool
    ) -> None:
        for chunk in _chunks(messages, MAX_ENTRIES_PER_BATCH_CALL):
            entries: list[ChangeMessageVisibilityBatchRequestEntryTypeDef] = [
                {"Id": str(i), "ReceiptHandle": m.receipt, "VisibilityTimeout": seconds}
                for i, m in enumerate(chunk)
            ]
            try:
                response = self._client.change_message_visibility_batch(
                    QueueUrl=self.queue_url, Entries=entries
                )
            except _CAUGHT as err:
                if strict:
                    raise _translate(err, action) from err
                log.warning(
                    "%s of %d messages failed: %s", action, len(chunk), _translate(err, action)
                )
                continue
            if response.get("Failed"):
                log.warning("%s failed for %d messages", action, len(response["Failed"]))

    def retention_seconds(self) -> int:
        """The queue's MessageRetentionPeriod: how long SQS may still deliver a message after it
        was sent, and so how long the ledger must remember its id."""
        try:
            attrs = self._client.get_queue_attributes(
                QueueUrl=self.queue_url, AttributeNames=["MessageRetentionPeriod"]
            )["Attributes"]
        except _CAUGHT as err:
            raise _translate(err, "get queue attributes") from err
        # Absent only from a partial emulator: assume the most SQS allows, the safe side.
        return int(attrs.get("MessageRetentionPeriod", _FOURTEEN_DAYS_S))

    def backlog(self) -> Backlog:
        try:
            attrs = self._client.get_queue_attributes(
                QueueUrl=self.queue_url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )["Attributes"]
        except _CAUGHT as err:
            raise _translate(err, "get queue attributes") from err
        return Backlog(
            visible=int(attrs.get("ApproximateNumberOfMessages", 0)),
            in_flight=int(attrs.get("ApproximateNumberOfMessagesNotVisible", 0)),
            delayed=int(attrs.get("ApproximateNumberOfMessagesDelayed", 0)),
        )


# A message is received this many times before SQS moves it to the dead-letter queue. Each
# receive that does not end in a delete means the worker failed to commit it (a transient
# failure outlasting the visibility timeout, or a crash); five leaves room for a restart or two.
DEFAULT_MAX_RECEIVE_COUNT = 5
_FOURTEEN_DAYS_S = 14 * 24 * 3600


def ensure_dead_letter_queue(
    source: SqsSource,
    *,
    name: str | None = None,
    max_receive_count: int = DEFAULT_MAX_RECEIVE_COUNT,
) -> str:
    """Create (or find) the queue's dead-letter queue and set the redrive policy; idempotent.

    Invalid messages never go there: they are committed to the quarantine and deleted. What
    lands in the DLQ is what kept failing for another reason, for an operator to look at.
    """
    client = source._client
    main_name = source.queue_url.rstrip("/").rsplit("/", 1)[-1]
    attributes: dict[Any, str] = {"MessageRetentionPeriod": str(_FOURTEEN_DAYS_S)}
    if main_name.endswith(".fifo"):  # a FIFO queue needs a FIFO dead-letter queue
        dlq_name = name or f"{main_name.removesuffix('.fifo')}-dlq.fifo"
        attributes["FifoQueue"] = "true"
    else:
        dlq_name = name or f"{main_name}-dlq"
    try:
        dlq_url = client.create_queue(QueueName=dlq_name, Attributes=attributes)["QueueUrl"]
        arn = client.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        policy = json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": str(max_receive_count)})
        client.set_queue_attributes(QueueUrl=source.queue_url, Attributes={"RedrivePolicy": policy})
    except _CAUGHT as err:
        raise _translate(err, "create dead-letter queue") from err
    return dlq_url
