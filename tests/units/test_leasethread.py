"""The lease keeper's thread (`_consumer/leasethread.py`): when it takes over, which leases
it extends, and the board it shares with the keeper. Called directly: no server, no thread
of the framework's (a test thread plays its part where one is needed)."""

from __future__ import annotations

import threading
import time

import anyio

from aiosqsworker._consumer.buffer import Capacity
from aiosqsworker._consumer.inflight import InFlight, Settling
from aiosqsworker._consumer.leases import Lease, LeaseKeeper
from aiosqsworker._consumer.leasethread import (
    LeaseBoard,
    leases_to_rescue,
    loop_condition,
    takeover_after,
)
from aiosqsworker._consumer.outcomes import Outcome
from aiosqsworker._consumer.stats import Counters
from aiosqsworker._sqs.base import BatchEntryFailure, BatchResult
from aiosqsworker.testing import MemorySQS

from .factories import message


def lease(expires_at: float, *, received_at: float = 0.0, name: str = "m") -> Lease:
    return Lease(message=message(message_id=name), received_at=received_at, expires_at=expires_at)


async def no_credentials() -> None:
    return None


def board(visibility_timeout: int = 5) -> LeaseBoard:
    return LeaseBoard(no_credentials, "https://queue", visibility_timeout, "c", offset=0.0)


def reports_of(shared: LeaseBoard) -> list[tuple[str, str, float]]:
    """What the board hands the keeper on its next turn: (message id, kind, expiry) each."""
    reports: list[tuple[str, str, float]] = []

    async def tend_once() -> None:
        with anyio.move_on_after(0.05):
            await shared.tend(
                lambda batch: reports.extend(
                    (r.lease.message.message_id, r.kind, r.expires_at) for r in batch
                )
            )

    anyio.run(tend_once)
    return reports


def test_the_loop_is_blocked_after_half_the_lead_and_stuck_past_the_limit() -> None:
    """Half the keeper's lead, at most 1 s: a 1 s window is taken over after 0.25 s (in time
    for its expiry), a 5 s window after 1 s; past the limit nobody extends.

    Naive code it catches: one fixed takeover delay longer than a short window.
    """
    assert takeover_after(1) == 0.25
    assert takeover_after(5) == 1.0
    assert takeover_after(30) == 1.0
    assert loop_condition(0.2, 0.25, 300) == "turning"
    assert loop_condition(0.25, 0.25, 300) == "blocked"
    assert loop_condition(299.9, 1.0, 300) == "blocked"
    assert loop_condition(300, 1.0, 300) == "stuck"


def test_the_thread_extends_due_leases_counting_its_own_extensions() -> None:
    """Due past the keeper's lead, from the later of the keeper's expiry and the thread's
    own; not finished, lost, backing off, or cut short by the 12-hour cap.

    Naive code it catches: a thread that reads only the keeper's expiries (stale while the
    loop is blocked) and extends every lease on every tick, or one that extends a lease the
    loop has finished.
    """
    due, later, finished, lost, waiting, extended = (
        lease(10.0, name=name) for name in ("due", "later", "finished", "lost", "waiting", "ext")
    )
    later.expires_at = 20.0
    finished.finish()
    lost.lost = True
    capped = lease(43_203.0, name="capped")
    chosen = leases_to_rescue(
        [due, later, finished, lost, waiting, extended, capped],
        {extended: 16.0},
        {waiting: 7.0},
        now=6.5,
        visibility_timeout=5,  # lead 4 s
    )
    assert chosen == [(due, 5)]
    # 2 s before the cap: the keeper's last, shortened extension is its own.
    assert leases_to_rescue([capped], {}, {}, now=43_198.0, visibility_timeout=5) == []


def test_a_lease_dropped_by_the_loop_is_never_claimed_and_a_claimed_one_is_extended_once() -> None:
    """The board's claim: a due lease is claimed by one call at a time; an answer moves its
    expiry (the thread's own) and reports it for the keeper; a lease the loop dropped first
    is not claimed at all.

    Naive code it catches: a thread that claims a lease the loop has handed to the acker
    (an extension after a release would hide the message again).
    """
    shared = board()
    kept, handed_over = lease(5.0, name="kept"), lease(5.0, name="gone")
    shared.hold(kept)
    shared.hold(handed_over)
    shared.drop(handed_over)
    due, earliest = shared.claim(now=2.0)
    assert (due, earliest) == ([(kept, 5)], 5.0)
    assert shared.claim(now=2.0) == ([], float("inf"))  # claimed: not twice at once
    assert shared.answered(due, BatchResult(successful=("0",)), sent_at=2.1) == 1
    assert shared.claim(now=2.2) == ([], float("inf"))  # extended to 7.1: due at 3.1
    assert shared.claim(now=3.2)[0] == [(kept, 5)]


def test_the_thread_reports_what_it_extended_lost_and_failed() -> None:
    """Every lease of an answer is reported for the keeper: extended (with its new expiry),
    lost (the receipt is no longer ours: never claimed again), or failed (backing off).

    Naive code it catches: a thread that updates the lease records itself from its own
    thread, or drops a lost lease silently (its handler would run on, unaware).
    """
    shared = board()
    a, b, c = (lease(5.0, name=name) for name in "abc")
    for held in (a, b, c):
        shared.hold(held)
    due, _ = shared.claim(now=2.0)
    result = BatchResult(
        successful=("0",),
        failed=(
            BatchEntryFailure("1", "ReceiptHandleIsInvalid", "gone", True),
            BatchEntryFailure("2", "InternalError", "try again", False),
        ),
    )
    shared.answered(due, result, sent_at=2.0)
    reports = reports_of(shared)
    assert reports == [("a", "extended", 7.0), ("b", "lost", 0.0), ("c", "failed", 0.0)]
    assert shared.held() == 0  # the board closes with the keeper


