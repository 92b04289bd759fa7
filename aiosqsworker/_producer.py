"""Sending: one message per call for the caller, SendMessageBatch calls on the wire.

`BatchingSender.send` looks like a single send, but concurrent sends to the same queue share
a SendMessageBatch call: the first sender of a batch waits up to `linger` for up to nine
others (or until the batch reaches SQS's size limit), then sends for all. Every entry of the
answer is read by `_sqs.batches.read_answer`: a failed entry that can be retried, and one the
answer leaves out (its outcome unknown), is sent again; others raise for their own sender
only, and so does an entry still unconfirmed after MAX_ATTEMPTS; the MD5 SQS computed of
each body must match what was sent.

`encode_body` and `encode_attributes` turn Python values into what SQS carries. Before a
message joins a batch, its size (body and attributes) is held against its queue's
``MaximumMessageSize``, read once per queue: over it, the body goes to S3 (with a payload
bucket, in the extended-client format of `_sqs.payloads`) or the send is refused, before
anything is sent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypedDict, TypeVar

import anyio

from ._backoff import backoff
from ._config import (
    AppConfig,
    ClientName,
    PayloadOffload,
    check_seconds,
    checked_settings,
)
from ._errors import AccessDeniedError, ConfigurationError, SQSError, TransientSQSError
from ._sqs.base import MAX_MESSAGE_BYTES, BatchEntryFailure, SQSClient, message_size
from ._sqs.batches import LEFT_OUT, read_answer
from ._sqs.checksums import md5_of_body
from ._sqs.limits import MAX_ATTRIBUTES, MAX_BATCH, MAX_BATCH_BYTES
from ._sqs.open import open_payload_store, open_sqs_client
from ._sqs.payloads import (
    RESERVED_ATTRIBUTES,
    PayloadStore,
    offload_decision,
    pointer_attributes,
    pointer_body,
)
from ._sqs.rules import (
    Refusal,
    attribute_count_refusal,
    message_refusal,
    queue_kind_refusal,
    queue_message_limit,
    size_refusal,
)
from ._sqs.urls import queue_name
from .tracing import with_trace_context

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = [
    "MAX_MESSAGE_BYTES",
    "BatchingSender",
    "PayloadSending",
    "Producer",
    "QueueLimits",
    "QueueUrls",
    "SendOptions",
    "SharedLookup",
    "batch_is_full",
    "encode_attributes",
    "encode_body",
    "fifo_send_problem",
    "message_size",
]

logger = logging.getLogger("aiosqsworker.producer")

#: What a queue takes when its MaximumMessageSize cannot be read: the size many queues (and
#: AWS's extended client) still use, so that an offloading sender errs on the safe side.
UNKNOWN_LIMIT = 262_144
MAX_ATTEMPTS = 3
T = TypeVar("T")


def encode_body(body: object) -> str:
    """The text SQS carries for `body`: str as is, models and data as JSON."""
    if isinstance(body, str):
        return body
    if isinstance(body, bytes | bytearray):
        try:
            return bytes(body).decode()
        except UnicodeDecodeError:
            raise ConfigurationError(
                "a message body must be text: encode binary data (base64) before sending"
            ) from None
    dump = getattr(body, "model_dump_json", None)  # a pydantic model
    if callable(dump):
        return str(dump())
    if dataclasses.is_dataclass(body) and not isinstance(body, type):
        return json.dumps(dataclasses.asdict(body))
    try:
        return json.dumps(body)
    except TypeError as exc:
        raise ConfigurationError(
            f"cannot send a {type(body).__name__} as a message body ({exc}): send str, bytes, "
            "JSON-serializable data, a dataclass or a pydantic model"
        ) from None


def encode_attributes(attributes: Mapping[str, object] | None) -> dict[str, dict[str, Any]]:
    """SQS message attributes from plain values (str, int, float, bytes) or SQS's own dicts."""
    encoded: dict[str, dict[str, Any]] = {}
    for name, value in (attributes or {}).items():
        if isinstance(value, Mapping):
            encoded[name] = dict(value)
        elif isinstance(value, bool):
            encoded[name] = {"DataType": "String", "StringValue": str(value).lower()}
        elif isinstance(value, int | float):
            encoded[name] = {"DataType": "Number", "StringValue": str(value)}
        elif isinstance(value, bytes):
            encoded[name] = {"DataType": "Binary", "BinaryValue": value}
        else:
            encoded[name] = {"DataType": "String", "StringValue": str(value)}
    refusal = attribute_count_refusal(len(encoded))
    if refusal is not None:
        raise refused(refusal)
    return encoded


