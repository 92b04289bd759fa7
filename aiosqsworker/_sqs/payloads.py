"""S3 payloads: large bodies stored in S3, in the format of AWS's extended clients.

A message whose body went to S3 carries a pointer instead, and a reserved attribute with the
payload's size in bytes. Both formats AWS's clients read and write are understood:

```text
current: ["software.amazon.payloadoffloading.PayloadS3Pointer",
          {"s3BucketName": "...", "s3Key": "..."}]           attribute ExtendedPayloadSize
legacy:  ["com.amazon.sqs.javamessaging.MessageS3Pointer", {...the same...}]
                                                             attribute SQSLargePayloadSize
```

As in AWS's clients, the attribute says a message is a pointer; sends always write the
current format. The pure parts (`pointer_of`, `pointer_body`, `pointer_attributes`,
`offload_decision`) are tested directly; `PayloadStore` does the S3 calls, through
aiobotocore, and maps S3's errors to `PayloadError` and `PayloadNotFoundError` here, at the
boundary (`map_s3_errors`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import anyio

from .._backlog import Backlog
from .._errors import MessageDecodeError, PayloadError, PayloadNotFoundError
from .._message import Message
from .errors import unreachable_hint

__all__ = [
    "LEGACY_POINTER_CLASS",
    "LEGACY_SIZE_ATTRIBUTE",
    "POINTER_CLASS",
    "RESERVED_ATTRIBUTES",
    "SIZE_ATTRIBUTE",
    "PayloadJanitor",
    "PayloadStore",
    "S3Pointer",
    "has_pointer",
    "map_s3_errors",
    "offload_decision",
    "pointer_attributes",
    "pointer_body",
    "pointer_of",
    "without_reserved",
]

logger = logging.getLogger("aiosqsworker.payloads")

POINTER_CLASS = "software.amazon.payloadoffloading.PayloadS3Pointer"
SIZE_ATTRIBUTE = "ExtendedPayloadSize"
LEGACY_POINTER_CLASS = "com.amazon.sqs.javamessaging.MessageS3Pointer"
LEGACY_SIZE_ATTRIBUTE = "SQSLargePayloadSize"
RESERVED_ATTRIBUTES = (SIZE_ATTRIBUTE, LEGACY_SIZE_ATTRIBUTE)
#: Keys per DeleteObjects call (S3's limit).
MAX_DELETE_KEYS = 1000
_MISSING_CODES = {"NoSuchKey", "NoSuchBucket", "404", "NotFound"}


@dataclass(frozen=True, slots=True)
class S3Pointer:
    """Where a message's body is: an S3 bucket and key."""

    bucket: str
    key: str

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def has_pointer(message_attributes: Mapping[str, object]) -> bool:
    """Whether a message says its body is in S3 (the reserved size attribute is there)."""
    return SIZE_ATTRIBUTE in message_attributes or LEGACY_SIZE_ATTRIBUTE in message_attributes


def pointer_of(body: str, message_attributes: Mapping[str, object]) -> S3Pointer | None:
    """The S3 pointer a message carries, or None for an ordinary message.

    Raises:
        MessageDecodeError: the message has the reserved attribute but its body is not a
            pointer (no retry will change that).
    """
    if not has_pointer(message_attributes):
        return None
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    if (
        isinstance(document, list)
        and len(document) == 2
        and document[0] in (POINTER_CLASS, LEGACY_POINTER_CLASS)
        and isinstance(document[1], dict)
        and isinstance(document[1].get("s3BucketName"), str)
        and isinstance(document[1].get("s3Key"), str)
    ):
        return S3Pointer(document[1]["s3BucketName"], document[1]["s3Key"])
    raise MessageDecodeError(
        f"the message has the {'/'.join(RESERVED_ATTRIBUTES)} attribute of an S3 payload but "
        f"its body ({len(body)} characters) is not an extended-client pointer "
        f'(["{POINTER_CLASS}", {{"s3BucketName": ..., "s3Key": ...}}])'
    )


def pointer_body(pointer: S3Pointer) -> str:
    """The body that stands for a payload in S3, as AWS's Python client writes it."""
    return json.dumps([POINTER_CLASS, {"s3BucketName": pointer.bucket, "s3Key": pointer.key}])


