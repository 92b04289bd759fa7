"""A user module whose handler misbehaves on command: ``python -m aiosqsworker
tests.apps.misbehaving``.

Each body is JSON, ``{"n": 7, "do": "..."}``; what the handler does:

- ``ok`` (the default): returns after ``sleep`` seconds (default 0);
- ``cancel_self``: raises a CancelledError of its own making (it awaits a future that
  something else cancelled), as a library that cancels its own work does;
- ``exit``: calls ``sys.exit(3)``; ``interrupt``: raises KeyboardInterrupt;
- ``poison``: raises `Poison`, a BaseException subclass that is not an Exception;
- ``generator_exit``: raises GeneratorExit;
- ``hang``: never returns (and has no timeout);
- ``block``: blocks the event loop for ``sleep`` seconds (``time.sleep``).

Configured through the environment: MISBEHAVING_QUEUE, ORDERS_LEDGER (see
`tests.apps._ledger`; events ``start``, ``done``, ``cancel``), MISBEHAVING_CONCURRENCY
(default 3), MISBEHAVING_WAIT_TIME (default 2), MISBEHAVING_VISIBILITY (default: the
queue's own), MISBEHAVING_RETRY_BASE_DELAY (default 0.2).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time

import anyio

from aiosqsworker import Message, consumer

from ._ledger import record

QUEUE = os.environ.get("MISBEHAVING_QUEUE", "misbehaving")
VISIBILITY = os.environ.get("MISBEHAVING_VISIBILITY")


class Poison(BaseException):
    """What a buggy library might raise: not an Exception, so `except Exception` misses it."""


async def _cancelled_elsewhere() -> None:
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    future.cancel()
    await future  # raises CancelledError, though nobody cancelled this task


@consumer(
    QUEUE,
    concurrency=int(os.environ.get("MISBEHAVING_CONCURRENCY", "3")),
    wait_time=int(os.environ.get("MISBEHAVING_WAIT_TIME", "2")),
    visibility_timeout=int(VISIBILITY) if VISIBILITY else None,
    retry_base_delay=float(os.environ.get("MISBEHAVING_RETRY_BASE_DELAY", "0.2")),
)
async def handle(message: Message) -> None:
    order = message.json()
    n, do, seconds = order["n"], order.get("do", "ok"), float(order.get("sleep", 0))
    record("start", message, n)
    try:
        if do == "cancel_self":
            await _cancelled_elsewhere()
        elif do == "exit":
            sys.exit(3)
        elif do == "interrupt":
            raise KeyboardInterrupt
        elif do == "poison":
            raise Poison(f"poison {n}")
        elif do == "generator_exit":
            raise GeneratorExit
        elif do == "hang":
            await anyio.sleep_forever()
        elif do == "block":
            time.sleep(seconds)  # noqa: ASYNC251 - blocking the loop is the point
        else:
            await anyio.sleep(seconds)
    except asyncio.CancelledError:
        record("cancel", message, n)
        raise
    record("done", message, n)
