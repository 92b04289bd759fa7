"""Flow control (`_consumer/flow.py`): the token bucket, start permits, pause, the rate's bound.

Pure decisions and small parts, called directly: no server here.
"""

from __future__ import annotations

import anyio
import pytest
from anyio import wait_all_tasks_blocked

from aiosqsworker._consumer.buffer import Capacity
from aiosqsworker._consumer.flow import (
    Flow,
    StartPacer,
    TokenBucket,
    ahead_limit,
    burst_allowance,
)


def test_burst_and_ahead_allowances_of_a_rate() -> None:
    assert burst_allowance(20) == 2
    assert burst_allowance(0.5) == 1
    assert burst_allowance(1000) == 100
    assert ahead_limit(20) == 20
    assert ahead_limit(0.5) == 1
    assert ahead_limit(2.5) == 3


def test_a_token_bucket_lets_its_burst_through_then_the_rate() -> None:
    bucket = TokenBucket(rate=20, burst=2, at=0.0)
    assert bucket.take(0.0) == 0.0
    assert bucket.take(0.0) == 0.0
    assert bucket.take(0.0) == pytest.approx(0.05)  # the next token in 1/20 s
    assert bucket.take(0.05) == 0.0
    # Saved tokens never exceed the burst, however long the bucket sat idle.
    assert bucket.take(100.0) == 0.0
    assert bucket.take(100.0) == 0.0
    assert bucket.take(100.0) > 0.0
    bucket.put_back()
    assert bucket.take(100.0) == 0.0


def test_a_token_bucket_never_starts_more_than_rate_times_time_plus_burst() -> None:
    bucket = TokenBucket(rate=20, burst=2, at=0.0)
    clock, starts = 0.0, []
    while clock < 10.0:
        wait = bucket.take(clock)
        if wait == 0.0:
            starts.append(clock)
        else:
            clock += wait
    for first in range(len(starts)):
        window = [t for t in starts[first:] if t < starts[first] + 1.0]
        assert len(window) <= 22
    assert 200 <= len(starts) <= 202


async def test_a_pacer_grants_starts_in_order_at_its_rate() -> None:
    pacer = StartPacer(rate=50)  # a burst of 5, then one every 20 ms
    order: list[int] = []

    async def start(n: int) -> None:
        assert await pacer.permit()
        order.append(n)

    with anyio.fail_after(10):
        started = anyio.current_time()
        async with anyio.create_task_group() as tg:
            for n in range(15):
                tg.start_soon(start, n)
                await wait_all_tasks_blocked()
        elapsed = anyio.current_time() - started
    assert order == list(range(15))
    assert elapsed >= 0.9 * 10 / 50, "ten starts beyond the burst take ten tokens' time"


async def test_a_pacer_refuses_its_waiters_on_a_pause_and_keeps_no_timer() -> None:
    pacer = StartPacer(rate=1)
    assert await pacer.permit()  # the burst of one
    answers: list[bool] = []

    async def start() -> None:
        answers.append(await pacer.permit())

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(start)
            tg.start_soon(start)
            await wait_all_tasks_blocked()
            assert len(pacer) == 2
            pacer.refuse_all()
    assert answers == [False, False]
    assert len(pacer) == 0


async def test_a_cancelled_waiter_leaves_the_pacer_without_losing_a_start() -> None:
    pacer = StartPacer(rate=20)
    assert await pacer.permit()
    assert await pacer.permit()  # the burst of two is spent
    with anyio.move_on_after(0.001):
        await pacer.permit()
    with anyio.fail_after(5):
        assert await pacer.permit()
    assert len(pacer) == 0


async def test_flow_reserves_within_the_rate_and_waits_while_paused() -> None:
    flow = Flow(Capacity(100), max_rate=10)  # at most 10 unstarted, polls from 5 free
    assert await flow.reserve(10, 10) == 10
    got: list[int] = []

    async def reserve() -> None:
        got.append(await flow.reserve(10, 10))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(reserve)
            await wait_all_tasks_blocked()
            assert got == [], "ten received and none started: no room ahead of the rate"
            for _ in range(4):
                assert await flow.start()
            await wait_all_tasks_blocked()
            assert got == [], "polls wait for half the bound"
            assert await flow.start()
        assert got == [5]
        flow.give_back(5)
        flow.not_started(5)
        flow.pause()
        async with anyio.create_task_group() as tg:
            tg.start_soon(reserve)
            await wait_all_tasks_blocked()
            assert got == [5], "a paused consumer starts no poll"
            assert not await flow.start()
            flow.resume()
        assert got == [5, 10]
        flow.close()
        assert await flow.reserve(1, 10) == 0
        assert not await flow.start()