def test_an_extension_the_answer_leaves_out_is_reported_failed_and_claimed_again() -> None:
    """The thread's call carries a and b; SQS's answer confirms a and does not mention b.
    b keeps the keeper's expiry (5.0), is reported failed, and is claimed again once its
    short pause is over, still due from that expiry.

    Naive change it catches: a thread that reads every entry not under ``Failed`` as
    extended (its old reading): b would be reported extended to 7.0, the keeper would move
    its expiry there, and neither would extend it before it reappears at 5.0.
    """
    shared = board()
    a, b = lease(5.0, name="a"), lease(5.0, name="b")
    shared.hold(a)
    shared.hold(b)
    due, _ = shared.claim(now=2.0)
    assert due == [(a, 5), (b, 5)]
    assert shared.answered(due, BatchResult(successful=("0",)), sent_at=2.0) == 1
    assert shared.claim(now=2.2) == ([], float("inf"))  # a extended to 7.0; b pauses
    assert shared.claim(now=2.6) == ([(b, 5)], 5.0)
    reports = reports_of(shared)
    assert reports == [("a", "extended", 7.0), ("b", "failed", 0.0)]


async def test_a_delete_waits_for_the_threads_call_on_its_lease() -> None:
    """The loop finishes a lease while the thread's call on it is in flight: `settled`
    returns only once the answer is in.

    Naive code it catches: a delete or release sent while the thread's extension of the
    same handle is still on its way (the release would be undone).
    """
    shared = board()
    held = lease(5.0, name="held")
    shared.hold(held)
    due, _ = shared.claim(now=2.0)
    answered_at: list[float] = []

    def answer_later() -> None:
        time.sleep(0.3)
        answered_at.append(time.monotonic())
        shared.answered(due, BatchResult(successful=("0",)), sent_at=2.0)

    answering = threading.Thread(target=answer_later)
    answering.start()
    shared.drop(held)
    await shared.settled(held)
    settled_at = time.monotonic()
    answering.join()
    assert answered_at
    assert settled_at >= answered_at[0]


async def test_what_the_thread_extended_reaches_the_keepers_on_extended_hook() -> None:
    """The keeper applies the thread's reports on the loop and tells `on_extended` (an
    idempotency store's records) of the leases extended, at their new expiry; a lost or
    failed one is not told.

    Naive code it catches: reports applied to the lease records only, so a record claimed for
    the lease's time left expires while the thread keeps the message invisible (the keeper's
    next extension, planned from the thread's later expiry, comes after the record is gone).
    """
    shared = board(visibility_timeout=30)
    told: list[tuple[str, float]] = []
    keeper = LeaseKeeper(
        MemorySQS(),
        "https://queue",
        30,
        Counters(),
        consumer="c",
        board=shared,
        on_extended=lambda leases: told.extend(
            (held.message.message_id, held.expires_at) for held in leases
        ),
    )
    now = anyio.current_time()
    # Not due for 15 s: the keeper makes no call of its own meanwhile.
    extended, lost, failed = (
        keeper.lease(message(message_id=name), received_at=now) for name in ("ext", "lost", "fail")
    )
    result = BatchResult(
        successful=("0",),
        failed=(
            BatchEntryFailure("1", "ReceiptHandleIsInvalid", "gone", True),
            BatchEntryFailure("2", "InternalError", "try again", False),
        ),
    )
    shared.answered([(extended, 30), (lost, 30), (failed, 30)], result, sent_at=now + 1.0)
    with anyio.move_on_after(0.3):
        await keeper.run()
    assert told == [("ext", now + 31.0)]
    assert extended.expires_at == now + 31.0
    assert lost.lost


async def test_a_batch_handed_over_is_finished_whole_before_it_waits_for_the_thread() -> None:
    """The acker hands a batch of three over while the thread's call on the first is in
    flight: all three are finished at once, so the thread claims none of the other two
    while the delete waits for that call.

    Naive code it catches: finishing and awaiting a batch lease by lease (the board told
    once per message): while the delete waits on the first lease, the thread starts
    extending the batch's later ones, and the delete then waits for those calls too.
    """
    shared = board()
    counters = Counters()
    keeper = LeaseKeeper(None, "q", 5, counters, consumer="c", board=shared)  # type: ignore[arg-type]
    inflight = InFlight(Capacity(10), keeper, counters, consumer="c")
    first = inflight.admit(message(message_id="a"), 0.0, 5)  # due (lead 4 s) from 1.0
    later = [inflight.admit(message(message_id=n), 1.5, 5) for n in "bc"]  # due from 2.5
    in_flight, _ = shared.claim(now=2.0)
    assert in_flight == [(first, 5)]
    claimed_meanwhile: list[list[tuple[Lease, int]]] = []

    def thread_part() -> None:
        time.sleep(0.2)
        claimed_meanwhile.append(shared.claim(now=3.0)[0])  # b and c are due by now
        shared.answered(in_flight, BatchResult(successful=("0",)), sent_at=2.0)

    lease_thread = threading.Thread(target=thread_part)
    lease_thread.start()
    with anyio.fail_after(5):
        await inflight.handing_over([Settling(lease, Outcome.ACK) for lease in [first, *later]])
    lease_thread.join()
    assert claimed_meanwhile == [[]]
    assert shared.held() == 0
    assert len(keeper) == 0
