"""The acker: batched deletes and visibility changes.

Settling messages (`InFlight.settle`) are queued without waiting and sent in batch calls of
up to ten entries, when a batch is full or after a short linger; a release goes at once. A
queued message keeps its lease (extended as needed) until its call is sent, and its room in
the consumer's capacity until the call has ended: if deletes fall behind, polling slows
down instead of the queue of deletes growing without bound.

Each call is time-boxed by what its leases have left (`call_budget`), so that a stalled
connection costs a retry on a fresh one, not the leases. Every answer is read by
`_sqs.batches.read_answer`: what can be retried (an entry the answer left out included) is
retried with a back-off (a call not sent for want of credentials is not an attempt: the
credentials' outage limit bounds it); what ends for good
is reported to `InFlight` with what is known (refused, lost with its lease, or of unknown
outcome after an attempt whose answer never came). On close, everything queued is flushed
before `run` returns.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

import anyio
from anyio.abc import TaskGroup

from .._backoff import backoff
from .._errors import CredentialsUnavailableError, SQSError, TransientSQSError
from .._sqs.base import BatchResult, SQSClient
from .._sqs.batches import read_answer
from .._sqs.limits import MAX_BATCH
from .._text import plural
from .buffer import MessageBuffer
from .clock import now
from .inflight import InFlight, Settling
from .leases import within_leases
from .outcomes import Outcome, within_visibility_cap

__all__ = ["Acker", "calls_for"]

logger = logging.getLogger("aiosqsworker.acker")

T = TypeVar("T")

#: Attempts of one batch before its remaining entries are given up (the message then
#: simply becomes visible again: redelivered, never lost).
MAX_ATTEMPTS = 6
#: Batch calls of one kind in flight at once, at the least (`calls_for` grows it with the
#: consumer's polling).
MAX_CALLS_IN_FLIGHT = 16


def calls_for(polls: int) -> int:
    """Batch calls of one kind allowed in flight for a consumer keeping up to `polls` polls.

    Half as many as polls, at least MAX_CALLS_IN_FLIGHT: a delete carries a full batch where
    a poll may bring fewer, and never waits on the server as a long poll does. More would
    not delete faster once the event loop is the limit (10,000 in flight), only hold more
    requests, with their buffers, in flight: halving them took about 0.2 KiB off every
    in-flight message there, at the same throughput.
    """
    return max(MAX_CALLS_IN_FLIGHT, math.ceil(polls / 2))


def retry_pause(attempt: int) -> float:
    """Back-off before attempt `attempt + 1` of a batch: 0.1 s doubling, jittered, 3 s cap."""
    return backoff(attempt, base=0.1, cap=3.0)


class _Outbox(Generic[T]):
    """One kind of batch call: a queue of entries, a linger, and retried sends.

    `send` makes the call; `on_done` hears of the entries SQS confirmed, `on_given_up` of
    each one that ended otherwise (with why, and whether its receipt handle is gone), and
    `on_unknown` of a batch whose call failed in a way that may have reached SQS.
    """

    def __init__(
        self,
        name: str,
        send: Callable[[list[T]], Awaitable[BatchResult]],
        on_done: Callable[[list[T]], None],
        on_given_up: Callable[[T, str, bool], None],
        on_unknown: Callable[[list[T]], None],
        *,
        linger: float,
        calls: int = MAX_CALLS_IN_FLIGHT,
    ) -> None:
        self._name = name
        self._send = send
        self._on_done = on_done
        self._on_given_up = on_given_up
        self._on_unknown = on_unknown
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
        self._calls = calls
        self._couriers = 0
        self._task_group: TaskGroup | None = None

    def __len__(self) -> int:
        return len(self._pending)

    def widen(self, calls: int) -> None:
        """Allow `calls` calls in flight (more couriers at once; fewer as they come back)."""
        self._calls = calls
        self._hire()

    def _hire(self) -> None:
        if self._task_group is None or self._closed:
            return
        while self._couriers < self._calls:
            self._couriers += 1
            self._task_group.start_soon(self._courier)

    def put(self, entry: T, *, urgent: bool = False) -> None:
        """Queue `entry`; an `urgent` one is sent without waiting for the linger."""
        pending = self._pending
        pending.append(entry)
        count = len(pending)
        if count == 1:  # (the batch former waits for arrivals only while none is pending)
            self._arrived.set()
        if urgent:
            self._urgent = True
            self._full.set()
        elif count >= MAX_BATCH:
            self._full.set()

    def close(self) -> None:
        self._closed = True
        self._arrived.set()
        self._full.set()

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            self._task_group = tg
            self._hire()
            try:
                await self._form_batches()
            finally:
                self._task_group = None
                for _ in range(self._couriers):
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
            while self._in_flight >= self._calls:
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

    def _report(self, level: int, batch: list[T], what: str, exc: Exception) -> None:
        entries = plural(len(batch), "entry", "entries")
        logger.log(level, "%s of %s %s: %s", self._name, entries, what, exc)

    async def _deliver(self, batch: list[T]) -> None:
        attempt = 0
        waits = 0  # calls not sent for want of credentials: not attempts
        try:
            while attempt < MAX_ATTEMPTS:
                try:
                    result = await self._send(batch)
                except CredentialsUnavailableError as exc:
                    # Nothing reached SQS, so nothing is unknown; how long this may go on is
                    # the credentials' outage limit (then a CredentialsError, below).
                    waits += 1
                    if waits == 1:
                        self._report(logging.WARNING, batch, "waits for credentials", exc)
                    await anyio.sleep(retry_pause(waits))
                    continue
                except TransientSQSError as exc:
                    self._on_unknown(batch)
                    self._report(logging.WARNING, batch, "failed, will retry", exc)
                    await anyio.sleep(retry_pause(attempt))
                    attempt += 1
                    continue
                except SQSError as exc:
                    self._report(logging.ERROR, batch, "failed", exc)
                    why = exc.code or type(exc).__name__
                    for entry in batch:
                        self._on_given_up(entry, why, False)
                    batch = []
                    return
                # An entry the answer left out is among the retries: never taken as done.
                answer = read_answer(batch, result)
                self._on_done(answer.done)
                for entry, failure in answer.give_up:
                    why = f"{failure.code}: {failure.message}"
                    self._on_given_up(entry, why, failure.receipt_invalid)
                batch = [entry for entry, _ in answer.retry]
                if not batch:
                    return
                await anyio.sleep(retry_pause(attempt))
                attempt += 1
            for entry in batch:
                self._on_given_up(entry, f"still failing after {MAX_ATTEMPTS} attempts", False)
            batch = []
        finally:
            # Cancelled (the final flush ran out of time): these end here all the same.
            for entry in batch:
                self._on_given_up(entry, "the call was cancelled before SQS answered", False)


class Acker:
    """Deletes succeeded messages and changes the visibility of retried and released ones."""

    def __init__(
        self,
        client: SQSClient,
        queue_url: str,
        inflight: InFlight,
        *,
        linger: float,
        polls: int = 1,
    ) -> None:
        self._client = client
        self._queue_url = queue_url
        self._inflight = inflight
        calls = calls_for(polls)
        self._deletes: _Outbox[Settling] = self._outbox(
            "DeleteMessageBatch", self._send_deletes, linger, calls
        )
        self._changes: _Outbox[Settling] = self._outbox(
            "ChangeMessageVisibilityBatch", self._send_changes, linger, calls
        )
        inflight.connect(self)

    def widen(self, polls: int) -> None:
        """Keep up with wider polling (`calls_for` the most polls now)."""
        calls = calls_for(polls)
        self._deletes.widen(calls)
        self._changes.widen(calls)

    def _outbox(
        self,
        name: str,
        send: Callable[[list[Settling]], Awaitable[BatchResult]],
        linger: float,
        calls: int,
    ) -> _Outbox[Settling]:
        return _Outbox(
            name,
            send,
            self._inflight.delivered,
            lambda entry, why, receipt_invalid: self._inflight.given_up(
                entry, why, receipt_invalid=receipt_invalid
            ),
            _mark_unconfirmed,
            linger=linger,
            calls=calls,
        )

    @property
    def pending(self) -> int:
        return len(self._deletes) + len(self._changes)

    def send(self, settling: Settling) -> None:
        """Queue the delete or visibility change of a settling message."""
        outcome = settling.outcome
        if outcome is Outcome.ACK or outcome is Outcome.DEAD_LETTER:  # (`is_delete`, inline)
            self._deletes.put(settling)
        else:
            self._changes.put(settling, urgent=settling.urgent)

    def close(self) -> None:
        """Nothing more will be queued: `run` returns once everything queued is sent."""
        self._deletes.close()
        self._changes.close()

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._deletes.run)
            tg.start_soon(self._changes.run)

    async def _send_deletes(self, batch: list[Settling]) -> BatchResult:
        leases = await self._inflight.handing_over(batch)
        entries = [(str(i), lease.message.receipt_handle) for i, lease in enumerate(leases)]
        return await within_leases(
            self._client.delete_message_batch(self._queue_url, entries),
            leases,
            "DeleteMessageBatch",
        )

    async def _send_changes(self, batch: list[Settling]) -> BatchResult:
        leases = await self._inflight.handing_over(batch)
        # The 12-hour cap is cut again as the call leaves: a retry decided at receipt + 11:59:59
        # and sent after the linger, a back-off or a slow loop would ask past it and be refused.
        sent_at = now() + _IN_TRANSIT
        entries = [
            (
                str(i),
                settling.lease.receipt_handle,
                within_visibility_cap(settling.timeout, sent_at - settling.lease.received_at),
            )
            for i, settling in enumerate(batch)
        ]
        return await within_leases(
            self._client.change_visibility_batch(self._queue_url, entries),
            leases,
            "ChangeMessageVisibilityBatch",
        )


# What the call itself may take to reach SQS, counted against the 12-hour cap.
_IN_TRANSIT = 1.0


def _mark_unconfirmed(batch: list[Settling]) -> None:
    for settling in batch:
        settling.unconfirmed = True
