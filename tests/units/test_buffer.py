"""`Capacity` and `MessageBuffer` (`_consumer/buffer.py`): the back-pressure and the buffer.

Pure decisions and small parts, called directly: no server here.
"""

from __future__ import annotations

import asyncio

import anyio
import pytest
from anyio import wait_all_tasks_blocked

from aiosqsworker._consumer.buffer import Capacity, MessageBuffer


async def test_capacity_reserves_what_is_free_up_to_at_most() -> None:
    capacity = Capacity(25)
    assert await capacity.reserve(1, 10) == 10
    assert await capacity.reserve(1, 10) == 10
    assert capacity.used == 20
    assert await capacity.reserve(1, 10) == 5
    assert capacity.used == 25
    capacity.release(0)
    assert capacity.used == 25
    capacity.release(7)
    assert capacity.used == 18


async def test_capacity_reserve_waits_for_at_least() -> None:
    capacity = Capacity(10)
    assert await capacity.reserve(10, 10) == 10
    got: list[int] = []

    async def reserve() -> None:
        got.append(await capacity.reserve(3, 10))

    async with anyio.create_task_group() as tg:
        tg.start_soon(reserve)
        await wait_all_tasks_blocked()
        capacity.release(2)
        await wait_all_tasks_blocked()
        assert got == [], "reserved with fewer than at_least free"
        capacity.release(2)
    assert got == [4]
    assert capacity.used == 10


async def test_capacity_release_wakes_every_waiter_that_fits() -> None:
    capacity = Capacity(4)
    assert await capacity.reserve(4, 4) == 4
    got: list[int] = []

    async def reserve() -> None:
        got.append(await capacity.reserve(2, 2))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(reserve)
            tg.start_soon(reserve)
            await wait_all_tasks_blocked()
            capacity.release(2)
            await wait_all_tasks_blocked()
            assert got == [2]
            capacity.release(2)
    assert got == [2, 2]


async def test_capacity_close_wakes_waiters_with_nothing() -> None:
    capacity = Capacity(1)
    assert await capacity.reserve(1, 1) == 1
    got: list[int] = []

    async def reserve() -> None:
        got.append(await capacity.reserve(1, 10))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(reserve)
            tg.start_soon(reserve)
            await wait_all_tasks_blocked()
            capacity.close()
    assert got == [0, 0]
    # Closed for good: even free room is not handed out.
    capacity.release(1)
    assert await capacity.reserve(1, 1) == 0


async def test_buffer_hands_out_in_order() -> None:
    buffer: MessageBuffer[str] = MessageBuffer()
    buffer.put("a")
    buffer.put("b")
    assert len(buffer) == 2
    assert await buffer.get() == "a"
    assert await buffer.get() == "b"
    assert len(buffer) == 0
    assert buffer.task_done("a", succeeded=True) == []


async def test_buffer_get_waits_for_a_put() -> None:
    buffer: MessageBuffer[str] = MessageBuffer()
    got: list[str | None] = []

    async def get() -> None:
        got.append(await buffer.get())

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(get)
            tg.start_soon(get)
            await wait_all_tasks_blocked()
            assert got == []
            buffer.put("x")
            await wait_all_tasks_blocked()
            assert got == ["x"]
            buffer.put("y")
    assert got == ["x", "y"]


async def test_buffer_close_returns_leftovers_and_wakes_waiters() -> None:
    buffer: MessageBuffer[str] = MessageBuffer()
    got: list[str | None] = []

    async def get() -> None:
        got.append(await buffer.get())

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(get)
            tg.start_soon(get)
            await wait_all_tasks_blocked()
            assert buffer.close() == []
    assert got == [None, None]
    assert await buffer.get() is None
    with pytest.raises(RuntimeError, match="closed"):
        buffer.put("late")

    full: MessageBuffer[str] = MessageBuffer()
    full.put("a")
    full.put("b")
    assert full.close() == ["a", "b"]
    assert len(full) == 0
    assert await full.get() is None


