"""Tenants on a fair queue: a cap per tenant, and turns taken round-robin.

On a standard queue a message's MessageGroupId names its tenant (SQS's fair queues). With
``max_per_tenant=N``, `TenantBuffer` takes the place of `MessageBuffer`: a handler slot gets
the next message of the next tenant in turn that has fewer than N running, so one noisy
tenant cannot take every slot. Messages sent without a group id are one tenant of their own
(``""``), capped like the others.

Back-pressure. A capped tenant's messages wait in the buffer, and the buffer is bounded by
the consumer's room: held without limit, one tenant's backlog would fill that room, polling
would stop, and the other tenants' messages would sit in SQS behind it. So a tenant keeps at
most N messages waiting (its next starts); the rest of what a poll brings for it is its
*surplus*, made visible again when the tenant could start it (`surplus_delay`: one more
handler duration over N for each surplus message already scheduled, as fair queueing's
virtual clock does), which frees the room to receive other tenants' messages and paces the
noisy tenant's redeliveries to its own rate. Every release costs the message a receive
(SQS counts deliveries), so a message that SQS's redrive would move on its next receive (its
last attempt) is kept rather than released. On SQS's own fair queues little is ever
surplus: SQS hands out a tenant's messages less readily while many of them are in flight.

Which tenant may start next, what is surplus and for how long are pure decisions, tested
directly.
"""

from __future__ import annotations

import asyncio
import heapq
import math
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping

from .clock import now
from .leases import Lease
from .stats import TenantStatistics

__all__ = [
    "OTHER_TENANTS",
    "TOP_TENANTS",
    "TenantBuffer",
    "next_tenant",
    "surplus_delay",
    "tenant_keeps",
    "top_tenants",
]

#: Tenants named in statistics and metrics; the others are summed under `OTHER_TENANTS`.
TOP_TENANTS = 10
OTHER_TENANTS = "other"
#: Tenants whose counts are kept by name; past this many, the smallest are folded together.
_TRACKED_TENANTS = 10_000
#: The longest a surplus message is kept invisible; past it, it is released again.
SURPLUS_MAX_DELAY = 900.0


def next_tenant(
    waiting: Mapping[str, deque[Lease]], running: Mapping[str, int], cap: int
) -> str | None:
    """The first tenant in turn with a message waiting and fewer than `cap` running."""
    for tenant, leases in waiting.items():
        if leases and running.get(tenant, 0) < cap:
            return tenant
    return None


