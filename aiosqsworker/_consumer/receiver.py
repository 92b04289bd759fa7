"""The receiver: long polling into the bounded buffer.

Each poller reserves room first (through `Flow`, in front of `Capacity`), then asks SQS for
at most that many messages with a long poll. A full or paused consumer therefore stops
polling; nothing sleeps on a timer except the back-off after an error.

How many polls are open adapts (`next_width`): an idle consumer keeps one long poll open,
about one request per `wait_time`, and a message sent meanwhile is answered by that poll at
once. A poll that comes back full widens the polling at once to what the free room needs
(a burst after a quiet hour does not trickle in one batch per round trip), up to
`poll_cap`, which grows with the room; each poll that comes back empty narrows it by one.

On stop no new poll starts. A poll already open is let finish (it returns within
`wait_time`), because SQS hands messages to a poll whose client has gone away and they would
then stay invisible for their whole timeout: what such a late poll returns is released at
once. Only a forced stop, or a shutdown budget that runs out first, abandons open polls
(`abandon`), which is the only way a message can be stranded: at most one poll's worth per
poller, invisible for one visibility timeout. (A client whose abandoned polls take nothing,
the in-memory SQS, has its polls abandoned at every stop.)
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

import anyio
from anyio.abc import TaskGroup

from .._backoff import backoff
from .._config import ConsumerConfig
from .._errors import AccessDeniedError, CredentialsError, QueueNotFoundError, SQSError
from .._message import Message
from .._sqs.base import SQSClient
from .buffer import Buffer
from .clock import now
from .flow import Flow
from .inflight import InFlight
from .leases import Lease
from .outcomes import Outcome
from .receivecount import ReceiveCountCheck
from .stats import Counters

__all__ = ["Receiver", "next_width", "poll_cap", "poll_pause", "poller_count"]

logger = logging.getLogger("aiosqsworker.receiver")

#: Errors no back-off will cure: the consumer stops and says why.
FATAL_ERRORS = (QueueNotFoundError, CredentialsError, AccessDeniedError)
#: Most long polls one consumer keeps open while its room is under 1,600 messages.
MAX_POLLERS = 16
#: Beyond that, one more poll per this many messages of room...
ROOM_PER_POLL = 100
#: ...up to this many (each open poll holds a connection).
MAX_POLLS = 128


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
        self._open_polls = 0
        self._pollers = 0
        self._width = 1
        self._task_group: TaskGroup | None = None
        self._polls_closed = anyio.Event()
        self._waiting_for_room = 0
        self._scope = anyio.CancelScope()
        self._receive_counts = ReceiveCountCheck(consumer, queue_url)
        self.last_completed_poll = now()

    @property
    def open_polls(self) -> int:
        return self._open_polls

    @property
    def width(self) -> int:
        """Polls kept now: open, or waiting for room to open."""
        return self._pollers

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
        """Start no new poll; polls already open finish and their messages are released."""
        self._stopping = True
        self._flow.close()

    async def polls_finished(self) -> None:
        """Wait until no poll is open any more (after `stop`)."""
        if self._open_polls:
            await self._polls_closed.wait()

    def abandon(self) -> None:
        """Cancel the polls still open (a forced stop, or a shutdown out of time)."""
        self._scope.cancel()

    async def run(self) -> None:
        self.last_completed_poll = now()
        with self._scope:
            async with anyio.create_task_group() as tg:
                self._task_group = tg
                self._widen(1)

    def _widen(self, width: int) -> None:
        """Keep `width` pollers: start the missing ones; extra ones retire as they come back."""
        self._width = width
        assert self._task_group is not None
        while self._pollers < width and not self._stopping:
            self._pollers += 1
            self._task_group.start_soon(self._poll_loop)

    async def _poll_loop(self) -> None:
        try:
            await self._poll_until_retired()
        finally:
            self._pollers -= 1

    async def _poll_until_retired(self) -> None:
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
            sent_at = now()
            self._open_polls += 1
            try:
                raw_messages = await self._client.receive_messages(
                    self._queue_url,
                    max_messages=room,
                    wait_time=self._config.wait_time,
                    visibility_timeout=self._visibility_timeout,
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
                self._poll_ended()
            errors = 0
            self._counters.polls += 1
            self._counters.last_poll_at = time.time()
            self.last_completed_poll = now()
            self._flow.give_back(room - len(raw_messages), epoch)
            accepted = self._accept(raw_messages, sent_at, stale=epoch != self._flow.epoch)
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
                    )
                )

    def _poll_ended(self) -> None:
        self._open_polls -= 1
        if not self._open_polls and self._stopping:
            self._polls_closed.set()

    def _accept(self, raw_messages: list[dict[str, Any]], sent_at: float, *, stale: bool) -> int:
        """Admit and buffer what a poll brought; returns how many were buffered. A `stale`
        poll was reserved before a circuit breaker opened or probed: it hands back too."""
        self._receive_counts.observe(raw_messages)
        handing_back = self._stopping or self._flow.holding or stale
        shared: dict[str, str] = {}
        for raw in raw_messages:
            message = Message.from_sqs(raw, self._queue_url, shared)
            lease = self._inflight.admit(message, sent_at)
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
