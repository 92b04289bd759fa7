"""`MemorySQS`: SQS in memory, behind the framework's client protocol.

As httpx's `MockTransport` stands in for the network, `MemorySQS` stands in for SQS: it is
an `SQSClient`, so ``App(client=MemorySQS())`` and ``Producer(client=...)`` run unchanged,
with no server process, no HTTP, no region and no credentials:

```python
sqs = MemorySQS()
sqs.create_queue("orders", dead_letter_queue="orders-dlq", max_receive_count=3)
app = App(client=sqs)
...
assert sqs.counts("orders") == QueueCounts(visible=0, in_flight=0, delayed=0)
```

It keeps what a consumer relies on, with SQS's error codes and messages where SQS says no:

- a received message is invisible for its visibility timeout and counts its receives
  (``ApproximateReceiveCount``); a visibility change needs the latest receipt handle (it
  is taken after the timeout ran out too, while no other receive took the message, and hides
  it again), and no message stays invisible past 12 hours from its receipt;
- a queue's RedrivePolicy moves a message to its dead-letter queue on the receive after its
  ``maxReceiveCount``-th, its receive count carried on there;
- FIFO queues hand out a message group's messages in send order and nothing of a group while
  one of its messages is in flight; they deduplicate within five minutes (by
  MessageDeduplicationId, or the body's SHA-256 with ContentBasedDeduplication);
- per-message and per-queue delays, the retention period, the message size limit and the
  characters SQS accepts; at most ten entries per batch call with distinct, well-formed ids;
- long polls that return as soon as a message can be taken (sent, made visible, its group
  unlocked) and never hand one message to two polls;
- MD5 digests of bodies and message attributes, queue attributes with approximate counts.

Every call on a queue that does not exist raises `QueueNotFoundError`. Time is the clock's
(`aiosqsworker.testing.clock`): the event loop's, or a `ManualClock` the test advances.

What it leaves out: standard queues' occasional duplicates and out-of-order deliveries,
short polls that miss messages, PurgeQueue's once-a-minute limit, permissions, tags, KMS.
"""

from __future__ import annotations

import itertools
import json
import secrets
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import anyio.lowlevel

from .._errors import ConfigurationError, QueueNotFoundError, SQSError
from .._sqs.base import BatchEntryFailure, BatchResult, SendBatchResult
from .._sqs.checksums import md5_of_attributes, md5_of_body
from .._sqs.errors import Endpoint, sqs_error
from .._sqs.limits import (
    DEDUPLICATION_WINDOW,
    MAX_BATCH,
    MAX_RECEIVE_COUNT,
    MAX_VISIBILITY,
    MAX_WAIT_TIME,
)
from .._sqs.redrive import RedrivePolicy
from .._sqs.urls import queue_name
from ._sqsrules import (
    Refused,
    SendEntry,
    check_batch_ids,
    check_batch_size,
    check_queue,
    check_send_entry,
    whole_seconds,
)
from .clock import Clock, RealClock

__all__ = ["MemorySQS", "QueueCounts", "QueuedMessage"]

MessageState = Literal["visible", "in flight", "delayed"]


@dataclass(frozen=True, slots=True)
class QueueCounts:
    """A queue's messages by state, as `MemorySQS.counts` reports them."""

    visible: int = 0
    in_flight: int = 0
    delayed: int = 0

    @property
    def total(self) -> int:
        return self.visible + self.in_flight + self.delayed


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """A snapshot of one message a queue holds, as `MemorySQS.messages` reports it.

    Attributes:
        message_id: its MessageId.
        body: its body.
        state: ``"visible"``, ``"in flight"`` (received, its visibility timeout running) or
            ``"delayed"`` (sent with a delay that has not passed yet).
        receive_count: how often it was received (``ApproximateReceiveCount``).
        group_id: its MessageGroupId, if any.
        message_attributes: the sender's message attributes.
        attributes: the system attributes a receive would return (without the receive's own).
    """

    message_id: str
    body: str
    state: MessageState
    receive_count: int
    group_id: str | None
    message_attributes: Mapping[str, Mapping[str, Any]]
    attributes: Mapping[str, str]

    def json(self) -> Any:
        """The body, decoded as JSON."""
        return json.loads(self.body)


