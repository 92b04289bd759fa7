"""A sparse queue: one message every `interval` seconds, what each costs in SQS requests.

An idle consumer's long poll is a watch poll (`_consumer/receiver.py`): it asks for a short
visibility timeout, so that a stop can give it up at once, and the lease keeper extends what
it brings to the full timeout straight away. On a busy queue that costs nothing (busy polls
keep the full timeout); on a sparse queue nearly every message is caught by a watch poll.
This run counts, per message, the ReceiveMessage, ChangeMessageVisibility(Batch) and
DeleteMessage(Batch) calls of the default aiosqsworker consumer against moto, through a
counting proxy, with a handler that returns at once.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from dataclasses import dataclass

import anyio
from aiobotocore.session import get_session

from aiosqsworker import App, Message
from aiosqsworker.testing import FaultProxy, LocalSQSServer

__all__ = ["SparseOutcome", "run_sparse"]

REGION = "us-east-1"
#: The consumer's visibility timeout: long enough that a no-op handler never needs an
#: extension of a full lease.
VISIBILITY = 30


@dataclass(frozen=True)
class SparseOutcome:
    """Requests by action over a run of `messages` messages, one every `interval` s on
    average (between half and one and a half of it)."""

    messages: int
    interval: float
    seconds: float
    requests: dict[str, int]

    def per_message(self, *actions: str) -> float:
        return sum(self.requests.get(action, 0) for action in actions) / max(1, self.messages)

    @property
    def receives(self) -> float:
        return self.per_message("ReceiveMessage")

    @property
    def extensions(self) -> float:
        return self.per_message("ChangeMessageVisibilityBatch", "ChangeMessageVisibility")

    @property
    def deletes(self) -> float:
        return self.per_message("DeleteMessageBatch", "DeleteMessage")


async def _run(endpoint: str, messages: int, interval: float) -> SparseOutcome:
    async with get_session().create_client(
        "sqs",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="bench",
        aws_secret_access_key="bench",
    ) as sqs:
        name = f"sparse-{int(time.time())}"
        url = (await sqs.create_queue(QueueName=name))["QueueUrl"]
        handled: list[str] = []
        all_handled = anyio.Event()
        async with FaultProxy(endpoint) as proxy:
            app = App(region=REGION, endpoint_url=proxy.url, client="fast")

            @app.consumer(name, visibility_timeout=VISIBILITY)
            async def handle(message: Message) -> None:
                handled.append(message.message_id)
                if len(handled) == messages:
                    all_handled.set()

            started = time.monotonic()
            async with app:
                jitter = random.Random(7)  # the same arrival times on every run
                for sent in range(messages):
                    # Idle meanwhile. The jitter spreads arrivals over the phase of the open
                    # long poll: how long it has been open decides whether the old rule
                    # (a lease counted from the poll's send) extended at once as well.
                    await anyio.sleep(interval * jitter.uniform(0.5, 1.5))
                    await sqs.send_message(QueueUrl=url, MessageBody=f"sparse {sent}")
                with anyio.fail_after(30):
                    await all_handled.wait()
                await anyio.sleep(3)  # the last delete, and the poll after the last message
                requests = Counter(proxy.requests)
                app.stop()
            seconds = time.monotonic() - started
        await sqs.delete_queue(QueueUrl=url)
    return SparseOutcome(messages, interval, seconds, dict(requests))


def run_sparse(*, messages: int, interval: float) -> SparseOutcome:
    """Run the default consumer on a queue that gets a message every `interval` seconds."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")  # the app's client reads these
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    with LocalSQSServer() as server:
        return anyio.run(_run, server.endpoint_url, messages, interval)