async def test_a_waiter_cancelled_after_its_wake_up_passes_the_item_on() -> None:
    buffer: MessageBuffer[str] = MessageBuffer()
    first_scope = anyio.CancelScope()
    got: list[str | None] = []
    first_cancelled = False

    async def first() -> None:
        nonlocal first_cancelled
        with first_scope:
            got.append(await buffer.get())
        first_cancelled = first_scope.cancelled_caught

    async def second() -> None:
        got.append(await buffer.get())

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(first)
            await wait_all_tasks_blocked()
            tg.start_soon(second)
            await wait_all_tasks_blocked()
            first_scope.cancel()  # the first waiter is cancelled...
            buffer.put("x")  # ...and woken before it has run: the wake-up goes on to the second
            await wait_all_tasks_blocked()
            leftover = buffer.close()
    assert first_cancelled
    assert got == ["x"]
    assert leftover == []


async def test_a_waiter_cancelled_before_any_put_does_not_swallow_a_wake_up() -> None:
    buffer: MessageBuffer[str] = MessageBuffer()
    got: list[str | None] = []

    async def get() -> None:
        got.append(await buffer.get())

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            with anyio.move_on_after(0.01):
                await buffer.get()  # a waiter that gives up
            tg.start_soon(get)
            await wait_all_tasks_blocked()
            buffer.put("x")
    assert got == ["x"]


async def test_capacity_resized_below_what_is_held_waits_for_releases() -> None:
    capacity = Capacity(20)
    assert await capacity.reserve(20, 20) == 20
    capacity.resize(10)
    capacity.release(5)
    got: list[int] = []

    async def reserve() -> None:
        got.append(await capacity.reserve(1, 10))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(reserve)
            await wait_all_tasks_blocked()
            assert got == [], "15 held of a room of 10: nothing is free"
            capacity.release(6)
    assert got == [1]
    capacity.resize(30)
    assert await capacity.reserve(10, 30) == 20


async def test_a_task_that_drains_a_batch_itself_leaves_the_other_waiters_asleep() -> None:
    """Ten items put at once while ten tasks wait: the first task woken takes all ten
    without waiting (a no-op handler does), so no other task is woken for nothing.

    Catches waking one task per item at once: nine tasks would wake, find the buffer empty
    and wait again, each on a new future.
    """
    buffer: MessageBuffer[int] = MessageBuffer()
    taken: dict[int, list[int]] = {}

    async def take(name: int) -> None:
        while (item := await buffer.get()) is not None:
            taken.setdefault(name, []).append(item)
            while (more := buffer.take_nowait()) is not None:
                taken[name].append(more)

    loop = asyncio.get_running_loop()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for name in range(10):
                tg.start_soon(take, name)
            await wait_all_tasks_blocked()
            made = 0
            create_future = loop.create_future

            def counting_create_future() -> asyncio.Future[object]:
                nonlocal made
                made += 1
                return create_future()

            loop.create_future = counting_create_future  # type: ignore[method-assign]
            try:
                for item in range(10):
                    buffer.put(item)
                await wait_all_tasks_blocked()
            finally:
                del loop.create_future
            buffer.close()
    assert list(taken.values()) == [list(range(10))]
    assert made == 1  # only the task that drained the batch waits again


async def test_tasks_whose_work_waits_all_start_within_two_turns() -> None:
    """Ten items put at once while ten tasks wait, each task's work waiting (a handler
    doing I/O): every task has its item two turns of the loop later.

    Catches a chain of wake-ups (each task waking the next as it starts): the tenth item
    would start ten turns later, and under 10,000 messages in flight a turn is long.
    """
    buffer: MessageBuffer[int] = MessageBuffer()
    started: list[int] = []
    release = anyio.Event()

    async def handle() -> None:
        item = await buffer.get()
        assert item is not None
        started.append(item)
        await release.wait()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(handle)
            await wait_all_tasks_blocked()
            for item in range(10):
                buffer.put(item)
            for _ in range(2):
                await asyncio.sleep(0)
            assert sorted(started) == list(range(10))
            release.set()
