"""The producer, the CLI's `send` and `MemorySQS` give the verdict SQS gives on its rules.

All three check a message with `_sqs/rules.py` (numbers and patterns in `_sqs/limits.py`),
so a message one refuses, the others refuse too, with SQS's code.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import pytest

from aiosqsworker import ConfigurationError, Producer, SQSError
from aiosqsworker._cli.main import main as cli_main
from aiosqsworker._cli.tools.send import parse_attribute
from aiosqsworker._sqs.limits import MAX_MESSAGE_BYTES
from aiosqsworker.testing import LocalSQSServer, MemorySQS

from .kit import REGION, Queue, SQSKit

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


# One table, three front-ends: the producer (against the test server), the CLI's `send` and
# MemorySQS each give SQS's verdict on every case. A case SQS refuses is refused by the
# producer and `send` before anything is sent, so the test server's own (laxer) verdict is
# never asked for it: moto takes eleven attributes and control characters, which SQS refuses.

ONE_MIB = MAX_MESSAGE_BYTES
_INVALID = "InvalidParameterValue"
_TOO_LONG = "AWS.SimpleQueueService.BatchRequestTooLong"


@dataclass(frozen=True)
class Case:
    """One message and SQS's verdict on it: None (accepted) or its error code."""

    rule: str
    code: str | None
    body: str = "x"
    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)
    delay: int = 0
    group_id: str | None = None
    deduplication_id: str | None = None
    #: SQS's code when the message is a SendMessageBatch's one entry, if not `code`: a
    #: message over 1 MiB makes the whole call too long before the entry is looked at.
    batch_code: str | None = None
    #: Whether the queue is a FIFO queue (by default: when the case gives a group id).
    fifo_queue: bool | None = None

    @property
    def in_a_batch(self) -> str | None:
        return self.batch_code or self.code

    @property
    def fifo(self) -> bool:
        return self.group_id is not None if self.fifo_queue is None else self.fifo_queue

    def __str__(self) -> str:
        return self.rule


def _string(value: str, data_type: str = "String") -> dict[str, Any]:
    return {"DataType": data_type, "StringValue": value}


def _number(value: str, data_type: str = "Number") -> dict[str, Any]:
    return {"DataType": data_type, "StringValue": value}


def _binary(value: bytes) -> dict[str, Any]:
    return {"DataType": "Binary", "BinaryValue": value}


def _many(count: int) -> dict[str, dict[str, Any]]:
    return {f"a{i}": _string("v") for i in range(count)}


#: "n" + "String" + "v": what one small attribute adds to a message's size.
_ONE_ATTRIBUTE = len("n") + len("String") + len("v")

