"""Messages and leases for the unit tests, built without a server."""

from __future__ import annotations

from typing import Any

from aiosqsworker import Message
from aiosqsworker._consumer.leases import Lease

__all__ = ["QUEUE_URL", "high", "lease", "low", "message", "raw_message", "received"]

QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/orders"


def low() -> float:
    """A jitter that takes the least of a back-off."""
    return 0.0


def high() -> float:
    """A jitter that takes the most of a back-off."""
    return 1.0


def raw_message(**attributes: str) -> dict[str, Any]:
    """One entry of a ReceiveMessage response, as botocore returns it."""
    return {
        "MessageId": "5fea7756-0ea4-451a-a703-a558b933e274",
        "ReceiptHandle": "MbZj6wDWli+JvwwJaBV+3dcjk2YW2vA3+STFFljTM8tJJg6HRG6PYSasuWXPJB+Cw",
        "MD5OfBody": "fafb00f5732ab283681e124bf8747ed1",
        "Body": '{"order": 42}',
        "Attributes": {
            "SenderId": "AIDAIENQZJOLO23YVJ4VO",
            "ApproximateFirstReceiveTimestamp": "1700000001000",
            "SentTimestamp": "1700000000123",
            **attributes,
        },
        "MD5OfMessageAttributes": "00484c68...59e48f06",
        "MessageAttributes": {
            "tenant": {"StringValue": "acme", "DataType": "String"},
        },
    }


def received(receive_count: int = 1) -> Message:
    """A realistic received message (from `raw_message`), on its `receive_count`-th receive."""
    return Message.from_sqs(raw_message(ApproximateReceiveCount=str(receive_count)), QUEUE_URL)


def message(
    body: str = "",
    *,
    message_id: str = "m-1",
    receive_count: int = 1,
    group_id: str | None = None,
    attributes: dict[str, str] | None = None,
    message_attributes: dict[str, dict[str, Any]] | None = None,
) -> Message:
    """A message with just what a test names."""
    system = {"ApproximateReceiveCount": str(receive_count), **(attributes or {})}
    if group_id is not None:
        system["MessageGroupId"] = group_id
    return Message(
        message_id=message_id,
        body=body,
        receipt_handle=f"handle-of-{message_id}",
        queue=QUEUE_URL,
        attributes=system,
        message_attributes=message_attributes or {},
    )


def lease(received_at: float, expires_at: float) -> Lease:
    return Lease(message=received(), received_at=received_at, expires_at=expires_at)