def refused(refusal: Refusal) -> ConfigurationError:
    """The error for a message SQS would refuse: raised before anything is sent."""
    return ConfigurationError(f"{refusal.hint}: nothing was sent ({refusal.answer})")


def fifo_send_problem(
    queue_url: str, *, group_id: str | None, delay: int, deduplication_id: str | None = None
) -> str | None:
    """Why SQS would refuse this send for the queue's kind, or None (a FIFO queue's name ends
    in ``.fifo``, so the URL tells before any call)."""
    fifo = queue_url.endswith(".fifo")
    refusal = queue_kind_refusal(
        fifo=fifo, group_id=group_id, deduplication_id=deduplication_id, delay=delay
    )
    if refusal is None:
        return None
    name = queue_name(queue_url)
    if refusal.parameter == "MessageGroupId":
        problem = (
            f"{name} is a FIFO queue: pass group_id=... (its MessageGroupId; messages of one "
            "group are handled in order), and deduplication_id=... unless the queue has "
            "ContentBasedDeduplication"
        )
    elif refusal.parameter == "DelaySeconds":
        problem = (
            f"{name} is a FIFO queue: SQS takes no per-message delay there (set the queue's "
            "DelaySeconds instead)"
        )
    else:
        problem = f"{name} is a standard queue: deduplication_id=... is for FIFO queues only"
    return f"{problem} ({refusal.answer})"


def batch_is_full(count: int, total: int, size: int) -> bool:
    """Whether a SendMessageBatch of `count` entries and `total` bytes cannot take one of
    `size` more: ten entries, and 1 MiB in all."""
    return count == MAX_BATCH or total + size > MAX_BATCH_BYTES


@dataclass(eq=False)
class _Entry:
    request: dict[str, Any]
    size: int
    message_id: str | None = None
    error: Exception | None = None


@dataclass(eq=False)
class _Batch:
    entries: list[_Entry] = field(default_factory=list)
    size: int = 0
    full: anyio.Event = field(default_factory=anyio.Event)
    done: anyio.Event = field(default_factory=anyio.Event)
    closed: bool = False

    def fits(self, entry: _Entry) -> bool:
        return not batch_is_full(len(self.entries), self.size, entry.size)


class SendOptions(TypedDict, total=False):
    """What a send may say besides the body.

    Attributes:
        attributes: message attributes: plain values (str, int, float, bytes) or SQS's dicts.
        delay: seconds before the message becomes visible (0 to 900).
        group_id: the MessageGroupId, for a FIFO queue.
        deduplication_id: the MessageDeduplicationId, for a FIFO queue without content-based
            deduplication.
    """

    attributes: Mapping[str, object] | None
    delay: int
    group_id: str | None
    deduplication_id: str | None


@dataclass(eq=False)
class _Lookup(Generic[T]):
    """One value being looked up, and what came of it."""

    done: anyio.Event = field(default_factory=anyio.Event)
    found: bool = False
    value: T | None = None
    error: Exception | None = None


