"""The lease decisions (`_consumer/leases.py`): which leases to extend, when, and for how much.

Pure decisions and small parts, called directly: no server here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import anyio
import pytest

from aiosqsworker._consumer.leases import (
    Lease,
    LeaseKeeper,
    call_budget,
    extension_lead,
    extension_timeout,
    leases_due,
    next_wake,
)
from aiosqsworker._consumer.receiver import WATCH_VISIBILITY
from aiosqsworker._consumer.stats import Counters
from aiosqsworker._sqs.base import BatchResult
from aiosqsworker._sqs.limits import MAX_VISIBILITY

from .factories import QUEUE_URL, lease, message


def test_extension_timeout_is_the_visibility_timeout_far_from_the_cap() -> None:
    assert extension_timeout(lease(0, 30), 15, 30) == 30
    assert extension_timeout(lease(100, 130), 100 + 40_000, 30) == 30


def test_extension_timeout_near_the_twelve_hour_cap() -> None:
    held = lease(1000.0, 1030.0)
    assert extension_timeout(held, 1000 + MAX_VISIBILITY - 30, 30) == 30
    assert extension_timeout(held, 1000 + MAX_VISIBILITY - 29.5, 30) == 29
    assert extension_timeout(held, 1000 + MAX_VISIBILITY - 0.5, 30) == 0
    assert extension_timeout(held, 1000 + MAX_VISIBILITY, 30) == 0
    assert extension_timeout(held, 1000 + MAX_VISIBILITY + 60, 30) == 0


def test_leases_due_takes_those_within_three_quarters_of_a_window() -> None:
    now = 100.0
    expired = lease(0, 90)
    at_the_horizon = lease(0, now + 30 * 0.75)
    just_after = lease(0, now + 30 * 0.75 + 0.01)
    fresh = lease(0, now + 30)
    due = leases_due([fresh, just_after, at_the_horizon, expired], now, 30)
    assert due == [at_the_horizon, expired]
    assert leases_due([], now, 30) == []


def test_leases_due_near_the_cap_get_a_shorter_extension() -> None:
    received = 0.0
    now = received + MAX_VISIBILITY - 10
    old = lease(received, now + 5)
    assert leases_due([old], now, 60) == [old]
    assert extension_timeout(old, now, 60) == 10


def test_next_wake_is_half_a_window_before_the_earliest_expiry() -> None:
    assert next_wake([], 30) == math.inf
    assert next_wake([lease(0, 50), lease(0, 40), lease(0, 70)], 30) == 25


def test_short_windows_start_extending_early_enough_for_a_retried_call() -> None:
    """A failed call backs off up to 3 s over three tries: half of 6 s would not cover it."""
    assert extension_lead(30) == 15
    assert extension_lead(10) == 5
    assert extension_lead(6) == 5
    assert extension_lead(2) == 1
    assert next_wake([lease(0, 6)], 6) == 1


def test_short_windows_batch_without_taking_fresh_leases() -> None:
    now = 10.0
    fresh = lease(now, now + 6)
    due_soon = lease(0, now + 5.5)
    due = lease(0, now + 5)
    assert leases_due([fresh, due_soon, due], now, 6) == [due_soon, due]


def test_a_call_may_take_half_the_shortest_time_its_leases_have_left() -> None:
    """Half, so that a call abandoned at its deadline leaves the other half for a retry."""
    now = 100.0
    assert call_budget([lease(90, now + 12), lease(90, now + 30)], now) == 6
    assert call_budget([lease(90, now + 60)], now) == 10  # never longer than 10 s
    assert call_budget([lease(90, now + 1)], now) == 1  # never shorter than 1 s
    assert call_budget([lease(90, now - 5)], now) == 1  # expired already: a last try
    assert call_budget([], now) == 10


def test_a_lease_being_extended_or_backing_off_is_not_due() -> None:
    """Naive code it catches: a keeper that starts a second extension of a lease whose first
    is still in flight (the calls race), or retries a failed one at once in a loop."""
    now = 100.0
    extending, backing_off, due = lease(80, now + 5), lease(80, now + 5), lease(80, now + 5)
    extending.extension_started(anyio.Event())
    backing_off.not_before = now + 2
    assert leases_due([extending, backing_off, due], now, 30) == [due]
    assert next_wake([extending, backing_off], 30) == now + 2
    extending.extension_ended()
    assert leases_due([extending], now, 30) == [extending]


@pytest.mark.parametrize("visibility", [WATCH_VISIBILITY + 1, 8, 10, 30, 60, 43_200])
def test_a_lease_from_a_watch_poll_is_due_at_once(visibility: int) -> None:
    """A watch poll's messages are hidden for a few seconds only: the keeper extends them
    to the consumer's full timeout on its first pass, whatever that timeout is."""
    received = 100.0
    short = lease(received, received + WATCH_VISIBILITY)
    assert leases_due([short], received, visibility) == [short]
    assert next_wake([short], visibility) <= received
    assert extension_timeout(short, received, visibility) == visibility


