"""A user's module for the operations scenarios: `python -m aiosqsworker tests.apps.ops_service`.

Configured through the environment: OPS_QUEUE (queue name), OPS_JOB_SECONDS (how long each
job sleeps), OPS_LEDGER (a file to which each finished message's id is appended, one line per
handled message, with the worker's pid), OPS_IMPORT_SECONDS (how long importing this module
takes, as a large service's import does: the worker has no signal handling until it is done).
"""

from __future__ import annotations

import os
import time

import anyio

from aiosqsworker import Message, consumer

QUEUE = os.environ.get("OPS_QUEUE", "ops")
JOB_SECONDS = float(os.environ.get("OPS_JOB_SECONDS", "0"))
LEDGER = os.environ.get("OPS_LEDGER")
time.sleep(float(os.environ.get("OPS_IMPORT_SECONDS", "0")))


@consumer(QUEUE, concurrency=10, wait_time=1, visibility_timeout=5)
async def handle(message: Message) -> None:
    if JOB_SECONDS:
        await anyio.sleep(JOB_SECONDS)
    if LEDGER:
        # One write of one short line to a file opened for appending: lines of concurrent
        # workers never interleave.
        async with await anyio.open_file(LEDGER, "a") as ledger:
            await ledger.write(f"{os.getpid()} {message.message_id}\n")
