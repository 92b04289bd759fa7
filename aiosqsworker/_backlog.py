"""Backlog: work queued from synchronous hooks, taken in batches by one background task.

The acker's hooks (`InFlight.delivered`) and the lease keeper's are not async: what they
start (an S3 delete, an idempotency record marked done) is queued here without waiting,
and the task that owns the backlog takes everything queued at once. After `close`, the
task gets what is left, then the iteration ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Generic, TypeVar

__all__ = ["Backlog"]

T = TypeVar("T")


class Backlog(Generic[T]):
    """Items queued without waiting; `batches` yields them, everything queued at a time."""

    def __init__(self) -> None:
        self._pending: list[T] = []
        self._arrived = asyncio.Event()
        self.closed = False

    def put(self, item: T) -> None:
        self._pending.append(item)
        self._arrived.set()

    def close(self) -> None:
        """Nothing more will be queued: `batches` ends once what is queued is taken."""
        self.closed = True
        self._arrived.set()

    async def batches(self) -> AsyncIterator[list[T]]:
        while True:
            if not self._pending:
                if self.closed:
                    return
                self._arrived.clear()
                await self._arrived.wait()
                continue
            batch, self._pending = self._pending, []
            yield batch
