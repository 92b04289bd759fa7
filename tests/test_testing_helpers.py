"""The helpers users test their own consumers with (aiosqsworker.testing)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from aiosqsworker import App, Message, MessageDecodeError, Producer, Reject, Retry
from aiosqsworker.pytest_plugin import TestQueue
from aiosqsworker.testing import LocalSQSServer, call_consumer, make_message, run_until_empty

from .kit import REGION, SQSKit


@dataclasses.dataclass
class Order:
    id: int


async def test_call_consumer_reports_what_the_framework_would_do_without_a_server() -> None:
    async def ok(order: Order) -> None:
        assert order.id == 7

    async def flaky(order: Order) -> None:
        raise ValueError("down")

    async def later(message: Message) -> None:
        raise Retry(delay=30)

    async def poison(message: Message) -> None:
        raise Reject("bad")

    assert (await call_consumer(ok, make_message({"id": 7}))).action == "ack"
    failed = await call_consumer(flaky, make_message({"id": 1}, receive_count=3))
    assert (failed.action, failed.min_delay, failed.delay) == ("retry", 2, 4)
    assert isinstance(failed.error, ValueError)
    last = await call_consumer(flaky, make_message({"id": 1}, receive_count=3), max_receive_count=3)
    assert last.action == "dead-letter"
    assert (await call_consumer(later, make_message("x"))).delay == 30
    assert (await call_consumer(poison, make_message("x"), max_receive_count=5)).action == (
        "dead-letter"
    )
    decode = await call_consumer(ok, make_message("not json"))
    assert decode.action == "dead-letter"  # no retry decodes it
    assert "not valid JSON" in str(decode.error)


async def test_a_reject_is_reported_as_the_dead_letter_it_becomes() -> None:
    """The framework dead-letters a `Reject` on any queue with a dead-letter queue, and every
    queue should have one: so does `call_consumer`, unless told the queue has none.

    Catches: a helper that reports "retry" unless `max_receive_count=` is passed (what a
    test of a rejecting handler then asserts is not what production does).
    """

    async def poison(message: Message) -> None:
        raise Reject("bad")

    rejected = await call_consumer(poison, make_message("x"))
    assert rejected.action == "dead-letter"
    assert isinstance(rejected.error, Reject)
    no_dlq = await call_consumer(poison, make_message("x"), dead_letter_queue=False)
    assert (no_dlq.action, no_dlq.delay) == ("retry", 300)  # the longest back-off


async def test_run_until_empty_sees_retries_through(
    sqs: SQSKit, sqs_server: LocalSQSServer, make_app: Callable[..., App]
) -> None:
    queue = await sqs.create_queue()
    attempts: dict[str, int] = {}
    app = make_app()

    @app.consumer(queue.name, wait_time=1, retry_base_delay=1, retry_max_delay=1)
    async def handle(message: Message) -> None:
        attempts[message.body] = attempts.get(message.body, 0) + 1
        if message.body == "flaky" and attempts["flaky"] == 1:
            raise RuntimeError("first time only")

    async with Producer(region=REGION, endpoint_url=sqs_server.endpoint_url) as producer:
        for body in ("a", "b", "flaky"):
            await producer.send(queue.name, body)
    await run_until_empty(app, within=30)
    assert attempts == {"a": 1, "b": 1, "flaky": 2}
    assert await sqs.counts(queue) == (0, 0)


@pytest.mark.usefixtures("sqs_endpoint")
async def test_the_pytest_plugin_fixtures_give_a_configured_environment_and_fresh_queues(
    sqs_queue: Callable[..., TestQueue],
) -> None:
    queue = sqs_queue(max_receive_count=2)
    app = App()  # region, endpoint and credentials come from the environment the fixture set
    seen: list[str] = []

    @app.consumer(queue.name, wait_time=1)
    async def handle(message: Message) -> None:
        seen.append(message.body)

    async with Producer() as producer:
        await producer.send(queue.name, "hello")
    await run_until_empty(app, within=30)
    assert seen == ["hello"]


@dataclasses.dataclass
class CountedOrder:
    id: int


async def test_a_body_that_does_not_decode_is_dead_lettered_unless_retries_are_asked() -> None:
    """`call_consumer` follows the engine: a typed body that does not decode is permanent.

    Naive change it catches: the helper deciding outcomes its own way, so a test passes on
    a retry the running consumer never does.
    """
    app = App()

    @app.consumer("strict")
    async def strict(order: CountedOrder) -> None:
        pass

    @app.consumer("patient", on_decode_error="retry", retry_max_delay=60)
    async def patient(order: CountedOrder) -> None:
        pass

    bad = make_message({"id": "seven"})
    moved = await call_consumer(strict, bad, app=app, max_receive_count=5)
    assert moved.action == "dead-letter"
    assert isinstance(moved.error, MessageDecodeError)
    kept = await call_consumer(patient, bad, app=app, max_receive_count=5)
    assert kept.action == "retry"
    nowhere = await call_consumer(strict, bad, app=app, dead_letter_queue=False)
    assert (nowhere.action, nowhere.delay) == ("retry", 300)
