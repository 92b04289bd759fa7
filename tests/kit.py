"""What the scenarios share: a test-side SQS client over HTTP and small waiting helpers."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
from aiobotocore.session import get_session

from aiosqsworker._consumer.queue import RedrivePolicy

REGION = "us-east-1"
_names = itertools.count()


@dataclass(frozen=True)
class Queue:
    name: str
    url: str


class SQSKit:
    """Arranges and inspects queues on the test server; the worker under test has its own client."""

    def __init__(self, client: Any, test_name: str) -> None:
        self.client = client
        self._prefix = "".join(c if c.isalnum() else "-" for c in test_name)[:50]

    def unique_name(self, label: str = "q") -> str:
        return f"{self._prefix}-{label}-{next(_names)}-{time.monotonic_ns() % 100000}"

    async def create_queue(
        self,
        label: str = "q",
        *,
        visibility_timeout: int = 30,
        max_receive_count: int | None = None,
        attributes: dict[str, str] | None = None,
    ) -> Queue:
        """A fresh queue; with `max_receive_count`, also its dead-letter queue (`dlq_of`)."""
        name = self.unique_name(label)
        attrs = {"VisibilityTimeout": str(visibility_timeout), **(attributes or {})}
        if max_receive_count is not None:
            dlq = await self.client.create_queue(QueueName=f"{name}-dlq")
            dlq_arn = (
                await self.client.get_queue_attributes(
                    QueueUrl=dlq["QueueUrl"], AttributeNames=["QueueArn"]
                )
            )["Attributes"]["QueueArn"]
            attrs["RedrivePolicy"] = RedrivePolicy(dlq_arn, max_receive_count).attribute()
        response = await self.client.create_queue(QueueName=name, Attributes=attrs)
        return Queue(name=name, url=response["QueueUrl"])

    async def dlq_of(self, queue: Queue) -> Queue:
        name = f"{queue.name}-dlq"
        response = await self.client.get_queue_url(QueueName=name)
        return Queue(name=name, url=response["QueueUrl"])

    async def send(self, queue: Queue, bodies: Iterable[str]) -> list[str]:
        """Send bodies in batches of ten; returns the message ids in order."""
        ids: list[str] = []
        batch: list[str] = []
        for body in [*bodies, None]:
            if body is not None:
                batch.append(body)
            if batch and (len(batch) == 10 or body is None):
                response = await self.client.send_message_batch(
                    QueueUrl=queue.url,
                    Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(batch)],
                )
                assert not response.get("Failed"), response
                order = {int(entry["Id"]): entry["MessageId"] for entry in response["Successful"]}
                ids.extend(order[i] for i in range(len(batch)))
                batch = []
        return ids

    async def create_fifo_queue(
        self,
        label: str = "q",
        *,
        visibility_timeout: int = 30,
        attributes: dict[str, str] | None = None,
    ) -> Queue:
        """A fresh FIFO queue (its name ends in ``.fifo``), without content-based dedup."""
        name = f"{self.unique_name(label)}.fifo"
        attrs = {
            "FifoQueue": "true",
            "VisibilityTimeout": str(visibility_timeout),
            **(attributes or {}),
        }
        response = await self.client.create_queue(QueueName=name, Attributes=attrs)
        return Queue(name=name, url=response["QueueUrl"])

    async def send_grouped(self, queue: Queue, messages: Iterable[tuple[str, str]]) -> list[str]:
        """Send (group id, body) pairs to a FIFO queue, in order, ten a call; returns the ids.

        Each message gets a deduplication id of its own, so equal bodies are not merged.
        """
        ids: list[str] = []
        pending = list(messages)
        for start in range(0, len(pending), 10):
            batch = pending[start : start + 10]
            response = await self.client.send_message_batch(
                QueueUrl=queue.url,
                Entries=[
                    {
                        "Id": str(i),
                        "MessageBody": body,
                        "MessageGroupId": group,
                        "MessageDeduplicationId": f"{start + i}-{next(_names)}",
                    }
                    for i, (group, body) in enumerate(batch)
                ],
            )
            assert not response.get("Failed"), response
            order = {int(entry["Id"]): entry["MessageId"] for entry in response["Successful"]}
            ids.extend(order[i] for i in range(len(batch)))
        return ids

    async def drain_with_attributes(
        self, queue: Queue, *, wait_time: int = 1
    ) -> list[dict[str, Any]]:
        """Like `drain`, with the message attributes too (a dead letter's failure record)."""
        received: list[dict[str, Any]] = []
        while True:
            response = await self.client.receive_message(
                QueueUrl=queue.url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=wait_time,
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
            messages = response.get("Messages", [])
            if not messages:
                return received
            received.extend(messages)
            await self.client.delete_message_batch(
                QueueUrl=queue.url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )

    async def counts(self, queue: Queue) -> tuple[int, int]:
        """(visible, in flight) as the server reports them."""
        response = await self.client.get_queue_attributes(
            QueueUrl=queue.url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )
        attrs = response["Attributes"]
        return (
            int(attrs["ApproximateNumberOfMessages"]),
            int(attrs["ApproximateNumberOfMessagesNotVisible"]),
        )

    async def drain(self, queue: Queue, *, wait_time: int = 1) -> list[dict[str, Any]]:
        """Receive (and delete) everything visible now."""
        received: list[dict[str, Any]] = []
        while True:
            response = await self.client.receive_message(
                QueueUrl=queue.url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=wait_time,
                MessageSystemAttributeNames=["All"],
            )
            messages = response.get("Messages", [])
            if not messages:
                return received
            received.extend(messages)
            await self.client.delete_message_batch(
                QueueUrl=queue.url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                    for i, m in enumerate(messages)
                ],
            )


@asynccontextmanager
async def open_kit(endpoint_url: str, test_name: str) -> AsyncIterator[SQSKit]:
    session = get_session()
    async with session.create_client(
        "sqs", region_name=REGION, endpoint_url=endpoint_url
    ) as client:
        yield SQSKit(client, test_name)


async def eventually(
    condition: Callable[[], bool], *, within: float = 30.0, what: str = "condition"
) -> None:
    """Wait until `condition()` holds (checked every 50 ms), or fail after `within` s."""
    with anyio.fail_after(within):
        while not condition():  # noqa: ASYNC110 - observing from outside, no event to wait on
            await anyio.sleep(0.05)
    assert condition(), what


async def eventually_async(
    check: Callable[[], Awaitable[bool]], *, within: float = 30.0, every: float = 0.25
) -> None:
    """Wait until the async `check()` holds (asked every `every` s), or fail after `within` s."""
    with anyio.fail_after(within):
        while not await check():  # noqa: ASYNC110 - observing from outside, no event to wait on
            await anyio.sleep(every)
