"""What a handler sees, end to end: typed bodies, envelopes and middleware, and where the
in-memory SQS must agree with a server (SQS's own redrive, late extensions). Failures, dead
letters, timeouts and lost leases are in `test_page_failures_and_retries.py`, FIFO groups in
`test_page_fifo.py`: the tests of the docs page that describes them.

Every scenario runs a real worker against the test server over HTTP, counts what the
handlers saw per message id, and checks what the server holds afterwards. Retry back-offs
are kept at a second so that redeliveries come back quickly. Those marked
``also_in_memory`` run on the in-memory SQS too (see `conftest.py`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import pydantic
import pytest

from aiosqsworker import (
    App,
    ConsumerConfig,
    Message,
    MessageDecodeError,
)
from aiosqsworker._consumer.receiver import poller_count
from aiosqsworker._sqs.redrive import FAILURE_ATTRIBUTE

from .kit import SQSKit, eventually, eventually_async, stats_of

#: Failures come back after one second (SQS counts visibility in whole seconds).
FAST_RETRIES: dict[str, Any] = {"retry_base_delay": 0.5, "retry_max_delay": 1}
#: One-second long polls, one at a time: with room for ten messages at most (concurrency
#: up to 10, no prefetch) a consumer keeps a single poll open. moto may hand one message to
#: two overlapping receives, which would show here as a duplicate delivery.
ONE_POLL: dict[str, Any] = {"wait_time": 1, "prefetch": 0}


def test_one_poll_settings_keep_a_single_poll_open() -> None:
    """What the scenarios below rely on for exact delivery counts."""
    assert poller_count(ConsumerConfig(queue="q", **ONE_POLL)) == 1
    assert poller_count(ConsumerConfig(queue="q", batch=True, concurrency=1, **ONE_POLL)) == 1


def failure_of(dead_letter: dict[str, Any]) -> dict[str, Any]:
    """The failure record a dead letter carries, parsed."""
    attribute = dead_letter["MessageAttributes"][FAILURE_ATTRIBUTE]
    assert attribute["DataType"] == "String"
    record = json.loads(attribute["StringValue"])
    assert isinstance(record, dict)
    return record


# Typed bodies and envelopes.


class Order(pydantic.BaseModel):
    order_id: int
    sku: str
    quantity: int


@dataclasses.dataclass(frozen=True)
class Shipment:
    order_id: int
    carrier: str


async def test_typed_handlers_get_models_and_invalid_bodies_take_the_failure_path(
    sqs: SQSKit, make_app: Callable[..., App], caplog: pytest.LogCaptureFixture
) -> None:
    """A pydantic model (with the Message as second parameter) and a dataclass arrive typed.

    A body that does not validate fails with a MessageDecodeError naming the field: it is
    dead-lettered on its first receive with that error in its record (no retry decodes it),
    logged in one line without a traceback; the handler never sees it.

    Naive changes it catches: retrying a body that cannot decode up to maxReceiveCount
    times, with a framework traceback each time.
    """
    caplog.set_level(logging.WARNING, logger="aiosqsworker")
    orders_queue = await sqs.create_queue("orders", max_receive_count=2)
    shipments_queue = await sqs.create_queue("shipments", max_receive_count=2)
    good_order, bad_order = await sqs.send(
        orders_queue,
        [
            json.dumps({"order_id": 1, "sku": "A-1", "quantity": 2}),
            json.dumps({"order_id": 2, "sku": "B-2", "quantity": "lots"}),
        ],
    )
    _, bad_shipment = await sqs.send(
        shipments_queue,
        [json.dumps({"order_id": 1, "carrier": "post"}), json.dumps({"order_id": 2})],
    )
    orders: list[tuple[Order, Message]] = []
    shipments: list[Shipment] = []
    app = make_app()

    @app.consumer(orders_queue.name, name="orders", **ONE_POLL, **FAST_RETRIES)
    async def take_order(order: Order, message: Message) -> None:
        orders.append((order, message))

    @app.consumer(shipments_queue.name, name="shipments", **ONE_POLL, **FAST_RETRIES)
    async def ship(shipment: Shipment) -> None:
        shipments.append(shipment)

    async with app:
        await eventually(
            lambda: all(
                stats_of(app, name).dead_lettered == 1 and stats_of(app, name).deleted == 2
                for name in ("orders", "shipments")
            ),
            what="one handled and one dead-lettered of each",
        )
    assert len(orders) == 1
    order, message = orders[0]
    assert type(order) is Order
    assert order == Order(order_id=1, sku="A-1", quantity=2)
    assert isinstance(message, Message)
    assert message.message_id == good_order
    assert shipments == [Shipment(order_id=1, carrier="post")]

    order_letter = await sqs.drain_with_attributes(await sqs.dlq_of(orders_queue))
    shipment_letter = await sqs.drain_with_attributes(await sqs.dlq_of(shipments_queue))
    for letters, bad_id, field in (
        (order_letter, bad_order, "quantity"),
        (shipment_letter, bad_shipment, "carrier"),
    ):
        assert len(letters) == 1
        record = failure_of(letters[0])
        assert record["message_id"] == bad_id
        assert record["exception"] == "aiosqsworker.MessageDecodeError"
        assert f"field {field!r}" in record["error"]
        assert record["attempts"] == 1  # dead-lettered at once, not retried
        assert record["reason"] == "its body does not decode"
    tracebacks = [
        record
        for record in caplog.records
        if record.exc_info and isinstance(record.exc_info[1], MessageDecodeError)
    ]
    assert tracebacks == []
    lines = [record.getMessage() for record in caplog.records]
    assert any(f"moved message {bad_order}" in line and "'quantity'" in line for line in lines)
    assert any(f"moved message {bad_shipment}" in line and "'carrier'" in line for line in lines)
    for queue in (orders_queue, shipments_queue):
        assert await sqs.counts(queue) == (0, 0)


def sns_notification(payload: str) -> str:
    return json.dumps(
        {
            "Type": "Notification",
            "MessageId": "9b1e1bd4-5a5c-4d6f-9a3b-0f0f5f3c2d11",
            "TopicArn": "arn:aws:sns:us-east-1:123456789012:orders",
            "Message": payload,
            "Timestamp": "2024-06-11T10:00:00.000Z",
            "SignatureVersion": "1",
            "Signature": "c2lnbmF0dXJl",
            "SigningCertURL": "https://sns.us-east-1.amazonaws.com/cert.pem",
            "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/unsubscribe",
        }
    )


EVENTBRIDGE_EVENT = {
    "version": "0",
    "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
    "detail-type": "Order Placed",
    "source": "shop.orders",
    "account": "123456789012",
    "time": "2024-06-11T10:00:00Z",
    "region": "us-east-1",
    "resources": [],
    "detail": {"order_id": 7, "lines": [{"sku": "A-1", "quantity": 1}]},
}

S3_RECORD = {
    "eventVersion": "2.1",
    "eventSource": "aws:s3",
    "awsRegion": "us-east-1",
    "eventTime": "2024-06-11T10:00:00.000Z",
    "eventName": "ObjectCreated:Put",
    "s3": {
        "s3SchemaVersion": "1.0",
        "bucket": {"name": "uploads", "arn": "arn:aws:s3:::uploads"},
        "object": {"key": "reports/june.csv", "size": 1024},
    },
}


async def test_envelopes_hand_the_inner_payload_to_the_handler(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    """SNS (wrapped and raw delivery) to str and model handlers, EventBridge's detail to a
    dict handler, S3's Records to a list handler."""
    queues = {
        label: await sqs.create_queue(label)
        for label in ("sns-text", "sns-model", "eventbridge", "s3")
    }
    await sqs.send(
        queues["sns-text"],
        [sns_notification("hello from sns"), "raw hello", "{raw} text that only looks like JSON"],
    )
    order = {"order_id": 3, "sku": "C-3", "quantity": 1}
    await sqs.send(
        queues["sns-model"],
        [sns_notification(json.dumps(order)), json.dumps({**order, "order_id": 4})],
    )
    await sqs.send(queues["eventbridge"], [json.dumps(EVENTBRIDGE_EVENT)])
    await sqs.send(queues["s3"], [json.dumps({"Records": [S3_RECORD]})])
    texts: list[str] = []
    orders: list[Order] = []
    details: list[dict[str, Any]] = []
    records: list[list[Any]] = []
    app = make_app()

    @app.consumer(queues["sns-text"].name, name="sns-text", envelope="sns", **ONE_POLL)
    async def on_text(text: str) -> None:
        texts.append(text)

    @app.consumer(queues["sns-model"].name, name="sns-model", envelope="sns", **ONE_POLL)
    async def on_order(order: Order) -> None:
        orders.append(order)

    @app.consumer(
        queues["eventbridge"].name, name="eventbridge", envelope="eventbridge", **ONE_POLL
    )
    async def on_event(detail: dict[str, Any]) -> None:
        details.append(detail)

    @app.consumer(queues["s3"].name, name="s3", envelope="s3", **ONE_POLL)
    async def on_upload(upload_records: list[Any]) -> None:
        records.append(upload_records)

    expected_deletes = {"sns-text": 3, "sns-model": 2, "eventbridge": 1, "s3": 1}
    async with app:
        await eventually(
            lambda: all(
                stats_of(app, name).deleted == count for name, count in expected_deletes.items()
            ),
            what="every envelope handled",
        )
        failures = sum(stats.failed for stats in app.statistics().values())
    assert failures == 0
    assert sorted(texts) == ["hello from sns", "raw hello", "{raw} text that only looks like JSON"]
    assert sorted(orders, key=lambda o: o.order_id) == [
        Order(order_id=3, sku="C-3", quantity=1),
        Order(order_id=4, sku="C-3", quantity=1),
    ]
    assert details == [EVENTBRIDGE_EVENT["detail"]]
    assert records == [[S3_RECORD]]


