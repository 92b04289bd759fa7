"""The helpers users test their own consumers with (aiosqsworker.testing)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import anyio
import pytest

from aiosqsworker import (
    App,
    Breaker,
    ConsumerStatistics,
    DependencyDown,
    Message,
    MessageDecodeError,
    Producer,
    Reject,
    Retry,
    WorkerState,
)
from aiosqsworker.pytest_plugin import TestQueue
from aiosqsworker.testing import (
    LocalSQSServer,
    MemorySQS,
    QueueCounts,
    call_consumer,
    in_memory,
    make_message,
    run_until_empty,
)

from .kit import REGION, SQSKit, eventually


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


# `call_consumer` and the running worker, on the same consumer and the same message.


class Halt(BaseException):
    """A handler's own BaseException: not an `Exception`, not a request to exit."""


async def until_retried(app: App) -> tuple[ConsumerStatistics, WorkerState]:
    """Run `app` until its consumer ``handle`` has had a message retried; its statistics
    and the worker's state then."""
    async with app:
        await eventually(lambda: app.statistics()["handle"].retried == 1, within=20)
        return app.statistics()["handle"], app.state


async def test_a_batch_handler_that_returns_its_failed_message_is_a_retry_for_both(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    """A batch handler reports a message failed by returning it (no exception raised).

    The worker against the server retries that message: nothing is deleted and it comes
    back. `call_consumer`, given the same consumer and the very message the worker handed
    the handler, must say "retry" with the same back-off. Naive change it catches: the
    helper assembling its own call and deciding from the handler's exception alone, so that
    it reports "ack" for a message the worker retries.
    """
    queue = await sqs.create_queue(visibility_timeout=30)
    await sqs.send(queue, ['{"id": 1, "ok": false}'])
    app = make_app()
    handed: list[Message] = []

    @app.consumer(
        queue.name, batch=True, batch_window=0.1, wait_time=1, retry_base_delay=1, retry_max_delay=1
    )
    async def handle(messages: list[Message]) -> list[Message]:
        handed.extend(messages)
        return [message for message in messages if not message.json()["ok"]]

    stats, _ = await until_retried(app)
    assert (stats.succeeded, stats.failed, stats.deleted) == (0, 1, 0)
    [back] = await sqs.drain_once_back(queue)
    assert back["MessageId"] == handed[0].message_id

    outcome = await call_consumer(handle, handed[0], app=app)
    assert (outcome.action, outcome.min_delay, outcome.delay) == ("retry", 1, 1)
    assert outcome.returned == [handed[0]]


async def test_a_handler_raising_its_own_base_exception_fails_its_message_for_both(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    """A handler raises a BaseException of its own (neither `Exception` nor an exit request).

    The worker counts it as that message's failure, retries the message and keeps running.
    `call_consumer` on the same message must report the same "retry" with that error, not
    let it escape into the user's test. Naive change it catches: the helper catching
    `Exception` only, where the slots contain whatever a handler raises.
    """
    queue = await sqs.create_queue(visibility_timeout=30)
    await sqs.send(queue, ["x"])
    app = make_app()
    handed: list[Message] = []

    @app.consumer(queue.name, wait_time=1, retry_base_delay=1, retry_max_delay=1)
    async def handle(message: Message) -> None:
        handed.append(message)
        raise Halt("not an Exception")

    stats, state = await until_retried(app)
    assert state is WorkerState.RUNNING
    assert (stats.failed, stats.deleted) == (1, 0)

    outcome = await call_consumer(handle, handed[0], app=app)
    assert (outcome.action, outcome.min_delay, outcome.delay) == ("retry", 1, 1)
    assert isinstance(outcome.error, Halt)


async def test_a_dependency_down_on_the_last_receive_is_held_not_dead_lettered_by_both(
    sqs: SQSKit, make_app: Callable[..., App], caplog: pytest.LogCaptureFixture
) -> None:
    """A handler raises `DependencyDown` on the last receive its redrive policy allows.

    The worker's circuit breaker holds that failure: the message is retried after the next
    probe (the cool-down, 20 s, and the one after a failed probe, 40 s) and never
    dead-lettered for it, since the failure was the dependency's. `call_consumer` on the
    same message must say the same. Naive change it catches: the helper deciding from the
    receive count alone, reporting "dead-letter" for a message the worker keeps.
    """
    queue = await sqs.create_queue(visibility_timeout=30, max_receive_count=1)
    dlq = await sqs.dlq_of(queue)
    await sqs.send(queue, ["x"])
    app = make_app()
    handed: list[Message] = []

    @app.consumer(queue.name, wait_time=1, breaker=Breaker(cooldown=20, max_cooldown=300))
    async def handle(message: Message) -> None:
        handed.append(message)
        raise DependencyDown("the payments API")

    stats, _ = await until_retried(app)
    assert (stats.breaker_held, stats.dead_lettered, stats.deleted) == (1, 0, 0)
    assert await sqs.counts(queue) == (0, 1)
    assert await sqs.counts(dlq) == (0, 0)

    caplog.clear()
    outcome = await call_consumer(handle, handed[0], app=app, max_receive_count=1)
    assert (outcome.action, outcome.min_delay, outcome.delay) == ("retry", 60, 60)
    assert isinstance(outcome.error, DependencyDown)
    # The call's stand-in breaker tells no one that polling is paused: nothing polls.
    assert not [r for r in caplog.records if "circuit breaker" in r.getMessage()]


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


async def test_in_memory_runs_the_services_own_fifo_app_with_a_dead_letter_queue_until_settled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The service's module-level App, FIFO queue and RedrivePolicy, in memory: `settled()`
    returns once every order is handled, the poison one dead-lettered, and the handler's own
    `app.send` went to the in-memory SQS too.

    Catches the undocumented way (``App(client=MemorySQS(), consumers=app.consumers)``): a new
    App whose handlers' ``app.send`` still needs the module's App running against real SQS;
    a wait that returns while a retry waits out its back-off; a client not given back after
    the block; and the FIFO log saying the dead-lettered head is "retried in order".
    """
    caplog.set_level("INFO", logger="aiosqsworker")
    app = App(shutdown_timeout=5)
    handled: list[tuple[str | None, int]] = []

    @app.consumer("shop-orders.fifo", retry_base_delay=0.01, retry_max_delay=0.01)
    async def take_order(order: dict[str, int], message: Message) -> None:
        if order["qty"] < 1:
            raise ValueError("an order of nothing")
        handled.append((message.group_id, order["n"]))
        await app.send("shop-receipts", {"n": order["n"]})

    own_client = app.config.client
    sqs = MemorySQS()
    sqs.create_queue(
        "shop-orders.fifo",
        content_based_deduplication=True,
        dead_letter_queue="shop-orders-dlq.fifo",
        max_receive_count=3,
    )
    sqs.create_queue("shop-receipts")
    async with in_memory(app, sqs) as test:
        await app.send("shop-orders.fifo", {"n": 0, "qty": 0}, group_id="a")  # poison, first
        for n in range(1, 7):
            await app.send("shop-orders.fifo", {"n": n, "qty": 1}, group_id="ab"[n % 2])
        await test.settled()
        assert sqs.counts("shop-orders.fifo") == QueueCounts(visible=0, in_flight=0, delayed=0)
    assert [n for group, n in handled if group == "a"] == [2, 4, 6]
    assert [n for group, n in handled if group == "b"] == [1, 3, 5]
    [dead] = sqs.messages("shop-orders-dlq.fifo")
    assert dead.json() == {"n": 0, "qty": 0}
    assert len(sqs.messages("shop-receipts")) == 6
    assert app.config.client == own_client
    log = caplog.text
    assert "retried in order" not in log
    if "later message" in log:  # the head was received with its successors
        assert "went to the dead-letter queue; they come again in order" in log


async def test_settled_says_what_is_left_when_the_app_does_not_settle() -> None:
    """Catches a wait with no bound, or one whose timeout says nothing of the queues."""
    app = App(shutdown_timeout=1)

    @app.consumer("slow-jobs", ack_linger=0)
    async def slow(message: Message) -> None:
        await anyio.sleep(30)

    async with in_memory(app) as test:
        await app.send("slow-jobs", "x")
        with pytest.raises(TimeoutError, match=r"did not settle within 0.3 s: \{'slow-jobs'"):
            await test.settled(within=0.3)
        app.stop(force=True)
