"""FIFO groups (`_consumer/fifo.py`): which group may start, and what a bad ending hands back.

Pure decisions and small parts, called directly: no server here.
"""

from __future__ import annotations

from collections import OrderedDict, deque

import anyio
import pytest

from aiosqsworker._consumer.fifo import GroupedBuffer, next_group
from aiosqsworker._consumer.leases import Lease

from .factories import message


def lease(group: str | None, n: int) -> Lease:
    return Lease(
        message=message(f"{group}/{n}", message_id=f"{group}-{n}", group_id=group),
        received_at=0.0,
        expires_at=30.0,
    )


def bodies(leases: list[Lease]) -> list[str]:
    return [item.message.body for item in leases]


def test_next_group_is_the_first_arrived_with_work_and_nothing_running() -> None:
    waiting = OrderedDict(
        [("b", deque([lease("b", 0)])), ("a", deque([lease("a", 0)])), ("c", deque())]
    )
    assert next_group(waiting, set()) == "b"
    assert next_group(waiting, {"b"}) == "a"
    assert next_group(waiting, {"a", "b"}) is None  # "c" has nothing waiting
    assert next_group(OrderedDict(), set()) is None


async def get_now(buffer: GroupedBuffer) -> Lease | None:
    """`buffer.get()` if it can answer at once; fails if it would wait."""
    with anyio.fail_after(0.5):
        return await buffer.get()


async def would_wait(buffer: GroupedBuffer) -> bool:
    with anyio.move_on_after(0.05) as scope:
        await buffer.get()
    return scope.cancelled_caught


async def test_a_group_runs_one_message_at_a_time_in_order() -> None:
    buffer = GroupedBuffer()
    for item in (lease("a", 0), lease("a", 1), lease("b", 0), lease("a", 2)):
        buffer.put(item)
    assert len(buffer) == 4
    a0 = await get_now(buffer)
    b0 = await get_now(buffer)
    assert [a0.message.body if a0 else None, b0.message.body if b0 else None] == ["a/0", "b/0"]
    assert await would_wait(buffer)  # a and b both busy, though a/1 is waiting
    assert a0 is not None
    assert buffer.task_done(a0, succeeded=True) == []
    a1 = await get_now(buffer)
    assert a1 is not None
    assert a1.message.body == "a/1"
    assert len(buffer) == 1


async def test_a_waiting_get_wakes_when_its_group_frees() -> None:
    buffer = GroupedBuffer()
    buffer.put(lease("a", 0))
    buffer.put(lease("a", 1))
    first = await get_now(buffer)
    assert first is not None
    got: list[Lease | None] = []

    async def take() -> None:
        got.append(await buffer.get())

    async with anyio.create_task_group() as tg:
        tg.start_soon(take)
        await anyio.sleep(0.05)
        assert got == []
        buffer.task_done(first, succeeded=True)
    assert bodies([item for item in got if item is not None]) == ["a/1"]


async def test_a_failed_head_hands_back_its_groups_waiting_messages_only() -> None:
    buffer = GroupedBuffer()
    for item in (lease("a", 0), lease("b", 0), lease("a", 1), lease("b", 1), lease("a", 2)):
        buffer.put(item)
    head = await get_now(buffer)
    assert head is not None
    assert head.message.body == "a/0"
    successors = buffer.task_done(head, succeeded=False)
    assert bodies(successors) == ["a/1", "a/2"]
    assert len(buffer) == 2  # b/0 and b/1 stay
    # The group is free again: what SQS delivers next for it starts.
    buffer.put(lease("a", 0))
    order = []
    for _ in range(2):
        started = await get_now(buffer)
        assert started is not None
        order.append(started.message.body)
    assert order == ["b/0", "a/0"]
    assert buffer.task_done(lease("c", 0), succeeded=False) == []  # a group never seen


async def test_messages_without_a_group_share_one_and_close_returns_what_waits() -> None:
    buffer = GroupedBuffer()
    buffer.put(lease(None, 0))
    buffer.put(lease(None, 1))
    buffer.put(lease("a", 0))
    first = await get_now(buffer)
    assert first is not None
    assert first.message.body == "None/0"
    assert (await get_now(buffer)) is not None  # a/0: another group
    assert await would_wait(buffer)
    assert bodies(buffer.close()) == ["None/1"]
    assert len(buffer) == 0
    assert await get_now(buffer) is None
    with pytest.raises(RuntimeError, match="closed"):
        buffer.put(lease("a", 1))


async def test_close_wakes_a_waiting_get() -> None:
    buffer = GroupedBuffer()
    got: list[Lease | None] = [lease("x", 0)]

    async def take() -> None:
        got[0] = await buffer.get()

    async with anyio.create_task_group() as tg:
        tg.start_soon(take)
        await anyio.sleep(0.05)
        assert buffer.close() == []
    assert got == [None]
