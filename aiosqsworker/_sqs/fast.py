"""The fast path: the hot SQS calls over aiohttp, speaking SQS's JSON protocol directly.

A profile of an aiobotocore consumer shows its time going to botocore's request
serialization, event hooks, user-agent assembly and response parsing, not to the network.
`FastSQSClient` keeps aiobotocore for what it is good at (the credential chain with refresh,
region and endpoint resolution, every control-plane call) and serves ReceiveMessage,
DeleteMessageBatch, ChangeMessageVisibilityBatch and SendMessage(Batch) itself:

- one keep-alive aiohttp session, its read timeout longer than the long poll;
- SigV4 with a signing key cached per day (`sigv4.py`), over the Host header it sends;
  credentials from botocore's chain through `CredentialSource` (shared with aiobotocore), frozen
  per request so that refreshed ones are picked up, a credentials outage a transient error;
- compact JSON encoding and decoding (orjson when installed);
- MD5 of every received body verified, as the SDKs for other languages do: a message whose
  body does not match is not handed to a handler (it comes back after its visibility timeout);
- the same error classification and mapping as the aiobotocore path (`classify_error_code`),
  and the same retry policy as botocore's "standard" mode: three attempts with jittered
  exponential back-off for throttling, 5xx and connection errors.

`App(client="botocore")` turns it off; the integration tests run against both paths.
"""

from __future__ import annotations

import base64
import io
import json
import logging
from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any

import aiohttp
import anyio

from .._backoff import backoff
from .._errors import CredentialsUnavailableError, TransientSQSError
from .base import BatchResult, SendBatchResult
from .botocore import AioBotocoreSQSClient
from .checksums import md5_of_body
from .credentials import CredentialSource
from .errors import Endpoint, sqs_error
from .sigv4 import FrozenCredentials, RequestSigner

__all__ = ["FastSQSClient", "verified_messages"]

logger = logging.getLogger("aiosqsworker.client")

try:
    from orjson import dumps as _orjson_dumps
    from orjson import loads as _orjson_loads

    def _dumps(value: Any) -> bytes:
        return _orjson_dumps(value)

    def _loads(raw: bytes) -> Any:
        return _orjson_loads(raw)

except ImportError:  # pragma: no cover - depends on the environment

    def _dumps(value: Any) -> bytes:
        return json.dumps(value, separators=(",", ":")).encode()

    def _loads(raw: bytes) -> Any:
        return json.loads(raw)


MAX_ATTEMPTS = 3
LARGE_BODY = 1 << 20
CONTENT_TYPE = "application/x-amz-json-1.0"


@cache
def _action_headers(action: str) -> Mapping[str, str]:
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


def _encode_binary(entry: Mapping[str, Any]) -> dict[str, Any]:
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


def _error_code(
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
        kind = headers.get("Content-Type") or "no Content-Type"
        start = " ".join(raw[:120].decode(errors="replace").split())
        message = f"a {kind} body: {start!r}"
    query_code = headers.get("x-amzn-query-error")
    if query_code:  # SQS's JSON protocol carries the classic code here
        code = query_code.partition(";")[0]
    return code or f"HTTP{status}", message


class FastSQSClient:
    """`SQSClient` with the hot calls over aiohttp; the rest delegated to aiobotocore."""

    #: SQS hands messages to a long poll whose client has gone away.
    cancelled_polls_take_messages = True

    def __init__(
        self,
        fallback: AioBotocoreSQSClient,
        credentials: CredentialSource,
        session: aiohttp.ClientSession,
    ) -> None:
        """`credentials`: the source `fallback` refreshes too (one outage, one limit)."""
        self._fallback = fallback
        self._credentials = credentials
        self._session = session
        self._url = fallback.endpoint.url.rstrip("/") + "/"
        self._region = fallback.endpoint.region
        self._signer = RequestSigner.for_url(self._url, region=self._region, service="sqs")
        self._user_agent = f"aiosqsworker aiohttp/{aiohttp.__version__}"

    @property
    def endpoint(self) -> Endpoint:
        return self._fallback.endpoint

    # Control plane: aiobotocore.
    async def resolve_queue_url(self, queue: str) -> str:
        return await self._fallback.resolve_queue_url(queue)

    async def get_queue_attributes(self, queue_url: str) -> dict[str, str]:
        return await self._fallback.get_queue_attributes(queue_url)

    async def queue_url_from_arn(self, arn: str) -> str:
        return await self._fallback.queue_url_from_arn(arn)

    async def list_dead_letter_source_queues(self, queue_url: str) -> list[str]:
        return await self._fallback.list_dead_letter_source_queues(queue_url)

    # Hot path: aiohttp.
    async def receive_messages(
        self, queue_url: str, *, max_messages: int, wait_time: int, visibility_timeout: int
    ) -> list[dict[str, Any]]:
        response = await self._call(
            "ReceiveMessage",
            {
                "QueueUrl": queue_url,
                "MaxNumberOfMessages": max_messages,
                "WaitTimeSeconds": wait_time,
                "VisibilityTimeout": visibility_timeout,
                "MessageSystemAttributeNames": ["All"],
                "MessageAttributeNames": ["All"],
            },
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
            {"QueueUrl": queue_url, "Entries": [_encode_binary(entry) for entry in entries]},
            queue_url,
        )
        return SendBatchResult.from_response(response)

    async def signing_credentials(self) -> FrozenCredentials:
        """The credentials the hot calls are signed with now."""
        return await self._credentials.frozen()

    async def _call(self, action: str, request: dict[str, Any], queue: str) -> dict[str, Any]:
        body = _dumps(request)
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

    async def _send_once(self, action: str, body: bytes, queue: str) -> dict[str, Any]:
        credentials = await self._credentials.frozen(action)
        headers = self._signer.sign(_action_headers(action), body, credentials)
        headers["User-Agent"] = self._user_agent
        try:
            # aiohttp warns about (and blocks the loop on) raw bytes over 1 MiB: a message near
            # SQS's size limit goes as a stream.
            data: bytes | io.BytesIO = body if len(body) < LARGE_BODY else io.BytesIO(body)
            async with self._session.post(self._url, data=data, headers=headers) as response:
                raw = await response.read()
                status = response.status
                response_headers = response.headers
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            where = f"region {self._region}, endpoint {self.endpoint.url}"
            raise TransientSQSError(
                f"{action} could not reach SQS at {where}: {exc!r}", operation=action
            ) from exc
        try:
            payload = _loads(raw) if raw else {}
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
        code, detail = _error_code(status, response_headers, payload, raw)
        raise sqs_error(code, status, detail, operation=action, endpoint=self.endpoint, queue=queue)
