"""SQS's JSON protocol, spoken directly: what both direct clients (`fast.py` over aiohttp,
`lean.py` over `http11.py`) share.

`JsonProtocolCalls` builds the hot calls' requests, retries them as botocore's "standard"
mode does (three attempts, jittered exponential back-off for throttling, 5xx and connection
errors) and reads the answers (`read_answer`: the payload, or the framework's error for it);
a subclass only sends bytes (`_send_once`). Every received body's MD5 is checked
(`verified_messages`), as the SDKs for other languages do.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Mapping, Sequence
from functools import cache, lru_cache
from typing import Any

import anyio

from .._backoff import backoff
from .._errors import CredentialsUnavailableError, TransientSQSError
from .base import BatchResult, SendBatchResult
from .checksums import md5_of_body
from .errors import Endpoint, sqs_error

__all__ = [
    "CONTENT_TYPE",
    "JsonProtocolCalls",
    "action_headers",
    "dumps",
    "encode_binary",
    "error_code",
    "loads",
    "read_answer",
    "verified_messages",
]

logger = logging.getLogger("aiosqsworker.client")

try:
    from orjson import dumps as _orjson_dumps
    from orjson import loads as _orjson_loads

    def dumps(value: Any) -> bytes:
        return _orjson_dumps(value)

    def loads(raw: bytes) -> Any:
        return _orjson_loads(raw)

except ImportError:  # pragma: no cover - depends on the environment

    def dumps(value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()

    def loads(raw: bytes) -> Any:
        return json.loads(raw)


MAX_ATTEMPTS = 3
CONTENT_TYPE = "application/x-amz-json-1.0"


@cache
def action_headers(action: str) -> Mapping[str, str]:
    return {"Content-Type": CONTENT_TYPE, "X-Amz-Target": f"AmazonSQS.{action}"}


def verified_messages(messages: list[dict[str, Any]], queue: str) -> list[dict[str, Any]]:
    """The messages whose body matches its MD5OfBody; the others are logged and left out."""
    good: list[dict[str, Any]] = []
    for message in messages:
        expected = message.get("MD5OfBody")
        if expected is not None and md5_of_body(message.get("Body", "")) != expected:
            logger.error(
                "message %s from %s failed its MD5 check (corrupted in transit?): not handed "
                "to a handler; SQS delivers it again after its visibility timeout",
                message.get("MessageId"),
                queue,
            )
            continue
        attributes = message.get("MessageAttributes")
        if attributes:
            for value in attributes.values():
                if "BinaryValue" in value and isinstance(value["BinaryValue"], str):
                    value["BinaryValue"] = base64.b64decode(value["BinaryValue"])
        good.append(message)
    return good


def encode_binary(entry: Mapping[str, Any]) -> dict[str, Any]:
    """JSON has no bytes: binary attribute values travel base64-encoded, as botocore sends them."""
    result = dict(entry)
    attributes = entry.get("MessageAttributes")
    if attributes:
        result["MessageAttributes"] = {
            name: {
                key: (base64.b64encode(v).decode() if isinstance(v, bytes) else v)
                for key, v in value.items()
            }
            for name, value in attributes.items()
        }
    return result


def error_code(
    status: int, headers: Mapping[str, str], payload: Any, raw: bytes = b""
) -> tuple[str, str]:
    """(code, message) of an error response, as botocore's JSON parser would find them.

    An answer that is not SQS's JSON (an HTML or XML page from a proxy or a gateway) has no
    code: ``HTTP<status>``, with the start of its body as the message.
    """
    message = ""
    code = ""
    if isinstance(payload, dict):
        message = str(payload.get("message") or payload.get("Message") or "")
        code = str(payload.get("__type") or payload.get("code") or "").rpartition("#")[2]
    elif raw:
        kind = headers.get("Content-Type") or headers.get("content-type") or "no Content-Type"
        start = " ".join(raw[:120].decode(errors="replace").split())
        message = f"a {kind} body: {start!r}"
    query_code = headers.get("x-amzn-query-error")
    if query_code:  # SQS's JSON protocol carries the classic code here
        code = query_code.partition(";")[0]
    return code or f"HTTP{status}", message


def read_answer(
    action: str,
    status: int,
    headers: Mapping[str, str],
    raw: bytes,
    *,
    endpoint: Endpoint,
    queue: str | None,
) -> dict[str, Any]:
    """The payload of a 200 answer, or the framework's error for any other (a 200 whose body
    is not JSON was cut short: transient, never an empty result)."""
    try:
        payload = loads(raw) if raw else {}
    except ValueError:
        payload = None
    if status == 200 and isinstance(payload, dict):
        return payload
    if status == 200:
        raise TransientSQSError(
            f"{action}: SQS answered 200 with a body that is not JSON ({len(raw)} bytes, "
            "cut short?)",
            operation=action,
        )
    code, detail = error_code(status, headers, payload, raw)
    raise sqs_error(code, status, detail, operation=action, endpoint=endpoint, queue=queue)


class JsonProtocolCalls:
    """The hot calls over SQS's JSON protocol; subclasses send (`_send_once`)."""

    @property
    def endpoint(self) -> Endpoint:
        raise NotImplementedError

    async def _send_once(self, action: str, body: bytes, queue: str | None) -> dict[str, Any]:
        """One attempt: the answer's payload, or the framework's error (transient ones are
        tried again)."""
        raise NotImplementedError

    async def _call(
        self, action: str, request: Mapping[str, Any] | bytes, queue: str | None
    ) -> dict[str, Any]:
        body = request if isinstance(request, bytes) else dumps(request)
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                return await self._send_once(action, body, queue)
            except CredentialsUnavailableError:
                raise  # nothing was sent; the caller's own back-off paces the next fetch
            except TransientSQSError:
                if attempt == MAX_ATTEMPTS:
                    raise
                # botocore's standard mode: "full jitter" up to 2^attempt-1 s, capped at 20 s.
                await anyio.sleep(backoff(attempt - 1, base=1.0, cap=20.0, spread=1.0))
        raise AssertionError("unreachable")  # pragma: no cover

    async def receive_messages(
        self, queue_url: str, *, max_messages: int, wait_time: int, visibility_timeout: int
    ) -> list[dict[str, Any]]:
        response = await self._call(
            "ReceiveMessage",
            _receive_body(queue_url, max_messages, wait_time, visibility_timeout),
            queue_url,
        )
        return verified_messages(response.get("Messages") or [], queue_url)

    async def delete_message_batch(
        self, queue_url: str, entries: Sequence[tuple[str, str]]
    ) -> BatchResult:
        response = await self._call(
            "DeleteMessageBatch",
            {
                "QueueUrl": queue_url,
                "Entries": [{"Id": id_, "ReceiptHandle": handle} for id_, handle in entries],
            },
            queue_url,
        )
        return BatchResult.from_response(response)

    async def change_visibility_batch(
        self, queue_url: str, entries: Sequence[tuple[str, str, int]]
    ) -> BatchResult:
        response = await self._call(
            "ChangeMessageVisibilityBatch",
            {
                "QueueUrl": queue_url,
                "Entries": [
                    {"Id": id_, "ReceiptHandle": handle, "VisibilityTimeout": timeout}
                    for id_, handle, timeout in entries
                ],
            },
            queue_url,
        )
        return BatchResult.from_response(response)

    async def send_message_batch(
        self, queue_url: str, entries: Sequence[Mapping[str, Any]]
    ) -> SendBatchResult:
        response = await self._call(
            "SendMessageBatch",
            {"QueueUrl": queue_url, "Entries": [encode_binary(entry) for entry in entries]},
            queue_url,
        )
        return SendBatchResult.from_response(response)


@lru_cache(maxsize=256)
def _receive_body(queue_url: str, max_messages: int, wait_time: int, visibility: int) -> bytes:
    """A queue's ReceiveMessage body: the same few per queue, built once."""
    return dumps(
        {
            "QueueUrl": queue_url,
            "MaxNumberOfMessages": max_messages,
            "WaitTimeSeconds": wait_time,
            "VisibilityTimeout": visibility,
            "MessageSystemAttributeNames": ["All"],
            "MessageAttributeNames": ["All"],
        }
    )
