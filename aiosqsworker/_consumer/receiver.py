"""The receiver: long polling into the bounded buffer.

Each poller reserves room first (`Capacity`), then asks SQS for at most that many messages
with a long poll. A full consumer therefore stops polling; an idle queue costs one request per
`wait_time` per poller; nothing sleeps on a timer except the back-off after an error.

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
from typing import Any

import anyio

from .._backoff import backoff
from .._config import ConsumerConfig
from .._errors import AccessDeniedError, CredentialsError, QueueNotFoundError, SQSError
from .._message import Message
from .._sqs.base import SQSClient
from .buffer import Buffer, Capacity
from .clock import now
from .inflight import InFlight
from .leases import Lease
from .outcomes import Outcome
from .receivecount import ReceiveCountCheck
from .stats import Counters

__all__ = ["Receiver", "poll_pause", "poller_count"]

logger = logging.getLogger("aiosqsworker.receiver")

#: Errors no back-off will cure: the consumer stops and says why.
FATAL_ERRORS = (QueueNotFoundError, CredentialsError, AccessDeniedError)
#: Most long polls one consumer keeps open at once.
MAX_POLLERS = 16


def poller_count(config: ConsumerConfig) -> int:
    """Enough concurrent polls to fill the capacity, one batch each, within a bound."""
    return max(1, min(MAX_POLLERS, math.ceil(config.capacity / config.max_messages)))


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
        capacity: Capacity,
        buffer: Buffer[Lease],
        inflight: InFlight,
        counters: Counters,
        *,
        consumer: str,
    ) -> None:
        self._client = client
        self._queue_url = queue_url
        self._config = config
        self._visibility_timeout = visibility_timeout
        self._capacity = capacity
        self._buffer = buffer
        self._inflight = inflight
        self._counters = counters
        self._consumer = consumer
        self._stopping = False
        self._open_polls = 0
        self._polls_closed = anyio.Event()
        self._waiting_for_room = 0
        self._scope = anyio.CancelScope()
        self._receive_counts = ReceiveCountCheck(consumer, queue_url)
        self.last_completed_poll = now()

    @property
    def open_polls(self) -> int:
        return self._open_polls

    def _running_dry(self) -> bool:
        return not len(self._buffer) and not self._open_polls

    def stalled(self, now: float) -> bool:
        """True when no poll completed for twice the wait (plus slack) though there was room.

        A consumer whose handlers fill its capacity does not poll, by design: that is
        back-pressure, not a stall.
        """
        if self._waiting_for_room or self._stopping:
            return False
        return now - self.last_completed_poll > 2 * self._config.wait_time + 5

    def stop(self) -> None:
        """Start no new poll; polls already open finish and their messages are released."""
        self._stopping = True
        self._capacity.close()

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
                for _ in range(poller_count(self._config)):
                    tg.start_soon(self._poll_loop)

    async def _poll_loop(self) -> None:
        batch = self._config.max_messages
        at_least = min(batch, self._capacity.total)
        errors = 0
        while not self._stopping:
            self._waiting_for_room += 1
            try:
                # A full batch of room per call keeps requests per message low; but once the
                # buffer has run dry with no poll under way to refill it, free handlers would
                # sit idle: then any room will do.
                room = await self._capacity.reserve(at_least, batch, or_when=self._running_dry)
            finally:
                self._waiting_for_room -= 1
            if room == 0 or self._stopping:
                self._capacity.release(room)
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
                self._capacity.release(room)
                raise
            except SQSError as exc:
                self._capacity.release(room)
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
            self._capacity.release(room - len(raw_messages))
            self._accept(raw_messages, sent_at)

    def _poll_ended(self) -> None:
        self._open_polls -= 1
        if not self._open_polls and self._stopping:
            self._polls_closed.set()

    def _accept(self, raw_messages: list[dict[str, Any]], sent_at: float) -> None:
        self._receive_counts.observe(raw_messages)
        for raw in raw_messages:
            lease = self._inflight.admit(Message.from_sqs(raw, self._queue_url), sent_at)
            if self._stopping:
                # A poll that was open when the stop came: hand its messages straight back.
                self._inflight.settle(lease, Outcome.RELEASE)
                logger.info(
                    "[%s] released message %s received after the stop",
                    self._consumer,
                    lease.message.message_id,
                )
            else:
                self._buffer.put(lease)
