"""Lifecycle edges of an embedded app: cancelled from outside, stopped before it started."""

from __future__ import annotations

from collections.abc import Callable

import anyio

from aiosqsworker import App, Message

from .kit import SQSKit, eventually


async def test_cancelling_the_task_that_runs_the_app_releases_buffered_messages(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    queue = await sqs.create_queue(visibility_timeout=60)
    await sqs.send(queue, (str(n) for n in range(6)))
    started = anyio.Event()
    app = make_app()

    @app.consumer(queue.name, concurrency=1, prefetch=5, wait_time=1)
    async def handle(message: Message) -> None:
        started.set()
        await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        tg.start_soon(app.run)
        await started.wait()
        await eventually(lambda: app.statistics()["handle"].buffered == 5)
        tg.cancel_scope.cancel()  # the host gives up on it: no stop(), no drain

    # Released (visibility 0), not left hidden for the 60 s visibility timeout: the one that
    # was running and the five that were buffered alike.
    assert await sqs.counts(queue) == (6, 0)


async def test_a_stop_before_the_run_begins_ends_that_run_at_once(
    sqs: SQSKit, make_app: Callable[..., App]
) -> None:
    queue = await sqs.create_queue()
    app = make_app()

    @app.consumer(queue.name, wait_time=1)
    async def handle(message: Message) -> None:
        pass

    with anyio.fail_after(15):
        async with anyio.create_task_group() as tg:
            tg.start_soon(app.run)
            app.stop()  # before run() has even created its worker
    assert app.state.value == "stopped"
