"""The handlers every contender runs: the same work, async and (for thread-based peers) sync.

Standard library only: the peers' drivers import it from their own virtual environment.

- ``noop``: returns at once; what is left is the framework's and the client's own cost.
- ``io``: waits 50 ms, as a handler calling another service would.
- ``slow``: waits 1 s, as a handler calling a slow service would: with it, the concurrency
  is the number of messages in flight (the 10,000 in flight row).
- ``cpu``: a fixed computation (100 chained SHA-256 digests of 1 KiB, about 200 µs on a
  2020s x86 core) holding the interpreter, as a handler that parses or transforms would.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable

__all__ = [
    "ASYNC_HANDLERS",
    "HANDLERS",
    "IO_SECONDS",
    "SLOW_SECONDS",
    "SYNC_HANDLERS",
    "cpu_work",
]

IO_SECONDS = 0.05
SLOW_SECONDS = 1.0
CPU_ROUNDS = 100
_CHUNK = b"x" * 1024


def cpu_work(body: str = "") -> bytes:
    digest = body.encode()[:32]
    for _ in range(CPU_ROUNDS):
        digest = hashlib.sha256(digest + _CHUNK).digest()
    return digest


async def noop(body: str) -> None:
    return None


async def io(body: str) -> None:
    await asyncio.sleep(IO_SECONDS)


async def slow(body: str) -> None:
    await asyncio.sleep(SLOW_SECONDS)


async def cpu(body: str) -> None:
    cpu_work(body)


def noop_sync(body: str) -> None:
    return None


def io_sync(body: str) -> None:
    time.sleep(IO_SECONDS)


def slow_sync(body: str) -> None:
    time.sleep(SLOW_SECONDS)


def cpu_sync(body: str) -> None:
    cpu_work(body)


ASYNC_HANDLERS: dict[str, Callable[[str], Awaitable[None]]] = {
    "noop": noop,
    "io": io,
    "cpu": cpu,
    "slow": slow,
}
SYNC_HANDLERS: dict[str, Callable[[str], None]] = {
    "noop": noop_sync,
    "io": io_sync,
    "cpu": cpu_sync,
    "slow": slow_sync,
}
HANDLERS = tuple(ASYNC_HANDLERS)
