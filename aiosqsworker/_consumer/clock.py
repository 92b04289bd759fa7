"""The event loop's clock on the per-message path, straight from asyncio.

aiosqsworker runs on asyncio (uvloop when installed) and takes its structure from anyio:
task groups, cancel scopes, timeouts. But every anyio call first looks up the running
backend, which costs more than the operation itself; so on the per-message path (a clock
read, an event, waiting for the next message) asyncio's primitives are used directly.
anyio's cancellation reaches them as it reaches any asyncio await, and `now()` is the clock
anyio's deadlines use. `within` is the time box of every batch call (deletes, visibility
changes, extensions).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["now", "within"]

T = TypeVar("T")


def now() -> float:
    """The running loop's monotonic clock in seconds: what `anyio.current_time()` returns."""
    return asyncio.get_running_loop().time()


async def within(seconds: float, awaitable: Awaitable[T]) -> T:
    """`awaitable`'s result, or TimeoutError once it has taken `seconds` (it is cancelled).

    What ``async with asyncio.timeout(seconds)`` does around a single await, read the same
    way (a cancellation from elsewhere stays a cancellation), at a fraction of its cost:
    no context manager to enter and leave, no deadline to reschedule. Every batch of
    deletes and extensions is time-boxed by it.
    """
    task = asyncio.current_task()
    assert task is not None, "within() runs in a task"
    cancelling = task.cancelling()
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        task.cancel()

    timer = task.get_loop().call_later(seconds, expire)
    try:
        result = await awaitable
    except asyncio.CancelledError:
        if expired and task.uncancel() <= cancelling:
            raise TimeoutError(f"no answer within {seconds:g} s") from None
        raise
    finally:
        timer.cancel()
    if expired:
        task.uncancel()  # it ended as the timer went off: the timer's cancellation is void
    return result
