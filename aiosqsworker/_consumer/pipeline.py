"""One consumer's pipeline: receiver → buffer → handler slots → acker, with the lease keeper.

`Pipeline.run` owns every task of the consumer in its task groups and carries out the
shutdown in order:

1. stop polling (no new poll; what the polls still open bring is released),
2. release the buffered messages that never started (visibility 0),
3. let running handlers finish within the shutdown timeout, then cancel them (released),
4. let the busy polls still open finish within what is left of that budget (they return
   within `receiver.BUSY_WAIT`, and what they bring is released), then give up the rest:
   watch polls, whose messages are hidden for a few seconds only (`receiver.plan_poll`
   decides which poll is which); a forced stop abandons every poll at once; stop the
   lease keeper,
5. flush the acker: every delete and visibility change queued is sent (time-boxed, and
   shielded from the caller's cancellation so that a cancelled host still flushes); then
   the S3 payloads of the messages it deleted (with ``delete_payloads``), in the same box.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence

import anyio
from anyio.abc import TaskStatus

from .._config import Breaker, Middleware
from .._errors import AioSQSWorkerError, ConfigurationError, single_error
from .._message import Message
from .._registry import ConsumerSpec
from .._sqs.base import SQSClient
from .._sqs.payloads import PayloadJanitor, PayloadStore
from .._text import plural
from .acker import Acker
from .breaker import BreakerState, CircuitBreaker
from .buffer import Buffer, Capacity, MessageBuffer
from .call import handler_call
from .fifo import GroupedBuffer
from .flow import Flow
from .idempotency import IdempotencyGuard, key_function
from .inflight import InFlight
from .leases import Lease, LeaseKeeper
from .leasethread import LeaseThread
from .outbox import Send
from .outcomes import Outcome
from .procpool import ProcessPool
from .queue import QueueInfo
from .receiver import WATCH_VISIBILITY, Receiver, poll_cap
from .slots import Slots
from .stats import ConsumerStatistics, Counters, LatencyHistogram
from .tenants import TenantBuffer

__all__ = ["Pipeline", "stop_waits"]

logger = logging.getLogger("aiosqsworker")

#: How long the final flush of deletes and releases may take.
FLUSH_TIMEOUT = 15.0


class Pipeline:
    """Consumes one queue with one handler until stopped."""

    def __init__(
        self,
        spec: ConsumerSpec,
        client: SQSClient,
        queue: QueueInfo,
        *,
        shutdown_timeout: float,
        middleware: Sequence[Middleware] = (),
        on_exit: Callable[[BaseException], None] = lambda error: None,
        payloads: PayloadStore | None = None,
        payload_bucket: str | None = None,
        delete_payloads: bool = False,
        processes: ProcessPool | None = None,
        lease_thread: LeaseThread | None = None,
        concurrency: int | None = None,
        paused: bool = False,
        send: Send | None = None,
        message_ages: bool = False,
    ) -> None:
        config = spec.config
        if config.batch and queue.fifo:
            raise ConfigurationError(
                f"consumer {spec.name!r}: batch=True is not supported on the FIFO queue "
                f"{queue.url}: its groups are handled one message at a time, in order"
            )
        if config.max_per_tenant is not None and queue.fifo:
            raise ConfigurationError(
                f"consumer {spec.name!r}: max_per_tenant is for standard (fair) queues, and "
                f"{queue.url} is a FIFO queue, whose groups already run one message at a time"
            )
        self.name = spec.name
        self.spec = spec
        self.queue = queue
        self.shutdown_timeout = shutdown_timeout
        self.visibility_timeout = config.visibility_timeout or queue.visibility_timeout
        self._abandoned_polls_take = client.cancelled_polls_take_messages
        self.counters = Counters()
        if message_ages:
            self.counters.lag, self.counters.dwell = LatencyHistogram(), LatencyHistogram()
        self._idempotency = (
            IdempotencyGuard(
                config.idempotency,
                key_function(config.idempotency_key, consumer=spec.name, fifo=queue.fifo),
                self.counters,
                consumer=spec.name,
                threads_run_on=spec.run_in == "thread",
            )
            if config.idempotency is not None
            else None
        )
        self._stop_requested = anyio.Event()
        concurrency = config.concurrency if concurrency is None else concurrency
        self._capacity = Capacity(config.capacity_at(concurrency))
        self._flow = Flow(self._capacity, max_rate=config.max_rate)
        if paused:
            self._flow.pause()
        self._tenants: TenantBuffer | None = None
        self._buffer: Buffer[Lease]
        if queue.fifo:
            self._buffer = GroupedBuffer()
        elif config.max_per_tenant is not None:
            self._buffer = self._tenants = TenantBuffer(
                config.max_per_tenant,
                on_surplus=self._release_surplus,
                keep=self._keep,
                latency=self._usual_latency,
                spare=lambda: self._capacity.total - config.max_messages,
            )
        else:
            self._buffer = MessageBuffer()
        self._leases = LeaseKeeper(
            client,
            queue.url,
            self.visibility_timeout,
            self.counters,
            consumer=self.name,
            board=lease_thread.board(queue.url, self.visibility_timeout, self.name)
            if lease_thread is not None
            else None,
            on_extended=self._idempotency.extended if self._idempotency is not None else None,
        )
        self._janitor = (
            PayloadJanitor(payloads, consumer=self.name)
            if payloads is not None and delete_payloads
            else None
        )
        self._inflight = InFlight(
            self._capacity,
            self._leases,
            self.counters,
            consumer=self.name,
            on_acked=_both(
                self._janitor.discard if self._janitor is not None else None,
                self._idempotency.acked if self._idempotency is not None else None,
            ),
            on_lost=self._idempotency.lost if self._idempotency is not None else None,
        )
        self._acker = Acker(
            client,
            queue.url,
            self._inflight,
            linger=config.ack_linger,
            polls=poll_cap(self._capacity.total, config.max_messages),
        )
        call = handler_call(
            spec,
            middleware=middleware,
            processes=processes,
            counters=self.counters,
            concurrency=lambda: self._slots.concurrency,
            payloads=payloads,
            send=send,
        )
        dead_letters = queue.dead_letters
        self._breaker = CircuitBreaker(
            config.breaker or Breaker(),
            consumer=self.name,
            on_open=self._breaker_opened,
            on_probe=self._flow.probe,
            on_close=self._breaker_closed,
        )
        if payloads is not None and dead_letters is not None:
            dead_letters = dataclasses.replace(
                dead_letters, payloads=payloads, payload_bucket=payload_bucket
            )
        self._slots = Slots(
            call,
            config,
            self._buffer,
            self._flow,
            self._inflight,
            self.counters,
            client=client,
            dead_letters=dead_letters,
            consumer=self.name,
            on_exit=on_exit,
            idempotency=self._idempotency,
            breaker=self._breaker,
        )
        self._slots.set_concurrency(concurrency)
        self._receiver = Receiver(
            client,
            queue.url,
            config,
            self.visibility_timeout,
            self._flow,
            self._buffer,
            self._inflight,
            self.counters,
            consumer=self.name,
            on_buffered=self._slots.staff,
        )
        self._stop_deadline = math.inf

    @property
    def paused(self) -> bool:
        return self._flow.paused

    @property
    def breaker_open(self) -> bool:
        """Whether the circuit breaker is open or half-open."""
        return self._breaker.state is not BreakerState.CLOSED

    def statistics(self) -> ConsumerStatistics:
        return ConsumerStatistics.capture(
            self.name,
            self.spec.config.queue,
            self.counters,
            buffered=len(self._buffer) + self._flow.waiting_to_start,
            concurrency=self._slots.concurrency,
            max_rate=self._flow.max_rate,
            paused=self._flow.paused,
            polling_width=self._receiver.width,
            tenants=self._tenants.statistics() if self._tenants is not None else (),
            breaker=self._breaker.state.value,
            breaker_trips=self._breaker.trips,
            breaker_held=self._breaker.held,
        )

    def pause(self) -> None:
        """Start no poll and no handler; hand back every message that has not started.

        Running handlers finish and their messages are acknowledged as usual; what polls
        still open bring is released as it arrives.
        """
        if self._flow.paused:
            return
        self._flow.pause()
        logger.info(
            "[%s] paused: %d buffered messages released, %d running handlers finish",
            self.name,
            self._release_waiting(),
            self.counters.running,
        )

    def _release_waiting(self) -> int:
        """Make every buffered message that has not started visible again at once."""
        waiting = self._buffer.take_waiting()
        for lease in waiting:
            self._inflight.settle(lease, Outcome.RELEASE)
        self._flow.not_started(len(waiting))
        return len(waiting)

    def _release_surplus(self, lease: Lease, delay: int) -> None:
        """A tenant's message beyond what it keeps waiting (see `tenants.py`)."""
        self._inflight.settle(lease, Outcome.RELEASE, delay)
        self._flow.not_started()

    def _usual_latency(self) -> float:
        """A handler's median duration so far (a tenth of a second before the first has
        ended: a guess too short costs a surplus message one more receive, one too long
        keeps it waiting longer than its tenant needs)."""
        return self.counters.latency.quantile(0.5) or 0.1

    def _keep(self, lease: Lease) -> bool:
        """Whether a message must not be released: its next receive would dead-letter it."""
        dead_letters = self.queue.dead_letters
        return dead_letters is not None and dead_letters.is_last_attempt(lease.message)

    def _breaker_opened(self) -> None:
        self._flow.hold()
        self._slots.watch_breaker(True)
        released = self._release_waiting()
        if released:
            logger.info(
                "[%s] circuit breaker open: %s released",
                self.name,
                plural(released, "buffered message"),
            )

    def _breaker_closed(self) -> None:
        self._flow.unhold()
        self._slots.watch_breaker(False)

    def resume(self) -> None:
        if self._flow.paused:
            self._flow.resume()
            logger.info("[%s] resumed", self.name)

    def set_concurrency(self, concurrency: int) -> None:
        """Change how many handlers may run at once; running ones are never cancelled."""
        before = self._slots.concurrency
        config = self.spec.config
        self._capacity.resize(config.capacity_at(concurrency))
        self._acker.widen(poll_cap(self._capacity.total, config.max_messages))
        self._slots.set_concurrency(concurrency)
        if concurrency != before:
            logger.info(
                "[%s] concurrency %d -> %d (%d handlers running)",
                self.name,
                before,
                concurrency,
                self.counters.running,
            )

    def stalled(self) -> bool:
        """Whether polling has silently stopped (see `Receiver.stalled`)."""
        return self._receiver.stalled(anyio.current_time())

    def request_stop(self, *, force: bool = False) -> None:
        """Begin the shutdown; with `force`, cancel running handlers and open polls at once."""
        if not self._stop_requested.is_set():
            self._stop_deadline = anyio.current_time() + self.shutdown_timeout
        self._stop_requested.set()
        if force:
            self._slots.cancel()
            self._receiver.abandon()

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        try:
            await self._run(task_status)
        except BaseExceptionGroup as group:
            error = single_error(group)
            if isinstance(error, AioSQSWorkerError):
                raise error from None
            raise
        logger.info("[%s] stopped: %s", self.name, self._summary())

    async def _run(self, task_status: TaskStatus[None]) -> None:
        flush_scope = anyio.CancelScope(shield=True)

        # What follows the acker's confirmed deletes: payload deletes, done records.
        followers = [f for f in (self._janitor, self._idempotency) if f is not None]

        async def run_acker() -> None:
            with flush_scope:
                if not followers:
                    await self._acker.run()
                    return
                async with anyio.create_task_group() as tg:
                    for follower in followers:
                        tg.start_soon(follower.run)
                    try:
                        await self._acker.run()
                    finally:
                        for follower in followers:
                            follower.close()  # after the acker's last delete

        async with anyio.create_task_group() as tg:
            tg.start_soon(run_acker)
            try:
                await self._consume(task_status)
            finally:
                # Cancelled from outside (the host's task), the drain never ran: hand back
                # what was buffered here, so that it is not stranded for its visibility timeout.
                for lease in self._buffer.close():
                    self._inflight.settle(lease, Outcome.RELEASE)
                pending = self._acker.pending
                if pending:
                    logger.info(
                        "[%s] flushing %s",
                        self.name,
                        plural(pending, "pending acknowledgement"),
                    )
                self._acker.close()
                flush_scope.deadline = anyio.current_time() + FLUSH_TIMEOUT

    async def _consume(self, task_status: TaskStatus[None]) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._leases.run)
            tg.start_soon(self._receiver.run)
            tg.start_soon(self._slots.run)
            logger.info(
                "[%s] consuming %s (concurrency %d, prefetch %d, visibility %d s%s%s)",
                self.name,
                self.queue.url,
                self._slots.concurrency,
                self.spec.config.prefetch,
                self.visibility_timeout,
                "" if self._flow.max_rate is None else f", at most {self._flow.max_rate:g}/s",
                ", paused" if self._flow.paused else "",
            )
            task_status.started()
            await self._stop_requested.wait()
            await self._drain()
            tg.cancel_scope.cancel()  # the lease keeper and any abandoned poll

    async def _drain(self) -> None:
        self._breaker.close()
        self._receiver.stop()
        leftover = self._buffer.close()
        for lease in leftover:
            self._inflight.settle(lease, Outcome.RELEASE)
        logger.info(
            "[%s] stopping: no new polls, %s released, %s",
            self.name,
            plural(len(leftover), "buffered message"),
            self._what_the_stop_waits_for(),
        )
        with anyio.move_on_after(self._time_left()):
            await self._slots.finished.wait()
        if not self._slots.finished.is_set():
            logger.warning(
                "[%s] %s still running after %g s: cancelling them and releasing their messages",
                self.name,
                plural(self.counters.running, "handler"),
                self.shutdown_timeout,
            )
            self._slots.cancel()
            await self._slots.finished.wait()
        # A busy poll abandoned now would strand what SQS hands it for a whole visibility
        # timeout; it returns within BUSY_WAIT, so wait for it while the budget lasts. The
        # watch polls left are given up: what they take is hidden for a few seconds only.
        with anyio.move_on_after(self._time_left()):
            await self._receiver.polls_finished()
        busy, _ = self._receiver.polls_to_wait_for(anyio.current_time())
        watching = self._receiver.open_polls - busy
        if busy:
            logger.warning(
                "[%s] abandoning %s (shutdown budget spent, or a forced stop): a message SQS "
                "hands them now stays invisible for up to %d s",
                self.name,
                plural(busy, "open long poll"),
                self.visibility_timeout,
            )
        if watching and self._abandoned_polls_take:
            logger.info(
                "[%s] giving up %s: a message SQS still hands %s is hidden for at most %d s",
                self.name,
                plural(watching, "idle poll"),
                "it" if watching == 1 else "them",
                min(WATCH_VISIBILITY, self.visibility_timeout),
            )
        self._receiver.abandon()

    def _what_the_stop_waits_for(self) -> str:
        polls, left = self._receiver.polls_to_wait_for(anyio.current_time())
        return stop_waits(
            running=self.counters.running, budget=self._time_left(), polls=polls, poll_left=left
        )

    def _time_left(self) -> float:
        return max(0.0, self._stop_deadline - anyio.current_time())

    def _summary(self) -> str:
        c = self.counters
        return (
            f"{c.received} received, {c.succeeded} succeeded, {c.failed} failed, "
            f"{c.deleted} deleted, {c.released} released, {plural(c.leases_lost, 'lease')} lost"
        )


def _both(
    first: Callable[[list[Message]], None] | None, second: Callable[[list[Message]], None] | None
) -> Callable[[list[Message]], None] | None:
    """One `on_acked` hook from two optional ones."""
    if first is None or second is None:
        return first or second

    def both(messages: list[Message]) -> None:
        first(messages)
        second(messages)

    return both


def stop_waits(*, running: int, budget: float, polls: int, poll_left: float) -> str:
    """What a stop waits for, with its numbers: `running` handlers (for at most the
    `budget` left of the shutdown timeout) and `polls` busy polls (for at most what is left
    of their wait, `poll_left`, within that budget). Nothing is named that is not waited
    for: never "up to 30 s for 0 running handlers"."""
    waits = []
    if running:
        waits.append(f"up to {_seconds(budget)} s for {plural(running, 'running handler')}")
    if polls:
        waits.append(f"up to {_seconds(min(poll_left, budget))} s for {plural(polls, 'open poll')}")
    return "waiting " + " and ".join(waits) if waits else "nothing to wait for"


def _seconds(seconds: float) -> str:
    """Seconds as a person reads them in a log line: rounded up to a tenth (29.998 -> 30)."""
    return f"{math.ceil(seconds * 10) / 10:g}"
