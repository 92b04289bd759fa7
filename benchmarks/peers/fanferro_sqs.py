"""fanferro (asyncio, Rust core): a `Client`, a consumer of the benchmark's queue, in-process.

The queue is given by its URL (no ``GetQueueUrl``) with the account id set (no STS call); the
consumer keeps fanferro's defaults (batches of ten, the next batch prefetched, deletes batched
in the background, heartbeats) but for two: its concurrency, the run's, and its concurrent long
polls (``pollers``, one by default), as many as aiosqsworker opens at most at that concurrency
(`contender.poller_count`, within fanferro's bound of 64), as the bare loops keep, so that under
load the comparison is of client and framework cost, not of polling strategy (at concurrency
100 on the responder, one poll instead of eleven cost fanferro about 25 % more CPU per message
and 30 % of its throughput). The handler takes the body as ``str``, as aiosqsworker's gets
``message.body``. It runs on the suite's event loop (uvloop by default), as aiosqsworker does.
With ``--launch`` the window opens as soon as the consumer has started (no settling pause), as
aiosqsworker's does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from ..contender import poller_count  # standard library only at its top, as `_common`
from ..handlers import ASYNC_HANDLERS
from ._common import REGION, Run, load, start_run

ACCOUNT = "123456789012"  # the responder's
SETTLE = 0.3  # seconds between the consumer's start and the window's opening (as the others)
MAX_POLLERS = 64  # fanferro's bound


async def consume(run: Run) -> None:
    fanferro = load("fanferro")
    handler = ASYNC_HANDLERS[run.options.handler]
    client = fanferro.Client(
        region=REGION,
        endpoint_url=run.options.endpoint,
        credentials=fanferro.Credentials("bench", "bench"),
        account_id=ACCOUNT,
    )
    queue = client.queue(url=f"{run.options.endpoint}/{ACCOUNT}/{run.options.queue}")

    async def handle(body: str) -> None:
        run.tally.begin()
        await handler(body)
        run.tally.done()

    concurrency = run.options.concurrency
    pollers = min(MAX_POLLERS, poller_count(concurrency))
    consumer = client.consumer(queue, handle, concurrency=concurrency, pollers=pollers)
    async with client:
        await consumer.start()
        if not run.options.launch:
            await asyncio.sleep(SETTLE)  # let the consumer open its first poll
        run.start()
        await asyncio.to_thread(run.wait)  # the tally is thread-safe, not loop-aware
        await consumer.stop()


def _runner(loop: str) -> Callable[[Coroutine[Any, Any, None]], None]:
    if loop == "uvloop":
        uvloop = load("uvloop")
        return lambda coroutine: uvloop.run(coroutine)
    return asyncio.run


def main(argv: list[str] | None = None) -> None:
    run = start_run("fanferro", "fanferro", argv)
    _runner(run.options.loop)(consume(run))
    run.emit()


if __name__ == "__main__":
    main()
