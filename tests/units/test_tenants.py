"""Tenants (`_consumer/tenants.py`): who starts next, what a tenant keeps, when its surplus
comes back, and the bounded per-tenant counts. Pure decisions and the buffer, called
directly: no server here.
"""

from __future__ import annotations

from collections import OrderedDict, deque

import anyio

from aiosqsworker._consumer.leases import Lease
from aiosqsworker._consumer.tenants import (
    OTHER_TENANTS,
    SURPLUS_MAX_DELAY,
    TenantBuffer,
    next_tenant,
    surplus_delay,
    tenant_keeps,
    top_tenants,
)

from .factories import message


def lease(tenant: str | None, n: int, *, receive_count: int = 1) -> Lease:
    return Lease(
        message=message(
            f"{tenant}/{n}",
            message_id=f"{tenant}-{n}",
            group_id=tenant,
            receive_count=receive_count,
        ),
        received_at=0.0,
        expires_at=30.0,
    )


def test_next_tenant_is_the_first_in_turn_under_its_cap() -> None:
    waiting = OrderedDict([("a", deque([lease("a", 0)])), ("b", deque([lease("b", 0)]))])
    assert next_tenant(waiting, {}, 2) == "a"
    assert next_tenant(waiting, {"a": 2}, 2) == "b"
    assert next_tenant(waiting, {"a": 2, "b": 2}, 2) is None
    assert next_tenant(OrderedDict([("c", deque())]), {}, 2) is None


def test_a_tenant_keeps_a_seconds_worth_within_half_the_spare_room() -> None:
    assert tenant_keeps(2, 0.5, 100) == 4  # 2 at a time, half a second each
    assert tenant_keeps(2, 0.01, 40) == 20  # 200 a second, but half of 40 spare
    assert tenant_keeps(3, 10.0, 0) == 3  # never fewer than the cap


def test_surplus_comes_back_paced_a_keeps_worth_a_second() -> None:
    due, first = surplus_delay(None, 100.0, keeps=4)
    assert first == 1
    delays = [first]
    for _ in range(7):
        due, delay = surplus_delay(due, 100.0, keeps=4)
        delays.append(delay)
    assert delays == [1, 1, 1, 1, 2, 2, 2, 2]
    _, late = surplus_delay(100.0 + 10 * SURPLUS_MAX_DELAY, 100.0, keeps=1)
    assert late == SURPLUS_MAX_DELAY


def test_top_tenants_names_the_busiest_and_sums_the_rest() -> None:
    tallies = {f"t{n}": [0, 0, n, 1] for n in range(15)}
    rows = top_tenants(tallies, 10, folded=(0, 0, 7, 2))
    assert [row.tenant for row in rows[:3]] == ["t14", "t13", "t12"]
    assert len(rows) == 11
    assert rows[-1].tenant == OTHER_TENANTS
    assert rows[-1].handled == sum(range(5)) + 7
    assert rows[-1].surplus == 5 + 2
    assert top_tenants({"a": [1, 0, 0, 0]}) == top_tenants({"a": [1, 0, 0, 0]}, 10)
    assert len(top_tenants({"a": [1, 0, 0, 0]})) == 1, "no 'other' row when there is none"


async def test_the_buffer_caps_each_tenant_and_takes_turns() -> None:
    surplus: list[tuple[str, int]] = []
    buffer = TenantBuffer(
        1,
        on_surplus=lambda held, delay: surplus.append((held.message.message_id, delay)),
        spare=lambda: 10,
    )
    for n in range(3):
        buffer.put(lease("noisy", n))
    buffer.put(lease("quiet", 0))
    assert len(surplus) == 0, "noisy keeps up to 5 (half the spare room)"
    with anyio.fail_after(1):
        first = await buffer.get()
        second = await buffer.get()
    assert first is not None
    assert second is not None
    assert [first.message.group_id, second.message.group_id] == ["noisy", "quiet"]
    with anyio.move_on_after(0.05) as waited:
        await buffer.get()  # noisy is at its cap, quiet has nothing left
    assert waited.cancelled_caught
    buffer.task_done(first, succeeded=True)
    with anyio.fail_after(1):
        third = await buffer.get()
    assert third is not None
    assert third.message.message_id == "noisy-1"
    [row] = [row for row in buffer.statistics() if row.tenant == "noisy"]
    assert (row.running, row.waiting, row.handled) == (1, 1, 1)


async def test_the_surplus_goes_back_except_on_a_last_receive() -> None:
    surplus: list[str] = []
    buffer = TenantBuffer(
        1,
        on_surplus=lambda held, delay: surplus.append(held.message.message_id),
        keep=lambda held: held.message.receive_count >= 3,
        spare=lambda: 2,  # keeps one
    )
    buffer.put(lease("a", 0))
    buffer.put(lease("a", 1))
    buffer.put(lease("a", 2, receive_count=3))
    assert surplus == ["a-1"]
    assert len(buffer) == 2
    assert [held.message.message_id for held in buffer.close()] == ["a-0", "a-2"]


async def test_a_message_without_a_group_id_is_the_tenant_named_empty() -> None:
    buffer = TenantBuffer(1, on_surplus=lambda held, delay: None, spare=lambda: 10)
    buffer.put(lease(None, 0))
    with anyio.fail_after(1):
        got = await buffer.get()
    assert got is not None
    assert [row.tenant for row in buffer.statistics()] == [""]