def pointer_attributes(payload_bytes: int) -> dict[str, dict[str, str]]:
    """The reserved attribute that marks a pointer, holding the payload's size."""
    return {SIZE_ATTRIBUTE: {"DataType": "Number", "StringValue": str(payload_bytes)}}


OffloadDecision = Literal["send", "offload", "refuse"]


def offload_decision(size: int, limit: int, *, bucket: str | None, always: bool) -> OffloadDecision:
    """Whether a message of `size` bytes goes as it is, through S3, or not at all."""
    if bucket is not None and (always or size > limit):
        return "offload"
    return "refuse" if size > limit else "send"


def without_reserved(
    message_attributes: Mapping[str, Mapping[str, Any]],
) -> dict[str, Mapping[str, Any]]:
    """The attributes a handler sees: the sender's own, less the pointer's size attribute."""
    return {
        name: value for name, value in message_attributes.items() if name not in RESERVED_ATTRIBUTES
    }


@contextlib.contextmanager
def map_s3_errors(operation: str, endpoint: str, pointer: S3Pointer) -> Iterator[None]:
    """Turn botocore's and aiohttp's exceptions of an S3 call into `PayloadError`."""
    # Only S3 calls through aiobotocore come here: loaded by then, kept off the import path.
    import aiohttp
    from botocore.exceptions import BotoCoreError, ClientError

    where = f"{pointer} (S3 endpoint {endpoint})"
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = str(error.get("Code") or status)
        detail = error.get("Message") or str(exc)
        if code in _MISSING_CODES:
            what = "bucket" if code == "NoSuchBucket" else "object"
            raise PayloadNotFoundError(
                f"{operation}: the {what} of payload {where} does not exist ({code}): it was "
                "deleted (a lifecycle rule, or delete_payloads on another consumer?) or never "
                "written, or the pointer names the wrong bucket or endpoint (AWS_ENDPOINT_URL_S3)",
                code=code,
                bucket=pointer.bucket,
                key=pointer.key,
            ) from exc
        hint = ""
        if code in ("AccessDenied", "AllAccessDisabled", "InvalidAccessKeyId"):
            hint = f". Grant these credentials s3:{operation} on bucket {pointer.bucket}"
        raise PayloadError(
            f"{operation} of payload {where} failed ({code}: {detail}){hint}",
            code=code,
            bucket=pointer.bucket,
            key=pointer.key,
        ) from exc
    except (BotoCoreError, aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
        raise PayloadError(
            f"{operation} of payload {where} could not reach S3: {exc}{unreachable_hint(endpoint)}",
            bucket=pointer.bucket,
            key=pointer.key,
        ) from exc


def _text_of(data: bytes, pointer: S3Pointer) -> str:
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        raise MessageDecodeError(
            f"payload {pointer} is not UTF-8 text ({exc.reason} at byte {exc.start}): an SQS "
            "body, and so an extended-client payload, is text"
        ) from None


class PayloadStore:
    """Puts, gets and deletes payloads over one S3 client, opened on its first use.

    Apps that never meet a pointer never load botocore's S3 model (a noticeable start-up
    cost), so `open_client` runs only when a first call needs it.
    """

    def __init__(self, open_client: Callable[[], Awaitable[Any]]) -> None:
        self._open_client = open_client
        self._client: Any = None
        self._opening = anyio.Lock()
        #: Where the S3 calls go, for error messages (known once the client is open).
        self.endpoint = "the configured S3 endpoint"

    async def _s3(self) -> Any:
        if self._client is None:
            async with self._opening:
                if self._client is None:
                    client = await self._open_client()
                    self.endpoint = str(client.meta.endpoint_url)
                    self._client = client
        return self._client

    async def fetch(self, pointer: S3Pointer, *, max_bytes: int | None = None) -> str:
        """The payload's text (its first `max_bytes` bytes only, for a preview)."""
        s3 = await self._s3()
        request: dict[str, Any] = {"Bucket": pointer.bucket, "Key": pointer.key}
        if max_bytes is not None:
            request["Range"] = f"bytes=0-{max_bytes - 1}"
        with map_s3_errors("GetObject", self.endpoint, pointer):
            response = await s3.get_object(**request)
            async with response["Body"] as stream:
                data = bytes(await stream.read())
        if max_bytes is not None:
            return data.decode(errors="replace")
        return _text_of(data, pointer)

    async def store(self, bucket: str, text: str) -> S3Pointer:
        """Put `text` in `bucket` under a fresh key; the pointer to it."""
        pointer = S3Pointer(bucket, str(uuid.uuid4()))
        s3 = await self._s3()
        with map_s3_errors("PutObject", self.endpoint, pointer):
            await s3.put_object(Bucket=bucket, Key=pointer.key, Body=text.encode())
        return pointer

    async def delete(self, pointers: Sequence[S3Pointer]) -> list[tuple[S3Pointer, str]]:
        """Delete the objects; those S3 did not delete, with why (none raise)."""
        s3 = await self._s3()
        failures: list[tuple[S3Pointer, str]] = []
        by_bucket: dict[str, list[S3Pointer]] = {}
        for pointer in pointers:
            by_bucket.setdefault(pointer.bucket, []).append(pointer)
        for bucket, inside in by_bucket.items():
            for start in range(0, len(inside), MAX_DELETE_KEYS):
                chunk = inside[start : start + MAX_DELETE_KEYS]
                try:
                    with map_s3_errors("DeleteObjects", self.endpoint, chunk[0]):
                        response = await s3.delete_objects(
                            Bucket=bucket,
                            Delete={"Objects": [{"Key": p.key} for p in chunk], "Quiet": True},
                        )
                except PayloadError as exc:
                    failures.extend((pointer, str(exc)) for pointer in chunk)
                    continue
                for error in response.get("Errors", ()):
                    why = f"{error.get('Code')}: {error.get('Message')}"
                    failures.append((S3Pointer(bucket, str(error.get("Key"))), why))
        return failures

    async def resolve(self, message: Message) -> Message:
        """The message as its handler sees it: the body fetched from S3 if it is a pointer.

        Raises:
            PayloadNotFoundError: the object (or its bucket) does not exist.
            PayloadError: S3 refused the request or could not be reached.
            MessageDecodeError: the pointer is malformed, or the payload is not text.
        """
        try:
            pointer = pointer_of(message.body, message.message_attributes)
        except MessageDecodeError as exc:
            raise MessageDecodeError(f"message {message.message_id}: {exc}") from None
        if pointer is None:
            return message
        try:
            body = await self.fetch(pointer)
        except PayloadError as exc:
            exc.args = (f"message {message.message_id}: {exc}",)
            raise
        return dataclasses.replace(
            message, body=body, message_attributes=without_reserved(message.message_attributes)
        )


class PayloadJanitor:
    """Deletes the S3 objects of messages whose delete SQS confirmed, in the background.

    Deletes are queued without waiting (the acker's hook is not async) and sent in
    DeleteObjects calls. An object S3 does not delete is logged and left behind: a lifecycle
    rule on the bucket is the backstop. On close, what is queued is deleted before `run`
    returns.
    """

    def __init__(self, store: PayloadStore, *, consumer: str) -> None:
        self._store = store
        self._consumer = consumer
        self._pending: Backlog[S3Pointer] = Backlog()
        self.deleted = 0
        self.failures = 0

    def discard(self, messages: Sequence[Message]) -> None:
        """Queue the payload deletes of these (deleted) messages; others are ignored."""
        for message in messages:
            try:
                pointer = pointer_of(message.body, message.message_attributes)
            except MessageDecodeError:
                continue  # no object to delete: the body never pointed to one
            if pointer is not None:
                self._pending.put(pointer)

    def close(self) -> None:
        self._pending.close()

    async def run(self) -> None:
        async for batch in self._pending.batches():
            failures = await self._store.delete(batch)
            self.deleted += len(batch) - len(failures)
            self.failures += len(failures)
            for pointer, why in failures:
                logger.warning(
                    "[%s] could not delete payload %s after its message was deleted (%s): it "
                    "stays in S3",
                    self._consumer,
                    pointer,
                    why,
                )
