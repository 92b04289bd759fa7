"""`Message` (`_message.py`) as SQS hands it out.

Pure decisions and small parts, called directly: no server here.
"""

from __future__ import annotations

from datetime import UTC, datetime

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


def test_message_without_attributes() -> None:
    bare = Message.from_sqs({"MessageId": "m-1", "ReceiptHandle": "r-1"}, QUEUE_URL)
    assert bare.body == ""
    assert bare.receive_count == 1
    assert bare.sent_at is None
    assert bare.group_id is None
    assert bare.attributes == {}
    assert bare.message_attributes == {}


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
