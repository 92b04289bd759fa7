"""The CLI's `send` and `MemorySQS` give the same verdict SQS gives on a Number attribute.

Both read a Number with the one pattern of `_sqs/limits.py`, so a value `send` refuses is
one the test double refuses too.
"""

from __future__ import annotations

import pytest

from aiosqsworker import ConfigurationError
from aiosqsworker._cli.tools.send import parse_attribute
from aiosqsworker.testing import MemorySQS

#: (value, does SQS accept it as a Number?)
NUMBERS = [("42", True), ("-1.5e3", True), ("1_000", False), (" 5", False), ("many", False)]


@pytest.mark.parametrize(("value", "accepted"), NUMBERS)
async def test_number_values_get_one_verdict_from_send_and_memory_sqs(
    value: str, accepted: bool
) -> None:
    """'1_000' and ' 5' are refused by SQS (and by `send`), though Python's Decimal() reads
    both: catches a MemorySQS that checks a Number with Decimal() and stores what SQS refuses.
    """
    memory = MemorySQS()
    memory.create_queue("jobs")
    result = await memory.send_message_batch(
        memory.queue_url("jobs"),
        [
            {
                "Id": "n",
                "MessageBody": "x",
                "MessageAttributes": {"n": {"DataType": "Number", "StringValue": value}},
            }
        ],
    )
    memory_code = None if result.sent else result.failed[0].code
    try:
        parse_attribute(f"n:Number={value}")
        cli_accepts = True
    except ConfigurationError:
        cli_accepts = False
    assert cli_accepts is accepted
    assert memory_code == (None if accepted else "InvalidParameterValue")
