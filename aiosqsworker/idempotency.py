"""Idempotency tied to the lease: a handler runs once per key, even when SQS delivers twice.

```python
from aiosqsworker import App, Message
from aiosqsworker.idempotency import MemoryIdempotencyStore

app = App()

@app.consumer("orders", idempotency=MemoryIdempotencyStore())
async def handle(message: Message) -> None: ...
```

Before a handler runs, the consumer *claims* the message's key in the store: an
in-progress record that expires with the message's lease and is extended with each lease
extension. The record is removed when the handler fails or the lease is lost, and marked
done (kept for the store's ``done_for`` seconds) once SQS confirmed the message's delete.
A delivery whose key is done is deleted without running the handler; one whose key is in
progress elsewhere is retried once that record's time is up.

A store is anything with the four methods of `IdempotencyStore`; two come with the
package: `MemoryIdempotencyStore` (one process: tests, or a single worker) and
`RedisIdempotencyStore` (the ``redis`` extra: every worker sharing one Redis).
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ._message import Message

__all__ = [
    "Claim",
    "IdempotencyKey",
    "IdempotencyStore",
    "MemoryIdempotencyStore",
    "RedisIdempotencyStore",
]

#: How long a done record is kept by default: a day, well past SQS's retention of a
#: duplicate (a FIFO queue's deduplication window is five minutes).
DONE_FOR = 24 * 3600.0

#: What a message's key is: its SQS message id, its FIFO deduplication id, or what a
#: function of the message returns (a business key: an order's id).
IdempotencyKey = Literal["message_id", "deduplication_id"] | Callable[["Message"], str]


@dataclass(frozen=True, slots=True)
class Claim:
    """A store's answer to a claim.

    Attributes:
        state: ``"claimed"`` (the caller holds the key now), ``"done"`` (a delivery with
            this key was handled and deleted), or ``"in_progress"`` (held elsewhere).
        expires_in: for ``"in_progress"``, seconds the other holder's record has left.
    """

    state: Literal["claimed", "done", "in_progress"]
    expires_in: float = 0.0


@runtime_checkable
class IdempotencyStore(Protocol):
    """Where claims live. `token` tells one claim of a key from another: a store changes or
    removes an in-progress record only for the token that claimed it."""

    async def claim(self, key: str, token: str, ttl: float) -> Claim:
        """Hold `key` for `ttl` seconds unless it is done or held by another token."""
        ...

    async def extend(self, key: str, token: str, ttl: float) -> bool:
        """Make `token`'s record of `key` expire `ttl` seconds from now; False if not held."""
        ...

    async def release(self, key: str, token: str) -> None:
        """Remove `token`'s in-progress record of `key` (the handler failed, or the lease
        was lost): the next delivery runs the handler."""
        ...

    async def complete(self, key: str, token: str) -> None:
        """Mark `key` done, unless another token holds it now."""
        ...


def new_token() -> str:
    """A claim's token: unique to one delivery's attempt."""
    return uuid.uuid4().hex


class MemoryIdempotencyStore:
    """Claims in this process's memory: for tests and single-process workers.

    Records expire on `clock` (monotonic seconds); done ones are kept `done_for` seconds.
    """

    def __init__(
        self, *, done_for: float = DONE_FOR, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._done_for = done_for
        self._clock = clock
        # key -> (token, or None once done; expiry on the clock)
        self._records: dict[str, tuple[str | None, float]] = {}

    def _live(self, key: str) -> tuple[str | None, float] | None:
        record = self._records.get(key)
        if record is not None and record[1] <= self._clock():
            del self._records[key]
            return None
        return record

    async def claim(self, key: str, token: str, ttl: float) -> Claim:
        record = self._live(key)
        if record is None:
            self._records[key] = (token, self._clock() + ttl)
            return Claim("claimed")
        holder, expires = record
        if holder is None:
            return Claim("done")
        return Claim("in_progress", max(0.0, expires - self._clock()))

    async def extend(self, key: str, token: str, ttl: float) -> bool:
        record = self._live(key)
        if record is None or record[0] != token:
            return False
        self._records[key] = (token, self._clock() + ttl)
        return True

    async def release(self, key: str, token: str) -> None:
        record = self._live(key)
        if record is not None and record[0] == token:
            del self._records[key]

    async def complete(self, key: str, token: str) -> None:
        record = self._live(key)
        if record is None or record[0] == token:
            self._records[key] = (None, self._clock() + self._done_for)

    def state(self, key: str) -> Literal["absent", "in_progress", "done"]:
        """What the store holds for `key` now (for tests and examples)."""
        record = self._live(key)
        if record is None:
            return "absent"
        return "done" if record[0] is None else "in_progress"


# One round trip each, atomic on the server. A record's value is "p:<token>" while in
# progress and "d" once done.
_CLAIM = """
if redis.call('SET', KEYS[1], 'p:' .. ARGV[1], 'NX', 'PX', ARGV[2]) then return {1, 0} end
local value = redis.call('GET', KEYS[1])
if value == 'd' then return {2, 0} end
return {3, redis.call('PTTL', KEYS[1])}
"""
_EXTEND = """
if redis.call('GET', KEYS[1]) == 'p:' .. ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == 'p:' .. ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
_COMPLETE = """
local value = redis.call('GET', KEYS[1])
if value == false or value == 'p:' .. ARGV[1] then
  return redis.call('SET', KEYS[1], 'd', 'PX', ARGV[2])
end
return 0
"""


def _millis(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


class RedisIdempotencyStore:
    """Claims in Redis, shared by every worker that uses the same server and `prefix`.

    `client` is a ``redis.asyncio.Redis`` (the ``redis`` extra), opened and closed by you.
    Each call is one atomic script: a claim is ``SET NX PX`` with the lease's time left,
    an extension a ``PEXPIRE`` only while the record is still this claim's.
    """

    def __init__(
        self, client: Any, *, prefix: str = "aiosqsworker:idempotency:", done_for: float = DONE_FOR
    ) -> None:
        self._client = client
        self._prefix = prefix
        self._done_for = done_for
        self._claim = client.register_script(_CLAIM)
        self._extend = client.register_script(_EXTEND)
        self._release = client.register_script(_RELEASE)
        self._complete = client.register_script(_COMPLETE)

    async def claim(self, key: str, token: str, ttl: float) -> Claim:
        state, left = await self._claim(keys=[self._prefix + key], args=[token, _millis(ttl)])
        if int(state) == 1:
            return Claim("claimed")
        if int(state) == 2:
            return Claim("done")
        return Claim("in_progress", max(0.0, int(left) / 1000))

    async def extend(self, key: str, token: str, ttl: float) -> bool:
        return bool(await self._extend(keys=[self._prefix + key], args=[token, _millis(ttl)]))

    async def release(self, key: str, token: str) -> None:
        await self._release(keys=[self._prefix + key], args=[token])

    async def complete(self, key: str, token: str) -> None:
        await self._complete(keys=[self._prefix + key], args=[token, _millis(self._done_for)])