@dataclass(eq=False, slots=True)
class _Stored:
    message_id: str
    body: str
    message_attributes: dict[str, dict[str, Any]]
    system_attributes: dict[str, str]
    sent_at: float  # on the clock
    available_at: float  # on the clock: when it is (or was) visible
    group_id: str | None = None
    receive_count: int = 0
    receipt: str | None = None  # the latest receipt handle
    handles: list[str] = field(default_factory=list)  # every receipt handle it was given
    received_at: float = 0.0  # on the clock, of the latest receipt
    first_received: int | None = None  # epoch milliseconds


@dataclass(eq=False)
class _Account:
    """What the queues of one MemorySQS share: its account, its clock's epoch and FIFO
    sequence numbers, which SQS keeps growing across queues."""

    account_id: str
    epoch: float  # wall-clock seconds at the clock's zero
    sequence_numbers: Iterator[int] = field(default_factory=lambda: itertools.count(10**19))

    def epoch_ms(self, at: float) -> int:
        return int((self.epoch + at) * 1000)

    def sequence_number(self) -> str:
        return str(next(self.sequence_numbers))


@dataclass(eq=False)
class _Queue:
    """One queue: its messages and every rule of their lives (receive, visibility, delete,
    redrive, retention, deduplication). `MemorySQS` checks each call and finds the queue."""

    name: str
    url: str
    arn: str
    attributes: dict[str, str]
    created: int  # epoch seconds
    account: _Account
    messages: dict[str, _Stored] = field(default_factory=dict)  # in order of arrival
    receipts: dict[str, _Stored] = field(default_factory=dict)  # every handle still here
    deleted: set[str] = field(default_factory=set)  # handles of deleted messages
    deduplication: dict[str, tuple[float, str]] = field(default_factory=dict)
    waiters: set[anyio.Event] = field(default_factory=set)

    @property
    def fifo(self) -> bool:
        return self.attributes.get("FifoQueue") == "true"

    def number(self, name: str) -> int:
        return int(self.attributes[name])

    @property
    def redrive(self) -> RedrivePolicy | None:
        return RedrivePolicy.of(self.attributes)

    def state(self, message: _Stored, now: float) -> MessageState:
        if message.available_at <= now:
            return "visible"
        return "in flight" if message.receive_count else "delayed"

    def notify(self) -> None:
        """Wake every long poll waiting on this queue to look again."""
        for waiter in self.waiters:
            waiter.set()

    def remove(self, message: _Stored, *, deleted: bool) -> None:
        del self.messages[message.message_id]
        for handle in message.handles:
            del self.receipts[handle]
        if deleted:
            self.deleted.update(message.handles)

    def store(self, entry: SendEntry, now: float) -> tuple[str, str]:
        """Store one checked SendMessage entry (or find its duplicate); (MessageId, body MD5)."""
        key = None
        if entry.deduplication_id is not None:
            key = entry.deduplication_id
            if self.attributes.get("DeduplicationScope") == "messageGroup":
                key = f"{entry.group_id}\n{key}"
            earlier = self.deduplication.get(key)
            if earlier is not None and earlier[0] > now:
                return earlier[1], md5_of_body(entry.body)
        message_id = str(uuid.uuid4())
        system = {
            **entry.system_attributes,
            "SentTimestamp": str(self.account.epoch_ms(now)),
            "SenderId": self.account.account_id,
        }
        if entry.group_id is not None:
            system["MessageGroupId"] = entry.group_id
        if key is not None:
            assert entry.deduplication_id is not None
            system["MessageDeduplicationId"] = entry.deduplication_id
            system["SequenceNumber"] = self.account.sequence_number()
            self.deduplication[key] = (now + DEDUPLICATION_WINDOW, message_id)
        delay = self.number("DelaySeconds") if entry.delay is None else entry.delay
        self.messages[message_id] = _Stored(
            message_id=message_id,
            body=entry.body,
            message_attributes=entry.message_attributes,
            system_attributes=system,
            sent_at=now,
            available_at=now + delay,
            group_id=entry.group_id,
        )
        return message_id, md5_of_body(entry.body)

    def expire(self, now: float) -> None:
        """Drop what outlived the retention period, and deduplication ids past their window."""
        retention = self.number("MessageRetentionPeriod")
        for message in list(self.messages.values()):
            if message.sent_at + retention <= now:
                self.remove(message, deleted=False)
        for key, (until, _) in list(self.deduplication.items()):
            if until <= now:
                del self.deduplication[key]

    def take(
        self,
        now: float,
        most: int,
        visibility_timeout: int,
        queue_of_arn: Callable[[str], _Queue | None],
    ) -> list[dict[str, Any]]:
        """One atomic pass of a receive: up to `most` messages, now in flight; a message past
        its RedrivePolicy's count moves to the policy's queue (`queue_of_arn`), if it exists."""
        self.expire(now)
        redrive = self.redrive
        dead_letters = queue_of_arn(redrive.dead_letter_arn) if redrive else None
        # A FIFO group gives nothing while any of its messages is in flight, and nothing
        # after one that is not visible (its order would break).
        blocked = {
            message.group_id
            for message in self.messages.values()
            if self.fifo and self.state(message, now) == "in flight"
        }
        taken: list[dict[str, Any]] = []
        for message in list(self.messages.values()):
            if len(taken) == most:
                break
            if self.fifo and message.group_id in blocked:
                continue
            if message.available_at > now:
                blocked.add(message.group_id)
                continue
            if (
                redrive is not None
                and dead_letters is not None
                and message.receive_count >= redrive.max_receive_count
            ):
                self.move(message, dead_letters, now)
                continue
            message.receive_count += 1
            if message.first_received is None:
                message.first_received = self.account.epoch_ms(now)
            handle = secrets.token_urlsafe(48)
            self.receipts[handle] = message
            message.handles.append(handle)
            message.receipt = handle
            message.received_at = now
            message.available_at = now + visibility_timeout
            taken.append(_delivery(message))
        return taken

    def move(self, message: _Stored, target: _Queue, now: float) -> None:
        """SQS's redrive: the message leaves this queue for its dead-letter queue, where it
        keeps its receive count (its next receive there counts on from it)."""
        self.remove(message, deleted=False)
        system = {**message.system_attributes, "DeadLetterQueueSourceArn": self.arn}
        if target.fifo:
            system["SequenceNumber"] = self.account.sequence_number()
        target.messages[message.message_id] = _Stored(
            message_id=message.message_id,
            body=message.body,
            message_attributes=message.message_attributes,
            system_attributes=system,
            sent_at=message.sent_at,
            available_at=now,
            group_id=message.group_id,
            receive_count=message.receive_count,
            first_received=message.first_received,
        )
        target.notify()

    def next_change(self, now: float) -> float:
        """When a message that is not visible now becomes visible."""
        return min(
            (
                message.available_at
                for message in self.messages.values()
                if message.available_at > now
            ),
            default=float("inf"),
        )

    def delete(self, id_: str, handle: str) -> BatchEntryFailure | None:
        """One DeleteMessageBatch entry; its failure, or None when it succeeded."""
        message = self.receipts.get(handle)
        if message is None and handle not in self.deleted:
            return _invalid_handle(id_, handle)
        # A stale handle (the message was received again since): SQS answers success and
        # may keep the message; here it always stays, so that the mistake shows.
        if message is not None and message.receipt == handle:
            self.remove(message, deleted=True)
        return None

    def change_visibility(self, handle: str, timeout: object, now: float) -> None:
        seconds = whole_seconds(timeout, "VisibilityTimeout", 0, MAX_VISIBILITY)
        message = self.receipts.get(handle)
        if message is None and handle not in self.deleted:
            refused = _invalid_handle("", handle)
            raise Refused(refused.code, refused.message)
        reason = None
        if message is None:
            reason = "Message does not exist or is not available for visibility timeout change."
        elif message.receipt != handle:
            reason = "The receipt handle has expired."
        # A message whose timeout ran out but that no one received since still takes its
        # latest receipt's change, as SQS (and moto, and ministack) do: it is hidden again.
        if reason is not None:
            raise Refused(
                "InvalidParameterValue",
                f"Value {handle} for parameter ReceiptHandle is invalid. Reason: {reason}",
            )
        assert message is not None
        if now - message.received_at + seconds > MAX_VISIBILITY:
            raise Refused(
                "InvalidParameterValue",
                f"Value {seconds} for parameter VisibilityTimeout is invalid. Reason: Total "
                f"VisibilityTimeout for the message is beyond the limit [{MAX_VISIBILITY} "
                "seconds]",
            )
        message.available_at = now + seconds


