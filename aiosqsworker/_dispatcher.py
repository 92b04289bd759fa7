"""Handler slots: run handlers and turn what they do into outcomes.

`concurrency` slots take leases from the buffer and call the handler. What happens next is
decided by `outcome_of` and `retry_delay`, plain functions; the dispatcher only queues the
resulting delete or visibility change with the acker (never awaiting the network itself).

| the handler...               | outcome                                                    |
|------------------------------|------------------------------------------------------------|
| returns                      | the message is deleted (batched)                           |
| raises `Retry(delay=d)`      | visible again after d seconds                              |
| raises any other exception   | logged with its traceback; visible again after a back-off  |
|                              | exponential in the receive count; the queue's redrive      |
|                              | policy dead-letters it after maxReceiveCount receives      |
| is cancelled by a shutdown   | released: visible again at once for another worker         |
| loses its lease              | cancelled; nothing more is sent (the message is not ours)  |
"""

from __future__ import annotations

import enum
import logging
import math
import random
from collections.abc import Awaitable, Callable

import anyio

from ._acker import Acker
from ._buffer import Capacity, MessageBuffer
from ._config import MAX_VISIBILITY, ConsumerConfig
from ._errors import Retry
from ._leases import Lease, LeaseKeeper
from ._message import Message
from ._stats import Counters

__all__ = [
    "Dispatcher",
    "Handler",
    "Outcome",
    "outcome_of",
    "retry_delay",
    "within_visibility_cap",
]

logger = logging.getLogger("aiosqsworker.dispatcher")

Handler = Callable[[Message], Awaitable[object]]


class Outcome(enum.Enum):
    ACK = "ack"
    RETRY = "retry"
    RELEASE = "release"
    LOST = "lost"


def retry_delay(
    receive_count: int,
    base: float,
    cap: float,
    *,
    held_for: float = 0.0,
    jitter: Callable[[], float] = random.random,
) -> int:
    """Seconds before a failed message is visible again.

    Doubles with each receive from `base`, capped at `cap`, with "equal jitter" (between half
    and all of it) so that a burst of failures does not come back as a burst. Rounded up to
    SQS's whole seconds, and kept within the 12 hours SQS allows a message to stay invisible
    counting the `held_for` seconds it has been held already.
    """
    exponent = min(max(receive_count, 1) - 1, 32)
    full = min(cap, base * 2**exponent)
    return within_visibility_cap(full / 2 + full / 2 * jitter(), held_for)


def within_visibility_cap(delay: float, held_for: float) -> int:
    """`delay` in SQS's whole seconds, cut so the message is not held past 12 hours."""
    return max(0, min(math.ceil(delay), MAX_VISIBILITY - math.ceil(held_for)))


def outcome_of(error: BaseException | None, *, lost: bool, cancelled: bool) -> Outcome:
    """What a handler's ending means for its message."""
    if lost:
        return Outcome.LOST
    if cancelled:
        return Outcome.RELEASE
    if error is None:
        return Outcome.ACK
    return Outcome.RETRY


class Dispatcher:
    """Runs one consumer's handler in `concurrency` slots fed by the buffer."""

    def __init__(
        self,
        handler: Handler,
        config: ConsumerConfig,
        buffer: MessageBuffer[Lease],
        capacity: Capacity,
        leases: LeaseKeeper,
        acker: Acker,
        counters: Counters,
        *,
        consumer: str,
    ) -> None:
        self._handler = handler
        self._config = config
        self._buffer = buffer
        self._capacity = capacity
        self._leases = leases
        self._acker = acker
        self._counters = counters
        self._consumer = consumer
        self._scope = anyio.CancelScope()
        self.finished = anyio.Event()

    def cancel(self) -> None:
        """Cancel running handlers (a forced shutdown); their messages are released."""
        self._scope.cancel()

    async def run(self) -> None:
        try:
            with self._scope:
                async with anyio.create_task_group() as tg:
                    for _ in range(self._config.concurrency):
                        tg.start_soon(self._slot)
        finally:
            self.finished.set()

    async def _slot(self) -> None:
        while (lease := await self._buffer.get()) is not None:
            self._counters.buffered -= 1
            if lease.lost:
                self._capacity.release(1)
                continue
            await self._handle(lease)

    async def _handle(self, lease: Lease) -> None:
        message = lease.message
        counters = self._counters
        counters.running += 1
        error: BaseException | None = None
        cancelled = True  # until the handler is seen to end by itself
        try:
            with anyio.CancelScope() as lease_scope:
                lease.on_lost = lease_scope.cancel
                try:
                    await self._handler(message)
                except Exception as exc:  # noqa: BLE001 - a failure is an outcome, not a crash
                    error = exc
            cancelled = False
        finally:
            lease.on_lost = None
            counters.running -= 1
            self._finish(lease, error, lost=lease.lost, cancelled=cancelled)

    def _finish(
        self, lease: Lease, error: BaseException | None, *, lost: bool, cancelled: bool
    ) -> None:
        outcome = outcome_of(error, lost=lost, cancelled=cancelled)
        self._leases.finish(lease)
        self._capacity.release(1)
        message = lease.message
        if outcome is Outcome.ACK:
            self._counters.succeeded += 1
            self._acker.delete(lease)
        elif outcome is Outcome.RELEASE:
            logger.info(
                "[%s] released message %s (handler cancelled)", self._consumer, message.message_id
            )
            self._acker.change_visibility(lease, 0, "release")
        elif outcome is Outcome.RETRY:
            self._counters.failed += 1
            delay = self._retry_delay(lease, error)
            if isinstance(error, Retry):
                logger.info(
                    "[%s] message %s asked to be retried in %d s",
                    self._consumer,
                    message.message_id,
                    delay,
                )
            else:
                logger.error(
                    "[%s] handler failed on message %s (receive %d); visible again in %d s",
                    self._consumer,
                    message.message_id,
                    message.receive_count,
                    delay,
                    exc_info=error,
                )
            self._acker.change_visibility(lease, delay, "retry")

    def _retry_delay(self, lease: Lease, error: BaseException | None) -> int:
        held_for = anyio.current_time() - lease.received_at
        if isinstance(error, Retry):
            return within_visibility_cap(error.delay, held_for)
        return retry_delay(
            lease.message.receive_count,
            self._config.retry_base_delay,
            self._config.retry_max_delay,
            held_for=held_for,
        )
