"""Lag and dwell: how old a message is when its handler starts, in statistics and /metrics."""

from __future__ import annotations

from collections.abc import Callable

import anyio

from aiosqsworker import App, Message
from aiosqsworker._run.metrics import metric_families

from .kit import SQSKit, eventually


async def test_lag_and_dwell_are_kept_when_asked_for(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    """One handler at a time, 0.4 s each, three messages received together: the last waits
    about 0.8 s in the buffer (its dwell), and was sent just before (its lag, in seconds).

    Naive code it catches: dwell taken at receipt (always about 0), lag in milliseconds
    (SentTimestamp's unit), or quantiles never reaching /metrics.
    """
    queue = await sqs.create_queue()
    app = make_app(message_ages=True)

    @app.consumer(queue.name, name="orders", wait_time=1, concurrency=1, max_messages=10)
    async def handle(message: Message) -> None:
        await anyio.sleep(0.4)

    await sqs.send(queue, ["a", "b", "c"])
    async with app:
        await eventually(lambda: app.statistics()["orders"].succeeded == 3)
        stats = app.statistics()
    orders = stats["orders"]
    assert orders.dwell_p99 is not None
    assert orders.dwell_p50 is not None
    assert orders.dwell_p99 >= 0.6
    assert orders.lag_p99 is not None
    assert orders.dwell_p99 / 1.3 <= orders.lag_p99 < 60
    names = {name: samples for name, _, _, samples in metric_families(stats)}
    assert len(names["aiosqsworker_message_lag_seconds"]) == 3
    assert len(names["aiosqsworker_message_dwell_seconds"]) == 3


async def test_without_the_setting_nothing_is_kept(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    queue = await sqs.create_queue()
    app = make_app()

    @app.consumer(queue.name, name="orders", wait_time=1)
    async def handle(message: Message) -> None:
        pass

    await sqs.send(queue, ["a"])
    async with app:
        await eventually(lambda: app.statistics()["orders"].succeeded == 1)
        stats = app.statistics()
    assert stats["orders"].lag_p50 is None
    assert stats["orders"].dwell_p50 is None
    names = {name for name, _, _, _ in metric_families(stats)}
    assert "aiosqsworker_message_lag_seconds" not in names
    assert "aiosqsworker_handler_duration_seconds" in names
