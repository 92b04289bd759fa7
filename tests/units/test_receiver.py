"""The receiver's decisions (`_consumer/receiver.py`): how many pollers, how long to pause
after a failed poll.

Pure decisions and small parts, called directly: no server here.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from aiosqsworker import (
    ConsumerConfig,
)
from aiosqsworker._consumer.receiver import (
    BUSY_WAIT,
    MAX_POLLERS,
    MAX_POLLS,
    WATCH_VISIBILITY,
    PollPlan,
    next_width,
    plan_poll,
    poll_cap,
    poll_pause,
    poller_count,
)


@pytest.mark.parametrize(
    ("settings", "pollers"),
    [
        ({"concurrency": 1, "prefetch": 0}, 1),
        ({"concurrency": 10, "prefetch": 10}, 2),
        ({"concurrency": 50, "prefetch": 10}, 6),
        ({"concurrency": 1000}, MAX_POLLERS),
        ({"concurrency": 3000}, 31),
        ({"concurrency": 10_000}, 101),
        ({"concurrency": 100, "batch": True, "batch_size": 1000}, MAX_POLLS),
        ({"concurrency": 3, "prefetch": 0, "max_messages": 1}, 3),
        ({"concurrency": 2, "prefetch": 0, "batch": True, "batch_size": 10}, 2),
    ],
)
def test_poller_count(settings: dict[str, Any], pollers: int) -> None:
    """The most polls open at once: one batch each to fill the room, a bound that grows."""
    assert poller_count(ConsumerConfig(queue="orders", **settings)) == pollers


def test_the_poll_cap_follows_the_room_as_it_changes() -> None:
    assert poll_cap(20, 10) == 2
    assert poll_cap(10_010, 10) == 101
    assert poll_cap(5, 10) == 1
    assert poll_cap(0, 10) == 1


WIDTH = {"batch": 10, "cap": 16}


def test_an_empty_poll_narrows_the_polling_by_one_down_to_one() -> None:
    assert next_width(5, asked=10, brought=0, open_polls=4, free=100, **WIDTH) == 4
    assert next_width(1, asked=10, brought=0, open_polls=0, free=100, **WIDTH) == 1


def test_a_full_poll_widens_at_once_to_what_the_free_room_needs() -> None:
    # An idle consumer of room 110 wakes up to a burst: ten polls at once, not one per trip.
    assert next_width(1, asked=10, brought=10, open_polls=0, free=100, **WIDTH) == 10
    # The polls still out count: their room is not free any more.
    assert next_width(3, asked=10, brought=10, open_polls=2, free=35, **WIDTH) == 6
    # Never past the cap, and a full consumer keeps the width it has.
    assert next_width(1, asked=10, brought=10, open_polls=0, free=10_000, **WIDTH) == 16
    assert next_width(6, asked=10, brought=10, open_polls=0, free=0, **WIDTH) == 6


def test_a_partly_filled_poll_keeps_the_width() -> None:
    """The queue ran dry under that poll: a trickle keeps one poll, not sixteen."""
    assert next_width(1, asked=10, brought=3, open_polls=0, free=100, **WIDTH) == 1
    assert next_width(4, asked=10, brought=9, open_polls=3, free=100, **WIDTH) == 4


def test_a_lowered_cap_narrows_the_width_as_polls_come_back() -> None:
    assert next_width(16, asked=10, brought=4, open_polls=0, free=5, batch=10, cap=2) == 2
    assert next_width(16, asked=10, brought=0, open_polls=0, free=5, batch=10, cap=2) == 1


@pytest.mark.parametrize(
    ("errors", "least", "most"),
    [(1, 0.25, 0.5), (2, 0.5, 1.0), (4, 2.0, 4.0), (7, 10.0, 20.0), (40, 10.0, 20.0)],
)
def test_poll_pause_doubles_to_twenty_seconds(
    monkeypatch: pytest.MonkeyPatch, errors: int, least: float, most: float
) -> None:
    monkeypatch.setattr(random, "random", lambda: 0.0)
    assert poll_pause(errors) == pytest.approx(least)
    monkeypatch.setattr(random, "random", lambda: 1.0)
    assert poll_pause(errors) == pytest.approx(most)


def test_poll_pause_survives_a_long_outage() -> None:
    # About six hours of failed polls, 20 s apart: the pause stays capped.
    for errors in (1025, 5000, 10**6):
        assert 10.0 <= poll_pause(errors) <= 20.0


def test_a_watch_poll_waits_long_but_hides_what_it_takes_for_a_few_seconds() -> None:
    """A poller's first poll, or one after an empty poll, may be given up at a stop."""
    watch = plan_poll(busy=False, wait_time=20, visibility_timeout=60)
    assert watch == PollPlan(wait_time=20, visibility_timeout=WATCH_VISIBILITY, abandonable=True)


def test_a_busy_poll_keeps_the_full_timeout_and_waits_briefly() -> None:
    """After a poll that brought messages: no extension call per message, and a stop may
    have to wait for it, so it waits no longer than BUSY_WAIT."""
    busy = plan_poll(busy=True, wait_time=20, visibility_timeout=60)
    assert busy == PollPlan(wait_time=BUSY_WAIT, visibility_timeout=60, abandonable=False)
    assert plan_poll(busy=True, wait_time=1, visibility_timeout=60).wait_time == 1


@pytest.mark.parametrize("visibility", [1, 3, WATCH_VISIBILITY])
@pytest.mark.parametrize("busy", [True, False])
def test_a_timeout_no_longer_than_a_watch_polls_makes_every_poll_one_to_give_up(
    visibility: int, busy: bool
) -> None:
    """What such a poll takes is hidden for its (short) timeout anyway: no shorter one to
    ask for, nothing to extend at once, and no reason to wait for it at a stop."""
    plan = plan_poll(busy=busy, wait_time=20, visibility_timeout=visibility)
    assert plan == PollPlan(wait_time=20, visibility_timeout=visibility, abandonable=True)


@pytest.mark.parametrize("busy", [True, False])
def test_polls_whose_abandoned_calls_take_nothing_are_plain(busy: bool) -> None:
    """The in-memory SQS: a given-up poll takes nothing, so neither a short timeout (and
    its extension) nor a short wait buys anything."""
    plan = plan_poll(busy=busy, wait_time=20, visibility_timeout=60, abandoned_polls_take=False)
    assert plan == PollPlan(wait_time=20, visibility_timeout=60, abandonable=True)
