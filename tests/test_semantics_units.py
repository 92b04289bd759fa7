"""The pure decisions behind a handler's ending, called directly: outcomes, batch failures,
typed bodies and envelopes, failure records, FIFO group order, the middleware chain.
"""

from __future__ import annotations

import dataclasses
import json
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import anyio
import pydantic
import pytest

from aiosqsworker import (
    ConfigurationError,
    ConsumerConfig,
    ConsumerSpec,
    HandlerSignatureError,
    Message,
    MessageDecodeError,
    PartialBatchFailure,
    Reject,
    Retry,
)
from aiosqsworker._bodies import build_invoker, decoder_for, unwrap_envelope
from aiosqsworker._consumer.deadletter import (
    FAILURE_ATTRIBUTE,
    DeadLetterQueue,
    dead_letter_attributes,
    failure_record,
)
from aiosqsworker._consumer.fifo import GroupedBuffer, next_group
from aiosqsworker._consumer.leases import Lease
from aiosqsworker._consumer.outcomes import Outcome, batch_failures, decide
from aiosqsworker._consumer.queue import parse_redrive_policy
from aiosqsworker._consumer.slots import chain_middleware

QUEUE_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/orders"


def message(
    body: str = "",
    *,
    message_id: str = "m-1",
    receive_count: int = 1,
    group_id: str | None = None,
    attributes: dict[str, str] | None = None,
    message_attributes: dict[str, dict[str, Any]] | None = None,
) -> Message:
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


# decide: the outcome table.


@pytest.mark.parametrize(
    ("error", "flags", "expected"),
    [
        (None, {}, Outcome.ACK),
        (None, {"last_attempt": True, "has_dead_letter_queue": True}, Outcome.ACK),
        (ValueError("x"), {}, Outcome.RETRY),
        (ValueError("x"), {"has_dead_letter_queue": True}, Outcome.RETRY),
        (ValueError("x"), {"last_attempt": True}, Outcome.RETRY),  # nowhere to put it
        (
            ValueError("x"),
            {"last_attempt": True, "has_dead_letter_queue": True},
            Outcome.DEAD_LETTER,
        ),
        (
            TimeoutError(),
            {"last_attempt": True, "has_dead_letter_queue": True},
            Outcome.DEAD_LETTER,
        ),
        (MessageDecodeError("bad"), {"has_dead_letter_queue": True}, Outcome.RETRY),
        (
            MessageDecodeError("bad"),
            {"last_attempt": True, "has_dead_letter_queue": True},
            Outcome.DEAD_LETTER,
        ),
        (Retry(5), {}, Outcome.RETRY),
        # Retry is a request, not a failure: never dead-lettered by the framework.
        (Retry(5), {"last_attempt": True, "has_dead_letter_queue": True}, Outcome.RETRY),
        (Reject("no"), {"has_dead_letter_queue": True}, Outcome.DEAD_LETTER),
        (Reject("no"), {}, Outcome.RETRY),  # never deleted without a copy
        (Reject("no"), {"last_attempt": True}, Outcome.RETRY),
        (
            PartialBatchFailure(()),
            {"last_attempt": True, "has_dead_letter_queue": True},
            Outcome.DEAD_LETTER,
        ),
        # A lost lease wins over everything: the message is someone else's now.
        (None, {"lost": True}, Outcome.LOST),
        (ValueError("x"), {"lost": True, "cancelled": True}, Outcome.LOST),
        (Reject("no"), {"lost": True, "has_dead_letter_queue": True}, Outcome.LOST),
        # A forced shutdown releases, whatever the handler was about to do.
        (None, {"cancelled": True}, Outcome.RELEASE),
        (
            ValueError("x"),
            {"cancelled": True, "last_attempt": True, "has_dead_letter_queue": True},
            Outcome.RELEASE,
        ),
    ],
)
def test_decide_follows_the_outcome_table(
    error: BaseException | None, flags: dict[str, bool], expected: Outcome
) -> None:
    assert decide(error, **flags) is expected