class SharedLookup(Generic[T]):
    """Values looked up once per key, however many callers ask at the same moment.

    The first asker looks up; the others wait on its lookup and wake together (a lock would
    let them through one loop turn at a time, and the earliest could close its batch before
    the last arrived). Askers go on in the order they asked, which keeps a FIFO queue's
    sends in order: the value is cached only after the waiters have resumed, so that one
    arriving meanwhile queues behind them. A failed lookup is not kept: the next asker tries
    again.
    """

    def __init__(self, look_up: Callable[[str], Awaitable[T]]) -> None:
        self._look_up = look_up
        self._values: dict[str, T] = {}
        self._lookups: dict[str, _Lookup[T]] = {}

    async def get(self, key: str) -> T:
        if key in self._values:
            return self._values[key]
        lookup = self._lookups.get(key)
        if lookup is None:
            lookup = self._lookups[key] = _Lookup()
            try:
                value = await self._look_up(key)
                lookup.value, lookup.found = value, True
            except BaseException as exc:
                if isinstance(exc, Exception):
                    lookup.error = exc
                del self._lookups[key]
                raise
            finally:
                lookup.done.set()
            # The waiters woken above resume next loop turn, before this runs.
            asyncio.get_running_loop().call_soon(self._settle, key, lookup)
            return value
        await lookup.done.wait()
        if lookup.error is not None:
            raise lookup.error
        if not lookup.found:  # the first asker was cancelled: ask again
            return await self.get(key)
        return lookup.value  # type: ignore[return-value]  # found: a T

    def _settle(self, key: str, lookup: _Lookup[T]) -> None:
        if self._lookups.get(key) is lookup:
            del self._lookups[key]
            self._values[key] = lookup.value  # type: ignore[assignment]  # found: a T


class QueueUrls(SharedLookup[str]):
    """Queue names resolved to URLs once (see `SharedLookup`)."""

    def __init__(self, client: SQSClient) -> None:
        super().__init__(client.resolve_queue_url)


class QueueLimits(SharedLookup[int | None]):
    """Each queue's MaximumMessageSize, read once; None where it cannot be read.

    A sender allowed sqs:SendMessage but not sqs:GetQueueAttributes still sends: it is
    warned once, and its queue's limit is taken as unknown.
    """

    def __init__(self, client: SQSClient) -> None:
        async def read(queue_url: str) -> int | None:
            try:
                attributes = await client.get_queue_attributes(queue_url)
            except AccessDeniedError as exc:
                logger.warning(
                    "cannot read the MaximumMessageSize of %s (%s): sizes are checked against "
                    "%d bytes instead. Grant sqs:GetQueueAttributes to check its own",
                    queue_url,
                    exc.code,
                    UNKNOWN_LIMIT,
                )
                return None
            return queue_message_limit(attributes)

        super().__init__(read)


@dataclass(frozen=True, slots=True)
class PayloadSending:
    """Where a sender puts bodies too large for their queue (see `_sqs.payloads`)."""

    store: PayloadStore
    bucket: str | None
    offload: PayloadOffload = "over-limit"


def _too_large(
    size: int, limit: int | None, queue_url: str, refusal: Refusal
) -> ConfigurationError:
    if limit is None or limit >= MAX_MESSAGE_BYTES:
        where = f"over SQS's limit of {MAX_MESSAGE_BYTES} bytes"
    else:
        where = (
            f"over the MaximumMessageSize of queue {queue_name(queue_url)} ({limit} bytes; "
            f"SQS allows up to {MAX_MESSAGE_BYTES})"
        )
    return ConfigurationError(
        f"message of {size} bytes (body and attributes) is {where}: nothing was sent "
        f"({refusal.answer}). "
        "Give App/Producer payload_bucket=... to send large bodies through S3, or raise the "
        "queue's MaximumMessageSize"
    )


