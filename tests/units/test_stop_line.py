"""The stop's log line (`_consumer/pipeline.stop_waits`): what it waits for, with numbers.

A pure decision, called directly: no server here.
"""

from __future__ import annotations

from aiosqsworker._consumer.pipeline import stop_waits


def test_an_idle_stop_waits_for_nothing_and_says_so() -> None:
    """Naive code it catches: "waiting up to 30 s for 0 running handlers"."""
    assert stop_waits(running=0, budget=29.998, polls=0, poll_left=0) == "nothing to wait for"


def test_the_waits_are_named_with_their_own_bounds() -> None:
    assert stop_waits(running=0, budget=29.998, polls=1, poll_left=1.93) == (
        "waiting up to 2 s for 1 open poll"
    )
    assert stop_waits(running=2, budget=29.998, polls=3, poll_left=1.5) == (
        "waiting up to 30 s for 2 running handlers and up to 1.5 s for 3 open polls"
    )
    assert stop_waits(running=1, budget=0.5, polls=0, poll_left=0) == (
        "waiting up to 0.5 s for 1 running handler"
    )


def test_a_poll_is_waited_for_no_longer_than_the_budget_left() -> None:
    assert stop_waits(running=0, budget=0.3, polls=1, poll_left=2) == (
        "waiting up to 0.3 s for 1 open poll"
    )