def test_the_last_attempt_is_the_redrive_policys_max_receive_count() -> None:
    dlq = DeadLetterQueue("https://example/dlq", max_receive_count=3)
    assert [dlq.is_last_attempt(message(receive_count=n)) for n in (1, 2, 3, 4)] == [
        False,
        False,
        True,
        True,
    ]
    only_rejects = DeadLetterQueue("https://example/dlq", max_receive_count=None)
    assert not only_rejects.is_last_attempt(message(receive_count=100))


# batch_failures: which messages of a batch failed.

BATCH = [message(f"body {n}", message_id=f"id-{n}") for n in range(4)]


def failed_ids(failures: dict[str, BaseException | None]) -> set[str]:
    return {message_id for message_id, error in failures.items() if error is not None}


def test_a_batch_that_returns_nothing_succeeds_whole() -> None:
    failures = batch_failures(BATCH, None, None)
    assert failures == dict.fromkeys(("id-0", "id-1", "id-2", "id-3"))


@pytest.mark.parametrize(
    "returned",
    [
        [BATCH[1], BATCH[3]],
        ["id-1", "id-3"],
        (m for m in (BATCH[1], "id-3")),
        {"id-1", "id-3", "not-in-this-batch"},
    ],
    ids=["messages", "ids", "generator-of-both", "set-with-unknown-id"],
)
def test_a_batch_fails_the_messages_it_returns(returned: object) -> None:
    failures = batch_failures(BATCH, returned, None)
    assert list(failures) == ["id-0", "id-1", "id-2", "id-3"]
    assert failed_ids(failures) == {"id-1", "id-3"}
    assert isinstance(failures["id-1"], PartialBatchFailure)


@pytest.mark.parametrize("returned", ["id-1", b"id-1", 3, True, [], ()])
def test_a_return_value_that_names_no_messages_fails_none(returned: object) -> None:
    # A bare string is not a list of one-character ids.
    one_letter_batch = [message(message_id=c) for c in "id-1"]
    assert failed_ids(batch_failures(BATCH, returned, None)) == set()
    assert failed_ids(batch_failures(one_letter_batch, returned, None)) == set()


def test_partial_batch_failure_fails_what_it_names_with_itself_as_the_error() -> None:
    raised = PartialBatchFailure([BATCH[0], "id-2"], reason="two bad rows")
    failures = batch_failures(BATCH, ["id-3"], raised)  # a return value is ignored then
    assert failed_ids(failures) == {"id-0", "id-2"}
    assert failures["id-0"] is raised
    assert failures["id-2"] is raised
    assert failed_ids(batch_failures(BATCH, None, PartialBatchFailure([]))) == set()


def test_any_other_exception_fails_the_whole_batch() -> None:
    error = RuntimeError("database down")
    failures = batch_failures(BATCH, [BATCH[0]], error)
    assert failures == dict.fromkeys(("id-0", "id-1", "id-2", "id-3"), error)


# Typed bodies.


class Order(pydantic.BaseModel):
    order_id: int
    sku: str
    quantity: int


class Parcel(pydantic.BaseModel):
    order: Order
    weight_kg: float


@dataclasses.dataclass(frozen=True)
class Shipment:
    order_id: int
    carrier: str
    weight_kg: float = 0.0
    express: bool = False


def test_message_or_no_annotation_hands_over_the_message_itself() -> None:
    received = message("anything")
    assert decoder_for(Message)(received) is received
    assert decoder_for(Any)(message("[1, 2]")) == [1, 2]


@pytest.mark.parametrize(
    ("annotation", "body", "expected"),
    [
        (str, "héllo", "héllo"),
        (bytes, "héllo", "héllo".encode()),
        (dict, '{"a": 1}', {"a": 1}),
        (dict[str, int], '{"a": 1}', {"a": 1}),
        (list, "[1, 2]", [1, 2]),
        (list[int], "[1, 2]", [1, 2]),
        (Any, "3", 3),
        (object, '"text"', "text"),
    ],
)
def test_plain_annotations_decode_the_body(annotation: Any, body: str, expected: object) -> None:
    assert decoder_for(annotation)(message(body)) == expected


