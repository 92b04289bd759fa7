"""Sending: concurrent sends share batch calls, every entry is checked, limits come first."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Literal, cast

import anyio
import anyio.lowlevel
import pytest

from aiosqsworker import App, ConfigurationError, Message, Producer, QueueNotFoundError
from aiosqsworker._producer import QueueUrls, SharedLookup
from aiosqsworker._sqs.base import SQSClient
from aiosqsworker.testing import FaultProxy, LocalSQSServer

from .kit import REGION, SQSKit, eventually


@dataclasses.dataclass
class Order:
    id: int
    item: str


@pytest.mark.parametrize("client", ["fast", "botocore", "aiohttp"])
async def test_concurrent_sends_share_batch_calls_and_arrive_typed(
    sqs: SQSKit, sqs_server: LocalSQSServer, client: Literal["fast", "botocore", "aiohttp"]
) -> None:
    queue = await sqs.create_queue()
    async with (
        FaultProxy(sqs_server.endpoint_url) as proxy,
        Producer(region=REGION, endpoint_url=proxy.url, client=client) as producer,
    ):
        ids: list[str] = []

        async def send(n: int) -> None:
            ids.append(
                await producer.send(
                    queue.name, Order(n, "book"), attributes={"n": n, "blob": b"\x00\xff"}
                )
            )

        async with anyio.create_task_group() as tg:
            for n in range(25):
                tg.start_soon(send, n)
    assert len(set(ids)) == 25
    assert proxy.requests["SendMessageBatch"] == 3  # 10 + 10 + 5, not 25 calls
    received = await sqs.drain(queue)
    assert sorted(json.loads(m["Body"])["id"] for m in received) == list(range(25))


class SlowLookups:
    """Resolves queue names after 50 ms; "missing" does not exist."""

    def __init__(self) -> None:
        self.calls = 0

    async def resolve_queue_url(self, queue: str) -> str:
        self.calls += 1
        await anyio.sleep(0.05)
        if queue == "missing":
            raise QueueNotFoundError(f"queue {queue!r} does not exist")
        return f"https://sqs.test/123456789012/{queue}"


async def test_first_sends_resolve_their_queue_once_and_go_on_together() -> None:
    """25 sends ask for one queue's URL at once: one lookup, and all go on in the same loop turn.

    Naive change it catches: waiters let through a lock one loop turn at a time; on a busy
    machine the first batch's 10 ms linger ran out before the last of them arrived.
    """
    lookups = SlowLookups()
    urls = QueueUrls(cast(SQSClient, lookups))
    turn = 0
    went_on_at: dict[str, list[int]] = {"orders": [], "missing": []}
    errors: list[BaseException] = []

    async def count_turns() -> None:
        nonlocal turn
        while True:
            await anyio.lowlevel.checkpoint()
            turn += 1

    async def ask(queue: str) -> None:
        try:
            await urls.get(queue)
        except QueueNotFoundError as exc:
            errors.append(exc)
        went_on_at[queue].append(turn)

    async with anyio.create_task_group() as tg:
        tg.start_soon(count_turns)
        async with anyio.create_task_group() as askers:
            for _ in range(25):
                askers.start_soon(ask, "orders")
            for _ in range(5):
                askers.start_soon(ask, "missing")
        tg.cancel_scope.cancel()
    assert lookups.calls == 2
    for queue, turns in went_on_at.items():
        assert len(turns) == (25 if queue == "orders" else 5)
        assert max(turns) - min(turns) <= 1, (queue, sorted(turns))
    assert len(errors) == 5  # every asker of the missing queue is told, none is left waiting
    assert await urls.get("orders") == "https://sqs.test/123456789012/orders"
    assert lookups.calls == 2


async def test_askers_go_on_in_the_order_they_asked_even_as_the_lookup_ends() -> None:
    """One asker arrives in the very loop turn the lookup completes: it goes on after the
    ones already waiting, not before them.

    Naive change it catches: caching the value the moment it is known, so a newcomer takes
    the cached path while the waiters are still to resume (a FIFO queue's concurrent sends
    then joined their batch out of order).
    """
    gate = anyio.Event()

    async def look_up(key: str) -> int:
        await gate.wait()
        return 1

    lookups = SharedLookup(look_up)
    went_on: list[int] = []

    async def ask(n: int) -> None:
        await lookups.get("orders")
        went_on.append(n)

    async with anyio.create_task_group() as tg:
        for n in range(4):
            tg.start_soon(ask, n)
        await anyio.wait_all_tasks_blocked()
        gate.set()
        tg.start_soon(ask, 4)  # its first step runs in the turn the lookup ends
    assert went_on == [0, 1, 2, 3, 4]
    await ask(5)  # cached by now
    assert went_on[-1] == 5


async def test_a_message_over_the_size_limit_fails_before_anything_is_sent(
    sqs: SQSKit, sqs_server: LocalSQSServer
) -> None:
    queue = await sqs.create_queue()
    async with Producer(region=REGION, endpoint_url=sqs_server.endpoint_url) as producer:
        with pytest.raises(ConfigurationError, match="over SQS's limit"):
            await producer.send(queue.name, "x" * 1_100_000)
        with pytest.raises(ConfigurationError, match="delay"):
            await producer.send(queue.name, "x", delay=901)
    assert await sqs.counts(queue) == (0, 0)


async def test_a_throttled_batch_is_retried_and_every_sender_gets_its_id(
    sqs: SQSKit, sqs_server: LocalSQSServer
) -> None:
    queue = await sqs.create_queue()
    async with FaultProxy(sqs_server.endpoint_url) as proxy:
        proxy.inject("SendMessageBatch", "throttle", times=1)
        async with Producer(region=REGION, endpoint_url=proxy.url) as producer:
            ids = [await producer.send(queue.name, {"n": n}) for n in range(3)]
    assert len(set(ids)) == 3
    assert await sqs.counts(queue) == (3, 0)


async def test_app_send_works_inside_a_running_app(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    source = await sqs.create_queue("source")
    target = await sqs.create_queue("target")
    await sqs.send(source, ["forward me"])
    app = make_app()

    @app.consumer(source.name, wait_time=1)
    async def forward(message: Message) -> None:
        await app.send(target.name, {"forwarded": message.body}, delay=0)

    async with app:
        await eventually(lambda: app.statistics()["forward"].deleted == 1)
    received = await sqs.drain(target)
    assert [json.loads(m["Body"]) for m in received] == [{"forwarded": "forward me"}]
