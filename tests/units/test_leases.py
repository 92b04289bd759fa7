"""The lease decisions (`_consumer/leases.py`): which leases to extend, when, and for how much.

Pure decisions and small parts, called directly: no server here.
"""

from __future__ import annotations

import math

import anyio
import pytest

from aiosqsworker._config import MAX_VISIBILITY
from aiosqsworker._consumer.leases import (
    call_budget,
    extension_lead,
    extension_timeout,
    leases_due,
    next_wake,
)
from aiosqsworker._consumer.receiver import WATCH_VISIBILITY

from .factories import lease


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