@pytest.mark.parametrize(
    ("annotation", "body", "words"),
    [
        (dict, "[1, 2]", "expected a JSON object, got list"),
        (list, '{"a": 1}', "expected a JSON array, got dict"),
        (dict, "{not json", "message m-9: payload is not valid JSON"),
        (Any, "", "message m-9: payload is not valid JSON"),
    ],
)
def test_a_body_of_the_wrong_shape_is_a_decode_error(
    annotation: Any, body: str, words: str
) -> None:
    with pytest.raises(MessageDecodeError, match=words):
        decoder_for(annotation)(message(body, message_id="m-9"))


def test_a_pydantic_model_is_validated_and_errors_name_the_field() -> None:
    decode = decoder_for(Order)
    assert decode(message('{"order_id": 1, "sku": "A", "quantity": 2}')) == Order(
        order_id=1, sku="A", quantity=2
    )
    with pytest.raises(MessageDecodeError) as caught:
        decode(message('{"order_id": 1, "sku": "A", "quantity": "lots"}', message_id="m-7"))
    text = str(caught.value)
    assert "message m-7 as Order" in text
    assert "field 'quantity'" in text
    assert "(1 error(s) in all)" in text
    with pytest.raises(MessageDecodeError, match=r"field 'order\.sku'"):
        decoder_for(Parcel)(message('{"order": {"order_id": 1, "quantity": 1}, "weight_kg": 2}'))
    with pytest.raises(MessageDecodeError, match=r"field 'sku'.*\(2 error\(s\) in all\)"):
        decode(message('{"order_id": 1}'))
    with pytest.raises(MessageDecodeError, match=r"as Order: field '\(body\)'"):
        decode(message("not json at all"))


def test_a_dataclass_is_built_from_json_and_errors_name_the_field() -> None:
    decode = decoder_for(Shipment)
    assert decode(message('{"order_id": 1, "carrier": "post"}')) == Shipment(1, "post")
    assert decode(message('{"order_id": 1, "carrier": "post", "weight_kg": 2}')) == Shipment(
        1, "post", 2
    )
    cases = {
        '{"order_id": 1}': "field 'carrier' is required but missing",
        '{"order_id": 1, "carrier": "post", "colour": "red"}': (
            "field 'colour' is not a field of Shipment"
        ),
        '{"order_id": "1", "carrier": "post"}': "field 'order_id' must be an integer, got str",
        '{"order_id": true, "carrier": "post"}': "field 'order_id' must be an integer, got bool",
        '{"order_id": 1, "carrier": "post", "express": 1}': (
            "field 'express' must be true or false, got int"
        ),
        '{"order_id": 1, "carrier": "post", "weight_kg": "2"}': (
            "field 'weight_kg' must be a number, got str"
        ),
        "[1]": "expected a JSON object, got list",
    }
    for body, words in cases.items():
        with pytest.raises(MessageDecodeError) as caught:
            decode(message(body, message_id="m-3"))
        assert str(caught.value) == f"message m-3 as Shipment: {words}", body


def test_annotations_the_framework_cannot_decode_are_refused_up_front() -> None:
    with pytest.raises(HandlerSignatureError, match="cannot decode a message body into"):
        decoder_for(int)
    with pytest.raises(HandlerSignatureError, match="annotate its first parameter"):
        decoder_for(Message, "sns")
    with pytest.raises(ConfigurationError, match="envelope='sqs' is invalid"):
        decoder_for(str, "sqs")  # type: ignore[arg-type]


# Envelopes.


def sns(payload: str) -> str:
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": "n-1",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:orders",
            "Message": payload,
        }
    )


def test_sns_unwraps_a_notification_and_leaves_raw_delivery_alone() -> None:
    assert unwrap_envelope(message(sns("hello")), "sns") == "hello"
    assert unwrap_envelope(message(sns('{"order_id": 1}')), "sns") == '{"order_id": 1}'
    assert unwrap_envelope(message("hello"), "sns") == "hello"
    # Raw delivery of a JSON payload: not a notification, so the body is the payload.
    raw_json = '{"Type": "Order", "Message": "not an envelope"}'
    assert unwrap_envelope(message(raw_json), "sns") == raw_json
    assert unwrap_envelope(message(sns("hello")), None) == sns("hello")
    # Raw delivery of text that only starts like JSON: still the payload, not an error.
    assert unwrap_envelope(message("{curly} text"), "sns") == "{curly} text"
    assert decoder_for(str, "sns")(message("{curly} text")) == "{curly} text"
    with pytest.raises(MessageDecodeError, match="field '\\(body\\)'"):
        decoder_for(Order, "sns")(message("{curly} text"))


