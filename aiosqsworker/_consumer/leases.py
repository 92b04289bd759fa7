"""Leases: keeping received messages invisible for as long as they are ours.

A lease starts when a message is received (buffered messages included) and ends when the
message is finished: handed to the acker for a delete, a retry or a release. Until then the
keeper extends it before it expires, in ChangeMessageVisibilityBatch calls of up to ten
entries, never past SQS's 12-hour cap. The acker waits for an extension in flight before it
deletes (`Lease.settled`), so a delete never races an extension.

Which leases to extend, when, and by how much, are pure functions (`leases_due`,
`next_wake`, `extension_timeout`) that tests call directly; `LeaseKeeper` does the I/O around them.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import anyio

from .._config import MAX_BATCH, MAX_VISIBILITY
from .._errors import SQSError
from .._message import Message
from .._sqs.base import SQSClient
from .stats import Counters

__all__ = ["Lease", "LeaseKeeper", "extension_lead", "extension_timeout", "leases_due", "next_wake"]

logger = logging.getLogger("aiosqsworker.leases")


@dataclass(eq=False, slots=True)
class Lease:
    """One received message's claim on its visibility.

    `expires_at` and `received_at` are on the event loop's clock (`anyio.current_time`).
    """

    message: Message
    received_at: float
    expires_at: float
    finished: bool = False
    lost: bool = False
    on_lost: Callable[[], None] | None = field(default=None, repr=False)
    _extending: anyio.Event | None = field(default=None, repr=False)

    @property
    def receipt_handle(self) -> str:
        return self.message.receipt_handle

    def finish(self) -> None:
        """Stop extending: the message is about to be deleted, retried or released."""
        self.finished = True

    async def settled(self) -> None:
        """Wait until no extension of this lease is in flight."""
        if self._extending is not None:
            await self._extending.wait()


def extension_timeout(lease: Lease, now: float, visibility_timeout: int) -> int:
    """Seconds to ask for now, or 0 when SQS's 12-hour cap leaves no room to extend."""
    room = MAX_VISIBILITY - (now - lease.received_at)
    return max(0, min(visibility_timeout, math.floor(room)))


# The room a failed extension call needs to be retried in time: botocore's standard mode
# backs off up to 3 s over its three attempts, then the keeper backs off and calls again.
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
    of what the lead leaves, on short windows) fills batches and halves the calls.
    """
    lead = extension_lead(visibility_timeout)
    slack = min(visibility_timeout * 0.25, (visibility_timeout - lead) * 0.5)
    horizon = now + lead + slack
    return [lease for lease in leases if lease.expires_at <= horizon]


def next_wake(leases: Iterable[Lease], visibility_timeout: int) -> float:
    """When the earliest lease becomes due, or infinity with nothing to watch."""
    earliest = min((lease.expires_at for lease in leases), default=math.inf)
    return earliest - extension_lead(visibility_timeout)


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
    ) -> None:
        self._client = client
        self._queue_url = queue_url
        self._visibility_timeout = visibility_timeout
        self._counters = counters
        self._consumer = consumer
        self._leases: dict[int, Lease] = {}
        self._wake = anyio.Event()
        self._wake_at = math.inf
        self._failures = 0
        self._lead = extension_lead(visibility_timeout)

    def lease(self, message: Message, received_at: float) -> Lease:
        """Start watching a message received at `received_at` (before its request was sent)."""
        lease = Lease(
            message=message,
            received_at=received_at,
            expires_at=received_at + self._visibility_timeout,
        )
        self._leases[id(lease)] = lease
        if lease.expires_at - self._lead < self._wake_at:
            self._wake.set()
        return lease

    def finish(self, lease: Lease) -> None:
        lease.finish()
        self._leases.pop(id(lease), None)

    def __len__(self) -> int:
        return len(self._leases)

    async def run(self) -> None:
        """Extend leases until cancelled."""
        while True:
            now = anyio.current_time()
            due = [
                lease
                for lease in leases_due(self._leases.values(), now, self._visibility_timeout)
                if not lease.finished
            ]
            if due:
                await self._extend(due, now)
                continue
            self._wake_at = next_wake(self._leases.values(), self._visibility_timeout)
            self._wake = anyio.Event()
            with anyio.move_on_after(max(0.0, self._wake_at - now)):
                await self._wake.wait()
            self._wake_at = math.inf

    async def _extend(self, due: list[Lease], now: float) -> None:
        batches: list[list[tuple[Lease, int]]] = []
        for lease in due:
            timeout = extension_timeout(lease, now, self._visibility_timeout)
            if timeout < self._visibility_timeout:
                # The last extension SQS allows: after it, the lease runs out at the cap.
                self._leases.pop(id(lease), None)
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
        outcomes: list[bool] = []
        async with anyio.create_task_group() as tg:
            for batch in batches:
                tg.start_soon(self._extend_batch, batch, now, outcomes)
        if all(outcomes):
            self._failures = 0
            return
        # Something was refused or unreachable: try again after a short back-off, which stays
        # well inside the lead time that is left.
        self._failures += 1
        await anyio.sleep(min(0.2 * 2 ** min(self._failures, 4), self._visibility_timeout / 8))

    async def _extend_batch(
        self, batch: list[tuple[Lease, int]], sent_at: float, outcomes: list[bool]
    ) -> None:
        done = anyio.Event()
        for lease, _ in batch:
            lease._extending = done
        entries = [
            (str(i), lease.receipt_handle, timeout) for i, (lease, timeout) in enumerate(batch)
        ]
        try:
            result = await self._client.change_visibility_batch(self._queue_url, entries)
        except SQSError as exc:
            self._counters.lease_extension_errors += 1
            outcomes.append(False)
            logger.warning(
                "[%s] extending %d leases failed, will retry: %s", self._consumer, len(batch), exc
            )
            return
        finally:
            for lease, _ in batch:
                lease._extending = None
            done.set()
        failures = {failure.id: failure for failure in result.failed}
        all_extended = True
        for i, (lease, timeout) in enumerate(batch):
            failure = failures.get(str(i))
            if failure is None:
                lease.expires_at = sent_at + timeout
                self._counters.leases_extended += 1
            elif lease.finished:
                continue  # finished while the call was in flight: nothing left to keep
            elif failure.receipt_invalid:
                self._lose(lease, failure.code)
            else:
                all_extended = False
                self._counters.lease_extension_errors += 1
                logger.warning(
                    "[%s] extending the lease of message %s failed (%s: %s), will retry",
                    self._consumer,
                    lease.message.message_id,
                    failure.code,
                    failure.message,
                )
        outcomes.append(all_extended)

    def _lose(self, lease: Lease, code: str) -> None:
        self._leases.pop(id(lease), None)
        lease.lost = True
        self._counters.leases_lost += 1
        logger.warning(
            "[%s] lost the lease of message %s (%s): another worker may be handling it now; "
            "its handler is cancelled",
            self._consumer,
            lease.message.message_id,
            code,
        )
        if lease.on_lost is not None:
            lease.on_lost()
