"""`InFlight` (`_consumer/inflight.py`): the one settle path of a message in flight.

No server here: a recording acker stands in for the calls, and the tests say what is
counted and when room comes back.
"""

from __future__ import annotations

import anyio

from aiosqsworker._consumer.buffer import Capacity
from aiosqsworker._consumer.inflight import InFlight, Settling
from aiosqsworker._consumer.leases import LeaseKeeper
from aiosqsworker._consumer.outcomes import Outcome
from aiosqsworker._consumer.stats import Counters

from .factories import received


class RecordingAcker:
    def __init__(self) -> None:
        self.sent: list[Settling] = []

    def send(self, settling: Settling) -> None:
        self.sent.append(settling)


def consumer_parts(capacity: int = 4) -> tuple[InFlight, Capacity, Counters, RecordingAcker]:
    room, counters, acker = Capacity(capacity), Counters(), RecordingAcker()
    keeper = LeaseKeeper(None, "queue", 30, counters, consumer="c")  # type: ignore[arg-type]
    inflight = InFlight(room, keeper, counters, consumer="c")
    inflight.connect(acker)
    return inflight, room, counters, acker


async def test_room_comes_back_once_the_call_has_ended_not_when_it_is_queued() -> None:
    """Naive code it catches: giving the room back when the delete is queued, so that slow
    deletes pile up instead of slowing the polling down."""
    inflight, room, counters, acker = consumer_parts()
    assert await room.reserve(1, 1) == 1
    lease = inflight.admit(received(), anyio.current_time())
    inflight.settle(lease, Outcome.ACK)
    assert (room.used, counters.succeeded) == (1, 0)  # queued: held, not yet a success
    [settling] = acker.sent
    await inflight.handing_over([settling])
    assert lease.finished
    inflight.delivered([settling])
    assert (room.used, counters.succeeded, counters.deleted) == (0, 1, 1)


async def test_a_lost_lease_is_settled_at_once_with_nothing_sent() -> None:
    inflight, room, _, acker = consumer_parts()
    await room.reserve(1, 1)
    lease = inflight.admit(received(), anyio.current_time())
    inflight.settle(lease, Outcome.LOST)
    assert (acker.sent, room.used, lease.finished) == ([], 0, True)


async def test_what_a_given_up_delete_is_counted_as_depends_on_what_is_known() -> None:
    """A gone receipt handle is a lost lease; after an attempt whose answer was lost, the
    outcome is unknown; anything else is a delete failure. None of them is a success."""
    inflight, room, counters, acker = consumer_parts(capacity=3)
    await room.reserve(3, 3)
    for _ in range(3):
        inflight.settle(inflight.admit(received(), anyio.current_time()), Outcome.ACK)
    gone, unknown, refused = acker.sent
    unknown.unconfirmed = True
    inflight.given_up(gone, "ReceiptHandleIsInvalid: gone", receipt_invalid=True)
    inflight.given_up(unknown, "ReceiptHandleIsInvalid: gone", receipt_invalid=True)
    inflight.given_up(refused, "AccessDenied: no", receipt_invalid=False)
    assert counters.leases_lost == 1
    assert counters.deletes_unconfirmed == 1
    assert counters.delete_failures == 1
    assert (counters.succeeded, counters.deleted, room.used) == (0, 0, 0)


def test_failures_are_counted_when_settled_and_changes_when_confirmed() -> None:
    inflight, _, counters, acker = consumer_parts()
    lease = inflight.admit(received(), 0.0)
    inflight.settle(lease, Outcome.RETRY, delay=5)
    assert (counters.failed, counters.retried) == (1, 0)
    [retry] = acker.sent
    assert (retry.is_delete, retry.urgent, retry.timeout) == (False, False, 5)
    inflight.delivered([retry])
    assert counters.retried == 1
    release = Settling(inflight.admit(received(), 0.0), Outcome.RELEASE)
    assert release.urgent
    inflight.delivered([release])
    assert counters.released == 1
