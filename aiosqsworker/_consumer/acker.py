"""The acker: batched deletes and visibility changes.

Finished messages are queued without waiting (only what may block is async) and sent in
batch calls of up to ten entries, when a batch is full or after a short linger. A queued
message keeps its lease (extended as needed) until its call is sent, and its room in the
consumer's capacity until the call is settled: if deletes fall behind, polling slows down
instead of the queue of deletes growing without bound. Every
response's ``Failed`` list is read: what can be retried is retried with a back-off, the rest
is counted and logged. On close, everything queued is flushed before `run` returns.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import anyio

from .._config import MAX_BATCH
from .._errors import SQSError, TransientSQSError
from .._sqs.base import BatchEntryFailure, BatchResult, SQSClient
from .buffer import Capacity, MessageBuffer
from .leases import Lease, LeaseKeeper
from .stats import Counters

__all__ = ["Acker", "split_batch_result"]

logger = logging.getLogger("aiosqsworker.acker")

T = TypeVar("T")

#: Attempts of one batch before its remaining entries are given up (the message then
#: simply becomes visible again: redelivered, never lost).
MAX_ATTEMPTS = 6
#: Batch calls of one kind in flight at once: as many as the most polls one consumer keeps
#: open, so that deletes keep pace with receives.
MAX_CALLS_IN_FLIGHT = 16


@dataclass(frozen=True, slots=True)
class VisibilityChange:
    lease: Lease
    timeout: int
    reason: str  # "retry" or "release", for counters and logs


def split_batch_result(
    entries: Sequence[T], result: BatchResult
) -> tuple[list[T], list[tuple[T, BatchEntryFailure]], list[tuple[T, BatchEntryFailure]]]:
    """Sort a batch's entries (ids are their indexes) into done, to retry, and given up.

    An entry the response names neither successful nor failed (a response cut short that
    still parsed) is not taken as done: it is retried, which is safe for deletes and
    visibility changes alike.
    """
    failures = {failure.id: failure for failure in result.failed}
    succeeded = set(result.successful)
    done: list[T] = []
    retry: list[tuple[T, BatchEntryFailure]] = []
    give_up: list[tuple[T, BatchEntryFailure]] = []
    for i, entry in enumerate(entries):
        failure = failures.get(str(i))
        if failure is None and str(i) in succeeded:
            done.append(entry)
        elif failure is None:
            retry.append((entry, _unanswered(str(i))))
        elif failure.retryable and not failure.receipt_invalid:
            retry.append((entry, failure))
        else:
            give_up.append((entry, failure))
    return done, retry, give_up


def _unanswered(entry_id: str) -> BatchEntryFailure:
    return BatchEntryFailure(
        id=entry_id, code="NoAnswer", message="not in the response", sender_fault=False
    )


def retry_pause(attempt: int) -> float:
    """Back-off before attempt `attempt + 1` of a batch: 0.1 s doubling, jittered, 3 s cap."""
    return min(3.0, 0.1 * 2.0 ** min(attempt, 16)) * random.uniform(0.5, 1.0)


class _Outbox(Generic[T]):
    """One kind of batch call: a queue of entries, a linger, and retried sends."""

    def __init__(
        self,
        name: str,
        send: Callable[[list[T]], Awaitable[BatchResult]],
        on_done: Callable[[list[T]], None],
        on_given_up: Callable[[T, str], None],
        on_settled: Callable[[int], None],
        *,
        linger: float,
    ) -> None:
        self._name = name
        self._send = send
        self._on_done = on_done
        self._on_given_up = on_given_up
        self._on_settled = on_settled
        self._linger = linger
        self._pending: deque[T] = deque()
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._closed = False
        self._urgent = False  # an urgent entry is pending: no linger until it is sent
        # Batches go to couriers that live as long as the outbox: cheaper than a task per call.
        self._batches: MessageBuffer[list[T] | None] = MessageBuffer()
        self._in_flight = 0
        self._courier_free = asyncio.Event()

    def __len__(self) -> int:
        return len(self._pending)

    def put(self, entry: T, *, urgent: bool = False) -> None:
        """Queue `entry`; an `urgent` one is sent without waiting for the linger."""
        self._pending.append(entry)
        self._arrived.set()
        self._urgent = self._urgent or urgent
        if len(self._pending) >= MAX_BATCH or urgent:
            self._full.set()

    def close(self) -> None:
        self._closed = True
        self._arrived.set()
        self._full.set()

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            for _ in range(MAX_CALLS_IN_FLIGHT):
                tg.start_soon(self._courier)
            try:
                await self._form_batches()
            finally:
                for _ in range(MAX_CALLS_IN_FLIGHT):
                    self._batches.put(None)  # a courier stops after the batches before it

    async def _form_batches(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                if self._closed:
                    return
                self._arrived.clear()
                await self._arrived.wait()
                continue
            if len(self._pending) < MAX_BATCH and not self._closed and not self._urgent:
                self._full.clear()
                linger = loop.call_later(self._linger, self._full.set)
                try:
                    await self._full.wait()
                finally:
                    linger.cancel()
            # Every courier busy: wait here, so that what arrives meanwhile fills the batch.
            while self._in_flight >= MAX_CALLS_IN_FLIGHT:
                self._courier_free.clear()
                await self._courier_free.wait()
            batch = [self._pending.popleft() for _ in range(min(MAX_BATCH, len(self._pending)))]
            self._urgent = self._urgent and bool(self._pending)
            self._in_flight += 1
            self._batches.put(batch)

    async def _courier(self) -> None:
        while (batch := await self._batches.get()) is not None:
            try:
                await self._deliver(batch)
            finally:
                self._in_flight -= 1
                self._courier_free.set()

    async def _deliver(self, batch: list[T]) -> None:
        settled = len(batch)
        try:
            for attempt in range(MAX_ATTEMPTS):
                try:
                    result = await self._send(batch)
                except TransientSQSError as exc:
                    logger.warning(
                        "%s of %d entries failed, will retry: %s", self._name, len(batch), exc
                    )
                    await anyio.sleep(retry_pause(attempt))
                    continue
                except SQSError as exc:
                    logger.error("%s of %d entries failed: %s", self._name, len(batch), exc)
                    for entry in batch:
                        self._on_given_up(entry, exc.code or type(exc).__name__)
                    return
                done, retry, give_up = split_batch_result(batch, result)
                self._on_done(done)
                for entry, failure in give_up:
                    self._on_given_up(entry, f"{failure.code}: {failure.message}")
                if not retry:
                    return
                batch = [entry for entry, _ in retry]
                await anyio.sleep(retry_pause(attempt))
            for entry in batch:
                self._on_given_up(entry, f"still failing after {MAX_ATTEMPTS} attempts")
        finally:
            self._on_settled(settled)


class Acker:
    """Deletes succeeded messages and changes the visibility of retried and released ones."""

    def __init__(
        self,
        client: SQSClient,
        queue_url: str,
        counters: Counters,
        *,
        linger: float,
        consumer: str,
        leases: LeaseKeeper,
        capacity: Capacity,
    ) -> None:
        self._client = client
        self._leases = leases
        self._capacity = capacity
        self._queue_url = queue_url
        self._counters = counters
        self._consumer = consumer
        self._deletes: _Outbox[Lease] = _Outbox(
            "DeleteMessageBatch",
            self._send_deletes,
            self._deleted,
            self._delete_given_up,
            capacity.release,
            linger=linger,
        )
        self._changes: _Outbox[VisibilityChange] = _Outbox(
            "ChangeMessageVisibilityBatch",
            self._send_changes,
            self._changed,
            self._change_given_up,
            capacity.release,
            linger=linger,
        )

    @property
    def pending(self) -> int:
        return len(self._deletes) + len(self._changes)

    def delete(self, lease: Lease) -> None:
        """Queue a delete of a message whose handler succeeded."""
        self._deletes.put(lease)

    def change_visibility(self, lease: Lease, timeout: int, reason: str) -> None:
        """Queue a visibility change: a retry after `timeout` s, or a release (0).

        A release is sent without the linger: it is for another worker to take at once.
        """
        self._changes.put(VisibilityChange(lease, timeout, reason), urgent=reason == "release")

    def close(self) -> None:
        """Nothing more will be queued: `run` returns once everything queued is sent."""
        self._deletes.close()
        self._changes.close()

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._deletes.run)
            tg.start_soon(self._changes.run)

    async def _send_deletes(self, leases: list[Lease]) -> BatchResult:
        for lease in leases:
            self._leases.finish(lease)  # extended until now: no more from here on
            await lease.settled()  # a delete never races an extension of the same handle
        entries = [(str(i), lease.receipt_handle) for i, lease in enumerate(leases)]
        return await self._client.delete_message_batch(self._queue_url, entries)

    async def _send_changes(self, changes: list[VisibilityChange]) -> BatchResult:
        for change in changes:
            self._leases.finish(change.lease)
            await change.lease.settled()
        entries = [
            (str(i), change.lease.receipt_handle, change.timeout)
            for i, change in enumerate(changes)
        ]
        return await self._client.change_visibility_batch(self._queue_url, entries)

    def _deleted(self, leases: list[Lease]) -> None:
        self._counters.deleted += len(leases)

    def _changed(self, changes: list[VisibilityChange]) -> None:
        for change in changes:
            if change.reason == "retry":
                self._counters.retried += 1
            else:
                self._counters.released += 1

    def _delete_given_up(self, lease: Lease, why: str) -> None:
        self._counters.delete_failures += 1
        logger.warning(
            "[%s] could not delete message %s (%s): SQS will deliver it again",
            self._consumer,
            lease.message.message_id,
            why,
        )

    def _change_given_up(self, change: VisibilityChange, why: str) -> None:
        self._counters.visibility_failures += 1
        logger.warning(
            "[%s] could not set the visibility of message %s for a %s (%s): it becomes "
            "visible when its current timeout runs out",
            self._consumer,
            change.lease.message.message_id,
            change.reason,
            why,
        )
