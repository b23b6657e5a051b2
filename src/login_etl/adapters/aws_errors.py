"""The one sorting of botocore's errors: retry, stop, or ask for credentials.

Every AWS adapter (SQS, KMS) calls `classify` and maps its answer onto its own error classes,
passing the codes only its service sends. The rule: a code known to be permanent stops; a code
known to mean "slow down" or "try again" is retried, and so is HTTP 429 (a gateway's "Too Many
Requests", without an AWS code); any other 4xx is the request's fault and no retry will fix it;
a 5xx or a ClientError without a status is retried ("transient"), and so is a failure to reach
AWS at all ("unreachable": connection refused, timeout, DNS), which is told
apart because its message is the only one worth quoting. Missing credentials are told apart too,
so that the error can say what to configure.
"""

from __future__ import annotations

from collections.abc import Set
from typing import Literal

import botocore.exceptions

ErrorKind = Literal["unreachable", "transient", "permanent", "no_credentials"]

# Codes that any AWS service answers for credentials or permissions it refuses: no retry helps.
PERMANENT_CODES = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "SignatureDoesNotMatch",
    }
)

# 4xx codes that any AWS service answers for "slow down" or "too slow", not "wrong request".
TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestThrottled",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)

# A ClientError without an HTTP status is taken for a server error (retried).
_UNKNOWN_STATUS = 500
_TOO_MANY_REQUESTS = 429


def error_code(err: Exception) -> str:
    """The AWS error code of a ClientError ("" for another error, or an answer without one)."""
    if not isinstance(err, botocore.exceptions.ClientError):
        return ""
    return str(err.response.get("Error", {}).get("Code", ""))


def error_message(err: Exception) -> str:
    """AWS's message in a ClientError ("" for another error, or an answer without one)."""
    if not isinstance(err, botocore.exceptions.ClientError):
        return ""
    return str(err.response.get("Error", {}).get("Message", ""))


def classify(
    err: botocore.exceptions.BotoCoreError | botocore.exceptions.ClientError,
    *,
    transient: Set[str] = frozenset(),
    permanent: Set[str] = frozenset(),
) -> ErrorKind:
    """Whether a botocore error may pass with a retry.

    `transient` and `permanent` are the calling service's own codes, on top of the codes every
    service shares; a permanent code wins over the HTTP status, a transient one over a 4xx.
    """
    if isinstance(err, botocore.exceptions.NoCredentialsError):
        return "no_credentials"
    if not isinstance(err, botocore.exceptions.ClientError):
        return "unreachable"
    code = error_code(err)
    if code in PERMANENT_CODES or code in permanent:
        return "permanent"
    if code in TRANSIENT_CODES or code in transient:
        return "transient"
    status = int(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", _UNKNOWN_STATUS))
    return "permanent" if 400 <= status < 500 and status != _TOO_MANY_REQUESTS else "transient"
