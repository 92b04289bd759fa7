"""Handler slots: run handlers and carry out the outcome of each message.

Up to `concurrency` slots take leases from the buffer and call the handler (through the
middleware chain and, for a typed handler, the body decoder). Slots are made when messages
wait and no slot is idle, not all up front, and the limit can change while running
(`set_concurrency`): a slot over a lowered limit retires when its handler has finished, and
idle ones at once. A slot is a plain asyncio task (anyio's task bookkeeping would cost
twice the task itself at 10,000 slots); `Slots` owns them as a task group would: it
waits for every one, cancels them all when cancelled, and raises what one of them raised.
With a rate limit, a slot waits for the rate (`Flow.start`) before it calls the handler.

What happens to each message
is decided by `outcomes.decide`, in one place (`_outcome`); the slot then settles it
through `InFlight`, which queues the delete or visibility change with the acker without
waiting for the network. Only a dead-lettering awaits I/O in the slot: the copy must be in
the dead-letter queue before the original is deleted, and the lease is kept alive meanwhile.

A handler is user code, so whatever it raises is that message's failure, never the slot's
end: an `Exception`, a `BaseException` of its own (`GeneratorExit`, a custom one), and a
`CancelledError` that did not come from the framework (one of the handler's own making, say
from awaiting a future something else cancelled). `SystemExit` and `KeyboardInterrupt` ask
for the process to end: the message fails, and the worker is asked to stop gracefully
(`on_exit`), so that nothing is stranded and the acknowledgements are flushed first. The
framework's own cancellations (a lost lease, a forced shutdown, the host cancelling the run)
are told apart by the task's pending cancellation requests.

A batch consumer's slot collects up to `batch_size` messages (waiting at most
`batch_window` for the batch to fill) and calls the handler with the list.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
from collections.abc import Callable

import anyio

from .._config import ConsumerConfig
from .._errors import ConfigurationError, MessageDecodeError, PayloadError, Reject, Retry
from .._logging import message_context
from .._message import Message
from .._sqs.base import SQSClient
from .._text import plural
from .breaker import CircuitBreaker
from .buffer import Buffer, Capacity
from .call import Call
from .clock import now
from .deadletter import DeadLetterQueue
from .flow import Flow
from .idempotency import IdempotencyGuard
from .inflight import InFlight
from .leases import Lease
from .outcomes import (
    Outcome,
    batch_failures,
    dead_letter_reason,
    decide,
    retry_delay_for,
)
from .stats import Counters, record_ages
from .timeouts import is_timeout, timeout_site

__all__ = ["Slots"]

logger = logging.getLogger("aiosqsworker.slots")

#: Raised by a handler, these ask for the process to end (see the module's docstring).
EXIT_REQUESTS = (SystemExit, KeyboardInterrupt)


def cancelled_by_framework() -> bool:
    """Whether the running task has a cancellation pending: a cancel scope's (a lost lease,
    a forced shutdown, a timeout) or its host's, rather than one the handler raised itself."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def describe(error: BaseException) -> str:
    """An error's class by its public name, for logs: ``asyncio.CancelledError``."""
    kind = type(error)
    module = "asyncio" if kind.__module__.startswith("asyncio") else kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def _what_follows(error: BaseException) -> str:
    """What the log line of an odd exception adds to "a failure of that message"."""
    if isinstance(error, EXIT_REQUESTS):
        return ", and the worker stops gracefully"
    if isinstance(error, asyncio.CancelledError):
        return " (not a cancellation by the framework: the slot carries on)"
    return ""


def successors_note(outcome: Outcome, head: str) -> str:
    """Why a FIFO group's later messages were released after `head`'s `outcome`: they are
    received again, in order, behind it or, when it was dead-lettered, without it."""
    if outcome is Outcome.DEAD_LETTER:
        return f"message {head} went to the dead-letter queue; they come again in order"
    if outcome is Outcome.RETRY:
        return f"message {head} is retried first, then they come again in order"
    return f"message {head} is received again first, then they come in order"