class BatchingSender:
    """Coalesces concurrent sends to a queue into SendMessageBatch calls."""

    def __init__(
        self,
        client: SQSClient,
        *,
        linger: float = 0.01,
        payloads: PayloadSending | None = None,
    ) -> None:
        self._client = client
        self._linger = linger
        self._open: dict[str, _Batch] = {}
        self._limits = QueueLimits(client)
        self._payloads = payloads

    async def send(self, queue_url: str, body: object, **options: Unpack[SendOptions]) -> str:
        """Send one message; returns its MessageId once SQS has it."""
        delay = options.get("delay", 0)
        group_id = options.get("group_id")
        deduplication_id = options.get("deduplication_id")
        text = encode_body(body)
        encoded = encode_attributes(options.get("attributes"))
        size = message_size(text, encoded)
        refusal = message_refusal(
            text,
            encoded,
            delay=delay,
            group_id=group_id,
            deduplication_id=deduplication_id,
            limit=None,  # held against the queue's own limit below, or sent through S3
        )
        if refusal is not None:
            raise refused(refusal)
        problem = fifo_send_problem(
            queue_url, group_id=group_id, delay=delay, deduplication_id=deduplication_id
        )
        if problem is not None:
            raise ConfigurationError(problem)
        limit = await self._limits.get(queue_url)
        payloads = self._payloads
        decision = offload_decision(
            size,
            (UNKNOWN_LIMIT if payloads and payloads.bucket else MAX_MESSAGE_BYTES)
            if limit is None
            else limit,
            bucket=payloads.bucket if payloads else None,
            always=payloads is not None and payloads.offload == "always",
        )
        if decision == "refuse":  # (only without a bucket: the limit is SQS's or the queue's)
            refusal = size_refusal(text, encoded, MAX_MESSAGE_BYTES if limit is None else limit)
            assert refusal is not None  # over the limit the decision was taken against
            raise _too_large(size, limit, queue_url, refusal)
        if decision == "offload":
            assert payloads is not None
            assert payloads.bucket is not None
            text, encoded = await _offload(payloads.store, payloads.bucket, text, encoded)
            size = message_size(text, encoded)
        request: dict[str, Any] = {"MessageBody": text}
        if encoded:
            request["MessageAttributes"] = encoded
        if delay:
            request["DelaySeconds"] = delay
        if group_id is not None:
            request["MessageGroupId"] = group_id
        if deduplication_id is not None:
            request["MessageDeduplicationId"] = deduplication_id
        entry = _Entry(request=request, size=size)
        batch = self._open.get(queue_url)
        if batch is None or batch.closed or not batch.fits(entry):
            batch = _Batch()
            self._open[queue_url] = batch
            await self._lead(queue_url, batch, entry)
        else:
            batch.entries.append(entry)
            batch.size += size
            if not batch.fits(_Entry(request={}, size=1)):
                batch.full.set()
            await batch.done.wait()
        if entry.error is not None:
            raise entry.error
        assert entry.message_id is not None
        return entry.message_id

    async def _lead(self, queue_url: str, batch: _Batch, entry: _Entry) -> None:
        """The first sender of a batch: linger, then send it for everyone in it."""
        batch.entries.append(entry)
        batch.size += entry.size
        try:
            with anyio.move_on_after(self._linger):
                await batch.full.wait()
        finally:
            batch.closed = True
            if self._open.get(queue_url) is batch:
                del self._open[queue_url]
            with anyio.CancelScope(shield=True):  # the others wait on this batch
                await self._deliver(queue_url, batch.entries)
                batch.done.set()

    async def _deliver(self, queue_url: str, entries: list[_Entry]) -> None:
        pending = entries
        for attempt in range(MAX_ATTEMPTS):
            requests = [{"Id": str(i), **entry.request} for i, entry in enumerate(pending)]
            try:
                result = await self._client.send_message_batch(queue_url, requests)
            except TransientSQSError as exc:
                if attempt + 1 == MAX_ATTEMPTS:
                    for entry in pending:
                        entry.error = exc
                    return
                await anyio.sleep(send_pause(attempt))
                continue
            except SQSError as exc:
                for entry in pending:
                    entry.error = exc
                return
            # An entry the answer left out is among the retries: sent again, never taken as
            # sent (it has no MessageId) nor as refused (it may have gone through).
            answer = read_answer(range(len(pending)), result)
            for i in answer.done:
                message_id, md5 = result.sent[str(i)]
                if md5 is not None and md5 != md5_of_body(pending[i].request["MessageBody"]):
                    pending[i].error = SQSError(
                        f"message {message_id}: the MD5 SQS computed of the body does not "
                        "match what was sent",
                        operation="SendMessageBatch",
                    )
                else:
                    pending[i].message_id = message_id
            ended = answer.give_up if attempt + 1 < MAX_ATTEMPTS else answer.give_up + answer.retry
            for i, failure in ended:
                pending[i].error = _send_error(failure, attempt=attempt + 1)
            retry = [pending[i] for i, _ in answer.retry]
            if not retry or attempt + 1 == MAX_ATTEMPTS:
                return
            pending = retry
            await anyio.sleep(send_pause(attempt))


