"""The lease keeper's thread: leases kept alive while the event loop is blocked.

Leases are extended on the event loop (`leases.LeaseKeeper`). An ``async`` handler that
blocks the loop (``time.sleep``, a synchronous SDK, heavy CPU work) would stop every
extension of the process, and its messages would run again on another worker. So each
keeper also shares its leases on a `LeaseBoard` and stamps a heartbeat there a few times a
second; `LeaseThread`, a thread of the worker, watches the boards. Once the loop has missed
its heartbeat for `takeover_after` and a lease comes due, the thread extends it itself, over
a blocking connection of its own (`_sqs/blocking.py`), signed with the credentials the loop
last froze for it. When the loop turns again the thread has nothing left to do: the keeper
extends as before.

The keeper stays the one owner of the lease records: the thread only reads them, and what
it extended or found lost is reported on the board, for the keeper to apply when the loop
turns (`LeaseBoard.take_reports`). A delete or visibility change of a message waits for the
thread's call on its handle (`LeaseBoard.settled`), as it waits for the keeper's own.

A loop blocked for longer than `limit` (``AppConfig.blocked_loop_limit``) is a stuck worker:
the thread stops extending and says so in one log line; the messages become visible to
other workers when their visibility timeout runs out.

Whether the loop counts as turning, blocked or stuck, and which leases to extend, are pure
functions (`loop_condition`, `leases_to_rescue`, `takeover_after`) that tests call directly.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .._backoff import backoff
from .._errors import SQSError
from .._sqs.base import BatchResult, SignedClient
from .._sqs.batches import read_answer
from .._sqs.blocking import BlockingVisibilityCalls
from .._sqs.limits import MAX_BATCH
from .._sqs.sigv4 import FrozenCredentials
from .._text import plural
from .leases import MAX_CALL_TIME, MIN_CALL_TIME, Lease, extension_lead, extension_timeout

__all__ = [
    "LeaseBoard",
    "LeaseReport",
    "LeaseThread",
    "leases_to_rescue",
    "loop_condition",
    "takeover_after",
]

logger = logging.getLogger("aiosqsworker.leases")

#: How often the keeper stamps its heartbeat, and how often the thread looks at it.
TICK = 0.1
#: How often the loop freezes the credentials again for the thread. Refreshable credentials
#: are refreshed by botocore at least 10 minutes before they expire, so ones frozen a
#: minute ago outlast any takeover shorter than 9 minutes.
CREDENTIALS_EVERY = 60.0
#: How long a delete waits between looks at a thread's call on its handle.
SETTLE_POLL = 0.02
#: How long a lease whose extension SQS refused (not as lost) waits before the next try.
RETRY_PAUSE = 0.5

LoopCondition = Literal["turning", "blocked", "stuck"]


def takeover_after(visibility_timeout: int) -> float:
    """How long the loop may miss its heartbeat before the thread extends what is due:
    half the keeper's lead, at most 1 s, so that the thread is still in time."""
    return min(1.0, extension_lead(visibility_timeout) / 2)


def loop_condition(silent_for: float, takeover: float, limit: float) -> LoopCondition:
    """The loop, by how long it has missed its heartbeat: turning (the keeper extends),
    blocked (the thread extends), or stuck past `limit` (no one does)."""
    if silent_for < takeover:
        return "turning"
    if silent_for < limit:
        return "blocked"
    return "stuck"


def leases_to_rescue(
    leases: Iterable[Lease],
    extended_until: Mapping[Lease, float],
    waiting_until: Mapping[Lease, float],
    now: float,
    visibility_timeout: int,
) -> list[tuple[Lease, int]]:
    """The leases the thread extends now, with the seconds to ask for each.

    A lease is due past the keeper's lead time, counted from the later of the keeper's
    expiry and the thread's own last extension. Finished and lost leases, those backing off
    after a failed call (`waiting_until`), and those SQS's 12-hour cap would cut short (the
    keeper's last extension is its own) are left alone. Times are on the loop's clock.
    """
    lead = extension_lead(visibility_timeout)
    due: list[tuple[Lease, int]] = []
    for lease in leases:
        if lease.finished or lease.lost:
            continue
        expires_at = max(lease.expires_at, extended_until.get(lease, -math.inf))
        if expires_at - lead > now or waiting_until.get(lease, -math.inf) > now:
            continue
        seconds = extension_timeout(lease, now, visibility_timeout)
        if seconds == visibility_timeout:
            due.append((lease, seconds))
    return due


@dataclass(frozen=True, slots=True)
class LeaseReport:
    """What the thread did with one lease, for the keeper to apply on the loop."""

    lease: Lease
    kind: Literal["extended", "lost", "failed"]
    expires_at: float = 0.0  # on the loop's clock, for "extended"
    code: str = ""  # SQS's error code, for "lost"


