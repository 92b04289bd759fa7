"""Leases: keeping received messages invisible for as long as they are ours.

A lease starts when a message is received (buffered messages included) and ends when the
message is handed over for its delete, retry or release (`InFlight` decides when). Until then
the keeper extends it before it expires, in ChangeMessageVisibilityBatch calls of up to ten
entries, never past SQS's 12-hour cap. A delete waits for an extension in flight
(`Lease.settled`), so a delete never races an extension.

Each extension call runs on its own and is time-boxed by what its leases have left
(`call_budget`): a call that stalls (a half-open connection, a stuck proxy) is abandoned in
time and retried on a fresh connection, and it holds up no other lease's extension.

The keeper runs on the event loop; while the loop is blocked (an ``async`` handler calling
blocking code), the lease keeper's thread extends in its place (`leasethread`): the keeper
shares its leases with it on a `LeaseBoard` and applies what the thread reports, so it stays
the one owner of the lease records.

Which leases to extend, when, by how much and for how long a call may take are pure
functions (`leases_due`, `next_wake`, `extension_timeout`, `call_budget`) that tests call
directly; `LeaseKeeper` does the I/O around them.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import anyio

from .._backoff import backoff
from .._errors import SQSError, TransientSQSError
from .._message import Message
from .._sqs.base import SQSClient
from .._sqs.batches import read_answer
from .._sqs.limits import MAX_BATCH, MAX_VISIBILITY
from .._text import plural
from . import clock
from .stats import Counters

if TYPE_CHECKING:
    from .leasethread import LeaseBoard, LeaseReport

__all__ = [
    "Lease",
    "LeaseKeeper",
    "call_budget",
    "extension_lead",
    "extension_timeout",
    "leases_due",
    "next_wake",
    "within_leases",
]

logger = logging.getLogger("aiosqsworker.leases")

T = TypeVar("T")

#: The longest any one acknowledgement or extension call may take; a lease's time left
#: shortens it further (`call_budget`).
MAX_CALL_TIME = 10.0
#: The shortest: below this a healthy call to SQS would be cut off too.
MIN_CALL_TIME = 1.0


@dataclass(eq=False, slots=True)
class Lease:
    """One received message's claim on its visibility.

    `expires_at`, `received_at` and `not_before` are on the event loop's clock
    (`anyio.current_time`).
    """

    message: Message
    received_at: float
    expires_at: float
    finished: bool = False
    lost: bool = False
    #: The task running the message's handler, cancelled if the lease is lost (`holder_
    #: cancelled` then says so, for the task to take that cancellation back afterwards).
    holder: asyncio.Task[Any] | None = field(default=None, repr=False)
    holder_cancelled: bool = False
    not_before: float = 0.0  # after a failed extension: not tried again before this
    _extending: anyio.Event | None = field(default=None, repr=False)

    @property
    def receipt_handle(self) -> str:
        return self.message.receipt_handle

    @property
    def extending(self) -> bool:
        """Whether an extension of this lease is in flight."""
        return self._extending is not None

    def finish(self) -> None:
        """Stop extending: the message is about to be deleted, retried or released."""
        self.finished = True

    def extension_started(self, done: anyio.Event) -> None:
        self._extending = done

    def extension_ended(self) -> None:
        self._extending = None

    async def settled(self) -> None:
        """Wait until no extension of this lease is in flight."""
        if self._extending is not None:
            await self._extending.wait()


def extension_timeout(lease: Lease, now: float, visibility_timeout: int) -> int:
    """Seconds to ask for now, or 0 when SQS's 12-hour cap leaves no room to extend."""
    room = MAX_VISIBILITY - (now - lease.received_at)
    return max(0, min(visibility_timeout, math.floor(room)))


# The room a failed extension call needs to be retried in time: a time-boxed call, a short
# back-off, and a second call.
RETRY_ROOM = 5.0


def extension_lead(visibility_timeout: int) -> float:
    """How long before expiry an extension starts: half the window, or more on short ones.

    Half the window is the margin for a slow or failed call; a window under 10 s would leave
    less than RETRY_ROOM, so the keeper starts earlier there (never sooner than 1 s into it).
    """
    return max(visibility_timeout * 0.5, min(visibility_timeout - 1.0, RETRY_ROOM))


def leases_due(leases: Iterable[Lease], now: float, visibility_timeout: int) -> list[Lease]:
    """Leases to extend now: those past their lead time, plus those soon to be.

    Taking the leases that come due within the next quarter of a window as well (or half
    of what the lead leaves, on short windows) fills batches and halves the calls. A lease
    being extended, finished, or backing off after a failed call is not due.
    """
    lead = extension_lead(visibility_timeout)
    slack = min(visibility_timeout * 0.25, (visibility_timeout - lead) * 0.5)
    horizon = now + lead + slack
    return [
        lease
        for lease in leases
        if lease.expires_at <= horizon
        and not lease.finished
        and not lease.extending
        and lease.not_before <= now
    ]


