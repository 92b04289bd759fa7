"""What the scenarios share: a test-side view of the SQS under test and small waiting helpers."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import anyio
from aiobotocore.session import get_session

from aiosqsworker import App, ConsumerStatistics, Endpoint, SQSClient
from aiosqsworker._sqs.botocore import AioBotocoreSQSClient
from aiosqsworker._sqs.redrive import RedrivePolicy
from aiosqsworker.testing import MemorySQS

REGION = "us-east-1"
_names = itertools.count()


@dataclass(frozen=True)
class Queue:
    name: str
    url: str


#: Creates a queue with CreateQueue's attributes; returns its URL.
CreateQueue = Callable[[str, dict[str, str]], Awaitable[str]]


class SQSKit:
    """Arranges and inspects queues on the SQS under test; the worker under test has its own client.

    The kit speaks the framework's client protocol, so that the same scenario runs against
    the test server over HTTP and against the in-memory SQS. `client` is the test server's
    raw aiobotocore client, for scenarios that call its API directly (server only).
    """

    def __init__(
        self, sqs: SQSClient, create: CreateQueue, test_name: str, *, client: Any = None
    ) -> None:
        self.sqs = sqs
        self._create = create
        self._client = client
        self._prefix = "".join(c if c.isalnum() else "-" for c in test_name)[:50]

    @property
    def client(self) -> Any:
        if self._client is None:
            raise AssertionError(
                "this scenario calls the test server's API directly: it cannot run on the "
                "in-memory SQS"
            )
        return self._client

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
            dlq_url = await self._create(f"{name}-dlq", {})
            dlq_arn = (await self.sqs.get_queue_attributes(dlq_url))["QueueArn"]
            attrs["RedrivePolicy"] = RedrivePolicy(dlq_arn, max_receive_count).attribute()
        return Queue(name=name, url=await self._create(name, attrs))

    async def dlq_of(self, queue: Queue) -> Queue:
        name = f"{queue.name}-dlq"
        return Queue(name=name, url=await self.sqs.resolve_queue_url(name))

    async def _send_batch(self, queue: Queue, entries: list[dict[str, Any]]) -> list[str]:
        result = await self.sqs.send_message_batch(queue.url, entries)
        assert not result.failed, result.failed
        return [result.sent[entry["Id"]][0] for entry in entries]

    async def send(self, queue: Queue, bodies: Iterable[str]) -> list[str]:
        """Send bodies in batches of ten; returns the message ids in order."""
        ids: list[str] = []
        pending = list(bodies)
        for start in range(0, len(pending), 10):
            batch = pending[start : start + 10]
            entries = [{"Id": str(i), "MessageBody": body} for i, body in enumerate(batch)]
            ids.extend(await self._send_batch(queue, entries))
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
        return Queue(name=name, url=await self._create(name, attrs))

    async def send_grouped(self, queue: Queue, messages: Iterable[tuple[str, str]]) -> list[str]:
        """Send (group id, body) pairs to a FIFO queue, in order, ten a call; returns the ids.

        Each message gets a deduplication id of its own, so equal bodies are not merged.
        """
        ids: list[str] = []
        pending = list(messages)
        for start in range(0, len(pending), 10):
            batch = pending[start : start + 10]
            entries = [
                {
                    "Id": str(i),
                    "MessageBody": body,
                    "MessageGroupId": group,
                    "MessageDeduplicationId": f"{start + i}-{next(_names)}",
                }
                for i, (group, body) in enumerate(batch)
            ]
            ids.extend(await self._send_batch(queue, entries))
        return ids

    async def receive(
        self,
        queue: Queue,
        *,
        max_messages: int = 10,
        wait_time: int = 0,
        visibility_timeout: int = 30,
    ) -> list[dict[str, Any]]:
        """One ReceiveMessage, with every attribute; nothing is deleted."""
        return await self.sqs.receive_messages(
            queue.url,
            max_messages=max_messages,
            wait_time=wait_time,
            visibility_timeout=visibility_timeout,
        )

    async def delete(self, queue: Queue, receipt_handle: str) -> None:
        """Delete one received message (as another worker would)."""
        result = await self.sqs.delete_message_batch(queue.url, [("0", receipt_handle)])
        assert not result.failed, result.failed

    async def drain_with_attributes(
        self, queue: Queue, *, wait_time: int = 1
    ) -> list[dict[str, Any]]:
        """Receive (and delete) everything visible now, with every attribute."""
        received: list[dict[str, Any]] = []
        while True:
            messages = await self.receive(queue, wait_time=wait_time)
            if not messages:
                return received
            received.extend(messages)
            result = await self.sqs.delete_message_batch(
                queue.url, [(str(i), m["ReceiptHandle"]) for i, m in enumerate(messages)]
            )
            assert not result.failed, result.failed

    drain = drain_with_attributes

    async def drain_once_back(self, queue: Queue, *, within: float = 15.0) -> list[dict[str, Any]]:
        """Drain the queue once something is visible in it again (a hidden message's
        timeout over): a server's counts can show it visible a moment before a receive
        gets it."""
        received: list[dict[str, Any]] = []
        with anyio.fail_after(within):
            while not received:
                received = await self.drain(queue)
        return received

    async def counts(self, queue: Queue) -> tuple[int, int]:
        """(visible, in flight) as the SQS under test reports them."""
        attrs = await self.sqs.get_queue_attributes(queue.url)
        return (
            int(attrs["ApproximateNumberOfMessages"]),
            int(attrs["ApproximateNumberOfMessagesNotVisible"]),
        )

    async def assert_holds(self, queue: Queue, expected: int, *, within: float = 5.0) -> None:
        """Fail unless the queue holds `expected` messages, visible or in flight, within
        `within` s (nothing consuming it).

        One read can come up short while nothing is lost: moto counts the visible messages
        and then the invisible ones, so a message whose visibility ends between the two is
        in neither. A lost message is missing from every read.
        """
        held = -1
        with anyio.move_on_after(within):
            while (held := sum(await self.counts(queue))) != expected:  # noqa: ASYNC110 - from outside
                await anyio.sleep(0.1)
        assert held == expected, f"the queue holds {held} messages, not {expected}"


@asynccontextmanager
async def open_kit(endpoint_url: str, test_name: str) -> AsyncIterator[SQSKit]:
    """A kit on the test server at `endpoint_url`, over HTTP."""
    session = get_session()
    async with session.create_client(
        "sqs", region_name=REGION, endpoint_url=endpoint_url
    ) as client:

        async def create(name: str, attributes: dict[str, str]) -> str:
            response = await client.create_queue(QueueName=name, Attributes=attributes)
            return str(response["QueueUrl"])

        sqs = AioBotocoreSQSClient(client, Endpoint(region=REGION, url=endpoint_url))
        yield SQSKit(sqs, create, test_name, client=client)


def memory_kit(memory: MemorySQS, test_name: str) -> SQSKit:
    """A kit on an in-memory SQS."""

    async def create(name: str, attributes: dict[str, str]) -> str:
        return memory.create_queue(name, attributes=attributes)

    return SQSKit(memory, create, test_name)


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


def stats_of(app: App, name: str = "handle") -> ConsumerStatistics:
    """The statistics of the app's consumer `name` (a test's handler is ``handle``)."""
    return app.statistics()[name]