def test_sns_payloads_reach_typed_handlers() -> None:
    order = '{"order_id": 1, "sku": "A", "quantity": 2}'
    for body in (sns(order), order):
        assert decoder_for(Order, "sns")(message(body)) == Order(order_id=1, sku="A", quantity=2)
        assert decoder_for(dict, "sns")(message(body)) == json.loads(order)
    assert decoder_for(str, "sns")(message(sns("plain text"))) == "plain text"
    with pytest.raises(MessageDecodeError, match="field 'quantity'"):
        decoder_for(Order, "sns")(message(sns('{"order_id": 1, "sku": "A"}')))


def test_eventbridge_hands_over_the_detail() -> None:
    event = {"detail-type": "Order Placed", "source": "shop", "detail": {"order_id": 7}}
    assert unwrap_envelope(message(json.dumps(event)), "eventbridge") == {"order_id": 7}
    assert decoder_for(dict, "eventbridge")(message(json.dumps(event))) == {"order_id": 7}
    assert decoder_for(str, "eventbridge")(message(json.dumps(event))) == '{"order_id": 7}'
    with pytest.raises(MessageDecodeError, match="not an EventBridge event"):
        unwrap_envelope(message('{"source": "shop"}'), "eventbridge")
    with pytest.raises(MessageDecodeError, match="not valid JSON"):
        unwrap_envelope(message("detail"), "eventbridge")


def test_s3_hands_over_the_records() -> None:
    record = {"eventSource": "aws:s3", "s3": {"object": {"key": "a.csv"}}}
    body = json.dumps({"Records": [record, record]})
    assert unwrap_envelope(message(body), "s3") == [record, record]
    assert decoder_for(list, "s3")(message(body)) == [record, record]
    test_event = json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"})
    assert unwrap_envelope(message(test_event), "s3") == []
    for bad in (
        json.dumps({"Records": [{"eventSource": "aws:sqs"}]}),
        json.dumps({"Records": "none"}),
        "[]",
    ):
        with pytest.raises(MessageDecodeError, match="not an S3 event notification"):
            unwrap_envelope(message(bad), "s3")


# build_invoker: how the dispatcher calls a handler.


async def test_a_message_handler_is_called_as_it_is() -> None:
    async def plain(message: Message) -> None:
        pass

    async def untyped(message):  # type: ignore[no-untyped-def]
        pass

    assert build_invoker(plain, None) is plain
    assert build_invoker(untyped, None) is untyped


async def test_typed_handlers_get_the_decoded_body_and_the_message_when_they_ask() -> None:
    calls: list[tuple[object, ...]] = []

    async def with_message(order: Order, message: Message) -> str:
        calls.append((order, message))
        return "done"

    async def body_only(text: str, attempt: int = 0) -> None:
        calls.append((text, attempt))

    received = message('{"order_id": 1, "sku": "A", "quantity": 2}')
    assert await build_invoker(with_message, None)(received) == "done"
    assert await build_invoker(body_only, None)(received) is None
    assert calls == [
        (Order(order_id=1, sku="A", quantity=2), received),
        (received.body, 0),
    ]
    with pytest.raises(MessageDecodeError, match="field 'sku'"):
        await build_invoker(with_message, None)(message('{"order_id": 1, "quantity": 2}'))
    assert len(calls) == 2  # the handler never saw the bad body


async def test_a_spec_calls_batch_handlers_as_they_are_and_decodes_for_typed_ones() -> None:
    async def batch(messages: list[Message]) -> None:
        pass

    spec = ConsumerSpec.build(batch, ConsumerConfig(queue="q", batch=True))
    assert spec.invoke is batch
    with pytest.raises(ConfigurationError, match="envelope= applies to one-message handlers"):
        ConsumerSpec.build(batch, ConsumerConfig(queue="q", batch=True, envelope="sns"))

    orders: list[Order] = []

    async def typed(order: Order, message: Message) -> None:
        orders.append(order)

    invoke = ConsumerSpec.build(typed, ConsumerConfig(queue="q")).invoke
    await invoke(message('{"order_id": 5, "sku": "E", "quantity": 1}'))
    assert orders == [Order(order_id=5, sku="E", quantity=1)]


