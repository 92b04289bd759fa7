"""A user's service module: ``python -m aiosqsworker tests.apps.orders_service``.

Each body is JSON, ``{"n": 7}``, with ``"sleep": 5.0`` for a job of its own length. A body
that is not JSON is poison: `message.json()` raises, so the message is retried and, on the
last receive the queue's RedrivePolicy allows, dead-lettered.

Configured through the environment:

- ORDERS_QUEUE: the queue's name;
- ORDERS_LEDGER: the ledger file (see `tests.apps._ledger`); the events are ``start``,
  ``done`` (the handler returned), ``cancel`` (it was cancelled) and ``bad`` (the body was
  not JSON);
- ORDERS_JOB_SECONDS: how long a job without its own ``sleep`` takes (default 0);
- ORDERS_CONCURRENCY (default 10), ORDERS_PREFETCH (default 0: with a capacity of at most
  ten, one batch, the consumer has a single poller), ORDERS_WAIT_TIME (long-poll wait,
  default 20), ORDERS_VISIBILITY (default: the queue's own), ORDERS_RETRY_BASE_DELAY
  (default 1).
"""

from __future__ import annotations

import os

import anyio

from aiosqsworker import Message, MessageDecodeError, consumer

from ._ledger import record

QUEUE = os.environ.get("ORDERS_QUEUE", "orders")
JOB_SECONDS = float(os.environ.get("ORDERS_JOB_SECONDS", "0"))
VISIBILITY = os.environ.get("ORDERS_VISIBILITY")


@consumer(
    QUEUE,
    concurrency=int(os.environ.get("ORDERS_CONCURRENCY", "10")),
    prefetch=int(os.environ.get("ORDERS_PREFETCH", "0")),
    wait_time=int(os.environ.get("ORDERS_WAIT_TIME", "20")),
    visibility_timeout=int(VISIBILITY) if VISIBILITY else None,
    retry_base_delay=float(os.environ.get("ORDERS_RETRY_BASE_DELAY", "1")),
)
async def handle_order(message: Message) -> None:
    try:
        order = message.json()
    except MessageDecodeError:
        record("bad", message, "-")
        raise
    n = order["n"]
    record("start", message, n)
    try:
        await anyio.sleep(float(order.get("sleep", JOB_SECONDS)))
    except BaseException:
        record("cancel", message, n)
        raise
    record("done", message, n)
