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
from aiosqsworker._consumer.receiver import MAX_POLLERS, poll_pause, poller_count


@pytest.mark.parametrize(
    ("settings", "pollers"),
    [
        ({"concurrency": 1, "prefetch": 0}, 1),
        ({"concurrency": 10, "prefetch": 10}, 2),
        ({"concurrency": 50, "prefetch": 10}, 6),
        ({"concurrency": 1000}, MAX_POLLERS),
        ({"concurrency": 3, "prefetch": 0, "max_messages": 1}, 3),
        ({"concurrency": 2, "prefetch": 0, "batch": True, "batch_size": 10}, 2),
    ],
)
def test_poller_count(settings: dict[str, Any], pollers: int) -> None:
    assert poller_count(ConsumerConfig(queue="orders", **settings)) == pollers


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
