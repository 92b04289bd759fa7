"""`in_memory(app)`: the service's own App, run against `MemorySQS`, for its tests.

As FastStream's ``TestBroker`` and dramatiq's ``StubBroker`` do for theirs, it swaps the
transport and keeps everything else: the module's App, its consumers, middleware and
settings, and its ``app.send`` (so a handler that sends runs unchanged). `InMemoryApp.settled`
waits until everything sent has been handled, retries and dead-lettering included.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio

from .._app import App
from .._errors import QueueNotFoundError
from .._run.burst import wait_until_empty
from .clock import Clock
from .memory import MemorySQS

__all__ = ["InMemoryApp", "in_memory"]


@dataclass(frozen=True)
class InMemoryApp:
    """The running app and the in-memory SQS it consumes from."""

    app: App
    sqs: MemorySQS

    async def settled(self, *, within: float = 10.0) -> None:
        """Return once every consumer's queue holds nothing visible, in flight or delayed
        and the app holds no message: all that was sent has been handled, acknowledged or
        dead-lettered. A retry waiting out its back-off is in flight, so it is waited for
        (with a `ManualClock`, advance it). Raises TimeoutError, with what is left, after
        `within` seconds."""
        try:
            with anyio.fail_after(within):
                await wait_until_empty(self.app, check_every=0.005)
        except TimeoutError:
            left = {
                spec.config.queue: self.sqs.counts(spec.config.queue) for spec in self.app.consumers
            }
            raise TimeoutError(f"the app did not settle within {within} s: {left}") from None


def _ensure_queue(sqs: MemorySQS, name: str) -> None:
    try:
        sqs.queue_url(name)
    except QueueNotFoundError:
        fifo = name.endswith(".fifo")
        sqs.create_queue(name, content_based_deduplication=True if fifo else None)


@asynccontextmanager
async def in_memory(
    app: App, sqs: MemorySQS | None = None, *, clock: Clock | None = None
) -> AsyncIterator[InMemoryApp]:
    """Run `app` (your service's own) against an in-memory SQS until the block ends.

    Give `sqs` to arrange queues first (a RedrivePolicy: ``sqs.create_queue("orders",
    dead_letter_queue="orders-dlq", max_receive_count=3)``); a queue a consumer names that
    does not exist is created plain (FIFO with content-based deduplication when its name ends
    in ``.fifo``), and so is a consumer's ``dead_letter_queue=``. `clock` (a `ManualClock`)
    is the new MemorySQS's. The app's client is the in-memory one inside the block and its
    own again after it.
    """
    if sqs is None:
        sqs = MemorySQS(clock=clock)
    elif clock is not None:
        raise ValueError("give the clock to MemorySQS(clock=...) when you pass sqs")
    for spec in app.consumers:
        for queue in (spec.config.queue, spec.config.dead_letter_queue):
            if queue is not None and "://" not in queue:
                _ensure_queue(sqs, queue)
    own = app.config
    app.config = dataclasses.replace(own, client=sqs)
    try:
        async with app:
            yield InMemoryApp(app, sqs)
    finally:
        app.config = own