@dataclass(eq=False)
class LeaseBoard:
    """One consumer's leases as the thread sees them, and what it reports back.

    The keeper (on the loop) holds and drops leases, beats, and takes the reports; the
    thread claims the due ones, and answers for them, all under one lock.
    """

    #: Freezes the client's credentials for the thread (on the loop, rate-limited).
    refresh_credentials: Callable[[], Awaitable[None]]
    queue_url: str
    visibility_timeout: int
    consumer: str
    #: time.monotonic() minus the loop's clock: the thread reads the loop's clock through it.
    offset: float
    last_beat: float = field(default_factory=time.monotonic)
    closed: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # Leases are held by identity (a Lease compares so), not by receipt handle: a handle
    # is a string of some hundreds of characters, hashed anew for every message it keys.
    # In the order received (a dict's keys): the thread extends the oldest first.
    _leases: dict[Lease, None] = field(default_factory=dict, repr=False)
    _claimed: set[Lease] = field(default_factory=set, repr=False)
    _extended_until: dict[Lease, float] = field(default_factory=dict, repr=False)
    _waiting_until: dict[Lease, float] = field(default_factory=dict, repr=False)
    _reports: list[LeaseReport] = field(default_factory=list, repr=False)

    # The loop's side.

    def hold(self, lease: Lease) -> None:
        self.hold_all((lease,))

    def hold_all(self, leases: Iterable[Lease]) -> None:
        """Show the thread a poll's leases: one lock for the batch."""
        with self._lock:
            self._leases.update(dict.fromkeys(leases))

    def drop(self, lease: Lease) -> None:
        self.drop_all((lease,))

    def drop_all(self, leases: Sequence[Lease]) -> None:
        """The thread extends these no more: one lock for the batch. The thread's own
        records of them exist only after a takeover, so they are looked at only then."""
        with self._lock:
            pop = self._leases.pop
            for lease in leases:
                pop(lease, None)
            if self._extended_until or self._waiting_until:
                for lease in leases:
                    self._extended_until.pop(lease, None)
                    self._waiting_until.pop(lease, None)

    async def settled(self, lease: Lease) -> None:
        """Wait until no call of the thread carries this lease (dropped first, it is never
        claimed again). The wait is rare and short: a claim lasts one time-boxed call."""
        await self.settled_all((lease,))

    async def settled_all(self, leases: Iterable[Lease]) -> None:
        """`settled` for a batch (no wait at all while the thread claims nothing)."""
        for lease in leases:
            while self._claimed and lease in self._claimed:  # noqa: ASYNC110 - ended by a thread
                await asyncio.sleep(SETTLE_POLL)

    async def tend(self, apply: Callable[[list[LeaseReport]], None]) -> None:
        """Until cancelled: beat, keep the thread's credentials fresh, and hand the thread's
        reports to `apply`."""
        try:
            while True:
                self.last_beat = time.monotonic()
                await self.refresh_credentials()
                with self._lock:
                    reports, self._reports = self._reports, []
                if reports:
                    apply(reports)
                await asyncio.sleep(TICK)
        finally:
            with self._lock:
                self.closed = True
                self._leases.clear()

    # The thread's side.

    def claim(self, now: float) -> tuple[list[tuple[Lease, int]], float]:
        """The due leases, now claimed for one of the thread's calls, and the earliest
        expiry among them (the keeper's or the thread's, whichever is later)."""
        with self._lock:
            if self.closed:
                return [], math.inf
            due = leases_to_rescue(
                (lease for lease in self._leases if lease not in self._claimed),
                self._extended_until,
                self._waiting_until,
                now,
                self.visibility_timeout,
            )
            self._claimed.update(lease for lease, _ in due)
            earliest = min(
                (
                    max(lease.expires_at, self._extended_until.get(lease, -math.inf))
                    for lease, _ in due
                ),
                default=math.inf,
            )
            return due, earliest

    def answered(self, batch: list[tuple[Lease, int]], result: BatchResult, sent_at: float) -> int:
        """Record a call's answer; returns how many leases it extended. An entry the answer
        left out is not extended: it is tried again shortly, like a refused one."""
        answer = read_answer(range(len(batch)), result)  # reported in the batch's order
        failures = dict((*answer.retry, *answer.give_up))
        with self._lock:
            for i, (lease, seconds) in enumerate(batch):
                failure = failures.get(i)
                if failure is None:
                    expires_at = sent_at + seconds
                    if lease in self._leases:
                        self._extended_until[lease] = expires_at
                    self._reports.append(LeaseReport(lease, "extended", expires_at))
                elif failure.receipt_invalid:
                    self._leases.pop(lease, None)
                    self._reports.append(LeaseReport(lease, "lost", code=failure.code))
                else:  # refused for now (throttled, say) or unanswered: tried again shortly
                    self._waiting_until[lease] = sent_at + RETRY_PAUSE
                    self._reports.append(LeaseReport(lease, "failed"))
                self._claimed.discard(lease)
        return len(answer.done)

    def failed(self, batch: list[tuple[Lease, int]], retry_at: float) -> None:
        with self._lock:
            for lease, _ in batch:
                if lease in self._leases:
                    self._waiting_until[lease] = retry_at
                self._reports.append(LeaseReport(lease, "failed"))
                self._claimed.discard(lease)

    def held(self) -> int:
        with self._lock:
            return len(self._leases)


@dataclass(slots=True)
class _Stall:
    """What the thread did while the loop was blocked, for the line it logs afterwards."""

    longest: float = 0.0
    extended: int = 0
    failures: int = 0
    stuck: bool = False


