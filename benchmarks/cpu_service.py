"""A CPU-bound consumer module for `python -m benchmarks.workers` (queue "bench")."""

from __future__ import annotations

import hashlib

from aiosqsworker import Message, consumer

ROUNDS = 1_500  # about 1 ms of hashing per message on these machines


@consumer("bench", concurrency=20, wait_time=1)
async def crunch(message: Message) -> None:
    digest = message.body.encode()
    for _ in range(ROUNDS):
        digest = hashlib.sha256(digest).digest()
