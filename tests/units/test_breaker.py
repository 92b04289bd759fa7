"""The circuit breaker (`_consumer/breaker.py`) and its hold on `Flow`: the window of
failures, the cool-downs, trips and probes. Called directly: no server here.
"""

from __future__ import annotations

from dataclasses import replace

import anyio
from anyio import wait_all_tasks_blocked

from aiosqsworker import Breaker, DependencyDown, Reject, Retry
from aiosqsworker._consumer.breaker import (
    BreakerState,
    CircuitBreaker,
    FailureWindow,
    next_cooldown,
)
from aiosqsworker._consumer.buffer import Capacity
from aiosqsworker._consumer.flow import Flow
from aiosqsworker._consumer.stats import ConsumerStatistics, Counters
from aiosqsworker._run.progress import format_progress


def test_a_window_counts_failures_of_one_class_within_its_seconds() -> None:
    window = FailureWindow(3, 10.0)
    assert not window.add(ConnectionError, 0.0)
    assert not window.add(ValueError, 1.0)  # another class: counted apart
    assert not window.add(ConnectionError, 2.0)
    assert not window.add(ConnectionError, 10.5)  # the one at 0.0 has left the window
    assert window.add(ConnectionError, 11.0)


def test_each_failed_probe_doubles_the_cool_down_up_to_its_cap() -> None:
    settings = Breaker(cooldown=2, max_cooldown=5)
    assert next_cooldown(2, settings) == 4
    assert next_cooldown(4, settings) == 5


def state_of(breaker: CircuitBreaker) -> BreakerState:
    """The state now (a function, so that a type checker does not pin it between calls)."""
    return breaker.state


class Pipeline:
    """What the breaker acts on, recorded."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def breaker(self, settings: Breaker) -> CircuitBreaker:
        return CircuitBreaker(
            settings,
            consumer="c",
            on_open=lambda: self.calls.append("open"),
            on_probe=lambda: self.calls.append("probe"),
            on_close=lambda: self.calls.append("close"),
        )


async def test_a_trip_opens_a_probe_follows_and_success_closes() -> None:
    pipeline = Pipeline()
    breaker = pipeline.breaker(Breaker(cooldown=0.05))
    assert not breaker.is_down(RuntimeError("a bug of its own"))
    assert not breaker.is_down(Retry(1))
    assert not breaker.is_down(Reject("bad"))
    assert breaker.is_down(DependencyDown("db"))
    assert state_of(breaker) is BreakerState.OPEN
    assert breaker.retry_in() == 1
    assert breaker.is_down(DependencyDown("db")), "still down: held, not opened again"
    assert pipeline.calls == ["open"]
    await anyio.sleep(0.1)
    assert state_of(breaker) is BreakerState.HALF_OPEN
    breaker.ended()
    assert state_of(breaker) is BreakerState.CLOSED
    assert pipeline.calls == ["open", "probe", "close"]
    assert (breaker.trips, breaker.held) == (1, 2)


async def test_a_failed_probe_opens_it_again_for_longer() -> None:
    pipeline = Pipeline()
    breaker = pipeline.breaker(Breaker(trip_on=OSError, cooldown=0.05, max_cooldown=1))
    assert breaker.is_down(ConnectionRefusedError())
    await anyio.sleep(0.1)
    assert state_of(breaker) is BreakerState.HALF_OPEN
    assert breaker.is_down(ConnectionRefusedError())
    assert state_of(breaker) is BreakerState.OPEN
    await anyio.sleep(0.07)
    assert state_of(breaker) is BreakerState.OPEN, "the second cool-down is twice as long"
    await anyio.sleep(0.1)
    assert state_of(breaker) is BreakerState.HALF_OPEN
    assert not breaker.is_down(KeyError("its own failure")), "the dependency answered"
    assert state_of(breaker) is BreakerState.CLOSED
    assert breaker.trips == 1
    breaker.close()


async def test_while_held_no_reservation_is_made_and_half_open_lets_one_of_one() -> None:
    flow = Flow(Capacity(20))
    flow.hold()
    assert flow.holding
    got: list[int] = []

    async def poller() -> None:
        got.append(await flow.reserve(10, 10))

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(poller)
        await wait_all_tasks_blocked()
        assert got == []
        epoch = flow.epoch
        flow.probe()
        assert flow.epoch == epoch + 1
        await wait_all_tasks_blocked()
        assert got == [1], "one poller, for one message"
        flow.give_back(1, flow.epoch)  # the probe's poll brought nothing: probe again
        await wait_all_tasks_blocked()
        assert got == [1, 1]
        flow.give_back(1, epoch)  # a poll from before the hold: no extra probe
        await wait_all_tasks_blocked()
        assert got == [1, 1]
        flow.unhold()
        await wait_all_tasks_blocked()
        assert got == [1, 1, 10]
    assert not flow.holding


async def test_a_pause_outlasts_a_breaker_that_closes() -> None:
    flow = Flow(Capacity(10))
    flow.pause()
    flow.hold()
    flow.unhold()
    assert flow.paused
    assert flow.holding
    with anyio.move_on_after(0.05) as scope:
        await flow.reserve(1, 1)
    assert scope.cancelled_caught


def test_the_progress_line_shows_a_breaker_that_is_not_closed() -> None:
    closed = ConsumerStatistics.capture(
        "charge",
        "q",
        Counters(),
        buffered=0,
        concurrency=1,
        max_rate=None,
        paused=False,
        polling_width=1,
    )
    assert "breaker" not in format_progress({}, {"charge": closed}, 1.0, {})
    line = format_progress({}, {"charge": replace(closed, breaker="half-open")}, 1.0, {})
    assert "circuit breaker half-open" in line
