"""The SQS boundary's vocabulary (`_sqs/base.py`, `_sqs/errors.py`): batch results and error codes.

Pure decisions and small parts, called directly: no server here.
"""

from __future__ import annotations

from typing import Any

import pytest

from aiosqsworker import (
    AccessDeniedError,
    CredentialsError,
    QueueNotFoundError,
    ReceiptHandleInvalidError,
    SQSError,
    TransientSQSError,
)
from aiosqsworker._sqs.base import BatchEntryFailure, BatchResult
from aiosqsworker._sqs.errors import classify_error_code

DELETE_RESPONSE: dict[str, Any] = {
    "Successful": [{"Id": "0"}, {"Id": "3"}],
    "Failed": [
        {
            "Id": "1",
            "SenderFault": False,
            "Code": "InternalError",
            "Message": "We encountered an internal error. Please try again.",
        },
        {
            "Id": "2",
            "SenderFault": True,
            "Code": "ReceiptHandleIsInvalid",
            "Message": 'The input receipt handle "abc" is not a valid receipt handle.',
        },
        {
            "Id": "4",
            "SenderFault": True,
            "Code": "InvalidParameterValue",
            "Message": "Value AQEBwOHJ for parameter ReceiptHandle is invalid. Reason: The "
            "receipt handle has expired.",
        },
        {
            "Id": "5",
            "SenderFault": True,
            "Code": "AWS.SimpleQueueService.RequestThrottled",
            "Message": "Request is throttled.",
        },
        {
            "Id": "6",
            "SenderFault": True,
            "Code": "InvalidParameterValue",
            "Message": "Value 50000 for parameter VisibilityTimeout is invalid. Reason: Must "
            "be >= 0 and <= 43200.",
        },
        {
            "Id": "7",
            "SenderFault": False,
            "Code": "AWS.SimpleQueueService.MessageNotInflight",
            "Message": "Message not in flight.",
        },
        {
            "Id": "8",
            "SenderFault": True,
            "Code": "ThrottlingException",
        },
    ],
    "ResponseMetadata": {
        "RequestId": "b0e5d6d4-4bd5-5d6a-9a5c-3c1e0e1b1a7d",
        "HTTPStatusCode": 200,
        "HTTPHeaders": {"content-type": "application/x-amz-json-1.0"},
        "RetryAttempts": 0,
    },
}


def test_batch_result_from_a_response() -> None:
    result = BatchResult.from_response(DELETE_RESPONSE)
    assert result.successful == ("0", "3")
    assert [failure.id for failure in result.failed] == ["1", "2", "4", "5", "6", "7", "8"]
    throttled = result.failed[-1]
    assert throttled == BatchEntryFailure(
        id="8", code="ThrottlingException", message="", sender_fault=True
    )
    empty = BatchResult.from_response({"ResponseMetadata": {"HTTPStatusCode": 200}})
    assert empty.successful == ()
    assert empty.failed == ()


@pytest.mark.parametrize(
    ("code", "message", "invalid"),
    [
        ("ReceiptHandleIsInvalid", "", True),
        ("InvalidReceiptHandle", "", True),
        ("AWS.SimpleQueueService.MessageNotInflight", "", True),
        (
            "InvalidParameterValue",
            "Value AQEB for parameter ReceiptHandle is invalid. Reason: The receipt handle "
            "has expired.",
            True,
        ),
        # What SQS says when another worker received the message again in the meantime.
        (
            "InvalidParameterValue",
            "Value AQEB for parameter ReceiptHandle is invalid. Reason: Message does not "
            "exist or is not available for visibility timeout change.",
            True,
        ),
        (
            "InvalidParameterValue",
            "Value 50000 for parameter VisibilityTimeout is invalid. Reason: Must be >= 0.",
            False,
        ),
        ("InternalError", "receipt handle", False),
        ("ThrottlingException", "", False),
    ],
)
def test_receipt_invalid(code: str, message: str, invalid: bool) -> None:
    failure = BatchEntryFailure(id="0", code=code, message=message, sender_fault=True)
    assert failure.receipt_invalid is invalid


@pytest.mark.parametrize(
    ("code", "sender_fault", "retryable"),
    [
        ("InternalError", False, True),
        ("ServiceUnavailable", False, True),
        ("ThrottlingException", True, True),
        ("AWS.SimpleQueueService.RequestThrottled", True, True),
        ("RequestThrottled", True, True),
        ("InvalidParameterValue", True, False),
        ("AWS.SimpleQueueService.BatchEntryIdsNotDistinct", True, False),
    ],
)
def test_batch_entry_retryable(code: str, sender_fault: bool, retryable: bool) -> None:
    failure = BatchEntryFailure(id="0", code=code, message="", sender_fault=sender_fault)
    assert failure.retryable is retryable


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        ("ThrottlingException", 400, TransientSQSError),
        ("AWS.SimpleQueueService.RequestThrottled", 403, TransientSQSError),
        ("RequestThrottled", 400, TransientSQSError),
        ("Throttling", None, TransientSQSError),
        ("KMS.ThrottlingException", 400, TransientSQSError),
        ("ServiceUnavailable", 503, TransientSQSError),
        ("InternalError", 500, TransientSQSError),
        ("ExpiredToken", 400, TransientSQSError),
        (None, 500, TransientSQSError),
        (None, 502, TransientSQSError),
        (None, 503, TransientSQSError),
        (None, 504, TransientSQSError),
        ("SomethingNew", 500, TransientSQSError),
        (None, 429, TransientSQSError),
        ("AWS.SimpleQueueService.NonExistentQueue", 400, QueueNotFoundError),
        ("QueueDoesNotExist", 400, QueueNotFoundError),
        ("InvalidClientTokenId", 403, CredentialsError),
        ("SignatureDoesNotMatch", 403, CredentialsError),
        ("UnrecognizedClientException", 400, CredentialsError),
        ("AccessDenied", 403, AccessDeniedError),
        ("AccessDeniedException", 400, AccessDeniedError),
        ("KMS.AccessDeniedException", 400, AccessDeniedError),
        ("ReceiptHandleIsInvalid", 404, ReceiptHandleInvalidError),
        ("InvalidParameterValue", 400, SQSError),
        (None, 400, SQSError),
        (None, None, SQSError),
    ],
)
def test_classify_error_code(code: str | None, status: int | None, kind: type[SQSError]) -> None:
    assert classify_error_code(code, status) is kind
