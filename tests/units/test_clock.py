"""`within` (`_consumer/clock.py`): the time box around every batch of deletes and
extensions, read as ``asyncio.timeout`` reads its own.

Small parts, called directly: no server here.
"""

from __future__ import annotations

import asyncio

import pytest

from aiosqsworker._consumer.clock import within


async def test_an_answer_in_time_is_the_result_and_leaves_no_timer() -> None:
    async def answer() -> str:
        await asyncio.sleep(0)
        return "deleted"

    assert await within(5.0, answer()) == "deleted"
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0
    await asyncio.sleep(0.02)  # a timer left behind would cancel this sleep
    assert task.cancelling() == 0


async def test_a_call_past_its_time_is_cancelled_and_becomes_a_timeout() -> None:
    """Catches a time box that only stops waiting: the call itself must be cancelled (a
    stalled request's connection is abandoned with it)."""
    cancelled = False

    async def stalled() -> None:
        nonlocal cancelled
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled = True
            raise

    with pytest.raises(TimeoutError, match=r"no answer within 0\.01 s"):
        await within(0.01, stalled())
    assert cancelled
    task = asyncio.current_task()
    assert task is not None
    assert task.cancelling() == 0  # the timer's own cancellation is taken back
    await asyncio.sleep(0)  # and nothing is left pending


async def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    """A stop that cancels the task while its call waits: CancelledError, not a timeout
    the caller would retry. Catches reading every cancellation as the timer's."""

    async def call() -> None:
        await within(10.0, asyncio.sleep(10))

    task = asyncio.get_running_loop().create_task(call())
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_cancellation_from_outside_at_the_deadline_stays_a_cancellation() -> None:
    """The timer and a stop both cancel the task before it runs again (the stop's timer
    set just after the call's, both due in the same turn): the stop wins, as with
    ``asyncio.timeout``. Catches converting to TimeoutError whenever the timer went off."""

    async def call() -> None:
        await within(0.0, asyncio.sleep(10))

    loop = asyncio.get_running_loop()
    task = loop.create_task(call())
    await asyncio.sleep(0)  # the call waits, its timer set
    loop.call_later(0.0, task.cancel)  # due in the same turn, just after the call's timer
    with pytest.raises(asyncio.CancelledError):
        await task