# Middleware.

Call = Callable[[Any], Awaitable[object]]


def recording_middleware(
    name: str, events: dict[str, list[str]]
) -> Callable[[Any, Call], Awaitable[object]]:
    """A middleware that notes, per message body, when it enters and leaves."""

    async def middleware(message: Any, call_next: Call) -> object:
        assert isinstance(message, Message)
        events[message.body].append(f"{name}>")
        result = await call_next(message)
        events[message.body].append(f"<{name}")
        return result

    return middleware


async def test_middleware_runs_in_order_around_the_handler_and_its_failures_count(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    """App middleware outermost (in order), then the consumer's, then the (typed) handler.

    A consumer middleware that raises on the first receive fails the message like a handler
    would: it comes back, and the handler runs once, on the second receive.
    """
    events: dict[str, list[str]] = defaultdict(list)
    ordered_queue = await sqs.create_queue("ordered")
    gated_queue = await sqs.create_queue("gated")
    ordered_body, gated_body = json.dumps({"n": 1}), json.dumps({"n": 2})
    await sqs.send(ordered_queue, [ordered_body])
    (gated_id,) = await sqs.send(gated_queue, [gated_body])
    gate_calls: list[int] = []
    handled: list[tuple[dict[str, Any], str, int]] = []
    app = make_app(
        middleware=[recording_middleware("app-1", events), recording_middleware("app-2", events)]
    )

    async def gate(message: Any, call_next: Call) -> object:
        assert isinstance(message, Message)
        gate_calls.append(message.receive_count)
        if message.receive_count == 1:
            raise RuntimeError(f"gate closed for {message.message_id}")
        return await call_next(message)

    @app.consumer(
        ordered_queue.name,
        name="ordered",
        **ONE_POLL,
        middleware=[
            recording_middleware("consumer-1", events),
            recording_middleware("consumer-2", events),
        ],
    )
    async def ordered(payload: dict[str, Any], message: Message) -> None:
        events[message.body].append(f"handler {payload['n']}")

    @app.consumer(gated_queue.name, name="gated", **ONE_POLL, middleware=[gate], **FAST_RETRIES)
    async def gated(payload: dict[str, Any], message: Message) -> None:
        handled.append((payload, message.message_id, message.receive_count))

    async with app:
        await eventually(lambda: stats_of(app, "ordered").deleted == 1, what="ordered done")
        await eventually(lambda: stats_of(app, "gated").deleted == 1, what="gated done")
        gated_stats = stats_of(app, "gated")
    assert events[ordered_body] == [
        "app-1>",
        "app-2>",
        "consumer-1>",
        "consumer-2>",
        "handler 1",
        "<consumer-2",
        "<consumer-1",
        "<app-2",
        "<app-1",
    ]
    # The gate raised through the app's middleware the first time; the second time it let
    # the message through to the handler.
    assert events[gated_body] == ["app-1>", "app-2>", "app-1>", "app-2>", "<app-2", "<app-1"]
    assert gate_calls == [1, 2]
    assert handled == [({"n": 2}, gated_id, 2)]
    assert gated_stats.failed == 1
    assert gated_stats.succeeded == 1
    assert await sqs.counts(gated_queue) == (0, 0)


# SQS's own redrive and late extensions: where the in-memory SQS must agree with a server.


@pytest.mark.also_in_memory
async def test_a_message_redriven_by_sqs_carries_its_receive_count_on(sqs: SQSKit) -> None:
    """maxReceiveCount 1, the message received once and left to time out: the next receive
    moves it to the dead-letter queue, where its first receive counts 2, not 1.

    Naive code it catches: an in-memory redrive that builds a fresh message in the dead-letter
    queue with its receive count reset (moto and ministack carry the count on, as SQS does):
    a consumer of the dead-letter queue that reads `receive_count` would pass in memory and
    see another number on a server.
    """
    queue = await sqs.create_queue(max_receive_count=1)
    dlq = await sqs.dlq_of(queue)
    [message_id] = await sqs.send(queue, ["poison"])
    [first] = await sqs.receive(queue, visibility_timeout=1)
    assert first["Attributes"]["ApproximateReceiveCount"] == "1"
    await anyio.sleep(1.2)

    async def moved() -> bool:
        return not await sqs.receive(queue, visibility_timeout=1) and bool(
            (await sqs.counts(dlq))[0]
        )

    await eventually_async(moved, within=10)
    [letter] = await sqs.receive(dlq, visibility_timeout=30)
    assert letter["MessageId"] == message_id
    assert letter["Attributes"]["ApproximateReceiveCount"] == "2"


@pytest.mark.also_in_memory
async def test_an_extension_after_the_visibility_ran_out_holds_while_the_receipt_is_latest(
    sqs: SQSKit,
) -> None:
    """A message whose 1 s visibility ran out, not received again: extending it with its
    receipt succeeds and hides it again until the new timeout runs out. (An older receipt,
    after another receive took the message, is not shared: moto accepts any receipt the
    message ever had; the in-memory SQS refuses it as SQS does, see test_memory_sqs.py.)

    Naive code it catches: an in-memory SQS that refuses every extension once the timeout
    has passed (moto and ministack accept it while the receipt is the latest): a lease keeper
    that is late by a moment would see its leases "lost" in memory and kept on a server.
    """
    queue = await sqs.create_queue()
    await sqs.send(queue, ["late"])
    [first] = await sqs.receive(queue, visibility_timeout=1)
    await anyio.sleep(1.5)
    late = await sqs.sqs.change_visibility_batch(queue.url, [("0", first["ReceiptHandle"], 2)])
    assert (late.successful, late.failed) == (("0",), ())
    assert await sqs.receive(queue, visibility_timeout=30) == []  # hidden again
    await anyio.sleep(2.5)
    [second] = await sqs.receive(queue, visibility_timeout=30)
    assert second["Attributes"]["ApproximateReceiveCount"] == "2"
