"""What a handler's ending means, end to end: FIFO order, batches, dead letters, typed
bodies, timeouts, lost leases and middleware.

Every scenario runs a real worker against the test server over HTTP, counts what the
handlers saw per message id, and checks what the server holds afterwards. Retry back-offs
are kept at a second so that redeliveries come back quickly. Those marked
``also_in_memory`` run on the in-memory SQS too (see `conftest.py`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import anyio
import pydantic
import pytest

from aiosqsworker import (
    App,
    ConsumerConfig,
    ConsumerStatistics,
    Message,
    MessageDecodeError,
    PartialBatchFailure,
    Reject,
)
from aiosqsworker._consumer.receiver import poller_count
from aiosqsworker._sqs.redrive import FAILURE_ATTRIBUTE

from .kit import SQSKit, eventually, eventually_async

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


def stats_of(app: App, name: str) -> ConsumerStatistics:
    return app.statistics()[name]


def failure_of(dead_letter: dict[str, Any]) -> dict[str, Any]:
    """The failure record a dead letter carries, parsed."""
    attribute = dead_letter["MessageAttributes"][FAILURE_ATTRIBUTE]
    assert attribute["DataType"] == "String"
    record = json.loads(attribute["StringValue"])
    assert isinstance(record, dict)
    return record


def parse_time(text: object) -> datetime:
    assert isinstance(text, str), text
    moment = datetime.fromisoformat(text)
    assert moment.tzinfo is not None, text
    return moment


class PoisonError(Exception):
    """What the poisoned handler raises."""


# (1) FIFO: groups in order, in parallel, through failures and jobs longer than the lease.


GROUPS = [f"group-{g}" for g in range(5)]
PER_GROUP = 40


@pytest.mark.slow
@pytest.mark.also_in_memory
async def test_fifo_groups_finish_in_order_in_parallel_through_failures_and_long_jobs(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    """200 messages in 5 groups, ~5 % failing once, a few jobs longer than the visibility.

    Every group's messages succeed in send order, each exactly once; after a failure the
    group's next start is the failed message again (its successors did not run first);
    groups run at the same time; the queue is empty at the end.
    """
    queue = await sqs.create_fifo_queue(visibility_timeout=2)
    rng = random.Random(20240611)
    plan = [(group, n) for n in range(PER_GROUP) for group in GROUPS]  # interleaved groups
    keys = [f"{group}/{n}" for group, n in plan]
    failing = set(rng.sample(keys, len(keys) // 20))
    long_jobs = {key: rng.uniform(3.0, 4.0) for key in rng.sample(sorted(set(keys) - failing), 4)}
    short_job = {key: rng.uniform(0.0, 0.02) for key in keys}
    await sqs.send_grouped(queue, ((g, json.dumps({"g": g, "n": n})) for g, n in plan))

    raised: set[str] = set()
    attempts: Counter[str] = Counter()
    starts: dict[str, list[tuple[int, str]]] = defaultdict(list)  # (n, how it ended)
    succeeded: dict[str, list[int]] = defaultdict(list)
    intervals: list[tuple[str, float, float]] = []
    running: Counter[str] = Counter()
    same_group_overlaps: list[str] = []
    app = make_app()

    @app.consumer(queue.name, concurrency=10, wait_time=1, visibility_timeout=2, **FAST_RETRIES)
    async def handle(message: Message) -> None:
        body = message.json()
        group, n = body["g"], body["n"]
        key = f"{group}/{n}"
        assert message.group_id == group
        attempts[key] += 1
        running[group] += 1
        if running[group] > 1:
            same_group_overlaps.append(key)
        started = anyio.current_time()
        ending = "failed"
        try:
            if key in failing and key not in raised:
                raised.add(key)
                raise RuntimeError(f"injected failure of {key}")
            await anyio.sleep(long_jobs.get(key, short_job[key]))
            ending = "ok"
            succeeded[group].append(n)
        finally:
            running[group] -= 1
            starts[group].append((n, ending))
            intervals.append((group, started, anyio.current_time()))

    async with app:
        await eventually(
            lambda: stats_of(app, "handle").deleted == len(plan),
            within=60,
            what="every message deleted",
        )
        stats = stats_of(app, "handle")
    assert raised == failing
    for group in GROUPS:
        assert starts[group][0][0] == 0, group
        assert succeeded[group] == list(range(PER_GROUP)), (group, starts[group])
        # After a failure, the next message started in the group is the failed one again.
        for (n, ending), (following, _) in zip(starts[group], starts[group][1:], strict=False):
            assert following == (n if ending == "failed" else n + 1), (group, starts[group])
    assert same_group_overlaps == []
    assert attempts == Counter({key: 2 if key in failing else 1 for key in keys})
    # Groups overlapped: some two handlers of different groups ran at the same moment.
    assert any(
        group_a != group_b and start_a < end_b and start_b < end_a
        for group_a, start_a, end_a in intervals
        for group_b, start_b, end_b in intervals
    )
    # A long job held its message by extending the lease, instead of losing it.
    assert stats.leases_extended > 0
    assert stats.leases_lost == 0
    assert stats.succeeded == len(plan)
    assert stats.failed == len(failing)
    assert await sqs.counts(queue) == (0, 0)


# (2) Batch handlers: one failed message of ten is redelivered alone.


@pytest.mark.parametrize("how", ["returned", "raised", "exception"])
@pytest.mark.also_in_memory
async def test_a_batch_handler_fails_one_message_or_the_whole_batch(
    sqs: SQSKit, make_app: Callable[..., App], how: str
) -> None:
    """`returned`: the handler returns the failed Message; `raised`: it raises
    PartialBatchFailure naming its id. Only that message comes back. `exception`: any other
    exception fails all ten, and all ten come back.
    """
    queue = await sqs.create_queue(visibility_timeout=30)
    ids = await sqs.send(queue, (f"item {n}" for n in range(10)))
    calls: list[list[str]] = []
    receives: Counter[str] = Counter()
    receive_counts: dict[str, list[int]] = defaultdict(list)
    app = make_app()

    @app.consumer(
        queue.name,
        batch=True,
        batch_size=10,
        batch_window=1.0,
        concurrency=1,
        **ONE_POLL,
        **FAST_RETRIES,
    )
    async def handle(messages: list[Message]) -> list[Message] | None:
        calls.append([message.message_id for message in messages])
        for message in messages:
            receives[message.message_id] += 1
            receive_counts[message.message_id].append(message.receive_count)
        if len(calls) > 1:
            return None
        victim = messages[len(messages) // 2]
        if how == "returned":
            return [victim]
        if how == "raised":
            raise PartialBatchFailure([victim.message_id], reason="one bad item")
        raise RuntimeError("the whole batch failed")

    async with app:
        await eventually(lambda: stats_of(app, "handle").deleted == 10, what="all 10 deleted")
        stats = stats_of(app, "handle")
    first = calls[0]
    assert len(first) == 10, calls  # one full batch of ten
    assert sorted(first) == sorted(ids)
    if how == "exception":
        expected = Counter(dict.fromkeys(ids, 2))
        assert stats.failed == 10
    else:
        victim = first[len(first) // 2]
        expected = Counter(dict.fromkeys(ids, 1)) + Counter({victim: 1})
        assert calls[1:] == [[victim]]  # the nine others were deleted, not redelivered
        assert receive_counts[victim] == [1, 2]
        assert stats.failed == 1
    assert receives == expected, (calls, dict(receive_counts))
    assert stats.succeeded == 10
    assert await sqs.counts(queue) == (0, 0)


# (3) Dead letters carry why they failed.


@pytest.mark.also_in_memory
async def test_a_poison_message_reaches_the_dead_letter_queue_with_its_failure_record(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    """After exactly maxReceiveCount attempts, and not one more; the good message is fine."""
    queue = await sqs.create_queue(max_receive_count=3)
    dlq = await sqs.dlq_of(queue)
    poison_id, good_id = await sqs.send(queue, ["poison", "fine"])
    invocations: Counter[str] = Counter()
    app = make_app()

    @app.consumer(queue.name, name="eater", **ONE_POLL, **FAST_RETRIES)
    async def swallow_poison(message: Message) -> None:
        invocations[message.message_id] += 1
        if message.body == "poison":
            raise PoisonError(f"cannot digest {message.body} (receive {message.receive_count})")

    async with app:
        await eventually(lambda: stats_of(app, "eater").dead_lettered == 1, what="dead-lettered")
        await eventually(lambda: stats_of(app, "eater").deleted == 2, what="both deleted")
        await anyio.sleep(1.5)  # longer than a retry: a fourth attempt would show now
        stats = stats_of(app, "eater")
    assert invocations == Counter({poison_id: 3, good_id: 1})
    assert stats.failed == 3
    assert await sqs.counts(queue) == (0, 0)
    letters = await sqs.drain_with_attributes(dlq)
    assert len(letters) == 1
    assert letters[0]["Body"] == "poison"
    record = failure_of(letters[0])
    assert record["exception"] == f"{PoisonError.__module__}.PoisonError"
    assert record["error"] == "cannot digest poison (receive 3)"
    assert record["reason"] == "last attempt failed"
    assert record["attempts"] == 3
    assert record["consumer"] == "eater"
    assert record["source_queue"] == queue.url
    assert record["message_id"] == poison_id
    assert "swallow_poison" in record["where"]
    assert len(record["traceback_digest"]) == 16
    sent, first_received, failed = (
        parse_time(record[name]) for name in ("sent_at", "first_received_at", "failed_at")
    )
    assert sent <= first_received <= failed
    assert (failed - sent).total_seconds() < 30


async def test_reject_dead_letters_after_one_attempt(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    queue = await sqs.create_queue(max_receive_count=5)
    dlq = await sqs.dlq_of(queue)
    (message_id,) = await sqs.send(queue, ["unknown customer 42"])
    invocations: Counter[str] = Counter()
    app = make_app()

    @app.consumer(queue.name, **ONE_POLL, **FAST_RETRIES)
    async def handle(message: Message) -> None:
        invocations[message.message_id] += 1
        raise Reject("no such customer")

    async with app:
        await eventually(lambda: stats_of(app, "handle").dead_lettered == 1, what="rejected")
        await eventually(lambda: stats_of(app, "handle").deleted == 1, what="original deleted")
        await anyio.sleep(1.5)  # a retry would be back by now
    assert invocations == Counter({message_id: 1})
    assert await sqs.counts(queue) == (0, 0)
    letters = await sqs.drain_with_attributes(dlq)
    assert [letter["Body"] for letter in letters] == ["unknown customer 42"]
    record = failure_of(letters[0])
    assert record["exception"] == "aiosqsworker.Reject"
    assert record["reason"] == "no such customer"
    assert record["attempts"] == 1
    assert record["message_id"] == message_id


@pytest.mark.also_in_memory
async def test_reject_without_a_dead_letter_queue_keeps_the_message(
    sqs: SQSKit, make_app: Callable[..., App], caplog: pytest.LogCaptureFixture
) -> None:
    """With nowhere to put it, a rejected message is not deleted: it comes back later."""
    caplog.set_level(logging.ERROR, logger="aiosqsworker")
    queue = await sqs.create_queue()
    (message_id,) = await sqs.send(queue, ["reject me once"])
    receive_counts: list[int] = []
    app = make_app()

    @app.consumer(queue.name, **ONE_POLL, **FAST_RETRIES)
    async def handle(message: Message) -> None:
        assert message.message_id == message_id
        receive_counts.append(message.receive_count)
        if len(receive_counts) == 1:
            raise Reject("not today")

    async with app:
        await eventually(lambda: stats_of(app, "handle").deleted == 1, within=20, what="done")
        stats = stats_of(app, "handle")
    assert receive_counts == [1, 2]
    assert stats.dead_lettered == 0
    assert stats.retried == 1
    assert any(
        "rejected (not today) but there is no dead-letter queue" in record.getMessage()
        for record in caplog.records
    )
    assert await sqs.counts(queue) == (0, 0)


# (4) Typed bodies and envelopes.


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


# (5) A handler that outlives its timeout.


async def test_a_handler_past_its_timeout_is_cancelled_and_its_message_fails(
    sqs: SQSKit, make_app: Callable[..., App], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="aiosqsworker")
    queue = await sqs.create_queue(max_receive_count=2)
    (message_id,) = await sqs.send(queue, ["slow"])
    started: list[int] = []
    cancelled: list[int] = []
    finished: list[int] = []
    app = make_app()

    @app.consumer(queue.name, timeout=0.5, **ONE_POLL, **FAST_RETRIES)
    async def handle(message: Message) -> None:
        started.append(message.receive_count)
        try:
            await anyio.sleep(5)
        except anyio.get_cancelled_exc_class():
            cancelled.append(message.receive_count)
            raise
        finished.append(message.receive_count)

    async with app:
        await eventually(lambda: stats_of(app, "handle").dead_lettered == 1, what="dead-lettered")
        stats = stats_of(app, "handle")
    assert started == [1, 2]  # retried once, then dead-lettered on the last attempt
    assert cancelled == [1, 2]
    assert finished == []
    assert stats.succeeded == 0
    assert stats.failed == 2
    assert any("timed out after 0.5 s (timeout=0.5)" in r.getMessage() for r in caplog.records)
    letters = await sqs.drain_with_attributes(await sqs.dlq_of(queue))
    assert len(letters) == 1
    record = failure_of(letters[0])
    assert record["message_id"] == message_id
    assert record["exception"] == "builtins.TimeoutError"
    assert record["attempts"] == 2
    assert await sqs.counts(queue) == (0, 0)


# (6) A lease lost for real.


@pytest.mark.also_in_memory
async def test_a_message_deleted_behind_the_workers_back_cancels_its_handler(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    """The message is deleted out of band (with the handle the worker holds). The lease
    keeper's next extension is refused as an invalid receipt handle: the handler is
    cancelled, the loss counted, and nothing more is sent for the message.
    """
    queue = await sqs.create_queue(visibility_timeout=30)
    await sqs.send(queue, ["hold me"])
    handles: list[str] = []
    started = anyio.Event()
    cancelled = anyio.Event()
    finished: list[str] = []
    app = make_app()

    @app.consumer(queue.name, concurrency=1, prefetch=0, wait_time=1, visibility_timeout=2)
    async def handle(message: Message) -> None:
        handles.append(message.receipt_handle)
        started.set()
        try:
            await anyio.sleep(30)
        except anyio.get_cancelled_exc_class():
            cancelled.set()
            raise
        finished.append(message.message_id)

    async with app:
        with anyio.fail_after(15):
            await started.wait()
        # The lease is really held: at least one extension went through first.
        await eventually(lambda: stats_of(app, "handle").leases_extended >= 1, within=10)
        assert stats_of(app, "handle").leases_lost == 0
        await sqs.delete(queue, handles[0])
        with anyio.fail_after(10):
            await cancelled.wait()
        await eventually(lambda: stats_of(app, "handle").leases_lost == 1, within=5)
        await anyio.sleep(0.5)  # anything the worker would still send for it goes out now
        stats = stats_of(app, "handle")
    assert len(handles) == 1
    assert finished == []
    assert stats.succeeded == 0
    assert stats.failed == 0
    assert stats.deleted + stats.delete_failures + stats.released + stats.retried == 0
    assert await sqs.counts(queue) == (0, 0)


# (7) Middleware.

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