class MemorySQS:
    """An in-memory SQS: the `SQSClient` protocol, plus helpers to arrange and inspect queues.

    Args:
        clock: where time comes from: `RealClock()` (the default, the event loop's clock) or
            a `ManualClock` that the test advances.
        region: the region in queue ARNs and in errors.
        account_id: the account in queue URLs and ARNs.

    Use it from the event loop's thread, as the client of any number of apps and producers.
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        region: str = "us-east-1",
        account_id: str = "123456789012",
    ) -> None:
        self.clock: Clock = clock or RealClock()
        self.region = region
        self.account_id = account_id
        self._endpoint = Endpoint(region=region, url=f"memory://sqs.{region}")
        self._queues: dict[str, _Queue] = {}
        self._account = _Account(account_id, time.time() - self.clock.time())

    def __repr__(self) -> str:
        return f"MemorySQS(queues={sorted(self._queues)!r}, clock={self.clock!r})"

    # Arranging and inspecting, for tests.

    def create_queue(
        self,
        name: str,
        *,
        fifo: bool | None = None,
        visibility_timeout: int | None = None,
        delay: int | None = None,
        content_based_deduplication: bool | None = None,
        dead_letter_queue: str | None = None,
        max_receive_count: int | None = None,
        attributes: Mapping[str, str] | None = None,
    ) -> str:
        """Create a queue as CreateQueue would and return its URL.

        `fifo` defaults to whether the name ends in ``.fifo``. With `dead_letter_queue` (a
        name) and `max_receive_count`, the dead-letter queue is created too when it does not
        exist, and the queue gets a RedrivePolicy naming it. `attributes` takes any other
        CreateQueue attribute, as strings. Creating a queue that exists with the same
        attributes returns its URL again.
        """
        given = dict(attributes or {})
        keywords: dict[str, str] = {}
        if fifo if fifo is not None else name.endswith(".fifo"):
            keywords["FifoQueue"] = "true"
        if visibility_timeout is not None:
            keywords["VisibilityTimeout"] = str(visibility_timeout)
        if delay is not None:
            keywords["DelaySeconds"] = str(delay)
        if content_based_deduplication is not None:
            keywords["ContentBasedDeduplication"] = str(content_based_deduplication).lower()
        if (dead_letter_queue is None) != (max_receive_count is None):
            raise ConfigurationError(
                "create_queue: give dead_letter_queue= and max_receive_count= together (the "
                "queue's RedrivePolicy needs both)"
            )
        if dead_letter_queue is not None:
            if dead_letter_queue not in self._queues:
                same_kind = {"FifoQueue": "true"} if "FifoQueue" in keywords else {}
                self._create(dead_letter_queue, same_kind)
            target = self._queues[dead_letter_queue]
            assert max_receive_count is not None
            keywords["RedrivePolicy"] = RedrivePolicy(target.arn, max_receive_count).attribute()
        for key, value in keywords.items():
            if key in given and given[key] != value:
                raise ConfigurationError(
                    f"create_queue: {key} is given twice ({given[key]!r} in attributes= and "
                    f"{value!r} by keyword): give it once"
                )
        return self._create(name, {**given, **keywords})

    def delete_queue(self, queue: str) -> None:
        """Delete a queue (by name or URL) and every message in it."""
        deleted = self._queue(queue, "DeleteQueue")
        del self._queues[deleted.name]
        deleted.notify()

    def purge_queue(self, queue: str) -> None:
        """Delete every message of a queue (by name or URL), in flight or not."""
        purged = self._queue(queue, "PurgeQueue")
        for message in list(purged.messages.values()):
            purged.remove(message, deleted=True)
        purged.notify()

    def queue_url(self, name: str) -> str:
        """The URL of an existing queue."""
        return self._queue(name, "GetQueueUrl").url

    def messages(self, queue: str) -> list[QueuedMessage]:
        """What a queue (by name or URL) holds now, in order of arrival."""
        held = self._queue(queue, "inspect")
        now = self.clock.time()
        held.expire(now)
        return [
            QueuedMessage(
                message_id=message.message_id,
                body=message.body,
                state=held.state(message, now),
                receive_count=message.receive_count,
                group_id=message.group_id,
                message_attributes={k: dict(v) for k, v in message.message_attributes.items()},
                attributes=dict(message.system_attributes),
            )
            for message in held.messages.values()
        ]

    def counts(self, queue: str) -> QueueCounts:
        """How many messages of a queue (by name or URL) are visible, in flight, delayed."""
        states = [message.state for message in self.messages(queue)]
        return QueueCounts(
            visible=states.count("visible"),
            in_flight=states.count("in flight"),
            delayed=states.count("delayed"),
        )

    # The SQSClient protocol.

    #: A cancelled long poll takes nothing here, so a stopping app need not wait for it.
    cancelled_polls_take_messages = False

    @property
    def endpoint(self) -> Endpoint:
        return self._endpoint

    async def resolve_queue_url(self, queue: str) -> str:
        await anyio.lowlevel.checkpoint()
        return self._queue(queue, "GetQueueUrl").url

    async def get_queue_attributes(self, queue_url: str) -> dict[str, str]:
        await anyio.lowlevel.checkpoint()
        queue = self._queue(queue_url, "GetQueueAttributes")
        counts = self.counts(queue.url)
        return {
            **queue.attributes,
            "QueueArn": queue.arn,
            "CreatedTimestamp": str(queue.created),
            "LastModifiedTimestamp": str(queue.created),
            "ApproximateNumberOfMessages": str(counts.visible),
            "ApproximateNumberOfMessagesNotVisible": str(counts.in_flight),
            "ApproximateNumberOfMessagesDelayed": str(counts.delayed),
        }

    async def receive_messages(
        self, queue_url: str, *, max_messages: int, wait_time: int, visibility_timeout: int
    ) -> list[dict[str, Any]]:
        await anyio.lowlevel.checkpoint()
        operation = "ReceiveMessage"
        try:
            whole_seconds(max_messages, "MaxNumberOfMessages", 1, MAX_BATCH)
            whole_seconds(wait_time, "WaitTimeSeconds", 0, MAX_WAIT_TIME)
            whole_seconds(visibility_timeout, "VisibilityTimeout", 0, MAX_VISIBILITY)
        except Refused as refused:
            raise self._error(refused, operation, queue_url) from None
        deadline = self.clock.time() + wait_time
        while True:
            queue = self._queue(queue_url, operation)
            now = self.clock.time()
            taken = queue.take(now, max_messages, visibility_timeout, self._dead_letter_queue)
            if taken or now >= deadline:
                return taken
            wake = anyio.Event()
            queue.waiters.add(wake)
            try:
                await self.clock.sleep_until(min(deadline, queue.next_change(now)), wake)
            finally:
                queue.waiters.discard(wake)

    async def delete_message_batch(
        self, queue_url: str, entries: Sequence[tuple[str, str]]
    ) -> BatchResult:
        await anyio.lowlevel.checkpoint()
        operation = "DeleteMessageBatch"
        queue = self._queue(queue_url, operation)
        try:
            check_batch_ids(operation, [id_ for id_, _ in entries])
        except Refused as refused:
            raise self._error(refused, operation, queue_url) from None
        done: list[str] = []
        failed: list[BatchEntryFailure] = []
        for id_, handle in entries:
            failure = queue.delete(id_, handle)
            if failure is None:
                done.append(id_)
            else:
                failed.append(failure)
        queue.notify()  # a FIFO group may be free now
        return BatchResult(successful=tuple(done), failed=tuple(failed))

    async def change_visibility_batch(
        self, queue_url: str, entries: Sequence[tuple[str, str, int]]
    ) -> BatchResult:
        await anyio.lowlevel.checkpoint()
        operation = "ChangeMessageVisibilityBatch"
        queue = self._queue(queue_url, operation)
        try:
            check_batch_ids(operation, [id_ for id_, _, _ in entries])
        except Refused as refused:
            raise self._error(refused, operation, queue_url) from None
        now = self.clock.time()
        done: list[str] = []
        failed: list[BatchEntryFailure] = []
        for id_, handle, timeout in entries:
            try:
                queue.change_visibility(handle, timeout, now)
            except Refused as refused:
                failed.append(BatchEntryFailure(id_, refused.code, refused.message, True))
            else:
                done.append(id_)
        queue.notify()
        return BatchResult(successful=tuple(done), failed=tuple(failed))

    async def queue_url_from_arn(self, arn: str) -> str:
        await anyio.lowlevel.checkpoint()
        parts = arn.split(":")
        if len(parts) != 6 or parts[0] != "arn" or parts[2] != "sqs":
            raise SQSError(f"{arn!r} is not an SQS queue ARN", operation="GetQueueUrl")
        queue = self._queues.get(parts[5])
        if queue is None or queue.arn != arn:
            raise self._missing(arn, "GetQueueUrl")
        return queue.url

    async def list_dead_letter_source_queues(self, queue_url: str) -> list[str]:
        await anyio.lowlevel.checkpoint()
        target = self._queue(queue_url, "ListDeadLetterSourceQueues")
        return [
            queue.url
            for queue in self._queues.values()
            if queue.redrive is not None and queue.redrive.dead_letter_arn == target.arn
        ]

    async def send_message_batch(
        self, queue_url: str, entries: Sequence[Mapping[str, Any]]
    ) -> SendBatchResult:
        await anyio.lowlevel.checkpoint()
        operation = "SendMessageBatch"
        queue = self._queue(queue_url, operation)
        try:
            check_batch_ids(operation, [entry.get("Id") for entry in entries])
            check_batch_size(entries)
        except Refused as refused:
            raise self._error(refused, operation, queue_url) from None
        now = self.clock.time()
        sent: dict[str, tuple[str, str | None]] = {}
        failed: list[BatchEntryFailure] = []
        for entry in entries:
            try:
                checked = check_send_entry(
                    entry,
                    fifo=queue.fifo,
                    content_based=queue.attributes.get("ContentBasedDeduplication") == "true",
                    max_size=queue.number("MaximumMessageSize"),
                )
                sent[entry["Id"]] = queue.store(checked, now)
            except Refused as refused:
                failed.append(BatchEntryFailure(entry["Id"], refused.code, refused.message, True))
        queue.notify()
        return SendBatchResult(sent=sent, failed=tuple(failed))

    # The model.

    def _queue(self, queue: str, operation: str) -> _Queue:
        """A queue by name, or by a URL ending in its name."""
        found = self._queues.get(_name_of(queue))
        if found is None:
            raise self._missing(queue, operation)
        return found

    def _missing(self, queue: str, operation: str) -> QueueNotFoundError:
        names = sorted(self._queues)
        known = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "") or "no queues"
        name = _name_of(queue).rpartition(":")[2]
        return QueueNotFoundError(
            f"queue {queue!r} does not exist in this MemorySQS (it has {known}): create it "
            f"first, with create_queue({name!r})",
            code="AWS.SimpleQueueService.NonExistentQueue",
            operation=operation,
        )

    def _error(self, refused: Refused, operation: str, queue: str | None) -> SQSError:
        return sqs_error(
            refused.code,
            400,
            refused.message,
            operation=operation,
            endpoint=self._endpoint,
            queue=queue,
        )

    def _create(self, name: str, attributes: Mapping[str, str]) -> str:
        try:
            checked = check_queue(name, attributes)
            policy = checked.get("RedrivePolicy")
            if policy is not None:
                self._check_redrive_policy(policy, fifo=checked.get("FifoQueue") == "true")
        except Refused as refused:
            raise self._error(refused, "CreateQueue", name) from None
        existing = self._queues.get(name)
        if existing is not None:
            for key, value in checked.items():
                if existing.attributes.get(key) != value:
                    raise self._error(
                        Refused(
                            "QueueAlreadyExists",
                            "A queue already exists with the same name and a different value "
                            f"for attribute {key}",
                        ),
                        "CreateQueue",
                        name,
                    )
            return existing.url
        self._queues[name] = _Queue(
            name=name,
            url=f"{self._endpoint.url}/{self.account_id}/{name}",
            arn=f"arn:aws:sqs:{self.region}:{self.account_id}:{name}",
            attributes=checked,
            created=int(self._account.epoch + self.clock.time()),
            account=self._account,
        )
        return self._queues[name].url

    def _check_redrive_policy(self, policy: str, *, fifo: bool) -> None:
        """A RedrivePolicy names an existing queue of the same kind, and a count in range."""

        def refuse(reason: str) -> Refused:
            return Refused(
                "InvalidParameterValue",
                f"Value {policy} for parameter RedrivePolicy is invalid. Reason: {reason}.",
            )

        parsed = RedrivePolicy.of({"RedrivePolicy": policy})
        if parsed is None:
            raise refuse(
                "Redrive policy is not a valid JSON map of deadLetterTargetArn and maxReceiveCount"
            )
        if not 1 <= parsed.max_receive_count <= MAX_RECEIVE_COUNT:
            raise refuse(
                f"Invalid value for maxReceiveCount: must be from 1 to {MAX_RECEIVE_COUNT}"
            )
        target = self._dead_letter_queue(parsed.dead_letter_arn)
        if target is None:
            raise refuse("Dead letter target does not exist")
        if target.fifo != fifo:
            raise refuse("Dead-letter target queue must be of the same type as the source")

    def _dead_letter_queue(self, arn: str) -> _Queue | None:
        return next((queue for queue in self._queues.values() if queue.arn == arn), None)


def _delivery(message: _Stored) -> dict[str, Any]:
    """One entry of a ReceiveMessage answer, every attribute asked for."""
    assert message.receipt is not None
    assert message.first_received is not None
    delivery: dict[str, Any] = {
        "MessageId": message.message_id,
        "ReceiptHandle": message.receipt,
        "MD5OfBody": md5_of_body(message.body),
        "Body": message.body,
        "Attributes": {
            **message.system_attributes,
            "ApproximateReceiveCount": str(message.receive_count),
            "ApproximateFirstReceiveTimestamp": str(message.first_received),
        },
    }
    if message.message_attributes:
        delivery["MessageAttributes"] = {
            name: dict(value) for name, value in message.message_attributes.items()
        }
        delivery["MD5OfMessageAttributes"] = md5_of_attributes(message.message_attributes)
    return delivery


def _name_of(queue: str) -> str:
    """A queue's name, given as a name or as a URL."""
    return queue_name(queue) if "://" in queue else queue


def _invalid_handle(id_: str, handle: str) -> BatchEntryFailure:
    return BatchEntryFailure(
        id_,
        "ReceiptHandleIsInvalid",
        f'The input receipt handle "{handle}" is not a valid receipt handle.',
        True,
    )