class LeavesOutB:
    """A ChangeMessageVisibilityBatch whose first answer does not mention message b's entry
    (a response cut short that still parsed); the test answers the calls after it."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.called_again = anyio.Event()
        self.answer_again = anyio.Event()

    async def change_visibility_batch(
        self, queue_url: str, entries: Sequence[tuple[str, str, int]]
    ) -> BatchResult:
        self.calls.append([handle for _, handle, _ in entries])
        if len(self.calls) == 1:
            return BatchResult(
                successful=tuple(i for i, handle, _ in entries if handle != "handle-of-b")
            )
        self.called_again.set()
        await self.answer_again.wait()
        return BatchResult(successful=tuple(entry_id for entry_id, _, _ in entries))


async def test_an_extension_the_answer_leaves_out_keeps_its_expiry_and_is_tried_again() -> None:
    """Two leases due, a and b; SQS's answer confirms a and does not mention b. b keeps
    its expiry, is counted as an extension error, is not told to what follows the extended
    leases, and is sent again (alone) after a short back-off; only that call's answer
    extends it.

    Naive change it catches: a keeper that reads every entry not under ``Failed`` as
    extended (this keeper's old reading): b's expiry moves a whole window
    forward on no evidence, an idempotency record follows it, and no extension is sent
    before the message may reappear to another worker at its real expiry.
    """
    client = LeavesOutB()
    counters = Counters()
    told: list[str] = []
    first_answer_read, b_told = anyio.Event(), anyio.Event()

    def on_extended(leases: Sequence[Lease]) -> None:
        told.extend(held.message.message_id for held in leases)
        first_answer_read.set()
        if "b" in told:
            b_told.set()

    keeper = LeaseKeeper(
        client,  # type: ignore[arg-type]
        QUEUE_URL,
        30,
        counters,
        consumer="c",
        on_extended=on_extended,
    )
    now = anyio.current_time()
    # Received 20 s ago for 30 s: both due at once (the lead is 15 s).
    a, b = (keeper.lease(message(message_id=name), received_at=now - 20) for name in ("a", "b"))
    expiry = b.expires_at
    async with anyio.create_task_group() as tg:
        tg.start_soon(keeper.run)
        with anyio.fail_after(5):
            await first_answer_read.wait()
        assert a.expires_at > expiry
        assert b.expires_at == expiry
        assert told == ["a"]
        assert counters.leases_extended == 1
        assert counters.lease_extension_errors == 1
        with anyio.fail_after(5):
            await client.called_again.wait()
        assert [sorted(handles) for handles in client.calls] == [
            ["handle-of-a", "handle-of-b"],
            ["handle-of-b"],
        ]
        assert b.expires_at == expiry  # still no evidence
        client.answer_again.set()
        with anyio.fail_after(5):
            await b_told.wait()
        assert told == ["a", "b"]
        assert b.expires_at > expiry
        assert counters.leases_extended == 2
        tg.cancel_scope.cancel()
