"""The event loop's clock on the per-message path, straight from asyncio.

aiosqsworker runs on asyncio (uvloop when installed) and takes its structure from anyio:
task groups, cancel scopes, timeouts. But every anyio call first looks up the running
backend, which costs more than the operation itself; so on the per-message path (a clock
read, an event, waiting for the next message) asyncio's primitives are used directly.
anyio's cancellation reaches them as it reaches any asyncio await, and `now()` is the clock
anyio's deadlines use.
"""

from __future__ import annotations

import asyncio

__all__ = ["now"]


def now() -> float:
    """The running loop's monotonic clock in seconds: what `anyio.current_time()` returns."""
    return asyncio.get_running_loop().time()
