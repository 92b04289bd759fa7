"""The bounded buffer between the receiver and the handler slots.

`Capacity` counts the messages a consumer may hold (received and not finished): the receiver
reserves room before each poll, so the buffer can never overflow and a full consumer simply
stops polling. That is the back-pressure. `MessageBuffer` hands buffered messages to idle
handler slots, one waiter woken per message, and on close gives back what never started.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

import anyio

__all__ = ["Buffer", "Capacity", "MessageBuffer"]

T = TypeVar("T")


class Buffer(Protocol[T]):
    """What the receiver fills and the handler slots drain: `MessageBuffer`, `GroupedBuffer`."""

    def __len__(self) -> int: ...

    def put(self, item: T) -> None: ...

    async def get(self) -> T | None: ...

    def task_done(self, item: T, *, succeeded: bool) -> list[T]: ...

    def close(self) -> list[T]: ...


class Capacity:
    """Room for messages; `reserve` waits for room, `release` gives it back."""

    def __init__(self, total: int) -> None:
        self.total = total
        self._free = total
        self._changed = anyio.Event()
        self._closed = False

    @property
    def used(self) -> int:
        return self.total - self._free

    async def reserve(
        self, at_least: int, at_most: int, *, or_when: Callable[[], bool] | None = None
    ) -> int:
        """Wait until `at_least` slots are free, then take up to `at_most`.

        With `or_when`, any free slot will do as soon as `or_when()` holds (checked whenever
        room is given back). Returns 0 once `close` has been called.
        """
        while not self._closed and self._free < at_least:
            if self._free and or_when is not None and or_when():
                break
            self._changed = anyio.Event() if self._changed.is_set() else self._changed
            await self._changed.wait()
        if self._closed:
            return 0
        taken = min(at_most, self._free)
        self._free -= taken
        return taken

    def release(self, count: int) -> None:
        if count:
            self._free += count
            self._changed.set()

    def wake(self) -> None:
        """Have waiting `reserve` calls look again (their `or_when` may hold now)."""
        self._changed.set()

    def close(self) -> None:
        """Wake every waiting `reserve`: no more reservations will be made."""
        self._closed = True
        self._changed.set()


class MessageBuffer(Generic[T]):
    """A FIFO of received items for handler slots; unbounded itself, bounded by `Capacity`."""

    def __init__(self) -> None:
        self._items: deque[T] = deque()
        self._waiters: deque[anyio.Event] = deque()
        self._closed = False

    def __len__(self) -> int:
        return len(self._items)

    def put(self, item: T) -> None:
        if self._closed:
            raise RuntimeError("put() on a closed MessageBuffer")
        self._items.append(item)
        if self._waiters:
            self._waiters.popleft().set()

    async def get(self) -> T | None:
        """The next item, or ``None`` once the buffer is closed."""
        while not self._items:
            if self._closed:
                return None
            woken = anyio.Event()
            self._waiters.append(woken)
            try:
                await woken.wait()
            except BaseException:
                # Cancelled: pass a wake-up we may have received on to the next waiter.
                if woken.is_set():
                    if self._items and self._waiters:
                        self._waiters.popleft().set()
                else:
                    self._waiters.remove(woken)
                raise
        return self._items.popleft()

    def task_done(self, item: T, *, succeeded: bool) -> list[T]:
        """An item handed out has ended; nothing waits on it here (see `GroupedBuffer`)."""
        return []

    def close(self) -> list[T]:
        """Stop handing out items; return those never handed out, and wake every waiter."""
        self._closed = True
        leftover = list(self._items)
        self._items.clear()
        while self._waiters:
            self._waiters.popleft().set()
        return leftover
