"""FIFO queues: one message of a group at a time, in order; groups in parallel.

`GroupedBuffer` takes the place of `MessageBuffer` for a ``.fifo`` queue. A handler slot gets
the head of a group that has nothing running; when that message ends badly (a failure, a
release, a lost lease), the group's later messages that were already received are not
started: they are handed back to be released, so that SQS delivers the group again in order
after the failed head. Other groups are not affected.

Which group may start next is a pure decision (`next_group`), tested directly.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Mapping

import anyio

from .leases import Lease

__all__ = ["GroupedBuffer", "next_group"]


def next_group(waiting: Mapping[str, deque[Lease]], busy: set[str]) -> str | None:
    """The first group, in order of arrival, with a message waiting and none running."""
    for group, leases in waiting.items():
        if leases and group not in busy:
            return group
    return None


class GroupedBuffer:
    """Buffered messages of a FIFO queue, per MessageGroupId."""

    def __init__(self) -> None:
        self._waiting: OrderedDict[str, deque[Lease]] = OrderedDict()
        self._busy: set[str] = set()
        self._count = 0
        self._changed = anyio.Event()
        self._closed = False

    def __len__(self) -> int:
        return self._count

    def put(self, lease: Lease) -> None:
        if self._closed:
            raise RuntimeError("put() on a closed GroupedBuffer")
        group = lease.message.group_id or ""
        self._waiting.setdefault(group, deque()).append(lease)
        self._count += 1
        self._changed.set()

    async def get(self) -> Lease | None:
        """The next startable message, or ``None`` once closed."""
        while not self._closed:
            lease = self.take_nowait()
            if lease is not None:
                return lease
            if self._changed.is_set():
                self._changed = anyio.Event()
            await self._changed.wait()
        return None

    def take_nowait(self) -> Lease | None:
        """The next startable message if there is one now, else None (nothing waits)."""
        if self._closed:
            return None
        group = next_group(self._waiting, self._busy)
        if group is None:
            return None
        leases = self._waiting[group]
        lease = leases.popleft()
        if not leases:
            del self._waiting[group]
        self._busy.add(group)  # until its message ends
        self._count -= 1
        return lease

    def task_done(self, lease: Lease, *, succeeded: bool) -> list[Lease]:
        """Free the message's group; after a bad ending, return its waiting successors."""
        group = lease.message.group_id or ""
        self._busy.discard(group)
        successors: list[Lease] = []
        if not succeeded:
            successors = list(self._waiting.pop(group, ()))
            self._count -= len(successors)
        self._changed.set()
        return successors

    def take_waiting(self) -> list[Lease]:
        """Take back every message not started yet (a pause); running groups stay busy."""
        waiting = [lease for leases in self._waiting.values() for lease in leases]
        self._waiting.clear()
        self._count = 0
        return waiting

    def close(self) -> list[Lease]:
        """Stop handing out messages; return every one never started, and wake the slots."""
        self._closed = True
        leftover = self.take_waiting()
        self._changed.set()
        return leftover
