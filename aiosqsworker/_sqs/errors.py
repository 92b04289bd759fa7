"""SQS's errors in the framework's own tree: one classification, one mapping for both clients.

`classify_error_code` is the pure decision (an AWS error code or HTTP status to an error
class: a 401 or 403 without one of SQS's codes, from a proxy, is a refusal as well);
`sqs_error` words it for a person; `map_sqs_errors` turns botocore's and aiohttp's
exceptions into those errors at the boundary, as httpcore's `map_exceptions` does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

from .._errors import (
    AccessDeniedError,
    CredentialsError,
    CredentialsUnavailableError,
    QueueNotFoundError,
    ReceiptHandleInvalidError,
    SQSError,
    TransientSQSError,
)

__all__ = ["Endpoint", "classify_error_code", "map_sqs_errors", "sqs_error", "unreachable_hint"]

_QUEUE_MISSING = {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}
_CREDENTIALS_REFUSED = {
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
    "MissingAuthenticationToken",
    "IncompleteSignature",
    "InvalidSecurity",
    "AuthFailure",
}
# Expired temporary credentials are refreshed by botocore's chain: worth another try.
_CREDENTIALS_EXPIRED = {"ExpiredToken", "ExpiredTokenException", "RequestExpired"}
_ACCESS_DENIED = {"AccessDenied", "AccessDeniedException", "KMS.AccessDeniedException"}
_RECEIPT_INVALID = {
    "ReceiptHandleIsInvalid",
    "InvalidReceiptHandle",
    "AWS.SimpleQueueService.MessageNotInflight",
    "MessageNotInflight",
}
# Both spellings SQS uses: the JSON protocol's and the query protocol's.
_TRANSIENT = {
    "ThrottlingException",
    "Throttling",
    "RequestThrottled",
    "RequestThrottledException",
    "AWS.SimpleQueueService.RequestThrottled",
    "KMS.ThrottlingException",
    "OverLimit",
    "ServiceUnavailable",
    "AWS.SimpleQueueService.ServiceUnavailable",
    "InternalError",
    "InternalFailure",
    "RequestTimeout",
    "RequestTimeoutException",
    "SlowDown",
    "KmsThrottled",
    "KMS.KMSInternalException",
}


def classify_error_code(code: str | None, status: int | None = None) -> type[SQSError]:
    """Which error of the framework's tree an AWS error code (or HTTP status) stands for."""
    if code in _QUEUE_MISSING:
        return QueueNotFoundError
    if code in _CREDENTIALS_REFUSED:
        return CredentialsError
    if code in _ACCESS_DENIED:
        return AccessDeniedError
    if code in _RECEIPT_INVALID:
        return ReceiptHandleInvalidError
    if code in _TRANSIENT or code in _CREDENTIALS_EXPIRED:
        return TransientSQSError
    # A refusal without one of SQS's codes (a proxy's HTML page): no retry changes it.
    if status == 401:
        return CredentialsError
    if status == 403:
        return AccessDeniedError
    if status is not None and (status >= 500 or status == 429):
        return TransientSQSError
    return SQSError


def not_from_sqs(code: str | None, status: int | None) -> bool:
    """Whether an error answer carries none of SQS's codes: the code is only the HTTP status
    (``HTTP403`` from the fast path, ``403`` from botocore's parser) or missing."""
    return not code or code in (f"HTTP{status}", str(status))


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where requests go, for error messages."""

    region: str
    url: str


def sqs_error(
    code: str | None,
    status: int | None,
    detail: str,
    *,
    operation: str,
    endpoint: Endpoint,
    queue: str | None,
) -> SQSError:
    """The framework's error for an error response of SQS, worded for a person."""
    where = f"region {endpoint.region}, endpoint {endpoint.url}"
    kind = classify_error_code(code, status)
    if kind in (CredentialsError, AccessDeniedError) and not_from_sqs(code, status):
        message = (
            f"{operation} was refused with HTTP {status} at {where} in an answer that is not "
            f"SQS's ({detail or 'no body'}): a proxy or gateway in between, or an endpoint "
            "that is not SQS, refused it. Check the endpoint (AWS_ENDPOINT_URL_SQS, "
            "endpoint_url), any proxy in between, and the credentials"
        )
    elif kind is QueueNotFoundError:
        message = (
            f"queue {queue!r} does not exist in {where}. Check the queue's name and the "
            "region (AWS_REGION) and endpoint (AWS_ENDPOINT_URL_SQS) in use"
        )
    elif kind is CredentialsError:
        message = (
            f"SQS refused the AWS credentials in use ({code}: {detail}) at {where}. "
            "Check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE"
        )
    elif kind is AccessDeniedError:
        message = (
            f"{operation} on queue {queue!r} is not allowed for these credentials "
            f"({code}: {detail}). Grant the IAM permission sqs:{operation}"
        )
    else:
        message = f"{operation} failed ({code}: {detail}) at {where}"
    return kind(message, code=code, operation=operation)


def unreachable_hint(url: str) -> str:
    """What to check when `url` could not be reached: a local server that is not running, a
    custom endpoint that is wrong; nothing for AWS's own (the network is the suspect)."""
    host = urlsplit(url).hostname or ""
    if host in ("localhost", "::1") or host.startswith("127."):
        return (
            ". Is the local server running (python -m aiosqsworker local-server), and on this port?"
        )
    if host.endswith(".amazonaws.com"):
        return ""
    return ". Check the endpoint (AWS_ENDPOINT_URL_SQS, AWS_ENDPOINT_URL_S3, endpoint_url=)"


@contextlib.contextmanager
def map_sqs_errors(operation: str, endpoint: Endpoint, queue: str | None = None) -> Iterator[None]:
    """Turn botocore's and aiohttp's exceptions into the framework's tree."""
    # Only botocore-backed calls come here: loaded by then, and kept off the import path.
    import aiohttp
    from botocore.exceptions import (
        BotoCoreError,
        ClientError,
        CredentialRetrievalError,
        HTTPClientError,
        NoCredentialsError,
        PartialCredentialsError,
    )
    from botocore.exceptions import (
        ConnectionError as BotoConnectionError,
    )

    where = f"region {endpoint.region}, endpoint {endpoint.url}"
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        raise sqs_error(
            error.get("Code"),
            exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode"),
            error.get("Message") or str(exc),
            operation=operation,
            endpoint=endpoint,
            queue=queue,
        ) from exc
    except CredentialRetrievalError as exc:
        # A refresh botocore made inside the call (the shared `CredentialSource` refreshes
        # first, so this is rare): nothing was sent.
        raise CredentialsUnavailableError(
            f"{operation}: could not fetch AWS credentials: {exc}", operation=operation
        ) from exc
    except (NoCredentialsError, PartialCredentialsError) as exc:
        raise CredentialsError(
            f"no usable AWS credentials found for {where} ({exc}). Set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, choose a profile with AWS_PROFILE, or run with an IAM role",
            operation=operation,
        ) from exc
    except (
        BotoConnectionError,
        HTTPClientError,
        aiohttp.ClientError,
        TimeoutError,
        ConnectionError,
    ) as exc:
        raise TransientSQSError(
            f"{operation} could not reach SQS at {where}: {exc}{unreachable_hint(endpoint.url)}",
            operation=operation,
        ) from exc
    except BotoCoreError as exc:
        raise SQSError(f"{operation} failed at {where}: {exc}", operation=operation) from exc
