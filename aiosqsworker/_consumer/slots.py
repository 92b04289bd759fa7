"""Handler slots: run handlers and carry out the outcome of each message.

`concurrency` slots take leases from the buffer and call the handler (through the
middleware chain and, for a typed handler, the body decoder). What happens to each message
is decided by the plain functions of `_outcomes.py`; a slot then queues the resulting delete
or visibility change with the acker without waiting for the network. Only a dead-lettering
awaits I/O in the slot: the copy must be in the dead-letter queue before the original is
deleted, and the lease is kept alive meanwhile.

A batch consumer's slot collects up to `batch_size` messages (waiting at most
`batch_window` for the batch to fill) and calls the handler with the list.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import anyio

from .._config import ConsumerConfig, Middleware
from .._errors import Reject, Retry
from .._logging import message_context
from .._message import Message
from .._sqs.base import SQSClient
from .acker import Acker
from .buffer import Buffer, Capacity
from .clock import now
from .deadletter import DeadLetterQueue
from .leases import Lease, LeaseKeeper
from .outcomes import Outcome, batch_failures, decide, retry_delay, within_visibility_cap
from .stats import Counters

__all__ = ["Dispatcher", "chain_middleware"]

logger = logging.getLogger("aiosqsworker.dispatcher")

Call = Callable[[Any], Awaitable[object]]

#: Reused for every message of a consumer without `timeout=`: a nullcontext is reentrant.
_NO_TIME_LIMIT = contextlib.nullcontext()


def chain_middleware(middleware: Sequence[Middleware], call: Call) -> Call:
    """`call` wrapped in `middleware`, the first one outermost."""
    for layer in reversed(middleware):
        call = _wrap(layer, call)
    return call


def _wrap(layer: Middleware, call_next: Call) -> Call:
    async def wrapped(item: Any) -> object:
        return await layer(item, call_next)

    return wrapped


class Dispatcher:
    """Runs one consumer's handler in `concurrency` slots fed by the buffer."""

    def __init__(
        self,
        call: Call,
        config: ConsumerConfig,
        buffer: Buffer[Lease],
        capacity: Capacity,
        leases: LeaseKeeper,
        acker: Acker,
        counters: Counters,
        *,
        client: SQSClient,
        dead_letters: DeadLetterQueue | None,
        consumer: str,
    ) -> None:
        self._call = call
        self._config = config
        self._buffer = buffer
        self._capacity = capacity
        self._leases = leases
        self._acker = acker
        self._counters = counters
        self._client = client
        self._dead_letters = dead_letters
        self._consumer = consumer
        self._scope = anyio.CancelScope()
        self.finished = anyio.Event()

    def cancel(self) -> None:
        """Cancel running handlers (a forced shutdown); their messages are released."""
        self._scope.cancel()

    async def run(self) -> None:
        slot = self._batch_slot if self._config.batch else self._slot
        try:
            with self._scope:
                async with anyio.create_task_group() as tg:
                    for _ in range(self._config.concurrency):
                        tg.start_soon(slot)
        finally:
            self.finished.set()

    def _time_limit(self) -> contextlib.AbstractContextManager[object]:
        """`timeout=` as a cancel scope; none at all without one (a scope per message costs)."""
        timeout = self._config.timeout
        return _NO_TIME_LIMIT if timeout is None else anyio.fail_after(timeout)

    async def _next(self) -> Lease | None:
        """The next buffered message still ours, or None once the buffer is closed."""
        while (lease := await self._buffer.get()) is not None:
            self._counters.buffered -= 1
            if not len(self._buffer):
                self._capacity.wake()  # the receiver may refill now rather than wait for room
            if not lease.lost:
                return lease
            self._capacity.release(1)
            self._release_successors(self._buffer.task_done(lease, succeeded=False))
        return None

    # One message per call.

    async def _slot(self) -> None:
        # A lost lease cancels its handler through the slot's cancel scope. A scope per
        # message would cost more than the rest of the slot's work, so a slot keeps one
        # until a lost lease has used it up, then opens a fresh one.
        while True:
            with anyio.CancelScope() as scope:
                while (lease := await self._next()) is not None:
                    await self._handle(lease, scope)
                    if scope.cancel_called:
                        break
                else:
                    return

    async def _handle(self, lease: Lease, scope: anyio.CancelScope) -> None:
        counters = self._counters
        counters.running += 1
        error: BaseException | None = None
        ended = False  # the handler returned or raised by itself
        try:
            lease.on_lost = scope.cancel
            started = now()
            try:
                with self._time_limit():
                    await self._call(lease.message)
            except Exception as exc:  # noqa: BLE001 - a failure is an outcome, not a crash
                error = exc
            counters.latency.record(now() - started)
            ended = True
        finally:
            lease.on_lost = None
            counters.running -= 1
            if not ended:
                # Cancelled: by its lost lease (the slot's scope then takes the cancellation
                # and the slot goes on), or by a forced shutdown (then it is released).
                self._conclude(lease, Outcome.LOST if lease.lost else Outcome.RELEASE, None)
        if error is None and not lease.lost:
            self._conclude(lease, Outcome.ACK, None)  # what `decide` says, without the call
            return
        if isinstance(error, TimeoutError) and self._config.timeout is not None:
            logger.error(
                "[%s] handler ran past its timeout of %g s on message %s: cancelled",
                self._consumer,
                self._config.timeout,
                lease.message.message_id,
            )
        await self._settle(lease, error)

    # A list of messages per call.

    async def _batch_slot(self) -> None:
        while (first := await self._next()) is not None:
            batch = [first]
            with anyio.move_on_after(self._config.batch_window):
                while len(batch) < self._config.batch_size:
                    lease = await self._next()
                    if lease is None:
                        break
                    batch.append(lease)
            await self._handle_batch(batch)

    async def _handle_batch(self, batch: list[Lease]) -> None:
        counters = self._counters
        counters.running += len(batch)
        messages = [lease.message for lease in batch]
        error: BaseException | None = None
        returned: object = None
        cancelled = True
        try:
            started = now()
            try:
                with self._time_limit():
                    returned = await self._call(messages)
            except Exception as exc:  # noqa: BLE001 - a failure is an outcome, not a crash
                error = exc
            counters.latency.record(now() - started)
            cancelled = False
        finally:
            counters.running -= len(batch)
            if cancelled:
                for lease in batch:
                    self._conclude(lease, Outcome.RELEASE, None)
        failures = batch_failures(messages, returned, error)
        for lease in batch:
            await self._settle(lease, failures[lease.message.message_id])

    # Outcomes.

    async def _settle(self, lease: Lease, error: BaseException | None) -> None:
        """Decide the message's outcome and carry it out."""
        dead_letters = self._dead_letters
        outcome = decide(
            error,
            lost=lease.lost,
            last_attempt=dead_letters is not None and dead_letters.is_last_attempt(lease.message),
            has_dead_letter_queue=dead_letters is not None,
        )
        if outcome is Outcome.DEAD_LETTER:
            assert dead_letters is not None
            assert error is not None
            reason = error.reason if isinstance(error, Reject) else "last attempt failed"
            moved = await dead_letters.send(
                self._client, lease.message, error, consumer=self._consumer, reason=reason
            )
            if not moved:
                outcome = Outcome.RETRY
        self._conclude(lease, outcome, error)

    def _conclude(self, lease: Lease, outcome: Outcome, error: BaseException | None) -> None:
        """Hand the message to the acker, which ends its lease and gives its room back."""
        counters = self._counters
        message = lease.message
        if outcome is Outcome.ACK:
            counters.succeeded += 1
            self._acker.delete(lease)
        elif outcome is Outcome.DEAD_LETTER:
            counters.failed += 1
            counters.dead_lettered += 1
            self._acker.delete(lease)  # the copy is in the dead-letter queue already
        elif outcome is Outcome.RELEASE:
            logger.info(
                "[%s] released message %s (handler cancelled)", self._consumer, message.message_id
            )
            self._acker.change_visibility(lease, 0, "release")
        elif outcome is Outcome.RETRY:
            counters.failed += 1
            delay = self._retry_delay(lease, error)
            self._log_failure(message, error, delay)
            self._acker.change_visibility(lease, delay, "retry")
        elif outcome is Outcome.LOST:  # nothing to send: the message is not ours any more
            self._leases.finish(lease)
            self._capacity.release(1)
        successors = self._buffer.task_done(lease, succeeded=outcome is Outcome.ACK)
        if successors:
            self._release_successors(successors)

    def _release_successors(self, successors: list[Lease]) -> None:
        """FIFO: a group's later messages wait for the failed one to be retried first."""
        for lease in successors:
            self._acker.change_visibility(lease, 0, "release")
        if successors:
            logger.info(
                "[%s] released %d later messages of group %s so that it is retried in order",
                self._consumer,
                len(successors),
                successors[0].message.group_id,
            )

    def _log_failure(self, message: Message, error: BaseException | None, delay: int) -> None:
        context = message_context(self._consumer, message.message_id, message.receive_count)
        if isinstance(error, Retry):
            logger.info(
                "[%s] message %s asked to be retried in %d s",
                self._consumer,
                message.message_id,
                delay,
                extra=context,
            )
        elif isinstance(error, Reject):
            logger.error(
                "[%s] message %s was rejected (%s) but there is no dead-letter queue to move "
                "it to: retrying it in %d s. Give the queue a RedrivePolicy or the consumer "
                "dead_letter_queue=...",
                self._consumer,
                message.message_id,
                error.reason,
                delay,
                extra=context,
            )
        else:
            logger.error(
                "[%s] handler failed on message %s (receive %d); visible again in %d s",
                self._consumer,
                message.message_id,
                message.receive_count,
                delay,
                exc_info=error,
                extra=context,
            )

    def _retry_delay(self, lease: Lease, error: BaseException | None) -> int:
        held_for = now() - lease.received_at
        if isinstance(error, Retry):
            return within_visibility_cap(error.delay, held_for)
        if isinstance(error, Reject):
            return within_visibility_cap(self._config.retry_max_delay, held_for)
        return retry_delay(
            lease.message.receive_count,
            self._config.retry_base_delay,
            self._config.retry_max_delay,
            held_for=held_for,
        )