def next_wake(leases: Iterable[Lease], visibility_timeout: int) -> float:
    """When the earliest lease not being extended becomes due, or infinity."""
    lead = extension_lead(visibility_timeout)
    return min(
        (
            max(lease.expires_at - lead, lease.not_before)
            for lease in leases
            if not lease.extending and not lease.finished
        ),
        default=math.inf,
    )


def call_budget(leases: Iterable[Lease], now: float) -> float:
    """How long a call carrying `leases` may take: half the shortest time one has left.

    Half, so that a call abandoned at its deadline leaves the other half for a retry on a
    fresh connection; at least MIN_CALL_TIME, at most MAX_CALL_TIME.
    """
    soonest = min([lease.expires_at for lease in leases], default=math.inf)
    return max(MIN_CALL_TIME, min(MAX_CALL_TIME, (soonest - now) / 2))


async def within_leases(call: Awaitable[T], leases: Iterable[Lease], operation: str) -> T:
    """Await an SQS call for at most the `call_budget` of the leases it carries; a call
    that misses it is abandoned (its connection with it) as a `TransientSQSError`."""
    budget = call_budget(leases, clock.now())
    try:
        # Not anyio's cancel scope, nor asyncio's timeout: this runs for every batch of
        # deletes, and `clock.within` costs a fraction of either.
        return await clock.within(budget, call)
    except TimeoutError:
        raise TransientSQSError(
            f"{operation} did not answer within {budget:.1f} s", operation=operation
        ) from None


