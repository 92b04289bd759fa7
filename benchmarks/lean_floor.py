"""The lean transport alone under the bare loop: the ``lean-floor`` contender's calls.

`lean_calls` opens the framework's lean client (`aiosqsworker._sqs.lean`, signed requests
and MD5 checks included) and yields the (receive, delete) pair `contender.bare_loop` takes:
what the fast path's transport costs without the engine.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiosqsworker._sqs.errors import Endpoint
from aiosqsworker._sqs.lean import LeanSQSClient, StaticCredentials
from aiosqsworker._sqs.sigv4 import FrozenCredentials

from ._probe import Options
from .contender import REGION, WAIT_TIME, Delete, Receive, poller_count

__all__ = ["lean_calls"]


@asynccontextmanager
async def lean_calls(options: Options) -> AsyncIterator[tuple[Receive, Delete]]:
    client = LeanSQSClient(
        Endpoint(REGION, options.endpoint),
        StaticCredentials(FrozenCredentials("bench", "bench-secret")),
        max_connections=poller_count(options.concurrency) + 8,
        read_timeout=WAIT_TIME + 15,
    )
    try:
        url = await client.resolve_queue_url(options.queue)

        async def receive() -> list[tuple[str, str]]:
            messages = await client.receive_messages(
                url, max_messages=10, wait_time=WAIT_TIME, visibility_timeout=30
            )
            return [(m["Body"], m["ReceiptHandle"]) for m in messages]

        async def delete(handles: list[str]) -> int:
            result = await client.delete_message_batch(
                url, [(str(i), h) for i, h in enumerate(handles)]
            )
            return len(result.failed)

        yield receive, delete
    finally:
        await client.close()