def _send_error(failure: BatchEntryFailure, *, attempt: int) -> SQSError:
    """What the sender of an entry SQS did not confirm at `attempt` is told."""
    if failure.code == LEFT_OUT:
        text = (
            f"SQS's answer to SendMessageBatch left the message out (attempt {attempt} of "
            f"{MAX_ATTEMPTS}): whether it was sent is unknown"
        )
    else:
        text = f"SendMessageBatch refused a message ({failure.code}: {failure.message})"
    return SQSError(text, code=failure.code, operation="SendMessageBatch")


def send_pause(attempt: int) -> float:
    """Back-off before sending a batch again: 0.1 s doubling to 2 s, with jitter."""
    return backoff(attempt, base=0.1, cap=2.0)


async def _offload(
    store: PayloadStore, bucket: str, text: str, attributes: dict[str, dict[str, Any]]
) -> tuple[str, dict[str, dict[str, Any]]]:
    """The pointer body and attributes that stand for `text`, once it is stored in S3."""
    reserved = [name for name in attributes if name in RESERVED_ATTRIBUTES]
    if reserved:
        raise ConfigurationError(
            f"message attribute {reserved[0]!r} is reserved: it marks a body stored in S3"
        )
    if len(attributes) >= MAX_ATTRIBUTES:
        raise ConfigurationError(
            f"{len(attributes)} message attributes given: a body sent through S3 may have at "
            f"most {MAX_ATTRIBUTES - 1}, the pointer's size attribute takes the last one"
        )
    pointer = await store.store(bucket, text)
    logger.debug("stored a body of %d characters at %s", len(text), pointer)
    return pointer_body(pointer), {**attributes, **pointer_attributes(len(text.encode()))}


class Producer:
    """Sends messages without running consumers.

    ```python
    async with Producer(region="eu-west-1") as producer:
        await producer.send("orders", {"id": 42}, attributes={"source": "web"})
    ```

    Concurrent sends share SendMessageBatch calls. Queues are given by name or URL. A body
    over its queue's MaximumMessageSize goes through S3 when `payload_bucket` is given (every
    body, with ``payload_offload="always"``), in the format AWS's extended clients read; the
    settings are those of `AppConfig`. `client` is ``"fast"``, ``"botocore"``, ``"aiohttp"`` or an
    `SQSClient` instance, as for `App`.
    """

    @checked_settings("Producer")
    def __init__(
        self,
        *,
        region: str | None = None,
        endpoint_url: str | None = None,
        profile: str | None = None,
        client: ClientName | SQSClient = "fast",
        linger: float = 0.01,
        payload_bucket: str | None = None,
        payload_offload: PayloadOffload = "over-limit",
        s3_endpoint_url: str | None = None,
    ) -> None:
        self._config = AppConfig(
            region=region,
            endpoint_url=endpoint_url,
            profile=profile,
            client=client,
            payload_bucket=payload_bucket,
            payload_offload=payload_offload,
            s3_endpoint_url=s3_endpoint_url,
        )
        check_seconds("linger", linger, 0, 10)
        self._linger = linger
        self._stack: AsyncExitStack | None = None
        self._sender: BatchingSender | None = None
        self._urls: QueueUrls | None = None

    async def __aenter__(self) -> Producer:
        stack = AsyncExitStack()
        await stack.__aenter__()
        try:
            client = await open_sqs_client(stack, self._config, max_connections=20, longest_wait=0)
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        payloads = PayloadSending(
            open_payload_store(stack, self._config, max_connections=20),
            self._config.payload_bucket,
            self._config.payload_offload,
        )
        self._sender = BatchingSender(client, linger=self._linger, payloads=payloads)
        self._urls = QueueUrls(client)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()

    async def send(self, queue: str, body: object, **options: Unpack[SendOptions]) -> str:
        """Send one message to `queue` (name or URL); returns its MessageId.

        The options are those of `SendOptions`: attributes, delay, group_id, deduplication_id.
        With OpenTelemetry installed, the current trace context goes with the message
        (``traceparent``), for the consumer's span to continue.
        """
        if self._sender is None or self._urls is None:
            raise RuntimeError("use the Producer inside `async with Producer(...) as producer:`")
        options["attributes"] = with_trace_context(options.get("attributes"))
        return await self._sender.send(await self._urls.get(queue), body, **options)