class LeaseKeeper:
    """Extends every unfinished lease of one queue before it expires."""

    def __init__(
        self,
        client: SQSClient,
        queue_url: str,
        visibility_timeout: int,
        counters: Counters,
        *,
        consumer: str,
        board: LeaseBoard | None = None,
        on_extended: Callable[[Sequence[Lease]], None] | None = None,
    ) -> None:
        """`board`: where the lease keeper's thread sees these leases, to extend them while
        the event loop is blocked (see `leasethread`); None keeps them on the loop alone."""
        self._client = client
        self._board = board
        self._queue_url = queue_url
        self._visibility_timeout = visibility_timeout
        #: Told of the leases SQS confirmed extended (an idempotency store's records
        #: follow them); None for most consumers, which pay nothing for it.
        self._on_extended = on_extended
        self._counters = counters
        self._consumer = consumer
        self._leases: set[Lease] = set()  # by identity: a Lease compares by identity
        self._wake = anyio.Event()
        self._wake_at = math.inf
        self._failures = 0
        self._lead = extension_lead(visibility_timeout)

    def lease(
        self, message: Message, received_at: float, visibility_timeout: int | None = None
    ) -> Lease:
        """Start watching a message received at `received_at` (before its request was sent)
        and hidden for `visibility_timeout` (by default the consumer's). A poll's shorter
        timeout makes the lease due at once: it is extended to the full one straight away."""
        return self.lease_all((message,), received_at, visibility_timeout)[0]

    def lease_all(
        self, messages: Iterable[Message], received_at: float, visibility_timeout: int | None = None
    ) -> list[Lease]:
        """`lease` for every message one poll brought: they share their receipt time and
        expiry, so the keeper records them, shows them to its thread and plans its next
        wake-up once for the poll."""
        expires_at = received_at + (visibility_timeout or self._visibility_timeout)
        leases = [Lease(message, received_at, expires_at) for message in messages]
        self._leases.update(leases)
        if self._board is not None:
            self._board.hold_all(leases)
        if leases and expires_at - self._lead < self._wake_at:
            self._wake.set()
        return leases

    def finish(self, lease: Lease) -> None:
        """Extend `lease` no more (again: nothing)."""
        if not lease.finished:
            lease.finish()
            self._release(lease)

    def finish_all(self, leases: Iterable[Lease]) -> None:
        """`finish` for a batch the acker is about to send: the thread told once."""
        ending = [lease for lease in leases if not lease.finished]
        for lease in ending:
            lease.finished = True  # (`Lease.finish`, inline: once a message)
        self._leases.difference_update(ending)
        if self._board is not None and ending:
            self._board.drop_all(ending)

    async def settled(self, lease: Lease) -> None:
        """Wait until no extension of this finished lease is in flight, the keeper's or its
        thread's: a delete never races an extension."""
        await self.settled_all((lease,))

    async def settled_all(self, leases: Sequence[Lease]) -> None:
        """`settled` for a batch; waits only where an extension is in flight."""
        for lease in leases:
            if lease._extending is not None:  # (`Lease.extending`, inline: once a message)
                await lease.settled()
        if self._board is not None:
            await self._board.settled_all(leases)

    def _release(self, lease: Lease) -> None:
        """Extend this lease no more."""
        self._leases.discard(lease)
        if self._board is not None:
            self._board.drop(lease)

    def __len__(self) -> int:
        return len(self._leases)

    async def run(self) -> None:
        """Extend leases until cancelled; each batch call runs on its own."""
        async with anyio.create_task_group() as tg:
            if self._board is not None:
                tg.start_soon(self._board.tend, self._apply_reports)
            while True:
                now = anyio.current_time()
                due = leases_due(self._leases, now, self._visibility_timeout)
                for batch in self._batches(due, now):
                    done = anyio.Event()
                    for lease, _ in batch:
                        lease.extension_started(done)
                    tg.start_soon(self._extend_batch, batch, now, done)
                self._wake_at = next_wake(self._leases, self._visibility_timeout)
                self._wake = anyio.Event()
                with anyio.move_on_after(max(0.0, self._wake_at - now)):
                    await self._wake.wait()
                self._wake_at = math.inf

    def _batches(self, due: list[Lease], now: float) -> list[list[tuple[Lease, int]]]:
        batches: list[list[tuple[Lease, int]]] = []
        for lease in due:
            timeout = extension_timeout(lease, now, self._visibility_timeout)
            if timeout < self._visibility_timeout:
                # The last extension SQS allows: after it, the lease runs out at the cap.
                self._release(lease)
                logger.warning(
                    "[%s] message %s reaches SQS's 12-hour visibility cap in %d s: it will "
                    "then become visible again and may be received by another worker",
                    self._consumer,
                    lease.message.message_id,
                    timeout,
                )
                if timeout < 1:
                    continue
            if not batches or len(batches[-1]) == MAX_BATCH:
                batches.append([])
            batches[-1].append((lease, timeout))
        return batches

    async def _extend_batch(
        self, batch: list[tuple[Lease, int]], sent_at: float, done: anyio.Event
    ) -> None:
        entries = [
            (str(i), lease.receipt_handle, timeout) for i, (lease, timeout) in enumerate(batch)
        ]
        try:
            result = await within_leases(
                self._client.change_visibility_batch(self._queue_url, entries),
                (lease for lease, _ in batch),
                "ChangeMessageVisibilityBatch",
            )
        except SQSError as exc:
            self._counters.lease_extension_errors += 1
            logger.warning(
                "[%s] extending %s failed, will retry: %s",
                self._consumer,
                plural(len(batch), "lease"),
                exc,
            )
            self._back_off(lease for lease, _ in batch)
            return
        finally:
            for lease, _ in batch:
                lease.extension_ended()
            done.set()
            self._wake.set()  # the keeper plans its next wake-up without these leases
        # An entry the answer left out is not extended: its expiry stays, and it is tried
        # again like a refused one (`read_answer` puts it among the retries).
        answer = read_answer(batch, result)
        for lease, timeout in answer.done:
            lease.expires_at = sent_at + timeout
            self._counters.leases_extended += 1
        refused: list[Lease] = []
        for (lease, _), failure in (*answer.retry, *answer.give_up):
            if lease.finished:
                continue  # finished while the call was in flight: nothing left to keep
            if failure.receipt_invalid:
                self._lose(lease, failure.code)
            else:
                refused.append(lease)
                self._counters.lease_extension_errors += 1
                logger.warning(
                    "[%s] extending the lease of message %s failed (%s: %s), will retry",
                    self._consumer,
                    lease.message.message_id,
                    failure.code,
                    failure.message,
                )
        if refused:
            self._back_off(refused)
        else:
            self._failures = 0
        if self._on_extended is not None:
            self._on_extended([lease for lease, _ in answer.done])

    def _back_off(self, leases: Iterable[Lease]) -> None:
        """Try these leases again after a short pause, well inside the lead time left."""
        self._failures += 1
        pause = backoff(self._failures, base=0.2, cap=min(3.2, self._visibility_timeout / 8))
        not_before = anyio.current_time() + pause
        for lease in leases:
            lease.not_before = not_before

    def _apply_reports(self, reports: list[LeaseReport]) -> None:
        """What the thread did while the loop was blocked, now in the lease records (and,
        through `on_extended`, in what follows them: an idempotency store's records)."""
        extended: dict[int, Lease] = {}  # by identity: a lease may be reported twice
        for report in reports:
            lease = report.lease
            if lease.finished or lease.lost:
                continue
            if report.kind == "extended":
                lease.expires_at = max(lease.expires_at, report.expires_at)
                self._counters.leases_extended += 1
                extended[id(lease)] = lease
            elif report.kind == "lost":
                extended.pop(id(lease), None)
                self._lose(lease, report.code)
            else:
                self._counters.lease_extension_errors += 1
        if extended and self._on_extended is not None:
            self._on_extended(list(extended.values()))
        self._wake.set()  # plan the next wake-up from the new expiries

    def _lose(self, lease: Lease, code: str) -> None:
        self._release(lease)
        lease.lost = True
        self._counters.leases_lost += 1
        logger.warning(
            "[%s] lost the lease of message %s (%s): another worker may be handling it now; "
            "its handler is cancelled",
            self._consumer,
            lease.message.message_id,
            code,
        )
        if lease.holder is not None:
            lease.holder_cancelled = True
            lease.holder.cancel()
