"""Typed bodies, envelopes and handler invocation (`_bodies.py`).

Pure decisions and small parts, called directly: no server here.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pydantic
import pytest

from aiosqsworker import (
    ConfigurationError,
    ConsumerConfig,
    ConsumerSpec,
    HandlerSignatureError,
    Message,
    MessageDecodeError,
)
from aiosqsworker._bodies import build_invoker, decoder_for, unwrap_envelope

from .factories import message


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
            "field 'colour' is not a field of Shipment (a consumer with "
            "unknown_fields='ignore' leaves such fields out)"
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


def test_a_dataclass_ignores_unknown_fields_when_asked_and_checks_the_rest() -> None:
    """A producer that adds a field must not send every message to the dead-letter queue.

    Naive change it catches: ignoring unknown fields by skipping validation altogether.
    """
    decode = decoder_for(Shipment, unknown_fields="ignore")
    assert decode(message('{"order_id": 1, "carrier": "post", "colour": "red"}')) == Shipment(
        1, "post"
    )
    with pytest.raises(MessageDecodeError, match="'carrier' is required"):
        decode(message('{"order_id": 1, "colour": "red"}'))
    with pytest.raises(MessageDecodeError, match="'order_id' must be an integer"):
        decode(message('{"order_id": "1", "carrier": "post", "colour": "red"}'))


def test_annotations_the_framework_cannot_decode_are_refused_up_front() -> None:
    with pytest.raises(HandlerSignatureError, match="cannot decode a message body into"):
        decoder_for(int)
    with pytest.raises(HandlerSignatureError, match="annotate its first parameter"):
        decoder_for(Message, "sns")
    with pytest.raises(ConfigurationError, match="envelope='sqs' is invalid"):
        decoder_for(str, "sqs")  # type: ignore[arg-type]


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
