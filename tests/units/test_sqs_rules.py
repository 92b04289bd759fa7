"""SQS's rules as pure checks (`_sqs/rules.py`): what each refusal carries, and the edges the
conformance table (tests/test_sqs_rules_conformance.py) does not reach through the front-ends."""

from __future__ import annotations

from aiosqsworker._sqs.limits import MAX_BATCH_BYTES, MAX_MESSAGE_BYTES
from aiosqsworker._sqs.rules import (
    batch_size_refusal,
    message_refusal,
    message_size,
    queue_kind_refusal,
    queue_message_limit,
    queue_name_refusal,
    size_refusal,
)


def test_a_refusal_carries_sqs_code_and_text_the_parameter_and_a_hint() -> None:
    """Catches a refusal that only says "invalid": the producer shows the hint, MemorySQS
    answers the code and text, and the CLI maps the parameter to its own option."""
    refusal = message_refusal("x", {"n": {"DataType": "Number", "StringValue": "1_000"}})
    assert refusal is not None
    assert refusal.code == "InvalidParameterValue"
    assert refusal.message == "Can't cast the value of message (user) attribute 'n' to a number."
    assert refusal.parameter == "MessageAttributes"
    assert "'1_000' is not a number" in refusal.hint


def test_size_counts_utf8_bytes_and_every_part_of_an_attribute() -> None:
    """Catches a size counted in characters, or without the attribute names and types."""
    attributes = {"n": {"DataType": "Binary", "BinaryValue": b"\x00\xff"}}
    assert message_size("é", attributes) == 2 + len("n") + len("Binary") + 2
    assert size_refusal("é" * 512, {}, 1024) is None
    refusal = size_refusal("é" * 512 + "x", {}, 1024)
    assert refusal is not None
    assert refusal.message.endswith("Message must be shorter than 1024 bytes.")


def test_a_sender_that_may_offload_skips_only_the_size() -> None:
    """`limit=None` is for the producer, which holds the size against the queue (or sends the
    body through S3): catches a None that skips the other rules too."""
    assert message_refusal("x" * (MAX_MESSAGE_BYTES + 1), limit=None) is None
    refused = message_refusal("x" * (MAX_MESSAGE_BYTES + 1), limit=None, delay=901)
    assert refused is not None
    assert refused.parameter == "DelaySeconds"


def test_a_batch_may_hold_1_mib_in_all_and_not_a_byte_more() -> None:
    """Catches an off-by-one at SQS's batch limit."""
    assert batch_size_refusal(MAX_BATCH_BYTES) is None
    refusal = batch_size_refusal(MAX_BATCH_BYTES + 1)
    assert refusal is not None
    assert refusal.code == "AWS.SimpleQueueService.BatchRequestTooLong"


def test_a_queue_message_limit_is_capped_at_1_mib_and_unknown_when_unreadable() -> None:
    """Catches a reading that trusts a MaximumMessageSize over SQS's own limit (a server that
    reports one), or that turns a missing or garbled attribute into a number."""
    assert queue_message_limit({"MaximumMessageSize": "1024"}) == 1024
    assert queue_message_limit({"MaximumMessageSize": str(2 * MAX_MESSAGE_BYTES)}) == (
        MAX_MESSAGE_BYTES
    )
    assert queue_message_limit({}) is None
    assert queue_message_limit({"MaximumMessageSize": "lots"}) is None


def test_queue_names_count_the_fifo_suffix_and_take_no_dots_otherwise() -> None:
    """Catches a length checked on the name without ``.fifo``, a FIFO name without the
    suffix, and a standard queue named like a FIFO one."""
    assert queue_name_refusal("q" * 80, fifo=False) is None
    assert queue_name_refusal("q" * 75 + ".fifo", fifo=True) is None
    assert queue_name_refusal("q" * 76 + ".fifo", fifo=True) is not None
    assert queue_name_refusal("jobs", fifo=True) is not None
    standard = queue_name_refusal("jobs.fifo", fifo=False)
    assert standard is not None
    assert "FifoQueue=true" in standard.hint


def test_a_queue_kind_needs_what_sqs_needs_and_unknown_deduplication_is_not_checked() -> None:
    """Catches a FIFO check that refuses a message without a deduplication id when the
    sender cannot know the queue's ContentBasedDeduplication (the producer does not read it)."""
    assert queue_kind_refusal(fifo=True, group_id="g") is None
    missing = queue_kind_refusal(fifo=True, group_id="g", content_based=False)
    assert missing is not None
    assert missing.parameter == "MessageDeduplicationId"
    assert queue_kind_refusal(fifo=True, group_id="g", content_based=True) is None
    no_group = queue_kind_refusal(fifo=True)
    assert no_group is not None
    assert no_group.code == "MissingParameter"
    assert queue_kind_refusal(fifo=False, delay=5) is None
