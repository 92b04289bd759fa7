"""A queue of good messages: every one handled once, deleted, nothing left behind."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import anyio
import pytest

from aiosqsworker import App, Message, WorkerState

from .kit import SQSKit, eventually

pytestmark = pytest.mark.also_in_memory


async def test_every_message_is_handled_once_and_deleted(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    queue = await sqs.create_queue()
    ids = await sqs.send(queue, (f'{{"n": {n}}}' for n in range(60)))
    seen: Counter[str] = Counter()
    bodies: list[int] = []
    app = make_app()

    @app.consumer(queue.name, concurrency=8, wait_time=1)
    async def handle(message: Message) -> None:
        seen[message.message_id] += 1
        bodies.append(message.json()["n"])
        assert message.receive_count == 1
        assert message.queue == queue.url
        assert message.sent_at is not None

    async with app:
        assert app.state is WorkerState.RUNNING
        await eventually(lambda: app.statistics()["handle"].deleted == 60)
    assert app.state.value == WorkerState.STOPPED.value
    assert set(seen) == set(ids)
    assert max(seen.values()) == 1
    assert sorted(bodies) == list(range(60))
    assert await sqs.counts(queue) == (0, 0)


async def test_the_configured_concurrency_is_reached(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    queue = await sqs.create_queue()
    await sqs.send(queue, (str(n) for n in range(40)))
    running = 0
    peak = 0
    release = anyio.Event()
    app = make_app()

    @app.consumer(queue.name, concurrency=12, wait_time=1)
    async def handle(message: Message) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await release.wait()
        running -= 1

    async with app:
        await eventually(lambda: peak == 12, what="12 handlers running at once")
        release.set()
        await eventually(lambda: app.statistics()["handle"].deleted == 40)
    assert peak == 12
