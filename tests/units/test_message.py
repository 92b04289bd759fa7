"""`Message` (`_message.py`) as SQS hands it out.

Pure decisions and small parts, called directly: no server here.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from aiosqsworker import (
    Message,
)

from .factories import QUEUE_URL, message, raw_message


def test_message_from_a_realistic_receive() -> None:
    raw = raw_message(
        ApproximateReceiveCount="3",
        MessageGroupId="customer-7",
        MessageDeduplicationId="d-1",
        SequenceNumber="18849496460467696128",
    )
    received = Message.from_sqs(raw, QUEUE_URL)
    assert received.message_id == raw["MessageId"]
    assert received.receipt_handle == raw["ReceiptHandle"]
    assert received.queue == QUEUE_URL
    assert received.body == '{"order": 42}'
    assert received.json() == {"order": 42}
    assert received.receive_count == 3
    assert received.sent_at == datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)
    assert received.group_id == "customer-7"
    assert received.message_attributes["tenant"]["StringValue"] == "acme"
    assert raw["ReceiptHandle"] not in repr(received)


def test_a_received_message_is_the_message_its_fields_make() -> None:
    """`from_sqs` sets each field through its slot, not through the class's constructor.

    Catches: a field added to `Message` that `from_sqs` leaves unset (reading it raises
    AttributeError), or one it sets to another field's value.
    """
    raw = raw_message(ApproximateReceiveCount="2")
    received = Message.from_sqs(raw, QUEUE_URL)
    made = Message(
        message_id=raw["MessageId"],
        body=raw["Body"],
        receipt_handle=raw["ReceiptHandle"],
        queue=QUEUE_URL,
        attributes=raw["Attributes"],
        message_attributes=raw["MessageAttributes"],
    )
    for field in dataclasses.fields(Message):
        assert getattr(received, field.name) == getattr(made, field.name), field.name
    assert received == made
    with pytest.raises(dataclasses.FrozenInstanceError):
        received.body = "changed"  # type: ignore[misc]


def test_message_without_attributes() -> None:
    bare = Message.from_sqs({"MessageId": "m-1", "ReceiptHandle": "r-1"}, QUEUE_URL)
    assert bare.body == ""
    assert bare.receive_count == 1
    assert bare.sent_at is None
    assert bare.group_id is None
    assert bare.attributes == {}
    assert bare.message_attributes == {}
    # One empty mapping is shared by such messages: read-only, yet still a dict.
    assert json.dumps(bare.message_attributes) == "{}"
    with pytest.raises(TypeError, match="read-only"):
        bare.message_attributes["tenant"] = {"StringValue": "acme"}  # type: ignore[index]


def test_messages_of_one_response_share_repeated_attribute_values() -> None:
    def parsed() -> dict[str, Any]:  # each value a string of its own, as a JSON parser makes
        raw = raw_message(ApproximateReceiveCount="1")
        raw["Attributes"] = {k: v.encode().decode() for k, v in raw["Attributes"].items()}
        return raw

    one, other = parsed(), parsed()
    assert one["Attributes"]["SenderId"] is not other["Attributes"]["SenderId"]
    shared: dict[str, str] = {}
    first, second = (Message.from_sqs(raw, QUEUE_URL, shared) for raw in (one, other))
    assert first.attributes == second.attributes
    assert first.attributes["SenderId"] is second.attributes["SenderId"]
    assert first.attributes["SentTimestamp"] is second.attributes["SentTimestamp"]


def test_message_with_malformed_attributes() -> None:
    odd = Message.from_sqs(
        raw_message(ApproximateReceiveCount="many", SentTimestamp="yesterday"), QUEUE_URL
    )
    assert odd.receive_count == 1
    assert odd.sent_at is None
    assert odd.group_id is None


def test_the_factories_build_what_the_framework_builds() -> None:
    # The helper builds what the framework builds from a ReceiveMessage entry.
    raw = {
        "MessageId": "m-1",
        "ReceiptHandle": "handle-of-m-1",
        "Body": "",
        "Attributes": {"ApproximateReceiveCount": "1"},
    }
    assert Message.from_sqs(raw, QUEUE_URL) == message()
