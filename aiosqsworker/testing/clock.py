"""The time an in-memory SQS keeps: the event loop's, or one a test moves by hand.

`MemorySQS` reads its clock for every visibility timeout, delay, retention period and long
poll. `RealClock` (the default) is the running event loop's monotonic clock, the one the
framework's own timers use. With a `ManualClock` time stands still until the test calls
`advance`: a retry back-off of five minutes, a visibility timeout running out or a delayed
message coming due then takes no wall time at all. The framework's own timers (lease
extensions, ack linger) keep the event loop's time either way.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Protocol

import anyio

__all__ = ["Clock", "ManualClock", "RealClock"]


class Clock(Protocol):
    """What `MemorySQS` needs of a clock."""

    def time(self) -> float:
        """Now, in seconds (only differences matter)."""
        ...

    async def sleep_until(self, deadline: float, wake: anyio.Event) -> None:
        """Return once the clock reaches `deadline`, or earlier once `wake` is set."""
        ...


class RealClock:
    """The running event loop's clock (`time.monotonic`, its base, outside a loop)."""

    def time(self) -> float:
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:  # set-up code before the loop runs
            return time.monotonic()

    async def sleep_until(self, deadline: float, wake: anyio.Event) -> None:
        with anyio.move_on_after(max(0.0, deadline - self.time())):
            await wake.wait()

    def __repr__(self) -> str:
        return "RealClock()"


class ManualClock:
    """A clock that stands still until `advance` moves it.

    ```python
    clock = ManualClock()
    sqs = MemorySQS(clock=clock)
    ...
    clock.advance(60)  # a 60 s visibility timeout runs out now
    ```
    """

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)
        self._sleepers: list[tuple[float, anyio.Event]] = []

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward; what came due wakes when the caller next awaits."""
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise TypeError(f"advance({seconds!r}): give a number of seconds")
        if math.isnan(seconds) or seconds < 0:
            raise ValueError(f"advance({seconds!r}): a clock only moves forward (seconds >= 0)")
        self._now += seconds
        for deadline, wake in self._sleepers:
            if deadline <= self._now:
                wake.set()

    async def sleep_until(self, deadline: float, wake: anyio.Event) -> None:
        if deadline <= self._now:
            return
        sleeper = (deadline, wake)
        self._sleepers.append(sleeper)
        try:
            await wake.wait()
        finally:
            self._sleepers.remove(sleeper)

    def __repr__(self) -> str:
        return f"ManualClock(now={self._now:g})"
