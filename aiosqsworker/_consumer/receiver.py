"""The receiver: long polling into the bounded buffer.

Each poller reserves room first (through `Flow`, in front of `Capacity`), then asks SQS for
at most that many messages with a long poll. A full or paused consumer therefore stops
polling; nothing sleeps on a timer except the back-off after an error.

How many polls are open adapts (`next_width`): an idle consumer keeps one long poll open,
about one request per `wait_time`, and a message sent meanwhile is answered by that poll at
once. A poll that comes back full widens the polling at once to what the free room needs
(a burst after a quiet hour does not trickle in one batch per round trip), up to
`poll_cap`, which grows with the room; each poll that comes back empty narrows it by one.

What each poll asks for is decided in one place, `plan_poll`, so that a stop never waits
long and never hides a message for long. SQS hands messages to a poll whose client has gone
away, and they then stay invisible for the visibility timeout that poll asked for. So:

- a **watch poll** (a poller's first, or one after an empty poll: the queue looks idle)
  waits the full `wait_time` but asks for a visibility of only `WATCH_VISIBILITY` seconds;
  the lease keeper extends what it brings to the consumer's full timeout at once (its
  lease starts due). A stop gives it up at once: a message it may still take is hidden for
  those few seconds, not for the visibility timeout;
- a **busy poll** (after one that brought messages: the queue has work) asks for the full
  visibility timeout, so that a busy queue costs no extension call, and waits at most
  `BUSY_WAIT` seconds (it returns at once anyway while messages wait). A stop lets it
  finish, and what it brings is released at once.

Only a forced stop, or a shutdown budget that runs out first, abandons busy polls
(`abandon`): at most one poll's worth per poller, invisible for one visibility timeout.
(A client whose abandoned polls take nothing, the in-memory SQS, has every poll planned as
a plain one that may be given up, with the full visibility timeout.)
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
from anyio.abc import TaskGroup

from .._backoff import backoff
from .._config import ConsumerConfig
from .._errors import AccessDeniedError, CredentialsError, QueueNotFoundError, SQSError
from .._message import Message
from .._sqs.base import SQSClient
from .buffer import Buffer
from .flow import Flow
from .inflight import InFlight
from .leases import Lease
from .outcomes import Outcome
from .receivecount import ReceiveCountCheck
from .stats import Counters

__all__ = [
    "BUSY_WAIT",
    "WATCH_VISIBILITY",
    "PollPlan",
    "Receiver",
    "next_width",
    "plan_poll",
    "poll_cap",
    "poll_pause",
    "poller_count",
]

logger = logging.getLogger("aiosqsworker.receiver")

#: Errors no back-off will cure: the consumer stops and says why.
FATAL_ERRORS = (QueueNotFoundError, CredentialsError, AccessDeniedError)
#: Most long polls one consumer keeps open while its room is under 1,600 messages.
MAX_POLLERS = 16
#: Beyond that, one more poll per this many messages of room...
ROOM_PER_POLL = 100
#: ...up to this many (each open poll holds a connection).
MAX_POLLS = 128
#: The visibility timeout a watch poll asks for: the longest a stop may hide a message, and
#: the time the lease keeper has for its first extension (a call, and a retry, in time).
WATCH_VISIBILITY = 5
#: The longest wait of a busy poll: what a stop may have to wait for an open poll.
BUSY_WAIT = 2


@dataclass(frozen=True, slots=True)
class PollPlan:
    """What one ReceiveMessage asks for, and whether a stop may give it up while it is open."""

    wait_time: int
    visibility_timeout: int
    abandonable: bool


def plan_poll(
    *, busy: bool, wait_time: int, visibility_timeout: int, abandoned_polls_take: bool = True
) -> PollPlan:
    """The next poll of a poller whose last poll brought messages (`busy`) or not.

    A poll that a stop may give up must not hide what it takes for long: a watch poll asks
    for `WATCH_VISIBILITY` seconds (or the consumer's timeout, if shorter). A busy poll keeps
    the full timeout (no extension call per message on a busy queue) and is therefore let
    finish at a stop, so it waits at most `BUSY_WAIT`. A timeout no longer than
    `WATCH_VISIBILITY`, or a client whose given-up polls take nothing
    (`abandoned_polls_take` false), makes every poll a plain one that may be given up.
    """
    if not abandoned_polls_take or visibility_timeout <= WATCH_VISIBILITY:
        return PollPlan(wait_time, visibility_timeout, abandonable=True)
    if busy:
        return PollPlan(min(wait_time, BUSY_WAIT), visibility_timeout, abandonable=False)
    return PollPlan(wait_time, WATCH_VISIBILITY, abandonable=True)


def poll_cap(capacity: int, batch: int) -> int:
    """Most polls open at once: one batch each to fill the room, within a bound that grows.

    Up to 16, or one per 100 messages of room on larger consumers (101 for 10,000 in
    flight), at most 128: a round trip under load takes tens of milliseconds, and 10,000
    one-second handlers need a thousand polls a second.
    """
    bound = max(MAX_POLLERS, min(MAX_POLLS, math.ceil(capacity / ROOM_PER_POLL)))
    return max(1, min(bound, math.ceil(capacity / batch)))


def poller_count(config: ConsumerConfig) -> int:
    """`poll_cap` of a consumer's configured room."""
    return poll_cap(config.capacity, config.max_messages)


def next_width(
    width: int, *, asked: int, brought: int, open_polls: int, free: int, batch: int, cap: int
) -> int:
    """How many polls to keep after one came back with `brought` of the `asked` messages.

    Empty: one fewer, so that an idle consumer narrows to one long poll. Full: at once as
    many as the free room needs (`free` counts neither held messages nor the room of the
    `open_polls` still out), at most `cap`. Partly filled: the queue ran dry under this
    poll, so the width stays.
    """
    if brought == 0:
        return max(1, min(width, cap) - 1)
    if brought < asked:
        return max(1, min(width, cap))
    wanted = open_polls + math.ceil(max(0, free) / batch)
    return max(1, min(cap, max(width, wanted)))


def poll_pause(consecutive_errors: int) -> float:
    """Back-off after a failed poll: 0.5 s doubling to 20 s, with jitter (never zero)."""
    return backoff(consecutive_errors - 1, base=0.5, cap=20.0)


class Receiver:
    """Polls one queue into a `MessageBuffer`, starting a lease for each message."""

    def __init__(
        self,
        client: SQSClient,
        queue_url: str,
        config: ConsumerConfig,
        visibility_timeout: int,
        flow: Flow,
        buffer: Buffer[Lease],
        inflight: InFlight,
        counters: Counters,
        *,
        consumer: str,
        on_buffered: Callable[[], None] = lambda: None,
    ) -> None:
        self._client = client
        self._queue_url = queue_url
        self._config = config
        self._visibility_timeout = visibility_timeout
        self._flow = flow
        self._capacity = flow.capacity
        self._buffer = buffer
        self._inflight = inflight
        self._counters = counters
        self._consumer = consumer
        self._on_buffered = on_buffered
        self._stopping = False
        self._abandoned_polls_take = client.cancelled_polls_take_messages
        self._open_polls = 0
        #: When each open poll that a stop must let finish (a busy one) ends at the latest.
        self._unabandonable_ends: list[float] = []
        self._pollers = 0
        self._width = 1
        self._task_group: TaskGroup | None = None
        self._polls_closed = anyio.Event()
        self._waiting_for_room = 0
        self._scope = anyio.CancelScope()
        self._receive_counts = ReceiveCountCheck(consumer, queue_url)
        # `now()`, with the loop looked up once (each lookup is a system call on Python 3.11).
        self._clock = asyncio.get_running_loop().time
        self.last_completed_poll = self._clock()

    @property
    def open_polls(self) -> int:
        return self._open_polls

    @property
    def width(self) -> int:
        """Polls kept now: open, or waiting for room to open."""
        return self._pollers

    def polls_to_wait_for(self, now: float) -> tuple[int, float]:
        """Open polls a stop lets finish, and the seconds until the last of them returns."""
        ends = self._unabandonable_ends
        return len(ends), max((end - now for end in ends), default=0.0)

    def _running_dry(self) -> bool:
        return not len(self._buffer) and not self._open_polls

    def stalled(self, now: float) -> bool:
        """True when no poll completed for twice the wait (plus slack) though there was room.

        A consumer whose handlers fill its capacity does not poll, by design: that is
        back-pressure, not a stall.
        """
        if self._waiting_for_room or self._stopping or self._flow.idle_on_purpose:
            return False
        return now - self.last_completed_poll > 2 * self._config.wait_time + 5

    def stop(self) -> None:
        """Start no new poll; what the polls still open bring is released at once."""
        self._stopping = True
        self._flow.close()

    async def polls_finished(self) -> None:
        """Wait until no poll that a stop must let finish is open any more (after `stop`):
        the open polls left may be given up (`abandon`) without hiding a message for long."""
        if self._unabandonable_ends:
            await self._polls_closed.wait()

    def abandon(self) -> None:
        """Cancel the polls still open: those that may be given up, or, when a forced stop
        or a shutdown out of time calls it early, every one."""
        self._scope.cancel()

    async def run(self) -> None:
        self.last_completed_poll = self._clock()
        with self._scope:
            async with anyio.create_task_group() as tg:
                self._task_group = tg
                self._widen(1, busy=False)

    def _widen(self, width: int, *, busy: bool) -> None:
        """Keep `width` pollers: start the missing ones (`busy`: messages wait); extra ones
        retire as they come back."""
        self._width = width
        assert self._task_group is not None
        while self._pollers < width and not self._stopping:
            self._pollers += 1
            self._task_group.start_soon(self._poll_loop, busy)

    async def _poll_loop(self, busy: bool) -> None:
        try:
            await self._poll_until_retired(busy)
        finally:
            self._pollers -= 1

    async def _poll_until_retired(self, busy: bool) -> None:
        batch = self._config.max_messages
        errors = 0
        while not self._stopping and self._pollers <= self._width:
            self._waiting_for_room += 1
            try:
                # A full batch of room per call keeps requests per message low; but once the
                # buffer has run dry with no poll under way to refill it, free handlers would
                # sit idle: then any room will do.
                at_least = min(batch, self._capacity.total)
                room = await self._flow.reserve(at_least, batch, or_when=self._running_dry)
                epoch = self._flow.epoch  # changed by a circuit breaker: see `_accept`
            finally:
                self._waiting_for_room -= 1
            if room == 0 or self._stopping:
                self._flow.give_back(room)
                return
            plan = plan_poll(
                busy=busy,
                wait_time=self._config.wait_time,
                visibility_timeout=self._visibility_timeout,
                abandoned_polls_take=self._abandoned_polls_take,
            )
            sent_at = self._clock()
            end = sent_at + plan.wait_time
            self._poll_started(plan, end)
            try:
                raw_messages = await self._client.receive_messages(
                    self._queue_url,
                    max_messages=room,
                    wait_time=plan.wait_time,
                    visibility_timeout=plan.visibility_timeout,
                )
            except FATAL_ERRORS:
                self._flow.give_back(room)
                raise
            except SQSError as exc:
                self._flow.give_back(room, epoch)
                errors += 1
                self._counters.poll_errors += 1
                pause = poll_pause(errors)
                logger.warning(
                    "[%s] receiving failed (%d in a row), retrying in %.1f s: %s",
                    self._consumer,
                    errors,
                    pause,
                    exc,
                )
                await anyio.sleep(pause)
                continue
            finally:
                self._poll_ended(plan, end)
            errors = 0
            busy = bool(raw_messages)
            self._counters.polls += 1
            self._counters.last_poll_at = time.time()
            self.last_completed_poll = self._clock()
            self._flow.give_back(room - len(raw_messages), epoch)
            accepted = self._accept(
                raw_messages, sent_at, plan.visibility_timeout, stale=epoch != self._flow.epoch
            )
            del raw_messages  # not kept alive while this poller waits for room
            if not self._stopping:
                self._widen(
                    next_width(
                        self._width,
                        asked=room,
                        brought=accepted,
                        open_polls=self._open_polls,
                        free=self._capacity.total - self._capacity.used,
                        batch=batch,
                        cap=poll_cap(self._capacity.total, batch),
                    ),
                    busy=True,
                )

    def _poll_started(self, plan: PollPlan, end: float) -> None:
        self._open_polls += 1
        if not plan.abandonable:
            self._unabandonable_ends.append(end)

    def _poll_ended(self, plan: PollPlan, end: float) -> None:
        self._open_polls -= 1
        if not plan.abandonable:
            self._unabandonable_ends.remove(end)
        if not self._unabandonable_ends and self._stopping:
            self._polls_closed.set()

    def _accept(
        self,
        raw_messages: list[dict[str, Any]],
        sent_at: float,
        visibility_timeout: int,
        *,
        stale: bool,
    ) -> int:
        """Admit and buffer what a poll brought, hidden for `visibility_timeout` from
        `sent_at`; returns how many were buffered. A `stale` poll was reserved before a
        circuit breaker opened or probed: it hands back what it brings too."""
        self._receive_counts.observe(raw_messages)
        handing_back = self._stopping or self._flow.holding or stale
        shared: dict[str, str] = {}
        messages = [Message.from_sqs(raw, self._queue_url, shared) for raw in raw_messages]
        for lease in self._inflight.admit_all(messages, sent_at, visibility_timeout):
            if handing_back:
                # A poll that was open when the stop or the pause came: hand its messages
                # straight back.
                self._inflight.settle(lease, Outcome.RELEASE)
                logger.info(
                    "[%s] released message %s received after the %s",
                    self._consumer,
                    lease.message.message_id,
                    "stop" if self._stopping else "pause" if self._flow.paused else "breaker",
                )
            else:
                self._buffer.put(lease)
        if handing_back:
            self._flow.not_started(len(raw_messages))
            return 0
        if raw_messages:
            self._on_buffered()
        return len(raw_messages)
