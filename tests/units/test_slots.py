"""The handler slots (`_consumer/slots.py`): the middleware chain, and `Slots`' pool.

No server here: the pool runs on a real buffer, `Flow` and `InFlight`, with a recording
acker in place of the calls and handlers the test ends one by one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import anyio
import pytest
from anyio import wait_all_tasks_blocked
from anyio.abc import TaskGroup

from aiosqsworker import (
    Message,
    Reject,
)
from aiosqsworker._config import ConsumerConfig
from aiosqsworker._consumer.buffer import Capacity, MessageBuffer
from aiosqsworker._consumer.call import chain_middleware
from aiosqsworker._consumer.flow import Flow
from aiosqsworker._consumer.inflight import InFlight, Settling
from aiosqsworker._consumer.leases import Lease, LeaseKeeper
from aiosqsworker._consumer.outcomes import Outcome
from aiosqsworker._consumer.slots import Slots
from aiosqsworker._consumer.stats import Counters

from .factories import message
from .test_deadletter import PoisonError

Call = Callable[[Any], Awaitable[object]]


def layer(name: str, events: list[str]) -> Callable[[Any, Call], Awaitable[object]]:
    async def middleware(item: Any, call_next: Call) -> object:
        events.append(f"{name}>")
        try:
            return await call_next(item)
        finally:
            events.append(f"<{name}")

    return middleware


async def test_the_first_middleware_is_the_outermost() -> None:
    events: list[str] = []

    async def handler(item: Any) -> object:
        events.append(f"handler {item}")
        return "result"

    chained = chain_middleware(
        [layer("1", events), layer("2", events), layer("3", events)], handler
    )
    assert await chained("m") == "result"
    assert events == ["1>", "2>", "3>", "handler m", "<3", "<2", "<1"]
    assert chain_middleware([], handler) is handler


async def test_middleware_may_change_the_call_stop_it_or_see_its_failure() -> None:
    events: list[str] = []
    seen_errors: list[BaseException] = []

    async def handler(item: Any) -> object:
        if item == "boom":
            raise PoisonError("handler failed")
        return f"handled {item}"

    async def upper(item: Any, call_next: Call) -> object:
        return await call_next(str(item).upper())

    async def guard(item: Any, call_next: Call) -> object:
        if item == "SKIP":
            return "skipped"
        try:
            return await call_next(item)
        except PoisonError as exc:
            seen_errors.append(exc)
            raise

    async def refuse(item: Any, call_next: Call) -> object:
        raise Reject("refused by middleware")

    chained = chain_middleware([layer("log", events), upper, guard], handler)
    assert await chained("x") == "handled X"
    assert await chained("skip") == "skipped"
    with pytest.raises(PoisonError):
        await chain_middleware([guard], handler)("boom")
    assert len(seen_errors) == 1
    called: list[object] = []

    async def recording_handler(item: Any) -> object:
        called.append(item)
        return None

    with pytest.raises(Reject, match="refused by middleware"):
        await chain_middleware([layer("log", events), refuse], recording_handler)("y")
    assert called == []
    assert events == ["log>", "<log", "log>", "<log", "log>", "<log"]


# `Slots`' pool: how slots are made, retired, given back and ended.


async def quiet() -> None:
    """Let every task run until all wait, and the callbacks of those that ended run too
    (`wait_all_tasks_blocked` alone returns before a finished slot's done-callback)."""
    for _ in range(3):
        await wait_all_tasks_blocked()
        await asyncio.sleep(0)


class Handlers:
    """A handler whose calls wait until the test ends each one (`finish`), and the tasks
    that ran them."""

    def __init__(self) -> None:
        self.running: dict[str, asyncio.Future[BaseException | None]] = {}
        self.started: list[str] = []
        self.tasks: set[asyncio.Task[Any]] = set()
        self.most_at_once = 0

    async def __call__(self, item: Message) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        self.started.append(item.message_id)
        ending = asyncio.get_running_loop().create_future()
        self.running[item.message_id] = ending
        self.most_at_once = max(self.most_at_once, len(self.running))
        try:
            error = await ending
        finally:
            del self.running[item.message_id]
        if error is not None:
            raise error

    def finish(self, message_id: str, error: BaseException | None = None) -> None:
        """End that handler: it returns, or raises `error`."""
        self.running[message_id].set_result(error)

    async def finish_in_turn(self, *message_ids: str) -> None:
        """End these handlers one after the other, each once it runs."""
        for message_id in message_ids:
            self.finish(message_id)
            await quiet()


class RecordingAcker:
    """The acker's place: what each message was settled as, in order."""

    def __init__(self, breaks_on: str | None = None) -> None:
        self.outcomes: dict[str, Outcome] = {}
        self._breaks_on = breaks_on

    def send(self, settling: Settling) -> None:
        message_id = settling.lease.message.message_id
        if message_id == self._breaks_on:
            raise RuntimeError(f"the acker broke on {message_id}")
        self.outcomes[message_id] = settling.outcome


class Pool:
    """One consumer's `Slots` on real parts, fed as the receiver feeds it."""

    def __init__(
        self,
        handler: Callable[[Any], Awaitable[object]],
        concurrency: int,
        *,
        batch_size: int | None = None,
        **acker: Any,
    ) -> None:
        self.counters = Counters()
        capacity = Capacity(1000)
        self.keeper = LeaseKeeper(None, "queue", 30, self.counters, consumer="c")  # type: ignore[arg-type]
        self.inflight = InFlight(capacity, self.keeper, self.counters, consumer="c")
        self.acker = RecordingAcker(**acker)
        self.inflight.connect(self.acker)
        self.buffer: MessageBuffer[Lease] = MessageBuffer()
        self.exits: list[BaseException] = []
        self.leases: dict[str, Lease] = {}
        self.slots = Slots(
            handler,
            ConsumerConfig(queue="q", concurrency=concurrency)
            if batch_size is None
            else ConsumerConfig(
                queue="q", concurrency=concurrency, batch=True, batch_size=batch_size
            ),
            self.buffer,
            Flow(capacity),
            self.inflight,
            self.counters,
            client=None,  # type: ignore[arg-type]  # nothing here is dead-lettered
            dead_letters=None,
            consumer="c",
            on_exit=self.exits.append,
        )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[TaskGroup]:
        """`Slots.run` in a task group, as the pipeline runs it (for at most 10 s)."""
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(self.slots.run)
                await quiet()
                yield tg

    async def receive(self, *message_ids: str) -> None:
        """A poll brought these: buffered, the slots told once (`on_buffered`), then let run."""
        leases = self.inflight.admit_all([message(message_id=id_) for id_ in message_ids], 0.0)
        for lease in leases:
            self.leases[lease.message.message_id] = lease
            self.buffer.put(lease)
        self.slots.staff()
        await quiet()


async def test_slots_are_made_as_messages_wait_never_more_than_the_limit() -> None:
    """Naive code it catches: making all `concurrency` slots up front (10,000 idle tasks for
    a large limit), or a slot made per waiting message with nothing holding the running
    ones to `concurrency` (more handlers at once than the limit)."""
    handlers = Handlers()
    pool = Pool(handlers, concurrency=3)
    async with pool.running():
        assert pool.slots.slot_count == 1  # one from the start, to see the buffer close
        await pool.receive("m0")
        assert (handlers.started, pool.slots.slot_count) == (["m0"], 1)
        await pool.receive("m1", "m2", "m3", "m4", "m5")
        assert handlers.started == ["m0", "m1", "m2"]
        assert pool.slots.slot_count == 3
        handlers.finish("m1")  # a freed slot takes the next message, in order
        await quiet()
        assert sorted(handlers.running) == ["m0", "m2", "m3"]
        await handlers.finish_in_turn(*["m0", "m2", "m3", "m4", "m5"])
        assert (handlers.most_at_once, pool.slots.slot_count) == (3, 3)
        pool.buffer.close()
    assert (pool.slots.finished.is_set(), pool.slots.slot_count) == (True, 0)
    assert pool.acker.outcomes == {f"m{n}": Outcome.ACK for n in range(6)}
    assert pool.counters.running == 0


async def test_a_lowered_limit_ends_idle_slots_at_once_and_busy_ones_after_their_handler() -> None:
    """Naive code it catches: cancelling running handlers to meet a lowered limit (their
    messages would be released half done), or leaving busy slots over the limit taking new
    messages once their handler returns (the limit would never come down under load)."""
    handlers = Handlers()
    pool = Pool(handlers, concurrency=4)
    async with pool.running():
        await pool.receive("m0", "m1", "m2", "m3")
        handlers.finish("m0")
        await quiet()
        assert (len(handlers.running), pool.slots.slot_count) == (3, 4)  # one idle
        pool.slots.set_concurrency(2)
        await quiet()
        assert pool.slots.concurrency == 2
        assert sorted(handlers.running) == ["m1", "m2", "m3"]  # none cancelled
        assert pool.slots.slot_count == 3  # the idle one ended at once
        await pool.receive("m4", "m5")
        assert sorted(handlers.running) == ["m1", "m2", "m3"]  # over the limit: none new
        handlers.finish("m1")  # its slot retires rather than take m4
        await quiet()
        assert sorted(handlers.running) == ["m2", "m3"]
        assert pool.slots.slot_count == 2
        handlers.finish("m2")  # at the limit now: its slot goes on with m4
        await quiet()
        assert sorted(handlers.running) == ["m3", "m4"]
        await handlers.finish_in_turn(*["m3", "m4", "m5"])
        pool.buffer.close()
    assert pool.acker.outcomes == {f"m{n}": Outcome.ACK for n in range(6)}


async def test_a_raised_limit_starts_the_waiting_messages_at_once() -> None:
    """Naive code it catches: a raised limit that only takes effect at the next poll or
    the next handler's end (`set_concurrency` not staffing), while messages wait."""
    handlers = Handlers()
    pool = Pool(handlers, concurrency=1)
    async with pool.running():
        await pool.receive("m0", "m1", "m2", "m3")
        assert sorted(handlers.running) == ["m0"]
        pool.slots.set_concurrency(3)
        await quiet()
        assert sorted(handlers.running) == ["m0", "m1", "m2"]
        await handlers.finish_in_turn(*["m0", "m1", "m2", "m3"])
        pool.buffer.close()
    assert pool.acker.outcomes == {f"m{n}": Outcome.ACK for n in range(4)}


async def test_a_handler_that_never_returns_keeps_its_slot_until_a_forced_stop_releases_it() -> (
    None
):
    """Naive code it catches: a slot whose handler does not return replaced by a new one
    (more handlers than the limit), or a forced stop (`cancel`) that ends the slots without
    settling the stuck message (it would stay invisible, held by no one)."""
    handlers = Handlers()
    pool = Pool(handlers, concurrency=2)
    async with pool.running():
        await pool.receive("stuck", "m1", "m2", "m3")
        for message_id in ["m1", "m2", "m3"]:  # the other slot does all the rest
            handlers.finish(message_id)
            await quiet()
        assert (sorted(handlers.running), pool.slots.slot_count) == (["stuck"], 2)
        assert handlers.most_at_once == 2
        pool.slots.cancel()
        await quiet()
        assert (pool.slots.finished.is_set(), pool.slots.slot_count) == (True, 0)
        await pool.receive("late")  # no slot is made after a forced stop
        assert "late" not in handlers.started
    assert pool.acker.outcomes == {
        "stuck": Outcome.RELEASE,
        "m1": Outcome.ACK,
        "m2": Outcome.ACK,
        "m3": Outcome.ACK,
    }
    assert pool.counters.running == 0


async def test_a_cancelled_run_releases_every_running_message_before_it_ends() -> None:
    """Naive code it catches: `run` letting its cancellation through at once, without
    cancelling the slots and waiting for them (slots would outlive their consumer and their
    messages stay unsettled)."""
    handlers = Handlers()
    pool = Pool(handlers, concurrency=3)
    async with pool.running() as tg:
        await pool.receive("m0", "m1", "m2", "m3")
        handlers.finish("m0")
        await quiet()
        tg.cancel_scope.cancel()
    assert (pool.slots.finished.is_set(), pool.slots.slot_count) == (True, 0)
    assert handlers.running == {}
    assert pool.acker.outcomes == {
        "m0": Outcome.ACK,
        "m1": Outcome.RELEASE,
        "m2": Outcome.RELEASE,
        "m3": Outcome.RELEASE,
    }


class ItsOwn(BaseException):
    """A `BaseException` of a handler's own, not an `Exception`."""


async def test_whatever_a_handler_raises_fails_its_message_and_the_slot_goes_on() -> None:
    """Naive code it catches: catching `Exception` only (a `BaseException` of the handler's
    own, `GeneratorExit` or `SystemExit` would end the slot and the worker with it), or
    taking every `CancelledError` for the framework's (a handler's own one would end it)."""
    handlers = Handlers()
    pool = Pool(handlers, concurrency=1)
    raised: dict[str, BaseException] = {
        "value": ValueError("bad"),
        "generator-exit": GeneratorExit(),
        "its-own": ItsOwn(),
        "cancelled": asyncio.CancelledError(),
        "system-exit": SystemExit(3),
        "interrupt": KeyboardInterrupt(),
    }
    async with pool.running():
        await pool.receive(*raised, "fine")
        for message_id, error in raised.items():
            handlers.finish(message_id, error)
            await quiet()
        handlers.finish("fine")
        await quiet()
        assert pool.slots.slot_count == 1
        pool.buffer.close()
    assert handlers.started == [*raised, "fine"]
    assert len(handlers.tasks) == 1, "one slot ran them all"
    assert pool.acker.outcomes == {**dict.fromkeys(raised, Outcome.RETRY), "fine": Outcome.ACK}
    assert pool.exits == [raised["system-exit"], raised["interrupt"]]  # asked to stop, once each
    assert pool.counters.running == 0


async def test_a_lost_lease_cancels_its_handler_alone_and_the_slot_takes_the_next() -> None:
    """Naive code it catches: treating the lease's cancellation as a stop (the slot would
    end, and the messages behind it wait for a slot that never comes), or not taking the
    cancellation back (`uncancel`), so that the slot's next handler's own `CancelledError`
    passes for the framework's and ends the slot."""
    handlers = Handlers()
    pool = Pool(handlers, concurrency=1)
    async with pool.running():
        await pool.receive("lost", "own-cancel", "fine")
        pool.keeper._lose(pool.leases["lost"], "ReceiptHandleIsInvalid")
        await quiet()
        assert handlers.started == ["lost", "own-cancel"]
        handlers.finish("own-cancel", asyncio.CancelledError())
        await quiet()
        handlers.finish("fine")
        await quiet()
        assert pool.slots.slot_count == 1
        pool.buffer.close()
    assert len(handlers.tasks) == 1, "one slot ran them all"
    assert pool.counters.leases_lost == 1
    # A lost lease's message is ours no more: nothing is sent for it.
    assert pool.acker.outcomes == {"own-cancel": Outcome.RETRY, "fine": Outcome.ACK}


async def test_a_slot_that_breaks_ends_the_others_and_run_raises_its_error() -> None:
    """Naive code it catches: a slot's own error (not a handler's) lost in its task, so the
    consumer runs on one slot short, or `run` returning normally with the other handlers
    left running instead of cancelled and their messages released."""
    handlers = Handlers()
    pool = Pool(handlers, concurrency=3, breaks_on="m0")
    with pytest.RaisesGroup(pytest.RaisesExc(RuntimeError, match="on m0")):
        async with pool.running():
            await pool.receive("m0", "m1", "m2")
            handlers.finish("m0")
            await quiet()
    assert (pool.slots.finished.is_set(), pool.slots.slot_count) == (True, 0)
    assert handlers.running == {}
    assert pool.acker.outcomes == {"m1": Outcome.RELEASE, "m2": Outcome.RELEASE}


async def test_a_batch_consumer_makes_a_slot_per_batch_waiting_not_per_message() -> None:
    """Naive code it catches: counting waiting messages rather than waiting batches when
    making slots (`messages_per_call`), which makes a slot per message that then sits idle."""
    batches: list[list[str]] = []
    release = asyncio.Event()

    async def handle(messages: list[Message]) -> None:
        batches.append([item.message_id for item in messages])
        await release.wait()

    pool = Pool(handle, concurrency=4, batch_size=3)
    async with pool.running():
        await quiet()
        await pool.receive(*(f"m{n}" for n in range(6)))
        assert batches == [["m0", "m1", "m2"], ["m3", "m4", "m5"]]
        assert pool.slots.slot_count == 2
        release.set()
        await quiet()
        pool.buffer.close()
    assert pool.acker.outcomes == {f"m{n}": Outcome.ACK for n in range(6)}
