"""Failure records and dead-letter attributes (`_consumer/deadletter.py`).

Pure decisions and small parts, called directly: no server here.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from aiosqsworker import MessageDecodeError
from aiosqsworker._bodies import build_invoker
from aiosqsworker._consumer.deadletter import (
    dead_letter_attributes,
    failure_record,
)
from aiosqsworker._sqs.redrive import FAILURE_ATTRIBUTE

from .factories import QUEUE_URL, message


class PoisonError(Exception):
    pass


class UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("cannot print myself")


def explode(error: BaseException) -> None:
    raise error


def caught(error: BaseException, via: Callable[[BaseException], None] = explode) -> BaseException:
    try:
        via(error)
    except BaseException as exc:
        return exc
    raise AssertionError("did not raise")


def explode_elsewhere(error: BaseException) -> None:
    explode(error)


FAILED_AT = datetime(2024, 6, 11, 10, 0, 5, tzinfo=UTC)


def test_a_failure_record_says_what_failed_where_and_when() -> None:
    poisoned = message(
        "poison",
        message_id="m-42",
        receive_count=3,
        attributes={
            "SentTimestamp": "1718100000000",
            "ApproximateFirstReceiveTimestamp": "1718100001500",
        },
    )
    error = caught(PoisonError("cannot digest"))
    record = failure_record(
        poisoned, error, consumer="eater", reason="last attempt failed", now=FAILED_AT
    )
    where = record.pop("where")
    digest = record.pop("traceback_digest")
    assert record == {
        "reason": "last attempt failed",
        "exception": f"{__name__}.PoisonError",
        "error": "cannot digest",
        "attempts": 3,
        "consumer": "eater",
        "source_queue": QUEUE_URL,
        "message_id": "m-42",
        "sent_at": "2024-06-11T10:00:00+00:00",
        "first_received_at": "2024-06-11T10:00:01.500000+00:00",
        "failed_at": "2024-06-11T10:00:05+00:00",
    }
    assert where.endswith(" in explode")
    assert __file__.rsplit("/", 1)[-1] in where
    assert len(digest) == 16
    int(digest, 16)
    json.dumps(record)  # it travels as JSON


def test_the_traceback_digest_groups_failures_by_type_and_path_not_text() -> None:
    def digest(error: BaseException) -> str:
        record = failure_record(message(), error, consumer="c", reason="r", now=FAILED_AT)
        return str(record["traceback_digest"])

    first = digest(caught(PoisonError("order 1")))
    assert digest(caught(PoisonError("order 2"))) == first
    assert digest(caught(ValueError("order 1"))) != first
    assert digest(caught(PoisonError("order 1"), via=explode_elsewhere)) != first


def test_a_failure_record_copes_with_odd_errors_and_missing_timestamps() -> None:
    bare = message(attributes={"SentTimestamp": "yesterday"})
    never_raised = failure_record(bare, PoisonError("x" * 5000), consumer="c", reason="r")
    assert never_raised["where"] is None
    assert never_raised["error"] == "x" * 1000
    assert never_raised["sent_at"] is None
    assert never_raised["first_received_at"] is None
    assert datetime.fromisoformat(never_raised["failed_at"]).tzinfo is not None
    unprintable = failure_record(bare, caught(UnprintableError()), consumer="c", reason="r")
    assert unprintable["error"] == "<exception str() failed>"
    assert unprintable["exception"] == f"{__name__}.UnprintableError"


def test_dead_letter_attributes_keep_the_senders_and_add_the_record() -> None:
    record = {"reason": "rejected", "attempts": 1}
    sent = message(
        message_attributes={
            "tenant": {
                "DataType": "String",
                "StringValue": "acme",
                "StringListValues": [],
                "BinaryListValues": [],
            },
            "priority": {"DataType": "Number", "StringValue": "5"},
            FAILURE_ATTRIBUTE: {"DataType": "String", "StringValue": '{"reason": "older"}'},
        }
    )
    attributes = dead_letter_attributes(sent, record)
    assert attributes == {
        "tenant": {"DataType": "String", "StringValue": "acme"},
        "priority": {"DataType": "Number", "StringValue": "5"},
        FAILURE_ATTRIBUTE: {"DataType": "String", "StringValue": json.dumps(record)},
    }
    assert json.loads(attributes[FAILURE_ATTRIBUTE]["StringValue"]) == record


def test_dead_letter_attributes_stay_within_sqss_ten() -> None:
    many = {f"a{n}": {"DataType": "String", "StringValue": str(n)} for n in range(10)}  # SQS's most
    attributes = dead_letter_attributes(message(message_attributes=many), {"reason": "r"})
    assert len(attributes) == 10
    assert FAILURE_ATTRIBUTE in attributes
    assert [name for name in attributes if name != FAILURE_ATTRIBUTE] == [f"a{n}" for n in range(9)]


@dataclasses.dataclass
class Invoice:
    number: int


async def take_invoice(invoice: Invoice) -> None:
    raise AssertionError("never called: the body does not decode")


async def test_a_decode_failure_record_points_at_the_handler_not_the_decoder() -> None:
    """Catches a `where` taken from the innermost frame of the traceback: for a body that is
    not JSON it named the framework's own decoding code, where nothing is to fix."""
    invoke = build_invoker(take_invoice, None)
    with pytest.raises(MessageDecodeError) as raised:
        await invoke(message("not json"))
    record = failure_record(message("not json"), raised.value, consumer="c", reason="r")
    line = take_invoice.__code__.co_firstlineno
    assert record["where"] == f"{__file__}:{line} in take_invoice"
    assert record["exception"] == "aiosqsworker.MessageDecodeError"
