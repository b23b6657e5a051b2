"""The one sorting of botocore errors (adapters/aws_errors.py), and how SQS and KMS map it."""

from __future__ import annotations

import botocore.exceptions
import pytest

from login_etl.adapters.aws_errors import classify, error_code, error_message
from login_etl.adapters.kms import _TranslatedAead
from login_etl.adapters.sqs import _translate
from login_etl.errors import KeyFileError, KmsUnavailable, SourceError, SourceUnavailable

BotoError = botocore.exceptions.BotoCoreError | botocore.exceptions.ClientError


def client_error(code: str | None, status: int | None) -> botocore.exceptions.ClientError:
    response: dict[str, object] = {}
    if code is not None:
        response["Error"] = {"Code": code, "Message": "told by AWS"}
    if status is not None:
        response["ResponseMetadata"] = {"HTTPStatusCode": status}
    return botocore.exceptions.ClientError(response, "AnyOperation")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("AccessDeniedException", 400, "permanent"),
        ("AccessDenied", 500, "permanent"),  # a known permanent code wins over a 5xx
        ("InvalidClientTokenId", 403, "permanent"),
        ("ValidationException", 400, "permanent"),  # any other 4xx is the request's fault
        ("NotFoundException", 404, "permanent"),
        ("ThrottlingException", 400, "transient"),  # a known transient code wins over a 4xx
        ("Throttling", 400, "transient"),
        ("RequestTimeout", 408, "transient"),
        ("InternalError", 500, "transient"),
        ("ServiceUnavailable", 503, "transient"),
        ("Whatever", None, "transient"),  # no status: taken for a server error
        (None, 400, "permanent"),
        (None, 502, "transient"),
        ("429", 429, "transient"),  # a gateway's "Too Many Requests": slow down, not wrong
        (None, 429, "transient"),
    ],
)
def test_client_errors_are_sorted_by_code_then_status(
    code: str | None, status: int | None, kind: str
) -> None:
    assert classify(client_error(code, status)) == kind


def test_a_service_adds_its_own_codes_on_top_of_the_shared_ones() -> None:
    busy = client_error("OverLimit", 403)
    gone = client_error("QueueDoesNotExist", 500)
    assert classify(busy) == "permanent"
    assert classify(busy, transient={"OverLimit"}) == "transient"
    assert classify(gone) == "transient"
    assert classify(gone, permanent={"QueueDoesNotExist"}) == "permanent"
    # A service's own transient code does not turn a shared permanent one around.
    assert classify(client_error("AccessDenied", 403), transient={"AccessDenied"}) == "permanent"


def test_missing_credentials_and_unreachable_aws_are_told_apart() -> None:
    assert classify(botocore.exceptions.NoCredentialsError()) == "no_credentials"
    unreachable = botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:1")
    assert classify(unreachable) == "unreachable"
    assert classify(botocore.exceptions.ReadTimeoutError(endpoint_url="http://x")) == "unreachable"


def test_code_and_message_are_empty_when_the_answer_has_none() -> None:
    assert error_code(client_error("KMSInvalidStateException", 400)) == "KMSInvalidStateException"
    assert error_message(client_error("KMSInvalidStateException", 400)) == "told by AWS"
    assert error_code(client_error(None, 400)) == ""
    assert error_message(client_error(None, 400)) == ""
    assert error_code(botocore.exceptions.NoCredentialsError()) == ""


@pytest.mark.parametrize(
    ("err", "expected"),
    [
        (client_error("OverLimit", 403), SourceUnavailable),
        (client_error("KMS.ThrottlingException", 400), SourceUnavailable),
        (client_error("KmsThrottled", 400), SourceUnavailable),
        (client_error("QueueDoesNotExist", 500), SourceError),
        (client_error("InvalidSecurity", 403), SourceError),
        (botocore.exceptions.NoCredentialsError(), SourceError),
        (botocore.exceptions.EndpointConnectionError(endpoint_url="http://h"), SourceUnavailable),
    ],
)
def test_sqs_maps_the_sorting_onto_its_errors(err: BotoError, expected: type[Exception]) -> None:
    assert type(_translate(err, "receive")) is expected


@pytest.mark.parametrize(
    ("err", "expected"),
    [
        (client_error("KeyUnavailableException", 400), KmsUnavailable),
        (client_error("LimitExceededException", 400), KmsUnavailable),
        (client_error("ThrottlingException", 400), KmsUnavailable),
        (client_error("KMSInternalException", 500), KmsUnavailable),
        (client_error("DisabledException", 400), KeyFileError),
        (client_error("AccessDeniedException", 400), KeyFileError),
        (botocore.exceptions.NoCredentialsError(), KeyFileError),
        (botocore.exceptions.EndpointConnectionError(endpoint_url="http://h"), KmsUnavailable),
    ],
)
def test_kms_maps_the_sorting_onto_its_errors(err: BotoError, expected: type[Exception]) -> None:
    key_uri = "aws-kms://arn:aws:kms:eu-west-1:111122223333:key/k"
    translated = _TranslatedAead(None, key_uri)._translate(err)
    assert type(translated) is expected
    assert "told by AWS" not in str(translated)  # KMS's own text never reaches the message