class LeaseThread:
    """The worker's thread that extends leases while its event loop is blocked (see the
    module's docstring); entered and left on the loop, around the pipelines' run."""

    def __init__(self, client: SignedClient, *, limit: float) -> None:
        self.limit = limit
        self._client = client
        self._calls = BlockingVisibilityCalls(client.endpoint)
        self._boards: list[LeaseBoard] = []
        self._credentials: FrozenCredentials | None = None
        self._credentials_at = -math.inf
        self._stall: _Stall | None = None
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="aiosqsworker-leases", daemon=True)

    def board(self, queue_url: str, visibility_timeout: int, consumer: str) -> LeaseBoard:
        """A board for one consumer's keeper (called on the loop)."""
        board = LeaseBoard(
            self.refresh_credentials,
            queue_url,
            visibility_timeout,
            consumer,
            offset=time.monotonic() - asyncio.get_running_loop().time(),
        )
        self._boards.append(board)
        return board

    async def refresh_credentials(self) -> None:
        """Freeze the client's credentials for the thread, once a minute (on the loop)."""
        now = time.monotonic()
        if now - self._credentials_at < CREDENTIALS_EVERY:
            return
        self._credentials_at = now
        try:
            self._credentials = await self._client.signing_credentials()
        except Exception as exc:  # noqa: BLE001 - the client's own calls report it
            # Keep the last ones: a refresh that fails now must not end the keeper.
            logger.debug("could not freeze credentials for the lease keeper's thread: %s", exc)

    def __enter__(self) -> LeaseThread:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        self._thread.join(timeout=MAX_CALL_TIME + 1)
        if not self._thread.is_alive():
            self._calls.close()

    # The thread.

    def _watch(self) -> None:
        while not self._stopping.wait(TICK):
            boards = [board for board in self._boards if not board.closed]
            if not boards:
                continue
            silent_for = time.monotonic() - max(board.last_beat for board in boards)
            takeover = min(takeover_after(board.visibility_timeout) for board in boards)
            condition = loop_condition(silent_for, takeover, self.limit)
            if condition == "turning":
                self._stall_ended()
                continue
            stall = self._stall = self._stall or _Stall()
            stall.longest = silent_for
            if condition == "stuck":
                if not stall.stuck:
                    stall.stuck = True
                    self._let_go(boards, silent_for)
                continue
            for board in boards:
                try:
                    self._rescue(board, stall)
                except Exception:  # a bug here must not end the thread for good
                    logger.exception("[%s] the lease keeper's thread failed", board.consumer)

    def _rescue(self, board: LeaseBoard, stall: _Stall) -> None:
        credentials = self._credentials
        if credentials is None:  # none could be frozen yet: nothing to sign with
            return
        now = time.monotonic() - board.offset
        due, earliest = board.claim(now)
        if not due:
            return
        # Half of what the earliest lease has left, as `call_budget` gives the keeper's calls.
        timeout = max(MIN_CALL_TIME, min(MAX_CALL_TIME, (earliest - now) / 2))
        for start in range(0, len(due), MAX_BATCH):
            batch = due[start : start + MAX_BATCH]
            sent_at = time.monotonic() - board.offset
            try:
                result = self._calls.change_visibility_batch(
                    board.queue_url,
                    [
                        (str(i), lease.receipt_handle, seconds)
                        for i, (lease, seconds) in enumerate(batch)
                    ],
                    credentials,
                    timeout=timeout,
                )
            except SQSError as exc:
                stall.failures += 1
                board.failed(batch, sent_at + backoff(stall.failures, base=0.2, cap=1.0))
                logger.warning(
                    "[%s] the event loop is blocked and extending %s from the lease keeper's "
                    "thread failed, will retry: %s",
                    board.consumer,
                    plural(len(batch), "lease"),
                    exc,
                )
                continue
            stall.extended += board.answered(batch, result, sent_at)

    def _let_go(self, boards: list[LeaseBoard], silent_for: float) -> None:
        held = sum(board.held() for board in boards)
        logger.error(
            "the event loop has not turned for %.0f s (blocked_loop_limit=%g s): this worker "
            "is stuck, and its %s are let go: they are no longer extended, so their messages "
            "become visible to other workers within their visibility timeout (the watchdog's "
            "warning names the handler blocking the loop)",
            silent_for,
            self.limit,
            plural(held, "lease"),
        )

    def _stall_ended(self) -> None:
        stall, self._stall = self._stall, None
        if stall is None:
            return
        # Idle until the next stall, which may be hours away: a kept-alive connection would
        # be closed by the server by then, and fail the first call of that stall.
        self._calls.close()
        if stall.stuck:
            logger.warning(
                "the event loop turned again after %.1f s, past blocked_loop_limit: the "
                "leases it let go may have been received by another worker",
                stall.longest,
            )
        elif stall.extended or stall.failures:
            logger.info(
                "the event loop turned again after %.1f s blocked: the lease keeper's thread "
                "extended %s meanwhile",
                stall.longest,
                plural(stall.extended, "lease"),
            )