class Slots:
    """Runs one consumer's handler in up to `concurrency` slots fed by the buffer."""

    def __init__(
        self,
        call: Call,
        config: ConsumerConfig,
        buffer: Buffer[Lease],
        flow: Flow,
        inflight: InFlight,
        counters: Counters,
        *,
        client: SQSClient,
        dead_letters: DeadLetterQueue | None,
        consumer: str,
        on_exit: Callable[[BaseException], None],
        idempotency: IdempotencyGuard | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        #: The handler call, time limit included (`call.handler_call`).
        self._call = call
        #: Claims each message's key around its handler; None: the handler is called as is.
        #: The claim is outside the time limit (a store call has its own), the handler in it.
        self._idempotency = idempotency
        #: Whether to record each message's lag and dwell (`App(message_ages=True)`).
        self._ages = counters.lag is not None or counters.dwell is not None
        self._config = config
        self._buffer = buffer
        self._flow = flow
        self._capacity: Capacity = flow.capacity
        self._inflight = inflight
        self._counters = counters
        self._client = client
        self._dead_letters = dead_letters
        self._consumer = consumer
        self._on_exit = on_exit
        self._breaker = breaker
        #: While the breaker is not closed, every ending goes through `_settle` (it is told).
        self._watched = False
        self._limit = config.concurrency
        self._slots: set[asyncio.Task[None]] = set()
        self._staffed = 0  # slots not retiring
        self._idle: set[asyncio.Task[None]] = set()  # slots waiting for a message
        self._retiring: set[asyncio.Task[None]] = set()
        self._all_ended: asyncio.Event | None = None
        self._on_slot_ended = self._slot_ended
        self._callback_context = contextvars.copy_context()
        self._crash: BaseException | None = None
        self._cancelled = False
        self.finished = anyio.Event()
        #: The loop's clock (`now()`), set by `run`: one bound method for every slot, not
        #: one each (10,000 objects more for the garbage collector at 10,000 slots).
        self._clock: Callable[[], float] = now

    @property
    def concurrency(self) -> int:
        return self._limit

    @property
    def slot_count(self) -> int:
        """Slots made and not yet ended (idle ones included)."""
        return len(self._slots)

    def set_concurrency(self, concurrency: int) -> None:
        """Run at most `concurrency` handlers from now on; running ones are never cancelled."""
        self._limit = concurrency
        for task in list(self._idle):
            if self._staffed <= concurrency:
                break
            self._retire(task)
            task.cancel()  # idle: it holds nothing, and leaves at once
        self.staff()

    def staff(self) -> None:
        """Make slots for the messages waiting that no idle slot will take, within the limit."""
        if self._all_ended is None or self._cancelled:
            return
        waiting = math.ceil(len(self._buffer) / self._config.messages_per_call)
        for _ in range(min(waiting - len(self._idle), self._limit - self._staffed)):
            self._spawn()

    def cancel(self) -> None:
        """Cancel running handlers (a forced shutdown); their messages are released."""
        self._cancelled = True
        for task in self._slots:
            task.cancel()

    async def run(self) -> None:
        self._clock = asyncio.get_running_loop().time
        self._all_ended = asyncio.Event()
        try:
            self._spawn()  # one slot from the start: it sees the buffer close
            self.staff()
            try:
                await self._all_ended.wait()
            except BaseException:
                self.cancel()  # cancelled from outside: the slots go too, releasing
                with anyio.CancelScope(shield=True):
                    await self._all_ended.wait()
                raise
            if self._crash is not None:
                raise self._crash
        finally:
            self.finished.set()

    def _spawn(self) -> None:
        slot = self._batch_slot if self._config.batch else self._slot
        task = asyncio.get_running_loop().create_task(slot())
        self._slots.add(task)
        self._staffed += 1
        # One bound method and one context for every slot, not a copy of each per slot.
        task.add_done_callback(self._on_slot_ended, context=self._callback_context)

    def _retire(self, task: asyncio.Task[None]) -> None:
        self._retiring.add(task)
        self._staffed -= 1

    def _slot_ended(self, task: asyncio.Task[None]) -> None:
        self._slots.discard(task)
        self._idle.discard(task)
        if task in self._retiring:
            self._retiring.discard(task)
        else:
            self._staffed -= 1
        if not task.cancelled() and (error := task.exception()) is not None and not self._crash:
            self._crash = error
            self.cancel()
        if not self._slots and self._all_ended is not None:
            self._all_ended.set()

    async def _next(self, task: asyncio.Task[None]) -> Lease | None:
        """The next buffered message still ours and free to start, or None once the slot,
        `task`, should end (the buffer is closed, or the slot retires under a lowered limit)."""
        while True:
            if task in self._retiring:
                return None
            if self._staffed > self._limit:
                self._retire(task)
                return None
            self._idle.add(task)
            try:
                lease = await self._buffer.get()
            except asyncio.CancelledError:
                if task not in self._retiring or self._cancelled:
                    raise
                task.uncancel()  # retired while idle (`set_concurrency`): it holds nothing
                return None
            finally:
                self._idle.discard(task)
            if lease is None:
                return None
            if self._flow.paced:
                try:
                    may_start = await self._flow.start()
                except BaseException:  # cancelled while waiting for the rate
                    self._hand_back(lease)
                    raise
                if not may_start:  # paused or stopped while waiting for the rate
                    self._hand_back(lease)
                    continue
            if self._taken(lease):
                return lease

    def _ready(self, task: asyncio.Task[None]) -> Lease | None:
        """`_next` without a wait: a buffered message, when one is there and free to start
        with nothing to wait for or decide (no rate to keep, no slot to retire). None sends
        the slot the long way, through `_next`. Under load most messages start here, with no
        coroutine made to fetch them."""
        if self._flow.paced or self._staffed > self._limit or task in self._retiring:
            return None
        lease = self._buffer.take_nowait()
        return lease if lease is not None and self._taken(lease) else None

    def _taken(self, lease: Lease) -> bool:
        """A message taken from the buffer: whether it starts (a lost lease ends here)."""
        if not len(self._buffer):
            self._capacity.wake()  # the receiver may refill now rather than wait for room
        if not lease.lost:
            return True
        self._conclude(lease, Outcome.LOST, None)
        return False

    def _hand_back(self, lease: Lease) -> None:
        """A message taken from the buffer that will not start now: visible again at once."""
        self._flow.not_started()
        outcome = Outcome.LOST if lease.lost else Outcome.RELEASE
        self._inflight.settle(lease, outcome)
        successors = self._buffer.task_done(lease, succeeded=False)
        if successors:
            self._release_successors(successors, lease, outcome)

    def _failure(self, exc: BaseException) -> BaseException | None:
        """What a handler raised, as that message's failure; None for a cancellation of the
        framework's own, which must propagate."""
        if isinstance(exc, asyncio.CancelledError) and cancelled_by_framework():
            return None
        if isinstance(exc, EXIT_REQUESTS):
            self._on_exit(exc)
        return exc

    def _outcome(
        self, lease: Lease, error: BaseException | None, *, cancelled: bool = False
    ) -> Outcome:
        dead_letters = self._dead_letters
        return decide(
            error,
            lost=lease.lost,
            cancelled=cancelled,
            last_attempt=error is not None
            and dead_letters is not None
            and dead_letters.is_last_attempt(lease.message),
            has_dead_letter_queue=dead_letters is not None,
            on_decode_error=self._config.on_decode_error,
        )

    # One message per call.

    async def _slot(self) -> None:
        # The handler is awaited here, not in a helper coroutine: a frame more per slot is
        # about 200 bytes and one more object for the garbage collector to walk, 10,000 of
        # each at 10,000 slots.
        task = asyncio.current_task()
        assert task is not None
        clock = self._clock
        counters = self._counters
        guard = self._idempotency
        while (lease := self._ready(task) or await self._next(task)) is not None:
            counters.running += 1
            ended, error = True, None
            started = clock()
            if self._ages:
                self._record_ages(lease, started)
            try:
                lease.holder = task
                if guard is None:
                    await self._call(lease.message)
                else:
                    await guard.run_handler(lease, self._call)
            except BaseException as exc:  # a handler's failure is an outcome (or a stop)
                error = self._failure(exc)
                if error is None:  # cancelled: by its lost lease, or by a stop
                    ended = False
                    if not lease.holder_cancelled or task.uncancel():  # (also) a stop
                        raise
            finally:
                lease.holder = None
                counters.running -= 1
                if not ended:
                    self._conclude(lease, self._outcome(lease, None, cancelled=True), None)
            if ended and lease.holder_cancelled:
                task.uncancel()  # the handler swallowed its lease's cancellation: take it back
            if not ended:
                continue
            counters.latency.record(clock() - started)
            if error is None and not lease.lost and not self._watched:
                # The usual ending, a success on a lease still ours: what `_settle` decides
                # for it, without a coroutine per message.
                self._carry_out(lease, Outcome.ACK, 0)
            else:
                self._log_timeout(lease, error)
                await self._settle(lease, error)

    # A list of messages per call.

    async def _batch_slot(self) -> None:
        task = asyncio.current_task()
        assert task is not None
        while (first := await self._next(task)) is not None:
            batch = [first]
            with anyio.move_on_after(self._config.batch_window):
                while len(batch) < self._config.batch_size:
                    lease = await self._next(task)
                    if lease is None:
                        break
                    batch.append(lease)
            await self._handle_batch(batch)

    async def _handle_batch(self, batch: list[Lease]) -> None:
        counters = self._counters
        counters.running += len(batch)
        messages = [lease.message for lease in batch]
        error, returned = None, None
        started = now()
        if self._ages:
            for lease in batch:
                self._record_ages(lease, started)
        try:
            returned = await self._call(messages)
        except BaseException as exc:
            if (error := self._failure(exc)) is None:  # cancelled: by a stop
                for lease in batch:
                    self._conclude(lease, self._outcome(lease, None, cancelled=True), None)
                raise
        finally:
            counters.running -= len(batch)
        counters.latency.record(now() - started)
        failures = batch_failures(messages, returned, error)
        for lease in batch:
            await self._settle(lease, failures[lease.message.message_id])

    def _record_ages(self, lease: Lease, started: float) -> None:
        sent = lease.message.attributes.get("SentTimestamp")
        record_ages(self._counters, sent, lease.received_at, started)

    # Outcomes.

    async def _settle(self, lease: Lease, error: BaseException | None) -> None:
        """Decide the message's outcome and carry it out."""
        if error is None:
            if self._watched:  # (a failure is told to the breaker by `_held`)
                assert self._breaker is not None
                self._breaker.ended()
        elif self._breaker is not None and self._held(lease, error):
            return
        outcome = self._outcome(lease, error)
        if outcome is Outcome.DEAD_LETTER:
            outcome = await self._dead_letter(lease, error)
        self._conclude(lease, outcome, error)

    async def _dead_letter(self, lease: Lease, error: BaseException | None) -> Outcome:
        """Move a copy with its failure record; RETRY instead if that fails."""
        assert self._dead_letters is not None
        assert error is not None
        moved = await self._dead_letters.send(
            self._client,
            lease.message,
            error,
            consumer=self._consumer,
            reason=dead_letter_reason(error),
        )
        return Outcome.DEAD_LETTER if moved else Outcome.RETRY

    # The circuit breaker: while it is not closed, every ending is watched (`watch_breaker`).

    def watch_breaker(self, watching: bool) -> None:
        """While the breaker is open or probing, a message's ending may close it; closed,
        a success takes the slots' short path (`_slot`) and tells no one."""
        self._watched = watching

    def _held(self, lease: Lease, error: BaseException) -> bool:
        """A failure that is the dependency being down: retried when the breaker probes
        again, never dead-lettered for it (its receive count was not the message's doing)."""
        assert self._breaker is not None
        if lease.lost:
            return False
        delay = self._breaker.held_delay(error, now() - lease.received_at)
        if delay is None:
            return False
        logger.info(
            "[%s] message %s failed while its dependency is down (%s): visible again in %d s, "
            "not counted toward dead-lettering",
            self._consumer,
            lease.message.message_id,
            error,
            delay,
        )
        self._carry_out(lease, Outcome.RETRY, delay)
        return True

    def _conclude(self, lease: Lease, outcome: Outcome, error: BaseException | None) -> None:
        """Settle the message through `InFlight`, which ends its lease and gives its room back."""
        delay = 0
        if outcome is Outcome.RETRY:
            held_for = now() - lease.received_at
            delay = retry_delay_for(
                error, lease.message.receive_count, self._config, held_for=held_for
            )
            self._log_failure(lease.message, error, delay)
        elif outcome is Outcome.RELEASE:
            logger.info(
                "[%s] released message %s (handler cancelled)",
                self._consumer,
                lease.message.message_id,
            )
        self._carry_out(lease, outcome, delay)

    def _carry_out(self, lease: Lease, outcome: Outcome, delay: int) -> None:
        self._inflight.settle(lease, outcome, delay)
        successors = self._buffer.task_done(lease, succeeded=outcome is Outcome.ACK)
        if successors:
            self._release_successors(successors, lease, outcome)

    def _release_successors(self, successors: list[Lease], head: Lease, outcome: Outcome) -> None:
        """FIFO: a group's later messages go back behind the one that did not succeed."""
        for lease in successors:
            self._inflight.settle(lease, Outcome.RELEASE)
        logger.info(
            "[%s] released %s of group %s: %s",
            self._consumer,
            plural(len(successors), "later message"),
            successors[0].message.group_id,
            successors_note(outcome, head.message.message_id),
        )

    def _log_timeout(self, lease: Lease, error: BaseException | None) -> None:
        if error is not None and is_timeout(error):
            logger.error(
                "[%s] %s on message %s, at %s",
                self._consumer,
                error,
                lease.message.message_id,
                timeout_site(error) or "an unknown place",
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
        elif isinstance(error, PayloadError | ConfigurationError):  # it says all: no traceback
            logger.error(
                "[%s] message %s failed (receive %d): %s; visible again in %d s",
                self._consumer,
                message.message_id,
                message.receive_count,
                error,
                delay,
                extra=context,
            )
        elif isinstance(error, MessageDecodeError):  # the error says it all: no traceback
            logger.error(
                "[%s] message %s does not decode (receive %d): %s; visible again in %d s%s",
                self._consumer,
                message.message_id,
                message.receive_count,
                error,
                delay,
                ""
                if self._config.on_decode_error == "retry"
                else ". Give the queue a RedrivePolicy or the consumer dead_letter_queue=...",
                extra=context,
            )
        elif error is not None and not isinstance(error, Exception):
            logger.error(
                "[%s] handler raised %s on message %s (receive %d): a failure of that "
                "message%s; visible again in %d s",
                self._consumer,
                describe(error),
                message.message_id,
                message.receive_count,
                _what_follows(error),
                delay,
                exc_info=error,
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
