"""The bounded buffer between the receiver and the handler slots.

`Capacity` counts the messages a consumer may hold (received and not finished): the receiver
reserves room before each poll, so the buffer can never overflow and a full consumer simply
stops polling. That is the back-pressure. `MessageBuffer` hands buffered messages to idle
handler slots, at most one waiter woken per message (see `MessageBuffer`), and on close gives
back what never started.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from typing import Generic, NamedTuple, Protocol, TypeVar

__all__ = ["Buffer", "Capacity", "MessageBuffer"]

T = TypeVar("T")


class Buffer(Protocol[T]):
    """What the receiver fills and the handler slots drain: `MessageBuffer`, `GroupedBuffer`."""

    def __len__(self) -> int: ...

    def put(self, item: T) -> None: ...

    async def get(self) -> T | None: ...

    def take_nowait(self) -> T | None: ...

    def task_done(self, item: T, *, succeeded: bool) -> list[T]: ...

    def take_waiting(self) -> list[T]: ...

    def close(self) -> list[T]: ...


class _RoomWaiter(NamedTuple):
    wakeup: asyncio.Future[None]
    at_least: int
    or_when: Callable[[], bool] | None


class Capacity:
    """Room for messages; `reserve` waits for room, `release` gives it back.

    A waiting `reserve` is woken only once it can take room: with a dozen pollers waiting
    and room coming back a message at a time, waking them all on every change would cost a
    task switch per poller per message.
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self._free = total
        self._waiters: deque[_RoomWaiter] = deque()
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None  # looked up at the first wait

    @property
    def used(self) -> int:
        return self.total - self._free

    def _fits(self, at_least: int, or_when: Callable[[], bool] | None) -> bool:
        free = self._free
        return free >= at_least or (free > 0 and or_when is not None and or_when())

    async def reserve(
        self, at_least: int, at_most: int, *, or_when: Callable[[], bool] | None = None
    ) -> int:
        """Wait until `at_least` slots are free, then take up to `at_most`.

        With `or_when`, any free slot will do as soon as `or_when()` holds (checked whenever
        room is given back, and on `wake`). Returns 0 once `close` has been called.
        """
        while not self._closed and not self._fits(at_least, or_when):
            loop = self._loop
            if loop is None:
                loop = self._loop = asyncio.get_running_loop()
            waiter = _RoomWaiter(loop.create_future(), at_least, or_when)
            self._waiters.append(waiter)
            try:
                await waiter.wakeup
            except BaseException:
                if waiter.wakeup.cancelled():
                    with contextlib.suppress(ValueError):  # unless `close` took it already
                        self._waiters.remove(waiter)
                else:  # woken, then cancelled before taking the room: let another take it
                    self.wake()
                raise
        if self._closed:
            return 0
        taken = min(at_most, self._free)
        self._free -= taken
        if self._free > 0 and self._waiters:
            self.wake()  # room left over: the next waiter may fit
        return taken

    def release(self, count: int) -> None:
        if count:
            self._free += count
            self.wake()

    def resize(self, total: int) -> None:
        """Make the room `total`: more is free at once; less is taken back as messages end.

        Shrunk below what is held, no reservation fits until enough has been released.
        """
        self._free += total - self.total
        self.total = total
        self.wake()

    def wake(self) -> None:
        """Wake the first waiting `reserve` that can take room now (its `or_when` may hold)."""
        if self._free <= 0:
            return
        for waiter in self._waiters:
            if waiter.wakeup.done():
                continue  # cancelled: it removes itself when it runs
            if self._fits(waiter.at_least, waiter.or_when):
                self._waiters.remove(waiter)
                waiter.wakeup.set_result(None)
                return

    def close(self) -> None:
        """Wake every waiting `reserve`: no more reservations will be made."""
        self._closed = True
        while self._waiters:
            wakeup = self._waiters.popleft().wakeup
            if not wakeup.done():
                wakeup.set_result(None)


class MessageBuffer(Generic[T]):
    """A FIFO handing items to waiting tasks: received messages to handler slots (bounded
    by `Capacity`, not here), and the acker's batches to its couriers.

    Each idle task waits on a future of its own (the cheapest wake-up asyncio has). The
    first item put into a buffer no woken task will drain wakes one task at once; the
    others put in the same turn of the loop wake theirs one turn later (`_wake_more`),
    and only as many as are still waiting then. A task whose work does not wait (a no-op
    handler) takes the whole batch itself in that turn, and no task is woken for nothing;
    one whose work waits leaves the rest to the tasks woken after it, one turn later.
    """

    def __init__(self) -> None:
        self._items: deque[T] = deque()
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False
        self._woken = 0  # tasks woken that have not taken their item yet
        self._more_due = False  # a `_wake_more` is scheduled
        self._loop: asyncio.AbstractEventLoop | None = None

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T) -> None:
        if self._closed:
            raise RuntimeError("put() on a closed MessageBuffer")
        self._items.append(item)
        if self._woken >= len(self._items) or not self._waiters:
            return  # a task already woken takes it, or a running one will
        if not self._woken:
            self._wake_one()
        elif not self._more_due and self._loop is not None:
            self._more_due = True
            self._loop.call_soon(self._wake_more)

    def _wake_more(self) -> None:
        """Wake a task for each item the tasks woken so far will not take."""
        self._more_due = False
        while self._woken < len(self._items) and self._waiters:
            self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():  # a cancelled waiter has left already
                waiter.set_result(None)
                self._woken += 1
                return

    async def get(self) -> T | None:
        """The next item, or ``None`` once the buffer is closed."""
        while not self._items:
            if self._closed:
                return None
            loop = self._loop
            if loop is None:
                loop = self._loop = asyncio.get_running_loop()
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    # Cancelled after being woken: pass the wake-up on, or an item would
                    # wait while a slot is idle.
                    self._woken -= 1
                    if self._items:
                        self._wake_one()
                raise
            self._woken -= 1
        return self._items.popleft()

    def take_nowait(self) -> T | None:
        """The next item if there is one now, else None (nothing waits)."""
        return self._items.popleft() if self._items else None

    def task_done(self, item: T, *, succeeded: bool) -> list[T]:
        """An item handed out has ended; nothing waits on it here (see `GroupedBuffer`)."""
        return []

    def take_waiting(self) -> list[T]:
        """Take back every item not handed out yet (a pause); the buffer stays open."""
        waiting = list(self._items)
        self._items.clear()
        return waiting

    def close(self) -> list[T]:
        """Stop handing out items; return those never handed out, and wake every waiter."""
        self._closed = True
        leftover = self.take_waiting()
        while self._waiters:
            self._wake_one()
        return leftover
