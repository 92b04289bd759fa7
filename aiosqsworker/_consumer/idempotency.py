"""The engine's side of idempotency: a claim around each handler call, tied to the lease.

The slot calls `IdempotencyGuard.run` instead of the handler when the consumer has a store
(`@consumer(..., idempotency=store)`); a consumer without one pays nothing per message.

- Before the handler: claim the key for the lease's time left. Done: return at once (the
  message is acked, the handler never runs). In progress elsewhere: `Retry` after the
  other record's time left. The store failing: `Retry` after a back-off (never a dead
  letter, never run unguarded).
- Each lease extension SQS confirmed extends the record to the lease's new expiry
  (`extended`, the lease keeper's hook), those of the keeper's thread while the loop was
  blocked included (applied, and passed on here, once the loop turns again).
- The handler failing, or being cancelled (its lease lost, a stop): the record is removed;
  so is the record of a succeeded handler whose delete finds the lease lost (`lost`). A
  ``def`` handler's thread given up (its `timeout=`, a lost lease, a stop) runs on, though
  (`threads.py`): its record is left to expire with the lease it was tied to, so that no
  other delivery runs the handler beside it meanwhile.
- The delete confirmed (`acked`, the acker's hook through `InFlight`): the record is done.

What follows the claim runs in the background (`run`), time-boxed, and a failure there is
logged: a record that could not be extended, removed or marked done simply expires with
the lease it was tied to.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .._backlog import Backlog
from .._backoff import backoff
from .._errors import ConfigurationError, Retry
from .._message import Message
from .._sqs.limits import MAX_VISIBILITY
from ..idempotency import IdempotencyKey, IdempotencyStore, new_token
from . import clock
from .leases import Lease
from .stats import Counters
from .timeouts import is_timeout

__all__ = ["IdempotencyGuard", "key_function"]

logger = logging.getLogger("aiosqsworker.idempotency")

#: The longest a store call may take before it counts as failed.
STORE_CALL_TIME = 5.0

Call = Callable[[Any], Awaitable[object]]


def key_function(key: IdempotencyKey, *, consumer: str, fifo: bool) -> Callable[[Message], str]:
    """The store key of a message, namespaced by its consumer."""
    prefix = f"{consumer}:"
    if key == "message_id":
        return lambda message: prefix + message.message_id
    if key == "deduplication_id":
        if not fifo:
            raise ConfigurationError(
                f"consumer {consumer!r}: idempotency_key='deduplication_id' needs a FIFO "
                "queue (a standard queue's messages have no deduplication id): use "
                "'message_id' or a function of the message"
            )
        return lambda message: (
            prefix + message.attributes.get("MessageDeduplicationId", message.message_id)
        )
    assert callable(key)
    user_key = key

    def of(message: Message) -> str:
        value = user_key(message)
        if not isinstance(value, str) or not value:
            raise TypeError(
                f"idempotency_key function returned {value!r} for message "
                f"{message.message_id}: it must return a non-empty str"
            )
        return prefix + value

    return of


def retry_after(seconds_left: float) -> int:
    """A retry delay for a message held elsewhere: the other record's time left."""
    return max(1, min(MAX_VISIBILITY, math.ceil(seconds_left)))


@dataclass(slots=True)
class _Held:
    key: str
    token: str
    expires_at: float  # the lease's expiry when last claimed or extended (loop clock)