CASES = [
    Case("plain body", None, body='{"id": 1}'),
    Case("tab, newline and emoji", None, body="a\tb\nc \U0001f600"),
    Case("empty body", "MissingParameter", body=""),
    Case("NUL in body", "InvalidMessageContents", body="ab\x00"),
    Case("U+001F in body", "InvalidMessageContents", body="a\x1f"),
    Case("U+FFFE in body", "InvalidMessageContents", body="a\ufffe"),
    Case("body of exactly 1 MiB", None, body="x" * ONE_MIB),
    Case("body one byte over 1 MiB", _INVALID, body="x" * (ONE_MIB + 1), batch_code=_TOO_LONG),
    Case(
        "1 MiB in multi-byte characters, one over",
        _INVALID,
        body="é" * (ONE_MIB // 2) + "x",
        batch_code=_TOO_LONG,
    ),
    Case(
        "1 MiB counting an attribute",
        None,
        body="x" * (ONE_MIB - _ONE_ATTRIBUTE),
        attributes={"n": _string("v")},
    ),
    Case(
        "one byte over 1 MiB counting an attribute",
        _INVALID,
        body="x" * (ONE_MIB - _ONE_ATTRIBUTE + 1),
        attributes={"n": _string("v")},
        batch_code=_TOO_LONG,
    ),
    Case("ten attributes", None, attributes=_many(10)),
    Case("eleven attributes", _INVALID, attributes=_many(11)),
    Case("name of 256 characters", None, attributes={"a" * 256: _string("v")}),
    Case("name of 257 characters", _INVALID, attributes={"a" * 257: _string("v")}),
    Case("name with '.', '-' and '_'", None, attributes={"a.b-c_d": _string("v")}),
    Case("name with a space", _INVALID, attributes={"a b": _string("v")}),
    Case("name with 'é'", _INVALID, attributes={"café": _string("v")}),
    Case("name starting 'AWS.'", _INVALID, attributes={"AWS.thing": _string("v")}),
    Case("name starting 'amazon.'", _INVALID, attributes={"amazon.thing": _string("v")}),
    Case("name starting with '.'", _INVALID, attributes={".a": _string("v")}),
    Case("name ending with '.'", _INVALID, attributes={"a.": _string("v")}),
    Case("name holding '..'", _INVALID, attributes={"a..b": _string("v")}),
    Case("type with a custom label", None, attributes={"n": _number("42", "Number.int")}),
    Case("type 'Integer'", _INVALID, attributes={"n": _number("42", "Integer")}),
    Case("type 'Number.' (empty label)", _INVALID, attributes={"n": _number("42", "Number.")}),
    Case("type of 256 characters", None, attributes={"n": _string("v", "String." + "x" * 249)}),
    Case("type of 257 characters", _INVALID, attributes={"n": _string("v", "String." + "x" * 250)}),
    Case("type 'string' (lower case)", _INVALID, attributes={"n": _number("v", "string")}),
    Case("Number '42'", None, attributes={"n": _number("42")}),
    Case("Number '-1.5e3'", None, attributes={"n": _number("-1.5e3")}),
    Case("Number '.5'", None, attributes={"n": _number(".5")}),
    Case("Number '1_000'", _INVALID, attributes={"n": _number("1_000")}),
    Case("Number ' 5'", _INVALID, attributes={"n": _number(" 5")}),
    Case("Number '5 '", _INVALID, attributes={"n": _number("5 ")}),
    Case("Number 'nan'", _INVALID, attributes={"n": _number("nan")}),
    Case("Number '1e'", _INVALID, attributes={"n": _number("1e")}),
    Case("empty String value", _INVALID, attributes={"n": _string("")}),
    Case("NUL in a String value", "InvalidMessageContents", attributes={"n": _string("a\x00")}),
    Case("Binary value", None, attributes={"b": _binary(b"\0\xff")}),
    Case("empty Binary value", _INVALID, attributes={"b": _binary(b"")}),
    Case("delay 900", None, delay=900),
    Case("delay 901", _INVALID, delay=901),
    Case("delay -1", _INVALID, delay=-1),
    Case("group id of 128 punctuation and letters", None, group_id="g!#-." + "g" * 123),
    Case("group id of 129", _INVALID, group_id="g" * 129),
    Case("group id with a space", _INVALID, group_id="a b"),
    Case("empty group id", _INVALID, group_id=""),
    Case("group id with 'é'", _INVALID, group_id="é"),
    Case("FIFO message without a group id", "MissingParameter", fifo_queue=True),
    Case("FIFO message with a delay of its own", _INVALID, group_id="g", delay=5),
    Case("standard message with a deduplication id", _INVALID, deduplication_id="d"),
    Case("deduplication id of 128", None, group_id="g", deduplication_id="d" * 128),
    Case("deduplication id of 129", _INVALID, group_id="g", deduplication_id="d" * 129),
]


async def _server_queue(sqs: SQSKit, case: Case) -> Queue:
    size = {"MaximumMessageSize": str(ONE_MIB)}
    if case.fifo:
        return await sqs.create_fifo_queue(attributes={**size, "ContentBasedDeduplication": "true"})
    return await sqs.create_queue(attributes=size)


async def _producer_verdict(server: LocalSQSServer, queue: Queue, case: Case) -> str | None:
    """SQS's code the producer names when it refuses before sending; None once sent."""
    async with Producer(region=REGION, endpoint_url=server.endpoint_url) as producer:
        try:
            await producer.send(
                queue.name,
                case.body,
                attributes=case.attributes,
                delay=case.delay,
                group_id=case.group_id,
                deduplication_id=case.deduplication_id,
            )
        except ConfigurationError as exc:
            answer = re.search(r"SQS would answer ([\w.]+):", str(exc))
            return answer.group(1) if answer else f"a refusal naming no code: {exc}"
    return None


def _cli_argument(name: str, value: Mapping[str, Any]) -> str:
    data_type = value["DataType"]
    if "BinaryValue" in value:
        return f"{name}:{data_type}={base64.b64encode(value['BinaryValue']).decode()}"
    return f"{name}:{data_type}={value['StringValue']}"


async def _cli_verdict(server: LocalSQSServer, queue: Queue, case: Case) -> bool:
    """Whether `send` sent the message."""
    argv = ["send", queue.name, case.body, f"--delay={case.delay}"]
    for name, value in case.attributes.items():
        argv.append(f"--attribute={_cli_argument(name, value)}")
    if case.group_id is not None:
        argv.append(f"--group-id={case.group_id}")
    if case.deduplication_id is not None:
        argv.append(f"--dedup-id={case.deduplication_id}")
    argv += ["--endpoint-url", server.endpoint_url, "--region", REGION]

    def run() -> int | str | None:
        try:
            return cli_main(argv)
        except SystemExit as exc:  # the parser's refusal of an option
            return exc.code

    return await anyio.to_thread.run_sync(run) == 0


async def _memory_verdict(case: Case) -> str | None:
    memory = MemorySQS()
    if case.fifo:
        url = memory.create_queue(
            "jobs.fifo", attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"}
        )
    else:
        url = memory.create_queue("jobs")
    entry: dict[str, Any] = {"Id": "m", "MessageBody": case.body}
    if case.attributes:
        entry["MessageAttributes"] = case.attributes
    if case.delay:
        entry["DelaySeconds"] = case.delay
    if case.group_id is not None:
        entry["MessageGroupId"] = case.group_id
    if case.deduplication_id is not None:
        entry["MessageDeduplicationId"] = case.deduplication_id
    try:
        result = await memory.send_message_batch(url, [entry])
    except SQSError as exc:  # the whole call refused
        return exc.code
    return None if result.sent else result.failed[0].code


@pytest.mark.parametrize("case", CASES, ids=str)
async def test_the_producer_send_and_memory_sqs_give_sqs_verdict_on_every_rule(
    sqs: SQSKit,
    sqs_server: LocalSQSServer,
    capsys: pytest.CaptureFixture[str],
    case: Case,
) -> None:
    """Each rule of SQS's for a message, through the three front-ends: the same verdict (and
    for the producer and MemorySQS, SQS's error code; MemorySQS answers as SQS answers a
    SendMessageBatch holding the message). Catches a front-end that checks a rule
    its own way: a Number read with float() or Decimal() ('1_000', ' 5'), a size limit in
    characters or without the attributes, a limit off by one at 1 MiB, an attribute name
    check without the reserved prefixes or the dots, a FIFO id checked for length only.
    """
    queue = await _server_queue(sqs, case)
    producer_code = await _producer_verdict(sqs_server, queue, case)
    cli_sent = await _cli_verdict(sqs_server, queue, case)
    cli_stderr = capsys.readouterr().err
    memory_code = await _memory_verdict(case)
    assert (producer_code, cli_sent, memory_code) == (
        case.code,
        case.code is None,
        case.in_a_batch,
    )
    if case.code is not None:
        # Refused before anything was sent: not an entry the server refused.
        assert "failed;" not in cli_stderr, cli_stderr
        assert await sqs.counts(queue) == (0, 0)


#: (entry ids of one SendMessageBatch, SQS's verdict on the call)
BATCHES = [
    (["a" * 80], None),
    ([str(i) for i in range(10)], None),
    (["Az09-_"], None),
    ([], "AWS.SimpleQueueService.EmptyBatchRequest"),
    ([str(i) for i in range(11)], "AWS.SimpleQueueService.TooManyEntriesInBatchRequest"),
    (["a" * 81], "AWS.SimpleQueueService.InvalidBatchEntryId"),
    (["a b"], "AWS.SimpleQueueService.InvalidBatchEntryId"),
    (["a.b"], "AWS.SimpleQueueService.InvalidBatchEntryId"),
    (["x", "x"], "AWS.SimpleQueueService.BatchEntryIdsNotDistinct"),
]


@pytest.mark.parametrize(("ids", "code"), BATCHES)
async def test_batch_entry_ids_get_sqs_verdict_from_memory_sqs(
    ids: list[str], code: str | None
) -> None:
    """A batch call's entries and ids (the producer and `send` number their own entries, at
    most ten): MemorySQS refuses the call with SQS's code. Catches an id checked for its
    characters but not its length, or ids not checked to be distinct."""
    memory = MemorySQS()
    url = memory.create_queue("jobs")
    entries = [{"Id": id_, "MessageBody": "x"} for id_ in ids]
    try:
        await memory.send_message_batch(url, entries)
        refused = None
    except SQSError as exc:
        refused = exc.code
    assert refused == code