# Failure records.


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


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ('{"deadLetterTargetArn": "arn:aws:sqs:us-east-1:1:dlq", "maxReceiveCount": "5"}', 5),
        ('{"deadLetterTargetArn": "arn:aws:sqs:us-east-1:1:dlq", "maxReceiveCount": 3}', 3),
    ],
)
def test_a_redrive_policy_gives_the_target_and_the_receive_count(
    policy: str, expected: int
) -> None:
    assert parse_redrive_policy(policy) == ("arn:aws:sqs:us-east-1:1:dlq", expected)


@pytest.mark.parametrize(
    "policy",
    [
        None,
        "",
        "not json",
        "[]",
        '{"maxReceiveCount": 3}',
        '{"deadLetterTargetArn": "arn:aws:sqs:us-east-1:1:dlq"}',
        '{"deadLetterTargetArn": "arn:aws:sqs:us-east-1:1:dlq", "maxReceiveCount": "many"}',
    ],
)
def test_a_missing_or_broken_redrive_policy_means_none(policy: str | None) -> None:
    assert parse_redrive_policy(policy) is None


# FIFO: which group may start, and what a bad ending hands back.


def lease(group: str | None, n: int) -> Lease:
    return Lease(
        message=message(f"{group}/{n}", message_id=f"{group}-{n}", group_id=group),
        received_at=0.0,
        expires_at=30.0,
    )


def bodies(leases: list[Lease]) -> list[str]:
    return [item.message.body for item in leases]


def test_next_group_is_the_first_arrived_with_work_and_nothing_running() -> None:
    waiting = OrderedDict(
        [("b", deque([lease("b", 0)])), ("a", deque([lease("a", 0)])), ("c", deque())]
    )
    assert next_group(waiting, set()) == "b"
    assert next_group(waiting, {"b"}) == "a"
    assert next_group(waiting, {"a", "b"}) is None  # "c" has nothing waiting
    assert next_group(OrderedDict(), set()) is None


async def get_now(buffer: GroupedBuffer) -> Lease | None:
    """`buffer.get()` if it can answer at once; fails if it would wait."""
    with anyio.fail_after(0.5):
        return await buffer.get()


async def would_wait(buffer: GroupedBuffer) -> bool:
    with anyio.move_on_after(0.05) as scope:
        await buffer.get()
    return scope.cancelled_caught


async def test_a_group_runs_one_message_at_a_time_in_order() -> None:
    buffer = GroupedBuffer()
    for item in (lease("a", 0), lease("a", 1), lease("b", 0), lease("a", 2)):
        buffer.put(item)
    assert len(buffer) == 4
    a0 = await get_now(buffer)
    b0 = await get_now(buffer)
    assert [a0.message.body if a0 else None, b0.message.body if b0 else None] == ["a/0", "b/0"]
    assert await would_wait(buffer)  # a and b both busy, though a/1 is waiting
    assert a0 is not None
    assert buffer.task_done(a0, succeeded=True) == []
    a1 = await get_now(buffer)
    assert a1 is not None
    assert a1.message.body == "a/1"
    assert len(buffer) == 1


async def test_a_waiting_get_wakes_when_its_group_frees() -> None:
    buffer = GroupedBuffer()
    buffer.put(lease("a", 0))
    buffer.put(lease("a", 1))
    first = await get_now(buffer)
    assert first is not None
    got: list[Lease | None] = []

    async def take() -> None:
        got.append(await buffer.get())

    async with anyio.create_task_group() as tg:
        tg.start_soon(take)
        await anyio.sleep(0.05)
        assert got == []
        buffer.task_done(first, succeeded=True)
    assert bodies([item for item in got if item is not None]) == ["a/1"]