class IdempotencyGuard:
    """Claims for one consumer's messages in `store`, kept in step with their leases."""

    def __init__(
        self,
        store: IdempotencyStore,
        key_of: Callable[[Message], str],
        counters: Counters,
        *,
        consumer: str,
        threads_run_on: bool = False,
    ) -> None:
        """`threads_run_on`: the handler runs in a thread, which runs on when its call is
        given up."""
        self._store = store
        self._threads_run_on = threads_run_on
        self._key_of = key_of
        self._counters = counters
        self._consumer = consumer
        self._held: dict[str, _Held] = {}  # by receipt handle: one per delivery
        self._later: Backlog[Callable[[], Awaitable[object]]] = Backlog()
        self._store_failures = 0
        self._prune_at = 0.0

    async def run_handler(self, lease: Lease, call: Call) -> object:
        """Claim, then call the handler with the message; see the module's docstring."""
        message = lease.message
        key = self._key_of(message)
        token = new_token()
        left = lease.expires_at - clock.now()
        try:
            async with asyncio.timeout(STORE_CALL_TIME):
                claim = await self._store.claim(key, token, max(left, 1.0))
        except Exception as exc:  # a store failure: retried, never run unguarded
            self._store_failures += 1
            delay = math.ceil(backoff(self._store_failures - 1, base=1.0, cap=60.0))
            logger.warning(
                "[%s] idempotency store could not claim message %s (%s: %s): not handled "
                "now, retried in %d s",
                self._consumer,
                message.message_id,
                type(exc).__name__,
                exc,
                delay,
            )
            raise Retry(delay=delay) from exc
        self._store_failures = 0
        if claim.state == "done":
            self._counters.duplicates_skipped += 1
            logger.info(
                "[%s] message %s was handled already (key done): deleted without running "
                "the handler",
                self._consumer,
                message.message_id,
            )
            return None
        if claim.state == "in_progress":
            delay = retry_after(claim.expires_in)
            logger.info(
                "[%s] message %s is being handled elsewhere: retried in %d s",
                self._consumer,
                message.message_id,
                delay,
            )
            raise Retry(delay=delay)
        self._hold(message.receipt_handle, _Held(key, token, lease.expires_at))
        try:
            return await call(message)
        except BaseException as exc:  # failed, or cancelled (lost lease, stop): the next one runs
            if self._threads_run_on and (
                is_timeout(exc) or isinstance(exc, asyncio.CancelledError)
            ):
                # Given up, its thread runs on: the record expires with the lease instead.
                self._held.pop(message.receipt_handle, None)
            else:
                self._release(message)
            raise

    def _hold(self, receipt_handle: str, held: _Held) -> None:
        self._held[receipt_handle] = held
        now = clock.now()
        if now >= self._prune_at:  # claims whose delete never came: their records expired
            self._prune_at = now + 60.0
            for handle in [h for h, v in self._held.items() if v.expires_at < now]:
                del self._held[handle]

    def extended(self, leases: Sequence[Lease]) -> None:
        """The lease keeper's hook: SQS confirmed these extensions."""
        now = clock.now()
        for lease in leases:
            held = self._held.get(lease.message.receipt_handle)
            if held is not None:
                held.expires_at = lease.expires_at
                ttl = lease.expires_at - now
                self._later.put(functools.partial(self._store.extend, held.key, held.token, ttl))

    def acked(self, messages: Sequence[Message]) -> None:
        """`InFlight`'s hook: SQS confirmed these deletes after their handler succeeded."""
        for message in messages:
            held = self._held.pop(message.receipt_handle, None)
            if held is not None:
                self._later.put(functools.partial(self._store.complete, held.key, held.token))

    def lost(self, message: Message) -> None:
        """`InFlight`'s hook: the lease was found lost when the message's delete was sent
        (after its handler succeeded): the next delivery runs the handler."""
        self._release(message)

    def _release(self, message: Message) -> None:
        held = self._held.pop(message.receipt_handle, None)
        if held is not None:
            self._later.put(functools.partial(self._store.release, held.key, held.token))

    def close(self) -> None:
        """Nothing more will be queued: `run` returns once the queued calls are made."""
        self._later.close()

    async def run(self) -> None:
        """Make the queued store calls (extensions, releases, completions)."""
        async for calls in self._later.batches():
            await asyncio.gather(*(self._quietly(call) for call in calls))

    async def _quietly(self, call: Callable[[], Awaitable[object]]) -> None:
        try:
            async with asyncio.timeout(STORE_CALL_TIME):
                await call()
        except Exception as exc:  # noqa: BLE001 - the record expires with its lease
            logger.warning(
                "[%s] idempotency store call failed (%s: %s): the record expires with its lease",
                self._consumer,
                type(exc).__name__,
                exc,
            )