def tenant_keeps(cap: int, latency: float, spare: int) -> int:
    """Messages one tenant keeps waiting: what it can start in a second (SQS counts a
    visibility in whole seconds, so its surplus comes back a second's worth at a time), at
    least `cap`, at most half the `spare` room (the consumer's room less a poll's worth):
    the rest stays free for polls that bring other tenants' messages."""
    return max(cap, min(math.ceil(cap / max(latency, 1e-6)), spare // 2))


def surplus_delay(due: float | None, at: float, keeps: int) -> tuple[float, int]:
    """When a tenant's next surplus message is due back, and its delay in whole seconds.

    `due` is when its surplus scheduled so far is due (None: none is). `keeps` messages come
    back each second, as many as the tenant keeps waiting: each is 1/`keeps` s after the
    last. At least 1 s (SQS's unit), at most `SURPLUS_MAX_DELAY`.
    """
    start = max(due, at) if due is not None else at
    due = min(start + 1.0 / keeps, at + SURPLUS_MAX_DELAY)
    return due, max(1, math.ceil(due - at))


def top_tenants(
    tallies: Mapping[str, list[int]],
    count: int = TOP_TENANTS,
    *,
    folded: tuple[int, ...] = (0, 0, 0, 0),
) -> tuple[TenantStatistics, ...]:
    """The `count` tenants with the most messages (running, waiting and handled), busiest
    first, then the rest (and the `folded` counts of tenants no longer tracked) summed as
    ``"other"``: bounded labels for metrics."""
    ranked = heapq.nlargest(count, tallies.items(), key=lambda item: (sum(item[1][:3]), item[0]))
    named = {tenant for tenant, _ in ranked}
    rows = [TenantStatistics(tenant, *tally) for tenant, tally in ranked]
    rest = list(folded)
    for tenant, tally in tallies.items():
        if tenant not in named:
            rest = [a + b for a, b in zip(rest, tally, strict=True)]
    if any(rest):
        rows.append(TenantStatistics(OTHER_TENANTS, *rest))
    return tuple(rows)


class TenantBuffer:
    """Buffered messages of a standard queue, per tenant, started round-robin under a cap.

    `on_surplus` receives the messages not kept (see the module's docstring); `keep` says
    whether a message must be kept anyway (its next receive would dead-letter it).
    """

    def __init__(
        self,
        max_per_tenant: int,
        *,
        on_surplus: Callable[[Lease, int], None],
        keep: Callable[[Lease], bool] = lambda lease: False,
        latency: Callable[[], float] = lambda: 0.1,
        spare: Callable[[], int] = lambda: 0,
    ) -> None:
        self.max_per_tenant = max_per_tenant
        self._spare = spare
        self._on_surplus = on_surplus
        self._keep = keep
        self._latency = latency
        self._due: dict[str, float] = {}  # per tenant: when its surplus could have started
        self._waiting: OrderedDict[str, deque[Lease]] = OrderedDict()
        self._running: dict[str, int] = {}
        # Per tenant: [running, waiting, handled, surplus], for statistics only.
        self._tallies: dict[str, list[int]] = {}
        self._folded = [0, 0, 0, 0]  # the tallies of tenants no longer tracked
        self._count = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False

    def __len__(self) -> int:
        return self._count

    def _tally(self, tenant: str) -> list[int]:
        tally = self._tallies.get(tenant)
        if tally is None:
            if len(self._tallies) >= _TRACKED_TENANTS:
                self._fold()
            tally = self._tallies[tenant] = [0, 0, 0, 0]
        return tally

    def _fold(self) -> None:
        """Fold the quieter half of the idle tenants into "other": memory stays bounded."""
        idle = sorted(
            (tenant for tenant, tally in self._tallies.items() if not tally[0] and not tally[1]),
            key=lambda tenant: self._tallies[tenant][2],
        )
        for tenant in idle[: len(idle) // 2 + 1]:
            tally = self._tallies.pop(tenant)
            self._folded[2] += tally[2]
            self._folded[3] += tally[3]

    def put(self, lease: Lease) -> None:
        if self._closed:
            raise RuntimeError("put() on a closed TenantBuffer")
        tenant = lease.message.group_id or ""
        leases = self._waiting.get(tenant)
        if leases is None:
            leases = self._waiting[tenant] = deque()
        tally = self._tally(tenant)
        if len(leases) >= self.max_per_tenant:
            keeps = tenant_keeps(self.max_per_tenant, self._latency(), self._spare())
            if len(leases) >= keeps and not self._keep(lease):
                tally[3] += 1
                self._on_surplus(lease, self._schedule(tenant, keeps))
                return
        leases.append(lease)
        tally[1] += 1
        self._count += 1
        if self._running.get(tenant, 0) < self.max_per_tenant:
            self._wake_one()

    def _schedule(self, tenant: str, keeps: int) -> int:
        """The delay of the tenant's next surplus message (`surplus_delay`)."""
        at = now()
        if len(self._due) >= _TRACKED_TENANTS:
            self._due = {t: due for t, due in self._due.items() if due > at}
        due = self._due.get(tenant)
        self._due[tenant], delay = surplus_delay(
            due if due is not None and due > at else None, at, keeps
        )
        return delay

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def get(self) -> Lease | None:
        """The next startable message, tenants in turn, or ``None`` once closed."""
        while not self._closed:
            lease = self.take_nowait()
            if lease is not None:
                return lease
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # woken, then cancelled: pass the wake-up on
                raise
        return None

    def take_nowait(self) -> Lease | None:
        """The next startable message if there is one now, else None (nothing waits)."""
        if self._closed:
            return None
        tenant = next_tenant(self._waiting, self._running, self.max_per_tenant)
        if tenant is None:
            return None
        leases = self._waiting[tenant]
        lease = leases.popleft()
        if leases:
            self._waiting.move_to_end(tenant)  # its turn is taken: the others go first
        else:
            del self._waiting[tenant]
        self._running[tenant] = self._running.get(tenant, 0) + 1
        tally = self._tally(tenant)
        tally[0] += 1
        tally[1] -= 1
        self._count -= 1
        if self._count and self._waiters:
            self._wake_one()  # another tenant may have a message startable now
        return lease

    def task_done(self, lease: Lease, *, succeeded: bool) -> list[Lease]:
        """A started message ended: its tenant may start another."""
        tenant = lease.message.group_id or ""
        running = self._running.get(tenant, 0) - 1
        if running > 0:
            self._running[tenant] = running
        else:
            self._running.pop(tenant, None)
        tally = self._tally(tenant)
        tally[0] -= 1
        tally[2] += 1
        if self._waiting.get(tenant):
            self._wake_one()
        return []

    def take_waiting(self) -> list[Lease]:
        """Take back every message not started yet (a pause); running ones stay counted."""
        waiting = [lease for leases in self._waiting.values() for lease in leases]
        for tenant in self._waiting:
            self._tally(tenant)[1] = 0
        self._waiting.clear()
        self._count = 0
        return waiting

    def close(self) -> list[Lease]:
        """Stop handing out messages; return every one never started, and wake the slots."""
        self._closed = True
        leftover = self.take_waiting()
        while self._waiters:
            self._wake_one()
        return leftover

    def statistics(self) -> tuple[TenantStatistics, ...]:
        return top_tenants(self._tallies, folded=tuple(self._folded))