async def test_a_failed_head_hands_back_its_groups_waiting_messages_only() -> None:
    buffer = GroupedBuffer()
    for item in (lease("a", 0), lease("b", 0), lease("a", 1), lease("b", 1), lease("a", 2)):
        buffer.put(item)
    head = await get_now(buffer)
    assert head is not None
    assert head.message.body == "a/0"
    successors = buffer.task_done(head, succeeded=False)
    assert bodies(successors) == ["a/1", "a/2"]
    assert len(buffer) == 2  # b/0 and b/1 stay
    # The group is free again: what SQS delivers next for it starts.
    buffer.put(lease("a", 0))
    order = []
    for _ in range(2):
        started = await get_now(buffer)
        assert started is not None
        order.append(started.message.body)
    assert order == ["b/0", "a/0"]
    assert buffer.task_done(lease("c", 0), succeeded=False) == []  # a group never seen


async def test_messages_without_a_group_share_one_and_close_returns_what_waits() -> None:
    buffer = GroupedBuffer()
    buffer.put(lease(None, 0))
    buffer.put(lease(None, 1))
    buffer.put(lease("a", 0))
    first = await get_now(buffer)
    assert first is not None
    assert first.message.body == "None/0"
    assert (await get_now(buffer)) is not None  # a/0: another group
    assert await would_wait(buffer)
    assert bodies(buffer.close()) == ["None/1"]
    assert len(buffer) == 0
    assert await get_now(buffer) is None
    with pytest.raises(RuntimeError, match="closed"):
        buffer.put(lease("a", 1))


async def test_close_wakes_a_waiting_get() -> None:
    buffer = GroupedBuffer()
    got: list[Lease | None] = [lease("x", 0)]

    async def take() -> None:
        got[0] = await buffer.get()

    async with anyio.create_task_group() as tg:
        tg.start_soon(take)
        await anyio.sleep(0.05)
        assert buffer.close() == []
    assert got == [None]


# The middleware chain.

Call = Callable[[Any], Awaitable[object]]


def layer(name: str, events: list[str]) -> Callable[[Any, Call], Awaitable[object]]:
    async def middleware(item: Any, call_next: Call) -> object:
        events.append(f"{name}>")
        try:
            return await call_next(item)
        finally:
            events.append(f"<{name}")

    return middleware


async def test_the_first_middleware_is_the_outermost() -> None:
    events: list[str] = []

    async def handler(item: Any) -> object:
        events.append(f"handler {item}")
        return "result"

    chained = chain_middleware(
        [layer("1", events), layer("2", events), layer("3", events)], handler
    )
    assert await chained("m") == "result"
    assert events == ["1>", "2>", "3>", "handler m", "<3", "<2", "<1"]
    assert chain_middleware([], handler) is handler


async def test_middleware_may_change_the_call_stop_it_or_see_its_failure() -> None:
    events: list[str] = []
    seen_errors: list[BaseException] = []

    async def handler(item: Any) -> object:
        if item == "boom":
            raise PoisonError("handler failed")
        return f"handled {item}"

    async def upper(item: Any, call_next: Call) -> object:
        return await call_next(str(item).upper())

    async def guard(item: Any, call_next: Call) -> object:
        if item == "SKIP":
            return "skipped"
        try:
            return await call_next(item)
        except PoisonError as exc:
            seen_errors.append(exc)
            raise

    async def refuse(item: Any, call_next: Call) -> object:
        raise Reject("refused by middleware")

    chained = chain_middleware([layer("log", events), upper, guard], handler)
    assert await chained("x") == "handled X"
    assert await chained("skip") == "skipped"
    with pytest.raises(PoisonError):
        await chain_middleware([guard], handler)("boom")
    assert len(seen_errors) == 1
    called: list[object] = []

    async def recording_handler(item: Any) -> object:
        called.append(item)
        return None

    with pytest.raises(Reject, match="refused by middleware"):
        await chain_middleware([layer("log", events), refuse], recording_handler)("y")
    assert called == []
    assert events == ["log>", "<log", "log>", "<log", "log>", "<log"]


def test_fixtures_shared_here_are_consistent() -> None:
    # The helper builds what the framework builds from a ReceiveMessage entry.
    raw = {
        "MessageId": "m-1",
        "ReceiptHandle": "handle-of-m-1",
        "Body": "",
        "Attributes": {"ApproximateReceiveCount": "1"},
    }
    assert Message.from_sqs(raw, QUEUE_URL) == message()
